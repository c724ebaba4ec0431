import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from kbp_notebook.analysis.correlation import Correlation, correlate, flush_latency_vs_lag
from kbp_notebook.datasets import make_lag
from kbp_notebook.errors import KbpDataError, KbpInputError
from kbp_notebook.frames import Dataset

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def series(values, step_s=5.0, start=T0, name=None):
    values = np.asarray(values, dtype="float64")
    index = start + pd.to_timedelta(np.arange(len(values)) * step_s, unit="s")
    return pd.Series(values, index=pd.DatetimeIndex(index), name=name)


def ar1(rng, n, phi):
    shocks = rng.normal(size=n)
    out = np.empty(n)
    out[0] = shocks[0] / np.sqrt(1 - phi**2)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


# ---------------------------------------------------------------- known answers


def test_identical_series_correlate_perfectly_at_shift_zero():
    x = series(np.sin(np.arange(200) / 7.0) + np.arange(200) * 0.01)
    result = correlate(x, x.copy())
    assert isinstance(result, Correlation)
    assert result.r == pytest.approx(1.0, abs=1e-9)
    assert result.shift == pd.Timedelta(0)
    assert result.n == 200
    assert result.significant
    assert result.p_value == pytest.approx(1 / 201)


def test_anti_correlated_series_give_minus_one():
    rng = np.random.default_rng(3)
    base = ar1(rng, 300, 0.8)
    result = correlate(series(base), series(-2.0 * base + 5.0), method="pearson")
    assert result.r == pytest.approx(-1.0, abs=1e-9)
    assert result.shift == pd.Timedelta(0)
    assert result.significant


def test_known_lead_is_found_with_the_right_sign():
    rng = np.random.default_rng(5)
    base = ar1(rng, 406, 0.9)
    x = series(base[6:])  # x(t) = base(t + 30 s)
    y = series(base[:-6])  # y(t) = base(t): y repeats x 30 s later
    result = correlate(x, y)
    assert result.shift == pd.Timedelta("30s")
    assert result.shift_s == 30.0
    # Spearman ranks are taken once over the record, so a shifted window is near, not at, 1.
    assert result.r > 0.999
    swapped = correlate(y, x)
    assert swapped.shift == pd.Timedelta("-30s")


def test_pearson_and_spearman_at_shift_zero_match_scipy():
    rng = np.random.default_rng(11)
    a = ar1(rng, 250, 0.7)
    b = 0.5 * a + rng.standard_t(3, size=250)
    pearson = correlate(series(a), series(b), method="pearson", max_shift=0)
    spearman = correlate(series(a), series(b), method="spearman", max_shift=0)
    assert pearson.r == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-10)
    assert spearman.r == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-10)
    assert list(pearson.table["shift_s"]) == [0.0]


def test_table_has_pearson_of_each_shifted_window():
    rng = np.random.default_rng(12)
    a, b = ar1(rng, 200, 0.5), ar1(rng, 200, 0.5)
    result = correlate(series(a), series(b), method="pearson", max_shift="50s")
    table = result.table
    assert list(table.columns) == ["shift", "shift_s", "r", "n"]
    assert list(table["shift_s"]) == [5.0 * k for k in range(-10, 11)]
    for k in (-10, -3, 0, 4, 10):
        row = table[table["shift_s"] == 5.0 * k].iloc[0]
        xs, ys = (a[: len(a) - k], b[k:]) if k >= 0 else (a[-k:], b[: len(b) + k])
        assert row["r"] == pytest.approx(stats.pearsonr(xs, ys).statistic, abs=1e-9)
        assert row["n"] == 200 - abs(k)
        assert row["shift"] == pd.Timedelta(seconds=5 * k)
    best = table.loc[table["r"].abs().idxmax()]
    assert result.r == pytest.approx(best["r"])
    assert result.shift == best["shift"]


