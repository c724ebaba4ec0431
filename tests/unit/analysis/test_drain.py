import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbp_notebook.analysis import DrainForecast, time_to_drain
from kbp_notebook.analysis.drain import members_finish
from kbp_notebook.datasets import drain_case, make_lag
from kbp_notebook.errors import KbpDataError, KbpInputError


def one(table: pd.DataFrame) -> pd.Series:
    assert len(table) == 1
    return table.iloc[0]


def test_constant_rates_known_eta():
    lag = make_lag(n=60, partitions=2, produce_rate=100, consume_rate=150, start_lag=30_000)
    result = time_to_drain(lag)
    row = one(result.table)
    # each partition: 30000 + 59*5*(100-150) = 15250 left, draining 50/s -> 305 s
    assert row["lag"] == 2 * 15_250
    assert row["produce_rate"] == pytest.approx(200.0)
    assert row["consume_rate"] == pytest.approx(300.0)
    assert row["eta_s"] == pytest.approx(305.0)
    assert row["eta_low_s"] == pytest.approx(305.0)
    assert row["eta_high_s"] == pytest.approx(305.0)
    assert bool(row["drains"])
    assert row["drain_time"] == lag["time"].max() + pd.Timedelta(seconds=305)
    assert row["partitions"] == 2
    assert row["reason"] == ""


def test_not_draining_is_inf():
    lag = make_lag(n=60, produce_rate=150, consume_rate=100, rw_noise=10)
    row = one(time_to_drain(lag).table)
    assert row["eta_s"] == np.inf
    assert row["eta_high_s"] == np.inf
    assert not bool(row["drains"])
    assert pd.isna(row["drain_time"])


def test_a_backlog_that_never_drains_is_drawn_from_the_last_snapshot():
    # nothing drains, so no drain_time to derive "now" from: the result's as_of sets it
    lag = make_lag(n=60, produce_rate=150, consume_rate=100, rw_noise=10)
    result = time_to_drain(lag)
    assert result.as_of == lag["time"].max()
    projected = [trace for trace in result.plot().data if "does not drain" in (trace.name or "")]
    assert len(projected) == 1
    assert pd.Timestamp(projected[0].x[0]) == lag["time"].max()


def test_caught_up_is_zero():
    row = one(time_to_drain(make_lag(n=30, produce_rate=100, consume_rate=200)).table)
    assert row["eta_s"] == 0
    assert row["eta_low_s"] == 0
    assert bool(row["drains"])


def test_key_eta_comes_from_total_lag_and_rates():
    # partition 2 gets three times the traffic: it is still named as the slowest,
    # but the key's ETA is its total lag over its total rates (one consumer's
    # capacity moves to the partitions that still have a backlog)
    lag = make_lag(
        n=60,
        partitions=3,
        produce_rate=40,
        consume_rate=150,
        start_lag=20_000,
        skew=[1.0, 1.0, 3.0],
        noise=20,
        seed=2,
    )
    result = time_to_drain(lag)
    row = one(result.table)
    assert row["slowest_partition"] == 2
    # the same frame summed to one series gives the same answer
    total = lag.groupby("time", as_index=False)[["committed_offset", "log_end_offset"]].sum()
    total = total.assign(cluster="test", group="orders-consumer", topic="orders", partition=0)
    total["lag"] = total["log_end_offset"] - total["committed_offset"]
    alone = one(time_to_drain(total).table)
    for column in ("eta_s", "eta_low_s", "produce_rate", "consume_rate"):
        assert row[column] == pytest.approx(alone[column], rel=1e-9)
    # the slow end also allows for capacity that does not move (no owners known here:
    # each partition its own member), so it reaches the hot partition's own slow end
    hot = result.partitions.set_index("partition").loc[2]
    assert row["eta_high_s"] >= alone["eta_high_s"]
    assert row["eta_high_s"] >= hot["eta_high_s"] - 1e-6
    assert row["eta_low_s"] <= row["eta_s"] <= row["eta_high_s"]


