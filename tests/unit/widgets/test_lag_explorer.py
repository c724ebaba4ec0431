from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kbp_notebook.widgets import LagExplorer
from tests.helpers.synthetic_dataset import HOSTILE_GROUP, SLOW_GROUP


def _lines(fig):
    return [t for t in fig.data if t.type == "scatter" and t.mode == "lines"
            and not (t.name or "").startswith("trend")]


def test_picking_another_group_redraws_that_groups_lag(dataset):
    explorer = LagExplorer(dataset, group=SLOW_GROUP)
    before = explorer.figure
    assert explorer.group.value == SLOW_GROUP
    assert SLOW_GROUP in before.layout.title.text
    explorer.group.value = HOSTILE_GROUP
    after = explorer.figure
    assert after is not before
    assert "&lt;img" in after.layout.title.text and "<img" not in after.layout.title.text
    total = dataset.lag[dataset.lag["group"] == HOSTILE_GROUP].groupby("time")["lag"].sum()
    np.testing.assert_allclose(np.asarray(_lines(after)[0].y, dtype=float),
                               total.to_numpy(dtype=float))
    assert HOSTILE_GROUP.split(">")[0].replace("<", "&lt;") in explorer.readout.value
    # The figure area holds the same figure as a bundle Lab and an exported report can draw.
    bundle = explorer.view.outputs[0]["data"]
    assert set(bundle) == {"application/vnd.plotly.v1+json", "text/html"}
    assert bundle["application/vnd.plotly.v1+json"]["layout"]["title"]["text"] == \
        after.layout.title.text


def test_partition_breakdown_and_single_partition(dataset):
    explorer = LagExplorer(dataset, group=SLOW_GROUP)
    assert len(_lines(explorer.figure)) == 1
    explorer.breakdown.value = True
    assert len(_lines(explorer.figure)) == 4
    assert explorer.partition.options == ("(all)", "0", "1", "2", "3")
    explorer.partition.value = "2"
    lines = _lines(explorer.figure)
    assert len(lines) == 1
    expected = dataset.lag[(dataset.lag["group"] == SLOW_GROUP) & (dataset.lag["partition"] == 2)]
    np.testing.assert_allclose(np.asarray(lines[0].y, dtype=float),
                               expected["lag"].to_numpy(dtype=float))


def test_time_range_limits_the_plotted_window(dataset):
    explorer = LagExplorer(dataset, group=SLOW_GROUP)
    times = explorer.time_range.options
    explorer.time_range.index = (10, 40)
    start, end = times[10][1], times[40][1]
    x = pd.to_datetime(list(_lines(explorer.figure)[0].x)).tz_localize("UTC")
    assert x.min() == start and x.max() == end
    assert len(x) == 31


def test_trend_overlay_toggles(dataset):
    explorer = LagExplorer(dataset, group=SLOW_GROUP)
    assert explorer.trend.value is True
    assert explorer.last_trend is not None
    assert any((t.name or "").startswith("trend") for t in explorer.figure.data)
    explorer.trend.value = False
    assert explorer.last_trend is None
    assert not any((t.name or "").startswith("trend") for t in explorer.figure.data)


def test_static_figure_is_a_plain_copy_of_the_current_state(dataset):
    explorer = LagExplorer(dataset.lag)
    static = explorer.static_figure()
    assert type(static) is go.Figure
    assert json.loads(static.to_json()) == json.loads(explorer.figure.to_json())
    explorer.breakdown.value = True
    assert len(static.data) != len(explorer.figure.data)  # a snapshot, not a live view