def test_constant_series_has_no_variance():
    x = series(np.arange(50.0))
    with pytest.raises(KbpDataError, match="no variance"):
        correlate(x, series(np.full(50, 7.0)))
    with pytest.raises(KbpDataError, match="no variance"):
        correlate(series(np.full(50, 7.0)), x)


def test_too_few_points_is_a_data_error():
    with pytest.raises(KbpDataError, match="at least 12"):
        correlate(series(np.arange(6.0)), series(np.arange(6.0) ** 2))
    with pytest.raises(KbpDataError, match="usable point"):
        correlate(series([1.0]), series(np.arange(30.0)))


def test_series_that_do_not_overlap_are_a_data_error():
    x = series(np.arange(40.0))
    y = series(np.arange(40.0), start=T0 + pd.Timedelta("1h"))
    with pytest.raises(KbpDataError, match="do not overlap"):
        correlate(x, y)


def test_bad_inputs_are_input_errors():
    x = series(np.arange(40.0))
    with pytest.raises(KbpInputError, match="method"):
        correlate(x, x, method="kendall")  # type: ignore[arg-type]
    with pytest.raises(KbpInputError, match="max_shift"):
        correlate(x, x, max_shift="soon")
    with pytest.raises(KbpInputError, match="naive"):
        correlate(pd.Series(np.arange(40.0), index=pd.date_range("2026", periods=40, freq="s")), x)
    with pytest.raises(KbpInputError, match="time index"):
        correlate(pd.Series(np.arange(40.0)), x)
    with pytest.raises(KbpInputError, match="alpha"):
        correlate(x, x, alpha=1.5)
    with pytest.raises(KbpInputError, match="could not be read as timestamps"):
        correlate(pd.DataFrame({"time": ["yesterday"] * 40, "value": np.arange(40.0)}), x)


def test_coarser_series_sets_the_grid_and_gaps_are_left_out():
    rng = np.random.default_rng(2)
    fine = ar1(rng, 720, 0.95)  # every 5 s for an hour
    x = series(fine, step_s=5.0)
    y = series(fine[::2], step_s=10.0)  # the same signal every 10 s
    result = correlate(x, y)
    assert result.step == pd.Timedelta("10s")
    assert result.shift == pd.Timedelta(0)
    assert result.r == pytest.approx(1.0, abs=1e-9)
    # Remove 10 minutes from y: those grid points are gaps, not interpolated.
    holed = y.drop(y.index[100:160])
    gapped = correlate(x, holed, max_shift=0)
    assert gapped.aligned["y"].isna().sum() == 60
    assert gapped.n == len(result.aligned) - 60


def test_max_shift_is_capped_at_a_quarter_of_the_record():
    rng = np.random.default_rng(4)
    a, b = ar1(rng, 41, 0.5), ar1(rng, 41, 0.5)
    result = correlate(series(a), series(b), max_shift="1h")
    assert result.max_shift == pd.Timedelta("50s")  # (41 - 1) // 4 = 10 steps of 5 s
    assert len(result.table) == 21


def test_deterministic_and_seeded():
    rng = np.random.default_rng(8)
    x, y = series(np.cumsum(rng.normal(size=200))), series(np.cumsum(rng.normal(size=200)))
    first, second = correlate(x, y), correlate(x, y)
    assert first.p_value == second.p_value
    assert first.r == second.r