def test_a_dash_owner_is_no_owner_for_the_slow_end():
    # kafka-consumer-groups prints "-" for a partition without a member: like a
    # missing consumer_id, each such partition is its own member, not one member "-"
    lag = make_lag(n=60, partitions=3, produce_rate=40, consume_rate=150, start_lag=20_000,
                   skew=[1.0, 1.0, 3.0], noise=20, seed=2)  # fmt: skip
    dashed = lag.assign(consumer_id=pd.Series(["-"] * len(lag), dtype="string"))
    assert one(time_to_drain(dashed).table)["eta_high_s"] == pytest.approx(
        one(time_to_drain(lag).table)["eta_high_s"], rel=1e-12
    )


def test_members_finish_adds_members_excess_until_it_is_gone():
    # key 0: two members, 100 msgs in 10 s and 300 msgs in 30 s: the sum is gone at 30 s
    # key 1: a member below its share (-50) gives slack: 100 - 10 t - 50 <= 0 at t = 5
    # key 2: a member that does not drain keeps its excess: never
    # key 3: all at or below their share already: 0
    key_id = np.array([0, 0, 1, 1, 2, 2, 3])
    excess = np.array([100.0, 300.0, 100.0, -50.0, 100.0, 20.0, -1.0])
    eta = np.array([10.0, 30.0, 10.0, 0.0, 10.0, np.inf, 0.0])
    assert members_finish(key_id, excess, eta).tolist() == [30.0, 5.0, np.inf, 0.0]


def test_members_finish_when_the_last_member_does_despite_rounding():
    """Every member falls to its share: the key is done when the last one is, never inf.

    ``excess - (excess / eta) * eta`` is not exactly zero in floating point; these
    figures (offset-reset's members at one moment) read "never" without a tolerance.
    """
    excess = np.array([6665.3, 6486.3, 6434.3])
    eta = np.array([174.6, 162.6, 160.7])
    assert members_finish(np.zeros(3, dtype=np.int64), excess, eta)[0] == pytest.approx(174.6)
    rng = np.random.default_rng(5)
    excess, eta = rng.uniform(1, 1e4, 300), rng.uniform(1, 1e3, 300)
    key_id = np.repeat(np.arange(100), 3)
    finish = members_finish(key_id, excess, eta)
    np.testing.assert_allclose(finish, eta.reshape(100, 3).max(axis=1))


def test_group_drains_while_a_partition_is_not_reached_yet():
    # one consumer works through its partitions in turn: partition 3's committed
    # offset has not moved for the whole recent span, the others drain fast
    moving = make_lag(
        n=40, partitions=3, produce_rate=50, consume_rate=400, start_lag=100_000, seed=4
    )
    stuck = make_lag(n=40, partitions=1, produce_rate=50, consume_rate=0, start_lag=60_000, seed=5)
    stuck["partition"] = np.int32(3)
    lag = pd.concat([moving, stuck], ignore_index=True)
    owned = lag.assign(consumer_id=pd.Series(["consumer-0"] * len(lag), dtype="string"))
    result = time_to_drain(owned)
    parts = result.partitions.set_index("partition")
    assert parts.loc[3, "eta_s"] == np.inf  # on its own it never drains
    row = one(result.table)
    assert bool(row["drains"])
    net = row["consume_rate"] - row["produce_rate"]
    assert net == pytest.approx(3 * 350 - 50, rel=0.02)
    assert row["eta_s"] == pytest.approx(row["lag"] / net, rel=0.02)
    # one member owns all four partitions: its capacity moves to partition 3
    assert np.isfinite(row["eta_high_s"])
    # without owners, partition 3 may have a consumer of its own that is stuck:
    # the same ETA, but the slow end cannot rule out "never"
    unknown = one(time_to_drain(lag).table)
    assert unknown["eta_s"] == pytest.approx(row["eta_s"], rel=1e-9)
    assert unknown["eta_high_s"] == np.inf


def test_switch_from_growth_to_drain_is_seen_within_a_few_snapshots():
    # the consumer scales out 5 snapshots before the end of the recording
    lag = make_lag(
        n=60,
        produce_rate=100,
        consume_rate=[(0, 60), (270, 300)],
        start_lag=5_000,
        rw_noise=5,
        noise=20,
        seed=6,
    )
    row = one(time_to_drain(lag).table)
    assert bool(row["drains"])
    assert row["consume_rate"] == pytest.approx(300, rel=0.1)
    truth = row["lag"] / 200
    assert row["eta_low_s"] <= truth <= row["eta_high_s"]
    # over the whole recording the growth would still dominate
    assert not bool(one(time_to_drain(lag, window=10**6).table)["drains"])


