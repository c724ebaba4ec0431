from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import kbp_notebook as kbp
from kbp_notebook import viz
from tests.helpers.synthetic_dataset import SLOW_GROUP, START


def _frame(*, produce: float, consume: float, start_lag: int, n: int = 60, step_s: float = 10.0,
           retention_msgs: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) * step_s
    log_end = (1_000_000 + start_lag + produce * t + rng.normal(0, 3, n).cumsum()).astype(np.int64)
    committed = np.minimum(1_000_000 + consume * t, log_end).astype(np.int64)
    frame = pd.DataFrame({
        "time": START + pd.to_timedelta(t, unit="s"), "cluster": "c", "group": "g", "topic": "t",
        "partition": np.int32(0), "committed_offset": committed, "log_end_offset": log_end,
        "lag": log_end - committed,
    })
    if retention_msgs is not None:
        frame["log_start_offset"] = np.maximum(0, log_end - retention_msgs)
    return frame


def _utc(values):
    index = pd.to_datetime(list(values))
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def _now(result):
    row = result.table.iloc[0]
    return pd.Timestamp(row["drain_time"]) - pd.to_timedelta(float(row["eta_s"]), unit="s")


def test_fan_chart_median_reaches_zero_at_the_eta_and_the_fan_spans_the_interval():
    frame = _frame(produce=100, consume=150, start_lag=50_000)
    drain = kbp.time_to_drain(frame)
    row = drain.table.iloc[0]
    assert bool(row["drains"]) and np.isfinite(row["eta_s"])
    fig = viz.plot_drain(drain)
    median = [t for t in fig.data if t.name and "drains in" in t.name][0]
    x = _utc(median.x)
    y = np.asarray(median.y, dtype=float)
    assert y[0] == pytest.approx(float(row["lag"]))
    first_zero = x[np.argmax(y <= 0)]
    step = x[1] - x[0]
    assert abs((first_zero - _now(drain)).total_seconds() - row["eta_s"]) <= step.total_seconds()
    band = [t for t in fig.data if t.fill == "tonexty"]
    assert len(band) == 1
    low_edge = fig.data[fig.data.index(band[0]) - 1]
    assert np.all(np.asarray(low_edge.y, dtype=float) <= np.asarray(band[0].y, dtype=float) + 1e-6)
    done = [t for t in fig.data if t.mode == "markers" and t.y[0] == 0][0]
    assert (_utc(done.x)[0] - _now(drain)).total_seconds() == \
        pytest.approx(float(row["eta_s"]), abs=1e-3)


def test_backlog_that_does_not_drain_rises_dashed_red():
    frame = _frame(produce=150, consume=100, start_lag=1_000)
    drain = kbp.time_to_drain(frame)
    assert not bool(drain.table.iloc[0]["drains"])
    fig = viz.plot_drain(drain, lag=frame)
    rising = [t for t in fig.data if t.name and "does not drain" in t.name]
    assert len(rising) == 1
    assert rising[0].line.dash == "dash"
    assert rising[0].y[-1] > rising[0].y[0]
    recorded = [t for t in fig.data if t.name and "(recorded)" in t.name]
    assert len(recorded) == 1 and len(recorded[0].x) == len(frame)


def test_retention_loss_point_is_marked_where_known():
    frame = _frame(produce=150, consume=100, start_lag=40_000, retention_msgs=45_000)
    drain = kbp.time_to_drain(frame)
    loss_s = float(drain.table.iloc[0]["retention_loss_s"])
    assert np.isfinite(loss_s)
    fig = viz.plot_drain(drain, lag=frame)
    loss = [t for t in fig.data if t.name and "falls off retention" in t.name]
    assert len(loss) == 1 and loss[0].marker.symbol == "x"
    at = _utc(loss[0].x)[0]
    assert (at - _now_any(drain, frame)).total_seconds() == pytest.approx(loss_s, abs=1e-3)


def _now_any(drain, frame):
    row = drain.table.iloc[0]
    if pd.isna(row["drain_time"]):
        return frame["time"].max()
    return _now(drain)


def test_capacity_bars_compare_today_with_what_is_needed(dataset):
    behind = dataset.lag[dataset.lag["time"] < START + pd.Timedelta(minutes=7)]
    plan = kbp.capacity_plan(behind, target_s=600)
    fig = plan.plot()
    bars = {t.name: t for t in fig.data}
    assert {"consumers now", "consumers needed", "partitions"} <= set(bars)
    slow_index = list(bars["consumers needed"].y).index(f"{SLOW_GROUP} / orders")
    row = plan.table[plan.table["group"] == SLOW_GROUP].iloc[0]
    assert bars["consumers needed"].x[slow_index] == int(row["consumers_needed"])
    assert bars["consumers now"].x[slow_index] == int(row["consumers_now"])


def test_what_if_line_follows_the_planned_eta(dataset):
    behind = dataset.lag[dataset.lag["time"] < START + pd.Timedelta(minutes=7)]
    slow = behind[behind["group"] == SLOW_GROUP]
    scenario = kbp.capacity_plan(slow, target_s=600).what_if(consumers=4)
    eta = float(scenario.table.iloc[0]["eta_s_at_plan"])
    fig = viz.plot_what_if(scenario, lag=slow)
    line = [t for t in fig.data if t.name and "consumers drain in" in t.name][0]
    x = _utc(line.x)
    y = np.asarray(line.y, dtype=float)
    first_zero = x[np.argmax(y <= 0)]
    assert abs((first_zero - slow["time"].max()).total_seconds() - eta) <= \
        (x[1] - x[0]).total_seconds()
    target = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    assert len(target) == 2  # target and now
    never = kbp.capacity_plan(slow, target_s=600).what_if(consumers=1)
    fig_never = viz.plot_what_if(never, lag=slow)
    assert any("never drain" in (t.name or "") for t in fig_never.data)
