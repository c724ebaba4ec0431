import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from kbp_notebook.analysis import LagTrend, lag_trend
from kbp_notebook.datasets import make_lag
from kbp_notebook.errors import KbpDataError, KbpInputError


def one(table: pd.DataFrame) -> pd.Series:
    assert len(table) == 1
    return table.iloc[0]


def test_constant_growth_has_known_slope_and_is_growing():
    lag = make_lag(partitions=3, n=120, produce_rate=110, consume_rate=100, noise=30, seed=1)
    row = one(lag_trend(lag).table)
    # three partitions each growing 10 msg/s -> group/topic total 30 msg/s
    assert row["slope_per_s"] == pytest.approx(30.0, rel=0.02)
    assert row["ci_low"] < 30.0 < row["ci_high"]
    assert row["status"] == "growing"
    assert row["p_value"] < 1e-6
    assert row["n"] == 120
    assert row["slope_ols_per_s"] == pytest.approx(30.0, rel=0.02)
    assert pd.isna(row["onset"])  # grows from the first sample: no onset inside the data


def test_draining_and_stable():
    draining = make_lag(n=100, produce_rate=100, consume_rate=150, start_lag=40_000, noise=50)
    row = one(lag_trend(draining).table)
    assert row["status"] == "draining"
    assert row["slope_per_s"] == pytest.approx(-50.0, rel=0.03)
    stable = make_lag(n=100, produce_rate=100, consume_rate=100, start_lag=5_000, noise=200)
    assert one(lag_trend(stable).table)["status"] == "stable"


def test_onset_found_where_growth_began():
    # caught up until the producer speeds up at t = 300 s, then lag grows 50 msg/s
    lag = make_lag(
        n=120, step_s=5, produce_rate=[(0, 100), (300, 200)], consume_rate=150, noise=20, seed=3
    )
    row = one(lag_trend(lag).table)
    start = lag["time"].min()
    onset_s = (row["onset"] - start).total_seconds()
    assert abs(onset_s - 300) <= 15
    assert row["status"] == "growing"


def test_flat_series_has_no_onset():
    lag = make_lag(n=120, produce_rate=100, consume_rate=100, start_lag=1000, noise=50, seed=4)
    assert pd.isna(one(lag_trend(lag).table)["onset"])


def test_theil_sen_ignores_rebalance_spikes_that_pull_ols():
    spikes = [(t, 40_000) for t in (100, 200, 300, 400, 500)]
    lag = make_lag(n=120, produce_rate=110, consume_rate=100, spikes=spikes, noise=10, seed=5)
    row = one(lag_trend(lag).table)
    assert row["slope_per_s"] == pytest.approx(10.0, rel=0.05)
    assert abs(row["slope_ols_per_s"] - 10.0) > abs(row["slope_per_s"] - 10.0)


def test_matches_scipy_theilslopes_for_short_series():
    lag = make_lag(n=32, produce_rate=120, consume_rate=100, noise=80, seed=6)
    row = one(lag_trend(lag).table)
    x = (lag["time"] - lag["time"].min()).dt.total_seconds().to_numpy()
    reference = stats.theilslopes(lag["lag"].to_numpy(float), x)
    assert row["slope_per_s"] == pytest.approx(reference.slope, rel=1e-12)


def test_exact_line_interval_collapses_to_slope():
    lag = make_lag(n=40, produce_rate=130, consume_rate=100)
    row = one(lag_trend(lag).table)
    assert row["slope_per_s"] == pytest.approx(30.0, rel=1e-9)
    assert row["ci_low"] == pytest.approx(30.0, rel=1e-6)
    assert row["ci_high"] == pytest.approx(30.0, rel=1e-6)


def test_long_series_block_estimate_close_to_all_pairs():
    lag = make_lag(n=400, produce_rate=105, consume_rate=100, noise=100, seed=7)
    row = one(lag_trend(lag).table)
    x = (lag["time"] - lag["time"].min()).dt.total_seconds().to_numpy()
    reference = stats.theilslopes(lag["lag"].to_numpy(float), x)
    half_width = (row["ci_high"] - row["ci_low"]) / 2
    assert abs(row["slope_per_s"] - reference.slope) < 0.25 * half_width


def test_random_walks_without_drift_rarely_called_a_trend():
    lag = make_lag(
        partitions=300,
        n=120,
        produce_rate=100,
        consume_rate=100,
        start_lag=50_000,
        rw_noise=30,
        seed=8,
    )
    table = lag_trend(lag, by=("group", "topic", "partition")).table
    rate = float((table["status"] != "stable").mean())
    split = float((table["segments"] > 1).mean())
    print(f"driftless random walks called growing/draining at 95%: {rate:.3f}; cut: {split:.3f}")
    assert rate < 0.12
    assert split < 0.03  # the regime test is at 1%: a random walk rarely beats its penalty