def test_frames_are_accepted():
    rng = np.random.default_rng(9)
    base = ar1(rng, 120, 0.9)
    times = T0 + pd.to_timedelta(np.arange(120) * 5, unit="s")
    # METRICS slice with two brokers: their values are averaged per time.
    metrics = pd.DataFrame(
        {
            "time": np.concatenate([times, times]),
            "cluster": "c",
            "entity": ["broker-1"] * 120 + ["broker-2"] * 120,
            "metric": "log_flush_time_ms_p99",
            "value": np.concatenate([base + 1.0, base - 1.0]),
        }
    )
    lag = make_lag(partitions=3, n=120, produce_rate=110, consume_rate=100, noise=20, seed=2)
    result = correlate(metrics, series(base))
    assert result.r == pytest.approx(1.0, abs=1e-9)
    assert result.x_name == "log_flush_time_ms_p99"
    total = lag.groupby("time")["lag"].sum().astype("float64")
    from_frame = correlate(lag, series(base))
    from_series = correlate(
        pd.Series(total.to_numpy(), index=pd.DatetimeIndex(total.index)), series(base)
    )
    assert from_frame.r == pytest.approx(from_series.r)
    assert from_frame.y_name == "y" and from_frame.x_name == "lag"
    pair = pd.DataFrame({"time": times, "flush": base, "lag": 3 * base})
    assert correlate(pair).r == pytest.approx(1.0, abs=1e-9)
    mixed = metrics.assign(metric=["a"] * 120 + ["b"] * 120)
    with pytest.raises(KbpInputError, match="several metrics"):
        correlate(mixed, series(base))


def test_difference_correlates_changes():
    rng = np.random.default_rng(21)
    steps = rng.normal(size=300)
    x = np.cumsum(steps)
    y = np.cumsum(steps) * 2 + np.arange(300) * 0.5  # same changes, plus a constant drift
    result = correlate(series(x), series(y), difference=True, method="pearson")
    assert result.r == pytest.approx(1.0, abs=1e-9)
    assert result.shift == pd.Timedelta(0)
    assert len(result.aligned) == 299
    assert result.significant


def test_plot_draws_both_series_and_r_by_shift():
    rng = np.random.default_rng(22)
    base = ar1(rng, 126, 0.9)
    figure = correlate(series(base[6:]), series(base[:-6]), x_name="flush", y_name="lag").plot()
    names = {trace.name for trace in figure.data}
    assert {"flush", "lag"} <= names
    assert len(figure.data) >= 3  # x, y and the r-by-shift curve


def test_repr_and_html_escape_names():
    rng = np.random.default_rng(10)
    base = ar1(rng, 106, 0.8)
    result = correlate(series(base[3:]), series(base[:-3]), x_name="<b>grp</b>", y_name="lag & co")
    text = repr(result)
    assert "r = +0.999 at shift 15 s (<b>grp</b> leads lag & co by 15 s)" in text
    assert "p = " in text and "effective n" in text
    page = result._repr_html_()
    assert "<b>grp</b>" not in page
    assert "&lt;b&gt;grp&lt;/b&gt; leads lag &amp; co" in page


# ---------------------------------------------------------------- calibration and power


def _rate(hits):
    return float(np.mean(hits))


@pytest.mark.slow
def test_false_positive_rate_of_independent_autocorrelated_pairs():
    n = 360  # 30 minutes of 5-second samples, searched over +-10 min
    rates = {}
    for kind in ("random walk", "AR(1) 0.95", "trend + AR(1)"):
        hits = []
        pairs = 200 if kind == "random walk" else 100
        for seed in range(pairs):
            rng = np.random.default_rng(10_000 + seed)
            if kind == "random walk":
                a, b = np.cumsum(rng.normal(size=n)), np.cumsum(rng.normal(size=n))
            elif kind == "AR(1) 0.95":
                a, b = ar1(rng, n, 0.95), ar1(rng, n, 0.95)
            else:  # both ramp (as lag and latency do in an incident) but are unrelated
                ramp = np.arange(n) * 0.03
                a, b = ramp + ar1(rng, n, 0.8), ramp + ar1(rng, n, 0.8)
            hits.append(correlate(series(a), series(b)).significant)
        rates[kind] = _rate(hits)
        print(
            f"\ncorrelate false-positive rate, {kind}: {rates[kind]:.3f} "
            f"(alpha 0.05, {pairs} pairs of 360 samples, searched over +-10 min)"
        )
    # Nominal 0.05; 200 pairs give a standard error of about 0.015, 100 pairs 0.022.
    assert all(rate <= 0.1 for rate in rates.values()), rates


