"""What each recording must show: plain-pandas checks of a Dataset against its ground truth.

Used by ``tests/unit/test_sample_data.py`` on the shipped long recordings and
by ``tests/integration/test_scenarios.py`` on fresh short runs, so the claims
in each sample's README are checked the same way on both. Each check raises
``AssertionError`` with a message that says what the data showed instead.

Deliberately no ``kbp_notebook.analysis`` here: these are facts about the
data (lag went up between two recorded events, a partition held most of it),
read with pandas, so they stay independent of the analysis under test.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from kbp_notebook.frames import Dataset

#: Margin for an effect to show after the event that causes it (one or two snapshots).
SETTLE = pd.Timedelta(seconds=4)

REQUIRED_EVENTS: dict[str, list[str]] = {
    "slow-consumer-then-scale-out": [
        "steady_start", "slowdown_start", "consumers_added", "lag_baseline_reached",
    ],
    "producer-burst": ["steady_start", "burst_start", "burst_end", "lag_baseline_reached"],
    "broker-flush-pressure": [
        "steady_start", "flush_pressure_start", "flush_pressure_end", "lag_baseline_reached",
    ],
    "skewed-partition": ["steady_start", "skew_start", "skew_end", "lag_baseline_reached"],
    "stuck-consumer": [
        "steady_start", "stall_start", "member_left", "offsets_reset", "consumer_rejoined",
        "lag_baseline_reached",
    ],
}  # fmt: skip

REQUIRED_METRICS = {
    "broker": ["log_flush_time_ms_p99", "produce_total_time_ms_p99", "log_flush_rate"],
    "producer": ["producer_request_latency_avg_ms", "producer_batch_size_avg"],
    "consumer": ["consumer_records_consumed_rate", "record_age_at_commit_s"],
    "logdir": ["log_dir_used_bytes"],
}


# --------------------------------------------------------------------------- helpers


def event_time(ds: Dataset, kind: str) -> pd.Timestamp:
    """Return the time of the first ``kind`` event (AssertionError if absent)."""
    times = ds.events.loc[ds.events["kind"] == kind, "time"]
    assert len(times), f"no {kind!r} event; events are {list(ds.events['kind'])}"
    return pd.Timestamp(times.min())


def group_of(ds: Dataset) -> str:
    """Return the scenario's main consumer group (``meta['group']``)."""
    return str(ds.meta["group"])


def total_lag(ds: Dataset, group: str | None = None) -> pd.Series:
    """Return the group's total lag per snapshot time (Series indexed by time)."""
    lag = ds.lag[ds.lag["group"] == (group or group_of(ds))]
    return lag.groupby("time")["lag"].sum().astype("float64")