def test_measurement_noise_alone_is_not_cut_into_regimes():
    # commit-timing noise on a steady backlog: large jitter, no change of rate
    lag = make_lag(
        partitions=300, n=120, produce_rate=100, consume_rate=100, start_lag=50_000, noise=300
    )
    table = lag_trend(lag, by=("group", "topic", "partition")).table
    assert float((table["segments"] > 1).mean()) < 0.03
    assert float((table["status"] != "stable").mean()) < 0.12


def test_per_partition_keys_and_by_validation():
    lag = make_lag(partitions=4, n=30, produce_rate=110, consume_rate=100, groups=("a", "b"))
    table = lag_trend(lag, by="partition").table
    assert len(table) == 8
    assert {"cluster", "group", "topic", "partition"} <= set(table.columns)
    with pytest.raises(KbpInputError, match="by="):
        lag_trend(lag, by=("host",))
    with pytest.raises(KbpInputError, match="method"):
        lag_trend(lag, method="magic")
    with pytest.raises(KbpInputError, match="window"):
        lag_trend(lag, window="soon")


def test_window_limits_the_samples():
    lag = make_lag(n=120, step_s=5, produce_rate=[(0, 100), (300, 200)], consume_rate=150)
    table = lag_trend(lag, window="4min").table
    assert one(table)["n"] == 49  # both ends of the 240 s span
    assert one(table)["slope_per_s"] == pytest.approx(50.0, rel=0.01)
    assert one(lag_trend(lag, window=95).table)["n"] == 20  # a bare number is seconds


def test_ols_method():
    lag = make_lag(n=80, produce_rate=120, consume_rate=100, noise=40, seed=9)
    result = lag_trend(lag, method="ols")
    row = one(result.table)
    assert row["slope_per_s"] == row["slope_ols_per_s"]
    assert row["ci_low"] < 20 < row["ci_high"]
    assert result.method == "ols"


def test_thin_single_key_raises_and_multi_key_gives_reason():
    lag = make_lag(n=3, produce_rate=110, consume_rate=100)
    with pytest.raises(KbpDataError, match="need at least 4"):
        lag_trend(lag)
    thick = make_lag(n=30, topics=("big",), produce_rate=110, consume_rate=100)
    both = pd.concat([lag, thick], ignore_index=True)
    table = lag_trend(both).table.set_index("topic")
    assert np.isnan(table.loc["orders", "slope_per_s"])
    assert "only 3 sample" in table.loc["orders", "reason"]
    assert pd.isna(table.loc["orders", "status"])
    assert table.loc["big", "status"] == "growing"
    assert table.loc["big", "reason"] == ""


def test_partition_sums_skip_incomplete_snapshots():
    lag = make_lag(partitions=3, n=40, produce_rate=110, consume_rate=100)
    # one partition missing from one snapshot must not read as a drop in lag
    missing = lag[~((lag["partition"] == 2) & (lag["time"] == lag["time"].unique()[10]))]
    row = one(lag_trend(missing).table)
    assert row["n"] == 39
    assert row["slope_per_s"] == pytest.approx(30.0, rel=1e-9)