def test_drained_means_back_at_the_healthy_in_flight_lag():
    # a consumer committing per batch keeps ~800 messages in flight when healthy;
    # a backlog builds from 200 s and drains from 600 s
    lag = make_lag(
        n=140,
        produce_rate=100,
        consume_rate=[(0, 150), (200, 50), (600, 250)],
        noise=5,
        seed=7,
    )
    lag["committed_offset"] = lag["committed_offset"] - 800
    lag["lag"] = lag["log_end_offset"] - lag["committed_offset"]
    row = one(time_to_drain(lag).table)
    assert row["target_lag"] == pytest.approx(800, abs=20)
    net = row["consume_rate"] - row["produce_rate"]
    assert net == pytest.approx(150, rel=0.05)
    assert row["eta_s"] == pytest.approx((row["lag"] - row["target_lag"]) / net, rel=1e-9)
    # asked to drain to zero it takes the in-flight messages' worth longer
    zero = one(time_to_drain(lag, target_lag=0).table)
    assert zero["target_lag"] == 0
    assert zero["eta_s"] == pytest.approx(row["eta_s"] + 800 / net, rel=0.05)
    # the healthy level is not guessed from a recording that starts inside the backlog
    inside = make_lag(n=60, produce_rate=100, consume_rate=150, start_lag=30_000)
    assert one(time_to_drain(inside).table)["target_lag"] == 0


def test_caught_up_partitions_with_a_few_messages_count_as_drained():
    # consumer far faster than the producer: lag jitters around a few messages
    lag = make_lag(n=60, partitions=4, produce_rate=100, consume_rate=500, noise=3, seed=8)
    lag["committed_offset"] = (lag["committed_offset"] - 4).clip(lower=0)
    lag["lag"] = lag["log_end_offset"] - lag["committed_offset"]
    assert (lag.groupby("partition")["lag"].last() > 0).all()
    result = time_to_drain(lag)
    parts = result.partitions
    assert (parts["eta_s"] == 0).all()
    assert (parts["eta_high_s"] == 0).all()
    assert parts["drains"].all()
    row = one(result.table)
    assert row["eta_s"] == 0
    assert row["eta_high_s"] == 0


def test_rates_from_offsets_since_the_change():
    # consumers scaled out at 200 s: the default span starts at the change
    lag = make_lag(
        n=80,
        produce_rate=100,
        consume_rate=[(0, 80), (200, 160)],
        start_lag=20_000,
        rw_noise=5,
        seed=3,
    )
    row = one(time_to_drain(lag).table)
    assert row["consume_rate"] == pytest.approx(160, rel=0.03)
    whole = one(time_to_drain(lag, window=10**6).table)
    assert whole["consume_rate"] < 140


def test_window_as_duration_text_or_seconds():
    lag = make_lag(n=80, produce_rate=100, consume_rate=[(0, 80), (200, 160)], start_lag=20_000)
    assert one(time_to_drain(lag, window="100s").table)["n"] == 21
    assert one(time_to_drain(lag, window=50).table)["n"] == 11  # a bare number is seconds
    with pytest.raises(KbpInputError, match="window"):
        time_to_drain(lag, window="later")
    with pytest.raises(KbpInputError, match="confidence"):
        time_to_drain(lag, confidence=1.5)


def test_retention_loss_when_log_start_overtakes_the_consumer():
    # 100/s produced, 50/s consumed, retention keeps 20000 messages: the log start advances
    # 100/s, gaining 50/s on the consumer, which is 20000 - lag ahead of it
    lag = make_lag(n=40, produce_rate=100, consume_rate=50, retention_msgs=20_000)
    row = one(time_to_drain(lag).table)
    gap = 20_000 - row["lag"]
    assert row["retention_loss_s"] == pytest.approx(gap / 50, rel=1e-6)
    safe = make_lag(n=40, produce_rate=100, consume_rate=150, start_lag=5000, retention_msgs=1e7)
    assert one(time_to_drain(safe).table)["retention_loss_s"] == np.inf
    assert np.isnan(one(time_to_drain(make_lag(n=40)).table)["retention_loss_s"])