def between(series: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Return the part of a time-indexed series with start <= time < end."""
    return series[(series.index >= start) & (series.index < end)]


def slope_per_s(series: pd.Series) -> float:
    """Least-squares slope of a time-indexed series, in units per second."""
    assert len(series) >= 3, f"too few points ({len(series)}) to fit a slope"
    seconds = (series.index - series.index[0]).total_seconds().to_numpy(dtype="float64")
    return float(np.polyfit(seconds, series.to_numpy(dtype="float64"), 1)[0])


def broker_metric(ds: Dataset, metric: str) -> pd.Series:
    """Return a broker metric as a time-indexed series (broker-1)."""
    rows = ds.metrics[(ds.metrics["metric"] == metric) & (ds.metrics["entity"] == "broker-1")]
    assert len(rows), f"no {metric!r} rows for broker-1 in the METRICS frame"
    return rows.set_index("time")["value"].sort_index()


def healthy_ceiling(ds: Dataset) -> float:
    """The lag level the scenario itself called 'back at baseline'."""
    return float(ds.meta["baseline_ceiling_lag"])


# --------------------------------------------------------------------------- common


def check_common(ds: Dataset, name: str) -> None:
    """Checks every recording passes: cadence, contents, ground truth in order."""
    assert ds.meta.get("scenario") == name, f"meta scenario is {ds.meta.get('scenario')!r}"
    times = pd.Series(ds.lag["time"].unique()).sort_values()
    assert len(times) >= 20, f"only {len(times)} LAG snapshots"
    cadence_s = times.diff().dt.total_seconds().median()
    assert 0.9 <= cadence_s <= 2.5, f"LAG cadence is {cadence_s:.2f} s, expected 1-2 s"
    assert ds.lag["lag"].notna().mean() > 0.95, "more than 5% of lag values are NA"

    kinds = list(ds.events["kind"])
    expected = REQUIRED_EVENTS[name]
    present = [kind for kind in kinds if kind in expected]
    assert present == expected, f"events {kinds} do not contain {expected} in that order"
    first, last = times.iloc[0], times.iloc[-1]
    for kind in expected:
        when = event_time(ds, kind)
        assert first - pd.Timedelta(seconds=5) <= when <= last, (
            f"event {kind} at {when} is outside the recording {first} .. {last}"
        )

    entity_kind = ds.metrics["entity"].str.split(":").str[0].str.replace(r"-\d+$", "", regex=True)
    for kind, metrics in REQUIRED_METRICS.items():
        have = set(ds.metrics.loc[entity_kind == kind, "metric"])
        missing = [metric for metric in metrics if metric not in have]
        assert not missing, f"{kind} metrics {missing} missing; have {sorted(have)}"


# --------------------------------------------------------------------------- per scenario


def check_slow_consumer_then_scale_out(ds: Dataset) -> None:
    """Lag grows after the slowdown and drains after the scale-out."""
    lag = total_lag(ds)
    onset = event_time(ds, "slowdown_start")
    added = event_time(ds, "consumers_added")
    reached = event_time(ds, "lag_baseline_reached")
    ceiling = healthy_ceiling(ds)

    before = between(lag, lag.index[0], onset)
    assert before.median() <= ceiling, f"lag before the slowdown ({before.median()}) > {ceiling}"
    growth = between(lag, onset + SETTLE, added)
    assert slope_per_s(growth) > 30, f"lag grew at only {slope_per_s(growth):.1f} msg/s"
    at_scale_out = between(lag, added - SETTLE, added + SETTLE).max()
    assert at_scale_out > 5 * max(before.max(), 50), (
        f"lag at scale-out ({at_scale_out}) is not well above the healthy level ({before.max()})"
    )
    drain = between(lag, added + SETTLE, reached + SETTLE)
    assert drain.iloc[-1] <= ceiling < drain.max(), "lag did not come down to the baseline"
    assert slope_per_s(drain) < 0, "lag did not fall after the scale-out"
    after = between(lag, reached, lag.index[-1] + pd.Timedelta(seconds=1))
    assert after.max() <= 2 * ceiling, f"lag came back ({after.max()}) after the drain"

    group = ds.lag[ds.lag["group"] == group_of(ds)]
    members_before = group.loc[group["time"] < onset, "consumer_id"].dropna().nunique()
    members_after = group.loc[group["time"] > added + 3 * SETTLE, "consumer_id"].dropna()
    assert members_before == 1, f"{members_before} members before the slowdown, expected 1"
    assert members_after.nunique() >= 6, f"{members_after.nunique()} members after scale-out"


def check_producer_burst(ds: Dataset) -> None:
    """Produce rate jumps, lag builds during the burst and drains after it."""
    lag = total_lag(ds)
    start = event_time(ds, "burst_start")
    end = event_time(ds, "burst_end")
    reached = event_time(ds, "lag_baseline_reached")
    ceiling = healthy_ceiling(ds)

    group = ds.lag[ds.lag["group"] == group_of(ds)]
    log_end = group.groupby("time")["log_end_offset"].sum().astype("float64")
    base_rate = slope_per_s(between(log_end, log_end.index[0], start))
    burst_rate = slope_per_s(between(log_end, start + SETTLE, end))
    assert burst_rate > 2.5 * base_rate, (
        f"produce rate went from {base_rate:.0f} to only {burst_rate:.0f} msg/s"
    )
    before = between(lag, lag.index[0], start)
    assert before.median() <= ceiling
    during = between(lag, start + SETTLE, end + SETTLE)
    assert slope_per_s(during) > 100, f"lag grew at only {slope_per_s(during):.0f} msg/s"
    assert during.max() > 10 * max(before.max(), 50)
    drain = between(lag, end + SETTLE, reached + SETTLE)
    assert slope_per_s(drain) < 0 and drain.iloc[-1] <= ceiling, "lag did not drain"
    members = group["consumer_id"].dropna()
    n_members = group.dropna(subset=["consumer_id"]).groupby("time")["consumer_id"].nunique()
    assert members.nunique() == 2 and (n_members == 2).mean() > 0.9, (
        "the burst must drain with the same two consumers"
    )


def check_broker_flush_pressure(ds: Dataset) -> None:
    """Flush latency p99 clearly above its own baseline in the window; lag follows."""
    start = event_time(ds, "flush_pressure_start")
    end = event_time(ds, "flush_pressure_end")
    reached = event_time(ds, "lag_baseline_reached")
    flush = broker_metric(ds, "log_flush_time_ms_p99")
    baseline = between(flush, flush.index[0], start)
    window = between(flush, start, end + SETTLE)
    assert len(baseline) >= 5 and len(window) >= 5
    # Kafka's p99 comes from a reservoir that decays over minutes, and this machine's disk
    # has a tail of its own: "clearly above" = twice the baseline's typical value and a
    # quarter above the highest value the baseline ever showed.
    assert window.max() >= 2 * baseline.median() and window.max() >= 1.25 * baseline.max(), (
        f"flush p99 peaked at {window.max():.1f} ms in the window vs a baseline median of "
        f"{baseline.median():.1f} ms (max {baseline.max():.1f} ms)"
    )
    produce = broker_metric(ds, "produce_total_time_ms_p99")
    assert (
        between(produce, start, end + SETTLE).max()
        > 1.5 * between(produce, produce.index[0], start).median()
    ), "produce request time did not rise with the flush latency"

    lag = total_lag(ds)
    ceiling = healthy_ceiling(ds)
    before = between(lag, lag.index[0], start)
    during = between(lag, start, end + SETTLE)
    typical = max(float(before.quantile(0.9)), 25.0)
    assert during.max() > 4 * typical and during.max() > 1.5 * before.max(), (
        f"lag peaked at {during.max()} in the window; before it: p90 {typical}, max {before.max()}"
    )
    assert during.idxmax() > start + SETTLE, "lag peaked before the pressure began"
    after = between(lag, reached, lag.index[-1] + pd.Timedelta(seconds=1))
    assert after.median() <= ceiling, "lag did not stay drained after the pressure window"


def check_skewed_partition(ds: Dataset) -> None:
    """The hot partition holds most of the lag while the others stay near zero."""
    start = event_time(ds, "skew_start")
    end = event_time(ds, "skew_end")
    reached = event_time(ds, "lag_baseline_reached")
    hot = int(ds.meta["hot_partition"])
    group = ds.lag[ds.lag["group"] == group_of(ds)]
    window = group[(group["time"] > start + (end - start) / 2) & (group["time"] <= end + SETTLE)]
    per_partition = window.groupby("partition")["lag"].mean().astype("float64")
    share = per_partition[hot] / per_partition.sum()
    assert share > 0.7, f"hot partition {hot} holds only {share:.0%} of the lag: {per_partition}"
    others = per_partition.drop(hot)
    assert (others < 0.15 * per_partition[hot]).all(), f"other partitions lag too: {others}"
    hot_lag = group[group["partition"] == hot].set_index("time")["lag"].astype("float64")
    assert slope_per_s(between(hot_lag, start + SETTLE, end)) > 20, "hot partition lag not growing"
    lag = total_lag(ds)
    assert between(lag, reached, lag.index[-1] + pd.Timedelta(seconds=1)).median() <= (
        healthy_ceiling(ds)
    ), "lag did not drain after the skew ended"


def check_stuck_consumer(ds: Dataset) -> None:
    """Offsets stand still (member present), the member leaves, then the rewind."""
    stall = event_time(ds, "stall_start")
    left = event_time(ds, "member_left")
    reset = event_time(ds, "offsets_reset")
    rejoined = event_time(ds, "consumer_rejoined")
    reached = event_time(ds, "lag_baseline_reached")
    group = ds.lag[ds.lag["group"] == group_of(ds)]

    stalled = group[(group["time"] > stall + SETTLE) & (group["time"] < left)]
    assert stalled["time"].nunique() >= 3, "too few snapshots in the stall"
    moves = stalled.groupby("partition")["committed_offset"].nunique()
    assert (moves == 1).all(), f"committed offsets moved during the stall: {moves.to_dict()}"
    assert stalled["consumer_id"].notna().all(), "the member was gone during the stall"
    stalled_lag = stalled.groupby("time")["lag"].sum().astype("float64")
    assert slope_per_s(stalled_lag) > 0.5 * float(ds.meta["produce_rate_per_s"]), (
        "lag did not grow during the stall"
    )

    stopped = group[(group["time"] > left + SETTLE) & (group["time"] < reset)]
    assert stopped["time"].nunique() >= 3, "too few snapshots while stopped"
    assert stopped["consumer_id"].isna().all(), "a member was still listed after it left"
    still = stopped.groupby("partition")["committed_offset"].agg(["min", "max"])
    assert (still["min"] == still["max"]).all(), f"offsets moved while stopped: {still}"
    last_before = stopped.sort_values("time").groupby("partition")["committed_offset"].last()
    assert (last_before == stalled.groupby("partition")["committed_offset"].last()).all()

    rewound = group[(group["time"] > reset) & (group["time"] < rejoined)]
    assert rewound["time"].nunique() >= 2, "too few snapshots between reset and rejoin"
    first_after = rewound.sort_values("time").groupby("partition")["committed_offset"].first()
    assert (first_after < last_before).all(), (
        f"committed offsets did not move back: {last_before.to_dict()} -> {first_after.to_dict()}"
    )

    lag = total_lag(ds)
    assert between(lag, reached, lag.index[-1] + pd.Timedelta(seconds=1)).median() <= (
        healthy_ceiling(ds)
    ), "lag did not drain after the consumer rejoined"
    resumed = group[group["time"] > rejoined + 3 * SETTLE]
    assert resumed["consumer_id"].notna().all(), "no member after the rejoin"

    control = ds.lag[ds.lag["group"] == ds.meta["control_group"]]
    control_lag = control.groupby("time")["lag"].sum().astype("float64")
    assert control_lag.quantile(0.9) <= max(healthy_ceiling(ds), 300), (
        f"control group lagged (p90 {control_lag.quantile(0.9)})"
    )
    assert (control.groupby("partition")["committed_offset"].nunique() > 10).all()


CHECKS: dict[str, Callable[[Dataset], None]] = {
    "slow-consumer-then-scale-out": check_slow_consumer_then_scale_out,
    "producer-burst": check_producer_burst,
    "broker-flush-pressure": check_broker_flush_pressure,
    "skewed-partition": check_skewed_partition,
    "stuck-consumer": check_stuck_consumer,
}


def check(ds: Dataset, name: str) -> None:
    """Run the common checks and the scenario's own."""
    check_common(ds, name)
    CHECKS[name](ds)
