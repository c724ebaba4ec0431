from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import kbp_notebook as kbp
from kbp_notebook import viz
from tests.helpers.synthetic_dataset import SLOW_GROUP, START


def _utc(value):
    """Plotly keeps datetimes as naive UTC."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def _series(fig, label_part):
    return [t for t in fig.data if t.name and label_part in t.name and "trend" not in t.name]


def test_plot_lag_draws_summed_lag_per_group_and_topic(dataset):
    fig = viz.plot_lag(dataset.lag)
    assert isinstance(fig, go.Figure)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 2
    slow = _series(fig, SLOW_GROUP)[0]
    expected = (dataset.lag[dataset.lag["group"] == SLOW_GROUP]
                .groupby("time")["lag"].sum().astype(float))
    np.testing.assert_allclose(np.asarray(slow.y, dtype=float), expected.to_numpy())
    assert _utc(slow.x[0]) == expected.index[0]


def test_plot_lag_partition_breakdown_and_max_series(dataset):
    per_partition = viz.plot_lag(dataset.lag, partitions=True)
    assert len([t for t in per_partition.data if t.mode == "lines"]) == 8
    capped = viz.plot_lag(dataset.lag, partitions=True, max_series=3)
    names = [t.name for t in capped.data]
    assert len(names) == 4 and names[-1] == "5 other series"


def test_plot_lag_trend_line_and_onset_marker():
    # Lag flat for 5 minutes, then growing at 50 msg/s: a clear onset.
    t = np.arange(120) * 5.0
    lag = np.where(t < 300, 100, 100 + 50 * (t - 300)).astype(np.int64)
    frame = pd.DataFrame({
        "time": START + pd.to_timedelta(t, unit="s"), "cluster": "c", "group": "g",
        "topic": "t", "partition": np.int32(0), "committed_offset": 1_000 + t.astype(np.int64),
    })
    frame["log_end_offset"] = frame["committed_offset"] + lag
    frame["lag"] = lag
    trend = kbp.lag_trend(frame)
    row = trend.table.iloc[0]
    assert not pd.isna(row["onset"])
    fig = viz.plot_lag(frame, trend=trend)
    trend_traces = [tr for tr in fig.data if tr.name and tr.name.startswith("trend")]
    # one dashed line per regime: flat, then growing from the onset
    assert len(trend_traces) == len(trend.segments) == 2
    line = trend_traces[-1]
    slope = (line.y[1] - line.y[0]) / (_utc(line.x[1]) - _utc(line.x[0])).total_seconds()
    assert slope == pytest.approx(row["slope_per_s"], rel=1e-6)
    onset = [tr for tr in fig.data if tr.name and tr.name.startswith("onset")]
    assert len(onset) == 1 and _utc(onset[0].x[0]) == pd.Timestamp(row["onset"])
    assert _utc(line.x[0]) == pd.Timestamp(row["onset"])
    assert row["status"] in line.name
    assert "95% CI" in line.hovertemplate
    assert [tr.showlegend for tr in trend_traces] == [False, True]  # the current regime


def test_plot_lag_regime_lines_follow_the_curve_and_never_go_below_zero():
    ds = kbp.load_sample("producer-burst")
    trend = kbp.lag_trend(ds.lag, confidence=0.9)
    fig = viz.plot_lag(ds.lag, trend=trend)
    lines = [tr for tr in fig.data if tr.name and tr.name.startswith("trend")]
    assert len(lines) == len(trend.segments) >= 4
    assert min(min(float(v) for v in tr.y) for tr in lines) >= 0.0
    assert all("90% CI" in tr.hovertemplate and "95%" not in tr.hovertemplate for tr in lines)
    # each regime's line stays near the lag curve over its own span (the old single line
    # missed the build-up by thousands of messages)
    totals = ds.lag.groupby("time")["lag"].sum().astype(float)
    peak = float(totals.max())
    for tr in lines:
        for x, y in zip(tr.x, tr.y, strict=True):
            nearest = totals.iloc[np.argmin(np.abs((totals.index - _utc(x)).total_seconds()))]
            assert abs(float(y) - nearest) < 0.1 * peak
    growing = [tr for tr in lines if "growing" in tr.name]
    assert len(growing) == 1 and "+450" in growing[0].name


def test_plot_lag_marks_events_with_escaped_text(dataset):
    fig = viz.plot_lag(dataset.lag, events=dataset.events)
    vlines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(vlines) == len(dataset.events)
    labels = {a.text: a.hovertext for a in fig.layout.annotations}
    assert set(labels) == {"load", "scale-out"}
    assert "&lt;b&gt;" in labels["scale-out"] and "<b>" not in labels["scale-out"]
    assert {a.x for a in fig.layout.annotations} == set(dataset.events["time"])


def test_plot_lag_empty_selection_says_so(dataset):
    fig = viz.plot_lag(dataset.lag.iloc[0:0])
    assert not fig.data
    assert "No lag samples" in fig.layout.annotations[0].text


def test_plot_lag_trend_without_lag_shows_slopes_with_intervals(dataset):
    trend = kbp.lag_trend(dataset.lag[dataset.lag["time"] < START + pd.Timedelta(seconds=480)])
    fig = viz.plot_lag_trend(trend)
    bars = fig.data[0]
    assert bars.type == "bar"
    np.testing.assert_allclose(np.asarray(bars.x, dtype=float),
                               trend.table["slope_per_s"].to_numpy(dtype=float))
    colours = dict(zip(trend.table["status"], bars.marker.color, strict=True))
    for status, colour in colours.items():
        assert colour == viz.TREND_COLOURS[status]
    assert "95% CI" in bars.customdata[0][2]
    with_lag = viz.plot_lag_trend(trend, lag=dataset.lag)
    assert any(t.name and t.name.startswith("trend") for t in with_lag.data)
    bare = viz.plot_lag(dataset.lag, trend=trend.table)  # a table has no confidence: no level
    hovers = [t.hovertemplate for t in bare.data if t.name and t.name.startswith("trend")]
    assert hovers and all("interval" in h and "%" not in h.split("<extra>")[0] for h in hovers)


def test_plot_time_lag_marks_lower_bounds_differently():
    # The committed offset stays at 0 while the log starts at 10,000: older than the
    # history, so time_lag can only give a lower bound.
    t = np.arange(30) * 10.0
    frame = pd.DataFrame({
        "time": START + pd.to_timedelta(t, unit="s"), "cluster": "c", "group": "g",
        "topic": "t", "partition": np.int32(0), "committed_offset": np.zeros(30, dtype=np.int64),
        "log_end_offset": (10_000 + 10 * t).astype(np.int64),
    })
    frame["lag"] = frame["log_end_offset"] - frame["committed_offset"]
    result = kbp.time_lag(frame)
    assert result.table["time_lag_is_lower_bound"].any()
    fig = viz.plot_time_lag(result)
    bounds = [tr for tr in fig.data if tr.name and "at least" in tr.name]
    assert len(bounds) == 1 and bounds[0].marker.symbol == "triangle-up-open"
    assert len(bounds[0].x) == int(result.table["time_lag_is_lower_bound"].sum())
    exact = [tr for tr in fig.data if tr.mode == "lines"][0]
    assert all(v is None or np.isnan(v) for v in exact.y)  # no exact values where bounded


def test_plot_time_lag_exact_values_follow_the_worst_partition(dataset):
    result = kbp.time_lag(dataset.lag)
    fig = viz.plot_time_lag(result)
    slow = [tr for tr in fig.data if tr.name == SLOW_GROUP + " / orders"][0]
    table = result.table[result.table["group"] == SLOW_GROUP]
    worst = table.groupby("time")["time_lag_s"].max().astype(float)
    np.testing.assert_allclose(np.asarray(slow.y, dtype=float), worst.to_numpy())