def test_thin_single_key_raises_multi_key_reason():
    thin = make_lag(n=3, produce_rate=100, consume_rate=50)
    with pytest.raises(KbpDataError, match="need at least 4"):
        time_to_drain(thin)
    thick = make_lag(n=30, topics=("big",), produce_rate=100, consume_rate=150, start_lag=9000)
    table = time_to_drain(pd.concat([thin, thick], ignore_index=True)).table.set_index("topic")
    assert np.isnan(table.loc["orders", "eta_s"])
    assert "partition 0: only 3 sample" in table.loc["orders", "reason"]
    assert not table.loc["orders", "drains"]
    assert table.loc["big", "eta_s"] > 0
    assert table.loc["big", "reason"] == ""


@pytest.mark.parametrize(
    ("name", "rw_noise", "noise"),
    [
        ("random walk", 30.0, 0.0),
        ("measurement noise", 0.0, 300.0),
        ("both", 30.0, 100.0),
    ],
)
def test_eta_interval_is_calibrated(name, rw_noise, noise):
    """A 90 % interval covers the true future drain time about 90 % of the time.

    200 independent partitions (seeds) per noise model; the truth is the same
    process continued past the recording until its real backlog is gone.
    """
    frame, truth = drain_case(partitions=200, rw_noise=rw_noise, noise=noise, seed=11)
    table = time_to_drain(frame, by="partition", confidence=0.9).table
    covered = (truth >= table["eta_low_s"].to_numpy()) & (truth <= table["eta_high_s"].to_numpy())
    coverage = float(covered.mean())
    median_width = float(np.median(table["eta_high_s"] - table["eta_low_s"]))
    print(
        f"\n90% ETA interval coverage ({name}, 200 seeds): {coverage:.3f}; "
        f"median width {median_width:.0f} s around a median truth of {np.median(truth):.0f} s"
    )
    assert 0.82 <= coverage <= 0.97
    # intervals must be informative, not [0, inf]
    assert np.isfinite(table["eta_high_s"]).mean() > 0.95


def test_eta_interval_covers_the_snapshot_that_shows_the_drain():
    """Sparse snapshots, little noise: the interval is about one snapshot interval wide.

    The truth is what a recording shows: the first snapshot at which the real
    backlog is gone (``drain_case``'s consumer cannot pass the log end, so its
    backlog reaches zero exactly at a snapshot). 600 independent partitions.
    Each end of a 90 % interval may miss 5 % of the truths: each end's misses
    must stay within 5 % plus 3.29 binomial standard errors (one-sided 99.95 %),
    so a calibrated interval cannot fail by chance, and the coverage within the
    two-sided 99.9 % band of 90 % or above it (a truth that only takes snapshot
    times is covered at least as often as the crossing). An interval for the
    crossing alone (slow end not moved to the next snapshot) was late at
    10-15 % of these (about 85 % coverage): it fails.
    """
    moments, step = 600, 20.0
    frame, truth = drain_case(
        partitions=moments, step_s=step, rw_noise=10.0, noise=30.0, history=40, seed=21
    )
    table = time_to_drain(frame, by="partition", confidence=0.9).table
    low, high = table["eta_low_s"].to_numpy(), table["eta_high_s"].to_numpy()
    early, late = float((truth < low).mean()), float((truth > high).mean())
    coverage = 1.0 - early - late
    print(
        f"\n90% ETA interval coverage ({step:.0f} s snapshots, {moments} seeds): {coverage:.3f} "
        f"(truth before the fast end {early:.3f}, after the slow end {late:.3f})"
    )
    tail = 0.05 + 3.29 * np.sqrt(0.05 * 0.95 / moments)
    assert early <= tail
    assert late <= tail
    assert coverage >= 0.9 - 3.29 * np.sqrt(0.9 * 0.1 / moments)
    # informative, and the slow end is a snapshot time
    assert coverage <= 0.97
    assert np.isfinite(high).all()
    assert np.allclose(high / step, np.round(high / step))