@pytest.mark.slow
def test_power_and_shift_recovery_for_a_real_30s_lead():
    n = 360
    results = {}
    for kind in ("AR(1) 0.9", "random walk"):
        found, right_shift = [], []
        for seed in range(100):
            rng = np.random.default_rng(20_000 + seed)
            base = (
                ar1(rng, n + 6, 0.9) if kind == "AR(1) 0.9" else np.cumsum(rng.normal(size=n + 6))
            )
            x = base[6:]
            # y follows x 30 s (6 samples) later, buried in autocorrelated noise as big as x.
            noise = ar1(rng, n, 0.5)
            # Noise as big as x for AR(1); a quarter of it for the (much wider) random walk.
            scale = 1.0 if kind == "AR(1) 0.9" else 0.25
            y = base[:-6] + noise * (scale * np.std(base) / np.std(noise))
            result = correlate(series(x), series(y))
            found.append(result.significant)
            right_shift.append(result.shift == pd.Timedelta("30s"))
        results[kind] = (_rate(found), _rate(right_shift))
        print(
            f"\ncorrelate power, 30 s lead, {kind}: {results[kind][0]:.2f}; "
            f"shift recovered exactly: {results[kind][1]:.2f} (100 pairs)"
        )
    for power, recovered in results.values():
        assert power >= 0.9
        assert recovered >= 0.8


# ---------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(24, 120),
    phi=st.floats(0.0, 0.99),
    lead=st.integers(-8, 8),
    noise=st.floats(0.0, 3.0),
    method=st.sampled_from(["spearman", "pearson"]),
)
def test_swapping_x_and_y_negates_the_shift(seed, n, phi, lead, noise, method):
    rng = np.random.default_rng(seed)
    base = ar1(rng, n + 16, phi)
    a = base[8 + lead : 8 + lead + n]  # x leads y by `lead` samples
    b = base[8 : 8 + n] + noise * rng.normal(size=n)
    forward = correlate(series(a), series(b), method=method, max_shift="30s", n_surrogates=19)
    strength = np.sort(np.abs(forward.table["r"].to_numpy()))
    assume(len(strength) < 2 or strength[-1] - strength[-2] > 1e-6)  # a unique best shift
    backward = correlate(series(b), series(a), method=method, max_shift="30s", n_surrogates=19)
    assert backward.shift == -forward.shift
    assert backward.r == pytest.approx(forward.r, abs=1e-9)
    assert np.allclose(
        backward.table["r"].to_numpy()[::-1],
        forward.table["r"].to_numpy(),
        atol=1e-9,
        equal_nan=True,
    )
    # the same surrogate phases are drawn for either order: one surrogate at most differs
    assert backward.p_value == pytest.approx(forward.p_value, abs=1 / 20 + 1e-9)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(24, 100),
    decimals=st.sampled_from([None, 0]),
    lead=st.integers(-4, 4),
)
def test_monotone_transform_of_x_leaves_spearman_unchanged(seed, n, decimals, lead):
    rng = np.random.default_rng(seed)
    base = ar1(rng, n + 8, 0.7) * 5
    a = base[4 + lead : 4 + lead + n]
    if decimals is not None:
        a = np.round(a, decimals)  # ties, which ranks must treat alike
    assume(np.ptp(a) > 0)
    b = base[4 : 4 + n] + rng.normal(scale=3.0, size=n)
    plain = correlate(series(a), series(b), max_shift="20s", n_surrogates=19)
    squashed = correlate(
        series(np.exp(a / 10.0) * 3 - 7), series(b), max_shift="20s", n_surrogates=19
    )
    assert np.allclose(plain.table["r"], squashed.table["r"], atol=1e-9, equal_nan=True)
    assert squashed.p_value == plain.p_value
    assert squashed.shift == plain.shift
    assert squashed.r == pytest.approx(plain.r, abs=1e-9)


