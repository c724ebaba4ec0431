"""Explorers without a kernel: each choice of the offline figure is what the live explorer draws.

An exported report has no kernel, so an explorer draws itself as one plotly
figure whose own dropdown or slider switches between precomputed choices
(``offline_figure``). These tests move the live control to each value and
check the offline figure's step for that value shows the same title and traces.
"""

from __future__ import annotations

import json

import pandas as pd
import plotly.io as pio
import pytest

from kbp_notebook import viz
from kbp_notebook.widgets import CorrelationExplorer, DrainPlanner, LagExplorer
from tests.helpers.synthetic_dataset import HOSTILE_GROUP, SLOW_GROUP, START

PLOTLY = "application/vnd.plotly.v1+json"


def _traces(fig):
    return [json.dumps(t, sort_keys=True) for t in json.loads(pio.to_json(fig))["data"]]


def _step_traces(offline, k, kind):
    steps = offline.layout.updatemenus[0].buttons if kind == "dropdown" \
        else offline.layout.sliders[0].steps
    visible = steps[k].args[0]["visible"]
    data = json.loads(pio.to_json(offline))["data"]
    shown = []
    for trace, flag in zip(data, visible, strict=True):
        if flag is not False:
            trace.pop("visible", None)
            shown.append(json.dumps(trace, sort_keys=True))
    return steps[k], shown


def _live_traces(explorer):
    data = json.loads(pio.to_json(explorer.figure))["data"]
    for trace in data:
        trace.pop("visible", None)
    return [json.dumps(t, sort_keys=True) for t in data]


def test_lag_explorer_group_dropdown_matches_the_live_explorer(dataset):
    explorer = LagExplorer(dataset, group=SLOW_GROUP)
    offline = explorer.offline_figure()
    meta = offline.layout.meta["kbp_control"]
    assert meta["kind"] == "dropdown" and meta["label"] == "group"
    assert meta["choices"] == [viz.esc(g) for g in explorer.group.options]
    assert explorer.group.value == SLOW_GROUP  # the control is back where it was
    for k, group in enumerate(explorer.group.options):
        explorer.group.value = group
        step, shown = _step_traces(offline, k, "dropdown")
        assert sorted(shown) == sorted(_live_traces(explorer))
        assert step.args[1]["title.text"].startswith(explorer.figure.layout.title.text)
        assert viz.esc(group) in step.args[1]["title.text"]


def test_drain_planner_consumer_slider_matches_the_live_planner(dataset):
    behind = dataset.lag[dataset.lag["time"] < START + pd.Timedelta(minutes=7)]
    planner = DrainPlanner(behind, group=SLOW_GROUP, target_s=600)
    today = planner.consumers.value
    offline = planner.offline_figure()
    meta = offline.layout.meta["kbp_control"]
    counts = list(range(planner.consumers.min, planner.consumers.max + 1))
    assert meta["kind"] == "slider" and meta["choices"] == [str(c) for c in counts]
    assert offline.layout.sliders[0].active == counts.index(today)
    for k in (0, counts.index(today) + 2, len(counts) - 1):
        planner.consumers.value = counts[k]
        step, shown = _step_traces(offline, k, "slider")
        assert sorted(shown) == sorted(_live_traces(planner))
        assert f"{counts[k]} consumers" in step.args[1]["title.text"]


def test_correlation_explorer_metric_dropdown_offers_the_broker_signals_first(dataset):
    from kbp_notebook.widgets.correlation_explorer import _REPORT_FIRST, REPORT_CHOICES

    explorer = CorrelationExplorer(dataset)
    offline = explorer.offline_figure()
    meta = offline.layout.meta["kbp_control"]
    options = list(explorer.metric.options)
    first = [m for m in _REPORT_FIRST if m in options]
    expected = (first + [m for m in options if m not in first])[:REPORT_CHOICES]
    assert meta["choices"] == [viz.esc(m) for m in expected]
    assert len(meta["choices"]) == min(len(options), REPORT_CHOICES)
    for k, metric in enumerate(expected):
        assert viz.esc(metric) in offline.layout.updatemenus[0].buttons[k].args[1]["title.text"]


def test_in_report_mode_an_explorer_displays_as_a_plotly_figure_not_a_widget(dataset,
                                                                             monkeypatch):
    explorer = LagExplorer(dataset, group=HOSTILE_GROUP)
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()
    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype+kbp_report")
    bundle = explorer._repr_mimebundle_()
    assert set(bundle) == {PLOTLY, "text/html"}
    assert bundle[PLOTLY]["layout"]["updatemenus"][0]["buttons"]
    assert "<img src=x" not in bundle["text/html"]


@pytest.mark.parametrize("explorer_class", [LagExplorer])
def test_a_single_choice_draws_no_control(dataset, explorer_class):
    one_group = dataset.lag[dataset.lag["group"] == SLOW_GROUP]
    offline = explorer_class(one_group).offline_figure()
    assert not offline.layout.updatemenus and not offline.layout.sliders
    assert SLOW_GROUP in offline.layout.title.text
