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


def in_flight(ds: Dataset) -> pd.Timedelta:
    """Return one LAG snapshot interval of the recording.

    The recorder runs beside the scenario's own steps, so a snapshot stamped up to
    this long before an event may read the group after it.
    """
    return pd.Timedelta(seconds=float(ds.meta.get("lag_every_s", 1.5)))


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
    "consumers-gone": ["steady_start", "consumers_stopped", "group_empty"],
    "rebalance-churn": ["steady_start", "churn_start", "churn_end", "lag_baseline_reached"],
    "offset-reset": [
        "steady_start", "members_stopped", "offsets_reset", "members_restarted",
        "lag_baseline_reached",
    ],
    "healthy-baseline": ["steady_start", "steady_end"],
    "multi-group-cluster": [
        "steady_start", "slowdown_start", "skew_start", "slowdown_end", "skew_end",
    ],
}  # fmt: skip

#: The closed vocabulary of incident causes (DESIGN.md, ``incidents``).
CAUSES = (
    "producer_surge", "consumer_slowdown", "consumer_stopped", "consumer_stalled",
    "partition_skew", "rebalance_churn", "broker_slow", "offset_rewind", "none",
)  # fmt: skip

#: Ground truth per group for the incident model: the meta key naming the group, the cause
#: that started its episode and the event that marks the true onset (None: no episode).
GROUND_TRUTH: dict[str, dict[str, tuple[str, str | None]]] = {
    "slow-consumer-then-scale-out": {"group": ("consumer_slowdown", "slowdown_start")},
    "producer-burst": {"group": ("producer_surge", "burst_start")},
    "broker-flush-pressure": {"group": ("broker_slow", "flush_pressure_start")},
    "skewed-partition": {"group": ("partition_skew", "skew_start")},
    "stuck-consumer": {
        "group": ("consumer_stalled", "stall_start"),
        "control_group": ("none", None),
    },
    "consumers-gone": {"group": ("consumer_stopped", "consumers_stopped")},
    "rebalance-churn": {"group": ("rebalance_churn", "churn_start")},
    "offset-reset": {"group": ("offset_rewind", "members_stopped")},
    "healthy-baseline": {"group": ("none", None), "control_group": ("none", None)},
    "multi-group-cluster": {
        "group": ("consumer_slowdown", "slowdown_start"),
        "skewed_group": ("partition_skew", "skew_start"),
        "control_group": ("none", None),
    },
}


