from __future__ import annotations

import numpy as np
import pytest

import kbp_notebook as kbp
from kbp_notebook import viz


@pytest.fixture(scope="module")
def correlation(dataset):
    return kbp.flush_latency_vs_lag(dataset, target="lag_growth")


def test_both_series_share_the_time_axis(correlation):
    fig = viz.plot_correlation(correlation)
    x_trace, y_trace = fig.data[0], fig.data[1]
    np.testing.assert_allclose(np.asarray(x_trace.y, dtype=float),
                               correlation.aligned["x"].to_numpy(dtype=float))
    np.testing.assert_allclose(np.asarray(y_trace.y, dtype=float),
                               correlation.aligned["y"].to_numpy(dtype=float))
    assert x_trace.yaxis != y_trace.yaxis  # second series on its own (right) axis
    assert fig.layout[x_trace.xaxis.replace("x", "xaxis")] is not None


def test_r_by_shift_with_the_chosen_shift_marked(correlation):
    fig = viz.plot_correlation(correlation)
    bars = [t for t in fig.data if t.type == "bar"][0]
    assert len(bars.x) == len(correlation.table)
    np.testing.assert_allclose(np.asarray(bars.y, dtype=float),
                               correlation.table["r"].to_numpy(dtype=float))
    marker = [t for t in fig.data if t.type == "scatter" and t.mode == "markers+text"][0]
    assert marker.x[0] == pytest.approx(correlation.shift_s)
    assert marker.y[0] == pytest.approx(correlation.r)
    highlighted = [x for x, c in zip(bars.x, bars.marker.color, strict=True) if c == "#d62728"]
    assert highlighted == [pytest.approx(correlation.shift_s)]
    title = fig.layout.title.text
    assert f"{correlation.r:+.2f}" in title
    assert ("significant" in title) and (("not significant" in title) != correlation.significant)