def test_result_object():
    result = lag_trend(make_lag(n=30, produce_rate=110, consume_rate=100))
    assert isinstance(result, LagTrend)
    assert result.plot_builder == "plot_lag_trend"
    assert "growing" in repr(result)
    assert "<table" in result._repr_html_()
    with pytest.raises(AttributeError):
        result.method = "ols"  # type: ignore[misc]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shift_s=st.integers(min_value=-(10**8), max_value=10**8),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_shifting_time_does_not_change_the_slope(shift_s, seed):
    lag = make_lag(n=90, produce_rate=107, consume_rate=100, noise=60, seed=seed)
    shifted = lag.assign(time=lag["time"] + pd.Timedelta(seconds=shift_s))
    a = one(lag_trend(lag).table)
    b = one(lag_trend(shifted).table)
    for name in ("slope_per_s", "ci_low", "ci_high", "slope_ols_per_s"):
        assert b[name] == pytest.approx(a[name], rel=1e-6, abs=1e-6)
    assert a["status"] == b["status"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    factor=st.integers(min_value=2, max_value=50),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_scaling_offsets_scales_the_slope(factor, seed):
    lag = make_lag(n=70, produce_rate=104, consume_rate=100, noise=40, seed=seed)
    scaled = lag.copy()
    for name in ("committed_offset", "log_end_offset", "lag"):
        scaled[name] = scaled[name] * factor
    a = one(lag_trend(lag).table)
    b = one(lag_trend(scaled).table)
    for name in ("slope_per_s", "ci_low", "ci_high", "slope_ols_per_s"):
        assert b[name] == pytest.approx(a[name] * factor, rel=1e-6, abs=1e-6)
    assert a["status"] == b["status"]


def test_grew_then_draining_says_draining_with_the_drains_slope():
    # grows 20 msg/s for 800 s, then the consumers drain 15 msg/s for the last 400 s
    lag = make_lag(
        n=240, produce_rate=100, consume_rate=[(0, 80), (800, 115)], rw_noise=10, noise=50, seed=2
    )
    result = lag_trend(lag)
    row = one(result.table)
    assert row["status"] == "draining"
    assert row["ci_low"] <= -15.0 <= row["ci_high"]
    assert row["ci_high"] < 0
    assert pd.isna(row["onset"])  # not growing now
    start = lag["time"].min()
    assert abs((row["regime_start"] - start).total_seconds() - 800) <= 30
    assert row["n"] == pytest.approx(80, abs=6)
    segments = result.segments
    assert segments["status"].tolist() == ["growing", "draining"]
    assert segments["ci_low"].iloc[0] <= 20.0 <= segments["ci_high"].iloc[0]
    assert segments["current"].tolist() == [False, True]
    assert segments["end"].iloc[0] == segments["start"].iloc[1]  # regimes share the change


def test_flat_then_growing_for_the_last_300_s_has_the_onset():
    for seed in range(5):
        lag = make_lag(
            n=240,
            produce_rate=[(0, 100), (900, 130)],
            consume_rate=110,
            start_lag=2000,
            rw_noise=10,
            noise=50,
            seed=seed,
        )
        row = one(lag_trend(lag).table)
        assert row["status"] == "growing", seed
        onset_s = (row["onset"] - lag["time"].min()).total_seconds()
        assert abs(onset_s - 900) <= 30, seed
        assert row["slope_per_s"] == pytest.approx(20.0, abs=3.0), seed


def test_a_rewind_jump_is_not_a_change_of_rate():
    # the committed offset jumps back 20,000 (lag jumps up) in a steady 10 msg/s growth
    lag = make_lag(
        n=120, produce_rate=110, consume_rate=100, rewinds=[(300, 20_000)], noise=20, seed=5
    )
    row = one(lag_trend(lag).table)
    assert row["segments"] == 1
    assert row["ci_low"] <= 10.0 <= row["ci_high"]


def test_a_drain_that_reached_zero_ends_its_regime_even_in_noise():
    # drains 70 msg/s with heavy commit jitter, then caught up for the last 25 s: the lag
    # cannot keep draining below zero, so the last regime is the caught-up one
    lag = make_lag(
        n=120, step_s=1.5, produce_rate=200, consume_rate=270, start_lag=11_000, noise=150, seed=3
    )
    lag = lag[lag["time"] <= lag["time"].min() + pd.Timedelta(seconds=178)]
    result = lag_trend(lag)
    row = one(result.table)
    assert row["status"] == "stable"
    assert result.segments["status"].tolist()[0] == "draining"


def test_result_carries_as_of_confidence_and_segments_shape():
    lag = make_lag(n=60, produce_rate=[(0, 100), (150, 140)], consume_rate=120, seed=1)
    result = lag_trend(lag, confidence=0.9)
    assert result.as_of == lag["time"].max()
    assert result.confidence == 0.9
    assert "90% interval" in repr(result)
    expected = {
        "cluster", "group", "topic", "segment", "start", "end", "slope_per_s", "ci_low",
        "ci_high", "p_value", "n", "status", "fitted_lag_start", "fitted_lag_end", "current",
    }  # fmt: skip
    assert expected <= set(result.segments.columns)
    assert result.segments["segment"].tolist() == list(range(len(result.segments)))
    assert one(result.table)["segments"] == len(result.segments)


SAMPLE_BUILD_UPS = {
    # sample: (group, true onset event, build-up rate the scenario implies or None)
    "producer-burst": ("sessionizer", "burst_start", 450.0),  # 900 produced vs ~450 consumed
    "stuck-consumer": ("ledger-writer", "stall_start", 150.0),  # producer 150, nothing consumed
    "slow-consumer-then-scale-out": ("orders-enricher", "slowdown_start", None),
    "skewed-partition": ("billing-aggregator", "skew_start", None),
    "broker-flush-pressure": ("fraud-scorer", "flush_pressure_start", None),
}


@pytest.mark.parametrize("name", sorted(SAMPLE_BUILD_UPS))
def test_samples_end_calm_and_show_the_build_up(name):
    import kbp_notebook as kbp

    ds = kbp.load_sample(name)
    result = lag_trend(ds.lag)
    # every sample ends drained: the current regime is the calm after the incident
    assert set(result.table["status"]) == {"stable"}
    assert result.table["onset"].isna().all()
    group, event, rate = SAMPLE_BUILD_UPS[name]
    truth = ds.events.loc[ds.events["kind"] == event, "time"].iloc[0]
    segments = result.segments[result.segments["group"] == group]
    growing = segments[segments["status"] == "growing"]
    assert len(growing) == 1
    build_up = growing.iloc[0]
    assert -15 <= (build_up["start"] - truth).total_seconds() <= 30
    assert build_up["slope_per_s"] > 50
    if rate is not None:
        assert build_up["slope_per_s"] == pytest.approx(rate, rel=0.1)
    # and a drain after it
    later = segments[segments["start"] >= build_up["end"]]
    assert (later["status"] == "draining").any()