def ground_truth(
    name: str, meta: dict[str, object], events: pd.DataFrame
) -> dict[str, dict[str, str | None]]:
    """Return ``expected_causes`` and ``expected_onsets`` (ISO UTC or None) per group.

    Read from the scenario's ``GROUND_TRUTH`` row, the group names in its
    ``meta`` and the times of its own ground-truth events.
    """
    causes: dict[str, str | None] = {}
    onsets: dict[str, str | None] = {}
    for key, (cause, onset_kind) in GROUND_TRUTH.get(name, {}).items():
        group = meta.get(key)
        if group is None:
            continue
        causes[str(group)] = cause
        times = events.loc[events["kind"] == onset_kind, "time"] if onset_kind else []
        onsets[str(group)] = pd.Timestamp(min(times)).isoformat() if len(times) else None
    return {"expected_causes": causes, "expected_onsets": onsets}


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
    every_s = float(ds.meta.get("lag_every_s", 1.5))
    assert 0.6 * every_s <= cadence_s <= 1.7 * every_s, (
        f"LAG cadence is {cadence_s:.2f} s, expected about {every_s} s"
    )
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
    after = int(ds.meta["consumers"]["after"])
    assert members_after.nunique() >= after, f"{members_after.nunique()} members after scale-out"


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
    count = int(ds.meta["consumers"])
    assert members.nunique() == count and (n_members == count).mean() > 0.9, (
        f"the burst must drain with the same {count} consumers"
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

    stalled = group[(group["time"] > stall + SETTLE) & (group["time"] < left - in_flight(ds))]
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


def check_consumers_gone(ds: Dataset) -> None:
    """The group empties, its offsets stand still and lag grows at the produce rate."""
    stopped = event_time(ds, "consumers_stopped")
    empty = event_time(ds, "group_empty")
    group = ds.lag[ds.lag["group"] == group_of(ds)]
    lag = total_lag(ds)
    ceiling = healthy_ceiling(ds)
    before = between(lag, lag.index[0], stopped)
    assert before.median() <= ceiling, f"lag before the stop ({before.median()}) > {ceiling}"
    before_stop = group["time"] < stopped - in_flight(ds)
    assert group.loc[before_stop, "consumer_id"].notna().all(), "no member before"

    gone = group[group["time"] > empty + SETTLE]
    assert gone["time"].nunique() >= 10, "too few snapshots after the group emptied"
    assert gone["consumer_id"].isna().all(), "a member was still listed after the group emptied"
    still = gone.groupby("partition")["committed_offset"].agg(["min", "max"])
    assert (still["min"] == still["max"]).all(), f"offsets moved with no member: {still}"
    rate = float(ds.meta["produce_rate_per_s"])
    growth = slope_per_s(between(lag, empty + SETTLE, lag.index[-1] + SETTLE))
    assert 0.7 * rate <= growth <= 1.3 * rate, (
        f"lag grew at {growth:.0f} msg/s with no member; the produce rate is {rate:.0f}"
    )
    assert lag.iloc[-1] > 10 * max(ceiling, 100), "lag at the end is not far above the baseline"


def produce_rate(ds: Dataset, group: str, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Messages/s written to the group's partitions between two times (log end offsets)."""
    rows = ds.lag[ds.lag["group"] == group]
    log_end = rows.groupby("time")["log_end_offset"].sum().astype("float64")
    return slope_per_s(between(log_end, start, end))


def check_offset_reset(ds: Dataset) -> None:
    """Offsets move back by the shift, lag jumps, the produce rate does not change, it drains."""
    stopped = event_time(ds, "members_stopped")
    reset = event_time(ds, "offsets_reset")
    reached = event_time(ds, "lag_baseline_reached")
    shift = -int(ds.meta["reset_shift_by"])
    group = ds.lag[ds.lag["group"] == group_of(ds)]
    lag = total_lag(ds)
    ceiling = healthy_ceiling(ds)
    assert between(lag, lag.index[0], stopped).median() <= ceiling, "lagging before the reset"

    last_before = group[group["time"] < stopped].sort_values("time")
    last_before = last_before.groupby("partition")["committed_offset"].last()
    after = group[(group["time"] > reset) & (group["time"] < reset + 3 * SETTLE)]
    lowest = after.groupby("partition")["committed_offset"].min()
    moved = (last_before - lowest).astype("float64")
    assert (moved >= 0.5 * shift).all(), (
        f"committed offsets did not move back by about {shift}: {moved.to_dict()}"
    )
    jump = between(lag, reset, reset + 3 * SETTLE).max()
    partitions = group["partition"].nunique()
    assert jump >= 0.8 * shift * partitions, f"lag jumped to only {jump} after the reset"

    before = produce_rate(ds, group_of(ds), lag.index[0], stopped)
    during = produce_rate(ds, group_of(ds), reset, reached)
    assert abs(during - before) <= 0.25 * before, (
        f"produce rate changed from {before:.0f} to {during:.0f} msg/s around the reset"
    )
    drain = between(lag, reset + 3 * SETTLE, reached + SETTLE)
    assert slope_per_s(drain) < 0 and drain.iloc[-1] <= ceiling, "the replay did not drain"
    tail = between(lag, reached, lag.index[-1] + pd.Timedelta(seconds=1))
    assert tail.median() <= ceiling, "lag did not stay drained"


def check_rebalance_churn(ds: Dataset) -> None:
    """Members change many times, lag builds with the produce rate unchanged, then drains."""
    start = event_time(ds, "churn_start")
    end = event_time(ds, "churn_end")
    reached = event_time(ds, "lag_baseline_reached")
    group = ds.lag[ds.lag["group"] == group_of(ds)]
    lag = total_lag(ds)
    ceiling = healthy_ceiling(ds)
    assert between(lag, lag.index[0], start).median() <= ceiling, "lagging before the churn"

    before_ids = group.loc[group["time"] < start, "consumer_id"].dropna().nunique()
    churn_ids = group.loc[(group["time"] >= start) & (group["time"] <= end), "consumer_id"]
    assert churn_ids.dropna().nunique() >= before_ids + 2, (
        f"only {churn_ids.dropna().nunique()} member ids during the churn ({before_ids} before)"
    )
    peak = between(lag, start, end + 3 * SETTLE).max()
    assert peak > 3 * max(ceiling, 100), f"lag peaked at only {peak} during the churn"
    before = produce_rate(ds, group_of(ds), lag.index[0], start)
    during = produce_rate(ds, group_of(ds), start, end)
    assert abs(during - before) <= 0.25 * before, (
        f"produce rate changed from {before:.0f} to {during:.0f} msg/s during the churn"
    )
    drain = between(lag, end + SETTLE, reached + SETTLE)
    assert drain.iloc[-1] <= ceiling < drain.max(), "lag did not drain after the churn"
    tail = between(lag, reached, lag.index[-1] + pd.Timedelta(seconds=1))
    assert tail.median() <= ceiling, "lag did not stay drained"


def check_healthy_baseline(ds: Dataset) -> None:
    """Every group keeps up all the time: small lag, no trend, offsets always moving."""
    for key in ("group", "control_group"):
        name = str(ds.meta[key])
        rows = ds.lag[ds.lag["group"] == name]
        assert len(rows), f"no rows for {name}"
        lag = total_lag(ds, name)
        rate = produce_rate(ds, name, lag.index[0], lag.index[-1])
        assert lag.quantile(0.99) <= 10 * rate, (
            f"{name}: lag p99 {lag.quantile(0.99):.0f} is over 10 s of production ({rate:.0f}/s)"
        )
        # no trend: over the recording the lag drifts by less than 10 s of production
        trend = slope_per_s(lag)
        span_s = (lag.index[-1] - lag.index[0]).total_seconds()
        assert abs(trend) * span_s <= 10 * rate, f"{name}: lag trend {trend:.2f} msg/s"
        moving = rows.groupby("partition")["committed_offset"].nunique()
        assert (moving > 10).all(), f"{name}: committed offsets stood still: {moving.to_dict()}"
        assert rows["consumer_id"].notna().mean() > 0.95, f"{name}: partitions without a member"


def check_multi_group_cluster(ds: Dataset) -> None:
    """The slowed group grows and drains, the hot partition holds its group's lag, audit is OK."""
    ceilings = {str(k): float(v) for k, v in ds.meta["baseline_ceiling_lag_by_group"].items()}
    slow_start = event_time(ds, "slowdown_start")
    slow_end = event_time(ds, "slowdown_end")
    skew_start = event_time(ds, "skew_start")
    skew_end = event_time(ds, "skew_end")
    slowed, skewed = str(ds.meta["group"]), str(ds.meta["skewed_group"])
    control = str(ds.meta["control_group"])

    lag = total_lag(ds, slowed)
    assert between(lag, lag.index[0], slow_start).median() <= ceilings[slowed]
    growth = slope_per_s(between(lag, slow_start + SETTLE, slow_end))
    rate = produce_rate(ds, slowed, lag.index[0], slow_start)
    assert growth > 0.1 * rate, f"{slowed} lag grew at only {growth:.0f} msg/s"
    drained = event_time(ds, "slowdown_drained")
    assert between(lag, drained, lag.index[-1] + SETTLE).median() <= ceilings[slowed]
    members = ds.lag[ds.lag["group"] == slowed].dropna(subset=["consumer_id"])
    per_member = members[members["time"] == members["time"].max()].groupby("consumer_id").size()
    assert per_member.nunique() >= 1 and len(per_member) >= 2, "fulfilment lost its members"

    rows = ds.lag[ds.lag["group"] == skewed]
    hot = int(ds.meta["hot_partition"])
    middle = skew_start + (skew_end - skew_start) / 2
    window = rows[(rows["time"] > middle) & (rows["time"] <= skew_end)]
    per_partition = window.groupby("partition")["lag"].mean().astype("float64")
    share = per_partition[hot] / per_partition.sum()
    assert share > 0.5, f"hot partition {hot} holds only {share:.0%} of {skewed}'s lag"
    hot_lag = rows[rows["partition"] == hot].set_index("time")["lag"].astype("float64")
    assert slope_per_s(between(hot_lag, skew_start + SETTLE, skew_end)) > 10, "hot lag not growing"
    skew_drained = event_time(ds, "skew_drained")
    sync_lag = total_lag(ds, skewed)
    assert (
        between(sync_lag, skew_drained, sync_lag.index[-1] + SETTLE).median() <= (ceilings[skewed])
    ), f"{skewed} did not stay drained"

    audit = total_lag(ds, control)
    audit_rate = produce_rate(ds, control, audit.index[0], audit.index[-1])
    assert audit.quantile(0.99) <= 10 * audit_rate, f"{control} lagged: p99 {audit.quantile(0.99)}"
    assert abs(slope_per_s(audit)) <= 0.02 * audit_rate, f"{control} lag has a trend"
    assert ds.meta["partitions"][ds.meta["topic"]] >= 24, "orders has fewer than 24 partitions"
    assert ds.meta["partitions"][ds.meta["skewed_topic"]] >= 24


CHECKS: dict[str, Callable[[Dataset], None]] = {
    "slow-consumer-then-scale-out": check_slow_consumer_then_scale_out,
    "producer-burst": check_producer_burst,
    "broker-flush-pressure": check_broker_flush_pressure,
    "skewed-partition": check_skewed_partition,
    "stuck-consumer": check_stuck_consumer,
    "consumers-gone": check_consumers_gone,
    "offset-reset": check_offset_reset,
    "rebalance-churn": check_rebalance_churn,
    "healthy-baseline": check_healthy_baseline,
    "multi-group-cluster": check_multi_group_cluster,
}


def check(ds: Dataset, name: str) -> None:
    """Run the common checks and the scenario's own."""
    check_common(ds, name)
    CHECKS[name](ds)
