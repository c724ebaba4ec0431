from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import kbp_notebook as kbp
from kbp_notebook.widgets import DrainPlanner
from tests.helpers.synthetic_dataset import SLOW_GROUP, START


@pytest.fixture(scope="module")
def behind(dataset):
    """The recording up to 7 minutes: slow-app is falling behind."""
    return dataset.lag[dataset.lag["time"] < START + pd.Timedelta(minutes=7)]


def test_sliders_start_at_todays_values(behind):
    planner = DrainPlanner(behind, group=SLOW_GROUP, target_s=600)
    plan = kbp.capacity_plan(behind[behind["group"] == SLOW_GROUP], target_s=600)
    row = plan.table.iloc[0]
    assert planner.consumers.value == int(row["consumers_now"])
    assert planner.per_consumer_rate.value == pytest.approx(float(row["per_consumer_rate"]),
                                                            rel=0.02)
    assert not np.isfinite(planner.eta_s)  # today's 2 consumers do not keep up
    assert "does not drain" in planner.readout.value


def test_more_consumers_give_an_eta_and_a_new_figure(behind):
    planner = DrainPlanner(behind, group=SLOW_GROUP, target_s=600)
    before_text, before_fig = planner.readout.value, planner.figure
    planner.consumers.value = 4
    expected = planner.plan.what_if(consumers=4, produce_growth=0.0,
                                    per_consumer_rate=planner.per_consumer_rate.value,
                                    target_s=600).table.iloc[0]["eta_s_at_plan"]
    assert np.isfinite(planner.eta_s)
    assert planner.eta_s == pytest.approx(float(expected))
    assert "ETA to drain" in planner.readout.value and planner.readout.value != before_text
    assert planner.figure is not before_fig
    drawn = [t for t in planner.figure.data if t.name and "consumers drain in" in t.name]
    assert len(drawn) == 1 and drawn[0].y[-1] == 0


def test_produce_growth_slows_the_drain(behind):
    planner = DrainPlanner(behind, group=SLOW_GROUP, target_s=600)
    planner.consumers.value = 4
    eta = planner.eta_s
    planner.produce_growth.value = 0.1
    assert planner.eta_s > eta


def test_target_changes_the_consumers_needed(behind):
    planner = DrainPlanner(behind, group=SLOW_GROUP, target_s=600)
    planner.target_min.value = 120
    relaxed = planner.scenario.table.iloc[0]["consumers_needed"]
    planner.target_min.value = 2
    urgent = planner.scenario.table.iloc[0]["consumers_needed"]
    assert urgent > relaxed
    assert f"{int(urgent)} consumers needed" in planner.readout.value