# ---------------------------------------------------------------- flush latency helper


def _flush_dataset(lead_s=30, n=360, seed=0, brokers=3):
    """Lag that builds up while a broker's flush latency is high, 30 s later."""
    rng = np.random.default_rng(seed)
    step = 5
    latency = 5 + 3 * np.abs(ar1(rng, n + 20, 0.95))  # ms, slowly wandering
    shift = lead_s // step
    # Consumers fall behind in proportion to latency seen `lead_s` earlier.
    growth = 40 * (latency[20 - shift : 20 - shift + n] - latency.mean())
    lag_total = np.maximum(1000 + np.cumsum(growth) - np.cumsum(growth).min(), 0)
    times = T0 + pd.to_timedelta(np.arange(n) * step, unit="s")
    partitions = 4
    per = np.round(lag_total / partitions).astype("int64")
    committed = 10_000_000 + np.arange(n) * 500
    lag = pd.DataFrame(
        {
            "time": np.tile(times, partitions),
            "cluster": "c",
            "group": "billing",
            "topic": "invoices",
            "partition": np.repeat(np.arange(partitions), n).astype("int32"),
            "committed_offset": np.tile(committed, partitions),
            "log_end_offset": np.tile(committed + per, partitions),
        }
    )
    lag["lag"] = lag["log_end_offset"] - lag["committed_offset"]
    rows = []
    for b in range(1, brokers + 1):
        # brokers are scraped a few hundred ms apart; broker 1 carries the slow disk
        jitter = pd.Timedelta(milliseconds=150 * b)
        value = latency[20 : 20 + n] if b == 1 else 2 + rng.normal(0, 0.2, n)
        rows.append(
            pd.DataFrame(
                {
                    "time": times + jitter,
                    "cluster": "c",
                    "entity": f"broker-{b}",
                    "metric": "log_flush_time_ms_p99",
                    "value": value,
                }
            )
        )
    metrics = pd.concat(rows, ignore_index=True)
    return Dataset(lag=lag, metrics=metrics), growth


def test_flush_latency_leading_lag_growth_is_found():
    dataset, _ = _flush_dataset(lead_s=30)
    result = flush_latency_vs_lag(dataset, target="lag_growth")
    assert result.significant
    assert result.r > 0.9
    assert result.shift == pd.Timedelta("30s")
    assert "max over 3 brokers" in result.x_name
    text = repr(result)
    assert text.splitlines()[1].startswith("Found: log_flush_time_ms_p99 rises with")
    assert "Not proven" in text and "common cause" in text


def test_flush_latency_against_lag_level_and_missing_metric():
    dataset, _ = _flush_dataset(lead_s=30)
    level = flush_latency_vs_lag(dataset, target="lag")
    assert level.y_name == "total lag (messages)"
    assert level.n > 300
    no_metrics = Dataset(lag=dataset.lag)
    with pytest.raises(KbpDataError, match="no log_flush_time_ms_p99 in the metrics") as info:
        flush_latency_vs_lag(no_metrics)
    assert "PrometheusSource.broker_metrics" in str(info.value)
    with pytest.raises(KbpDataError, match="no lag rows"):
        flush_latency_vs_lag(dataset, group="nope")


def test_unrelated_flush_latency_says_no_evidence():
    dataset, _ = _flush_dataset(lead_s=30, seed=1)
    rng = np.random.default_rng(99)
    metrics = dataset.metrics.copy()
    metrics["value"] = 5 + np.abs(np.tile(ar1(rng, 360, 0.95), 3))
    unrelated = Dataset(lag=dataset.lag, metrics=metrics)
    result = flush_latency_vs_lag(unrelated, target="lag_growth")
    assert not result.significant
    assert result.summary_lines()[0].startswith("No evidence that log_flush_time_ms_p99")
    assert "Not proven: that they are unrelated" in result.summary_lines()[1]