def test_drain_time_point_estimate_unbiased_on_noisy_cases():
    frame, truth = drain_case(partitions=200, rw_noise=30, noise=100, seed=12)
    table = time_to_drain(frame, by="partition").table
    ratio = np.median(table["eta_s"].to_numpy() / truth)
    assert 0.95 < ratio < 1.05


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(factor=st.integers(2, 40), seed=st.integers(0, 1000))
def test_scaling_offsets_scales_rates_not_eta(factor, seed):
    lag = make_lag(n=50, produce_rate=100, consume_rate=130, start_lag=20_000, noise=50, seed=seed)
    scaled = lag.copy()
    for column in ("committed_offset", "log_end_offset", "lag"):
        scaled[column] = scaled[column] * factor
    a = one(time_to_drain(lag, window=10**6).table)
    b = one(time_to_drain(scaled, window=10**6).table)
    assert b["produce_rate"] == pytest.approx(a["produce_rate"] * factor, rel=1e-9)
    assert b["consume_rate"] == pytest.approx(a["consume_rate"] * factor, rel=1e-9)
    for column in ("eta_s", "eta_low_s", "eta_high_s"):
        assert b[column] == pytest.approx(a[column], rel=1e-6)


def test_result_object():
    result = time_to_drain(make_lag(n=30, produce_rate=100, consume_rate=150, start_lag=9000))
    assert isinstance(result, DrainForecast)
    assert result.plot_builder == "plot_drain"
    assert "drain at current rates" in repr(result)
    expected = {
        "lag",
        "produce_rate",
        "consume_rate",
        "eta_s",
        "eta_low_s",
        "eta_high_s",
        "drains",
        "drain_time",
        "retention_loss_s",
        "n",
        "reason",
        "target_lag",
    }
    assert expected <= set(result.table.columns)


def _unequal_members(owned: bool) -> pd.DataFrame:
    # member a owns partition 0, member b owns partitions 1-3; both handle 200 msg/s and
    # each partition gets 50 msg/s: b's three partitions drain at 16.7 msg/s each, a's at 150
    alone = make_lag(n=10, partitions=1, produce_rate=50, consume_rate=200, start_lag=10_000)
    shared = make_lag(
        n=10, partitions=3, produce_rate=50, consume_rate=200 / 3, start_lag=10_000, seed=3
    )
    shared["partition"] = (shared["partition"] + 1).astype(np.int32)
    lag = pd.concat([alone, shared], ignore_index=True)
    if owned:
        owner = np.where(lag["partition"] == 0, "member-a", "member-b")
        lag["consumer_id"] = pd.Series(owner, dtype="string")
    return lag


def test_eta_follows_the_capacity_that_keeps_working():
    lag = _unequal_members(owned=True)
    row = one(time_to_drain(lag).table)
    left = lag[lag["time"] == lag["time"].max()].set_index("partition")["lag"].astype(float)
    # member a is done after left[0] / 150 s and stops contributing; b needs its own time
    member_b = left.loc[1:3].sum() / (3 * (200 / 3 - 50))
    assert left.loc[0] / 150 < member_b
    assert row["eta_s"] == pytest.approx(member_b, rel=0.02)
    assert row["eta_low_s"] <= row["eta_s"] <= row["eta_high_s"]
    # capacity moving freely between members would say the total over the total rate
    freely = left.sum() / (200 + 200 - 4 * 50)
    assert row["eta_s"] > 2 * freely


def test_without_owners_the_slow_end_is_bounded_by_the_partitions_own_rates():
    lag = _unequal_members(owned=False)
    row = one(time_to_drain(lag).table)
    left = lag[lag["time"] == lag["time"].max()].set_index("partition")["lag"].astype(float)
    freely = left.sum() / (200 + 200 - 4 * 50)
    slowest = left.loc[1:3].max() / (200 / 3 - 50)
    # the ETA stays the total's (members cannot be told apart) ...
    assert row["eta_s"] == pytest.approx(freely, rel=0.02)
    # ... and the slow end is finite: each partition at its own current rate
    assert np.isfinite(row["eta_high_s"])
    assert row["eta_high_s"] >= slowest * 0.98
    assert row["eta_low_s"] <= row["eta_s"] <= row["eta_high_s"]


def test_rates_are_measured_after_an_offset_rewind():
    # a consumer draining 150 msg/s net on each partition; at 100 s its offsets are reset
    # 20000 back on every partition: the drain that follows runs at the same rates
    lag = make_lag(n=40, partitions=2, produce_rate=100, consume_rate=250, start_lag=50_000)
    rewound = lag["time"] >= lag["time"].min() + pd.Timedelta(seconds=100)
    lag.loc[rewound, "committed_offset"] = lag.loc[rewound, "committed_offset"] - 20_000
    lag["lag"] = lag["log_end_offset"] - lag["committed_offset"]
    row = one(time_to_drain(lag, target_lag=0).table)
    # across the rewind the consume rate would come out 20000 x 2 / 195 s lower
    assert row["consume_rate"] == pytest.approx(2 * 250, rel=0.05)
    assert bool(row["drains"])
    assert row["eta_s"] == pytest.approx(row["lag"] / (2 * 150), rel=0.05)


def _wandering_drains(
    partitions: int, rate_sd: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Drains whose consume rate wanders (a random walk, ``rate_sd`` msg/s per sqrt(s)).

    Returns the recorded frame (10 min, a snapshot every 5 s) and each partition's true
    drain time after the last snapshot, the rate going on wandering.
    """
    rng = np.random.default_rng(seed)
    step, t = 5.0, np.arange(0.0, 605.0, 5.0)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    frames, truth = [], []
    for partition in range(partitions):
        consume = 130.0 + np.cumsum(rng.normal(0.0, rate_sd * np.sqrt(step), len(t)))
        backlog = 30_000.0 - np.cumsum(np.r_[0.0, (consume[:-1] - 100.0) * step])
        left, rate, after = backlog[-1], consume[-1], 0.0
        while left > 0 and after < 20_000:
            rate += rng.normal(0.0, rate_sd * np.sqrt(step))
            left, after = left - (rate - 100.0) * step, after + step
        truth.append(after if left <= 0 else np.inf)
        log_end = np.round(1_000_000 + 100.0 * t)
        committed = log_end - np.round(np.maximum(backlog, 0.0))
        frames.append(pd.DataFrame({
            "time": start + pd.to_timedelta(t, unit="s"), "cluster": "c", "group": "g",
            "topic": "t", "partition": partition, "committed_offset": committed,
            "log_end_offset": log_end, "lag": log_end - committed,
        }))
    return pd.concat(frames, ignore_index=True), np.asarray(truth)


def test_a_rate_that_moved_within_the_span_widens_the_interval(monkeypatch):
    import kbp_notebook.analysis.drain as drain

    def coverage(frame: pd.DataFrame, truth: np.ndarray) -> float:
        table = time_to_drain(frame, by="partition", confidence=0.9, target_lag=0).table
        finite = np.isfinite(truth)
        low, high = table["eta_low_s"].to_numpy(), table["eta_high_s"].to_numpy()
        return float(((truth >= low) & (truth <= high))[finite].mean())

    frame, truth = _wandering_drains(200, rate_sd=0.3, seed=3)
    with_drift = coverage(frame, truth)
    monkeypatch.setattr(drain, "rate_drift_variance", lambda t, lag, n, m2, w2: np.zeros(len(n)))
    without = coverage(frame, truth)
    print(f"\n90% coverage, consume rate wandering: {with_drift:.2f} (rate held: {without:.2f})")
    # still short of 90 %: the rate keeps wandering after the recording, which no span shows
    assert with_drift >= without + 0.1


def test_a_rate_that_held_adds_no_drift_variance(monkeypatch):
    import kbp_notebook.analysis.drain as drain

    seen: list[np.ndarray] = []
    original = drain.rate_drift_variance

    def spy(*args):  # type: ignore[no-untyped-def]
        seen.append(original(*args))
        return seen[-1]

    monkeypatch.setattr(drain, "rate_drift_variance", spy)
    frame, _ = drain_case(partitions=200, rw_noise=30.0, noise=100.0, seed=11)
    time_to_drain(frame, by="partition", confidence=0.9)
    drift = np.concatenate(seen)
    assert len(drift) >= 200
    assert (drift > 0).mean() <= 0.1  # the chi-square test's 5 %, and some slack
