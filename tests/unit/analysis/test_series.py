"""Known answers for the shared panel machinery and statistics in ``analysis._series``.

Each input is small enough that its answer is worked out by hand in the comment
beside it; the analyses build on these, so a change here shows up first here.
"""

import numpy as np
import pandas as pd
import pytest

from kbp_notebook.analysis._series import (
    build_panel,
    compact,
    drift_change,
    ffill_index,
    fill_right,
    int_column,
    key_codes,
    lag1_autocorr,
    last_valid,
    noise_components,
    normalise_by,
    ols,
    parse_window,
    prepare_lag,
    split_rows,
    to_timestamps,
    variance_inflation,
)
from kbp_notebook.errors import KbpInputError
from kbp_notebook.lagdata import lag_totals, snapshot_totals

T0 = pd.Timestamp("2024-01-01 00:00", tz="UTC")


def _lag_frame(rows):
    """LAG frame from (seconds, partition, committed, log_end) rows of group g, topic t."""
    frame = pd.DataFrame(rows, columns=["s", "partition", "committed_offset", "log_end_offset"])
    return pd.DataFrame({
        "time": T0 + pd.to_timedelta(frame["s"], unit="s"),
        "cluster": "c", "group": "g", "topic": "t",
        "partition": frame["partition"].astype(np.int32),
        "committed_offset": frame["committed_offset"].astype("Int64"),
        "log_end_offset": frame["log_end_offset"].astype("Int64"),
        "lag": (frame["log_end_offset"] - frame["committed_offset"]).astype("Int64"),
    })


def test_ols_exact_line():
    # y = 1 + 2 t: slope 2, intercept 1, no residual; Sxx = 2.25 + 0.25 + 0.25 + 2.25 = 5
    fit = ols(np.array([[0.0, 1, 2, 3]]), np.array([[1.0, 3, 5, 7]]))
    assert fit.slope[0] == pytest.approx(2.0)
    assert fit.intercept[0] == pytest.approx(1.0)
    assert fit.n[0] == 4
    assert fit.sxx[0] == pytest.approx(5.0)
    assert fit.sse[0] == pytest.approx(0.0)


def test_ols_skips_nan_pairs():
    # pairs (0,0), (1,1), (2,4): t mean 1, y mean 5/3, Sxy = 5/3 + 7/3 = 4, Sxx = 2 -> slope 2,
    # intercept 5/3 - 2 = -1/3, residuals 1/3, -2/3, 1/3 -> SSE = 6/9
    fit = ols(np.array([[0.0, 1, 2, np.nan]]), np.array([[0.0, 1, 4, 9]]))
    assert fit.n[0] == 3
    assert fit.slope[0] == pytest.approx(2.0)
    assert fit.intercept[0] == pytest.approx(-1 / 3)
    assert fit.sse[0] == pytest.approx(2 / 3)
    np.testing.assert_allclose(fit.resid[0, :3], [1 / 3, -2 / 3, 1 / 3])
    assert np.isnan(fit.resid[0, 3])


def test_ols_constant_time_has_no_slope():
    fit = ols(np.array([[5.0, 5.0, 5.0]]), np.array([[1.0, 2.0, 3.0]]))
    assert np.isnan(fit.slope[0])


def test_lag1_autocorr_known_answers():
    # alternating +-1: mean 0, sum of neighbour products -3 over sum of squares 4 -> -0.75;
    # 1, 2, 3: centred -1, 0, 1, neighbour products 0 -> 0; a constant row has no variance -> 0
    rho = lag1_autocorr(np.array([[1.0, -1, 1, -1], [1.0, 2, 3, np.nan], [4.0, 4, 4, 4]]))
    np.testing.assert_allclose(rho, [-0.75, 0.0, 0.0])


def test_variance_inflation_clips_rho():
    # (1 + 0.5) / (1 - 0.5) = 3; negative and NaN rho count as 0; rho is capped at 0.99
    inflation = variance_inflation(np.array([0.5, -0.3, np.nan, 0.999]))
    np.testing.assert_allclose(inflation, [3.0, 1.0, 1.0, 1.99 / 0.01])


def test_drift_change_finds_the_change_of_rate():
    # flat for 8 steps, then +10 per second for 7: overall rate 70/15, the partial sums of
    # the detrended increments peak (|8 * 70/15| = 37.3) after the 8th increment, i.e. at
    # sample 8; sigma^2 T = 8 (70/15)^2 + 7 (80/15)^2 = 373.3, statistic 37.3 / 19.3 = 1.93
    # above the 1 % Kolmogorov critical value 1.63
    t = np.arange(16.0)[None, :]
    y = np.where(t <= 8, 0.0, 10.0 * (t - 8))
    change = drift_change(t, y, np.array([16]))
    assert change.index[0] == 8
    assert change.tau[0] == 8.0
    assert change.rate_before[0] == pytest.approx(0.0)
    assert change.rate_after[0] == pytest.approx(10.0)
    assert change.statistic[0] == pytest.approx((8 * 70 / 15) / np.sqrt(373.3333), rel=1e-4)
    assert bool(change.significant[0])


def test_drift_change_no_change_and_too_short():
    t = np.arange(16.0)[None, :]
    straight = drift_change(t, 2.0 * t, np.array([16]))  # no residual at all
    assert straight.statistic[0] == 0.0
    assert not straight.significant[0]
    short = drift_change(np.array([[0.0, 1.0]]), np.array([[0.0, 5.0]]), np.array([2]))
    assert np.isnan(short.tau[0])
    assert not short.significant[0]


def test_noise_components_of_an_exact_drain_are_zero():
    # lag = 100 - 5 t with net drain 5: the detrended level is constant, no noise of either kind
    t = np.arange(20.0)[None, :]
    sigma_m2, sigma_w2 = noise_components(t, 100.0 - 5.0 * t, np.array([5.0]))
    assert sigma_m2[0] == 0.0
    assert sigma_w2[0] == 0.0


def test_noise_components_of_alternating_noise_is_all_measurement():
    # lag alternates 0, 1, 0, 1 (17 samples, no drift): every 1-step change squared is 1,
    # every 2- and 4-step change is 0; the variogram at lag 1 is 2 sigma_m^2 = 1 and nothing
    # grows with the lag, so sigma_m^2 = 0.5 and the random walk part is 0
    t = np.arange(17.0)[None, :]
    lag = (np.arange(17) % 2).astype(np.float64)[None, :]
    sigma_m2, sigma_w2 = noise_components(t, lag, np.array([0.0]))
    assert sigma_m2[0] == pytest.approx(0.5)
    assert sigma_w2[0] == 0.0


def test_fill_right_ffill_index_last_valid():
    array = np.array([[1.0, 2.0, np.nan], [4.0, np.nan, np.nan]])
    n = np.array([2, 1])
    np.testing.assert_array_equal(fill_right(array, n), [[1.0, 2.0, 2.0], [4.0, 4.0, 4.0]])
    np.testing.assert_array_equal(last_valid(array, n), [2.0, 4.0])
    assert np.isnan(last_valid(array, np.array([0, 0]))).all()
    flags = np.array([[False, True, False, True], [False, False, False, False]])
    np.testing.assert_array_equal(ffill_index(flags), [[-1, 1, 1, 3], [-1, -1, -1, -1]])


def test_compact_left_aligns_what_is_kept():
    frame = prepare_lag(_lag_frame([(0, 0, 10, 20), (10, 0, 12, 25), (20, 0, 15, 30),
                                    (30, 0, 20, 31)]))
    panel = build_panel(frame, by=normalise_by(("group", "topic", "partition")),
                        columns=["committed_offset"])
    kept = compact(panel, np.array([[True, False, True, True]]))
    assert kept.n.tolist() == [3]
    np.testing.assert_array_equal(kept.time_s, [[0.0, 20.0, 30.0]])
    np.testing.assert_array_equal(kept["committed_offset"], [[10.0, 15.0, 20.0]])


def test_build_panel_sums_partitions_and_drops_incomplete_snapshots():
    # two partitions; at 20 s partition 1 did not report: that snapshot is dropped (summing
    # one partition would look like a fall); at 30 s partition 1's offsets are there
    frame = prepare_lag(_lag_frame([
        (0, 0, 10, 20), (0, 1, 100, 150),
        (10, 0, 12, 25), (10, 1, 110, 160),
        (20, 0, 15, 30),
        (30, 0, 20, 31), (30, 1, 130, 170),
    ]))
    panel = build_panel(frame, by=normalise_by(("group", "topic")))
    assert panel.partitions.tolist() == [2]
    assert panel.n.tolist() == [3]
    np.testing.assert_array_equal(panel.time_s, [[0.0, 10.0, 30.0]])
    np.testing.assert_array_equal(panel["committed_offset"], [[110.0, 122.0, 150.0]])
    np.testing.assert_array_equal(panel["log_end_offset"], [[170.0, 185.0, 201.0]])
    np.testing.assert_array_equal(panel["lag"], [[60.0, 63.0, 51.0]])


def test_build_panel_na_offset_gives_no_total():
    # at 10 s partition 1 has no committed offset yet: the key's committed total is unknown
    frame = _lag_frame([(0, 0, 10, 20), (0, 1, 100, 150), (10, 0, 12, 25), (10, 1, 110, 160)])
    frame.loc[3, ["committed_offset", "lag"]] = pd.NA
    panel = build_panel(prepare_lag(frame), by=normalise_by(("group", "topic")))
    assert panel.n.tolist() == [2]
    np.testing.assert_array_equal(panel["committed_offset"], [[110.0, np.nan]])
    np.testing.assert_array_equal(panel["log_end_offset"], [[170.0, 185.0]])


def test_snapshot_totals_is_the_rule_lag_totals_and_build_panel_share():
    # key 0: 2 rows at t=0, 1 row at t=1 (incomplete); key 1: 1 row each, NaN at t=1
    totals = snapshot_totals(np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 0, 1]),
                             {"lag": np.array([5.0, 7.0, 4.0, 3.0, np.nan])}, 2)
    assert totals.key.tolist() == [0, 0, 1, 1]
    assert totals.time.tolist() == [0, 1, 0, 1]
    assert totals.complete.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(totals.sums["lag"], [12.0, np.nan, 3.0, np.nan])
    frame = _lag_frame([(0, 0, 10, 20), (0, 1, 100, 150), (10, 0, 12, 25)])
    assert lag_totals(frame)["lag"].tolist()[0] == 60.0
    assert np.isnan(lag_totals(frame)["lag"].tolist()[1])


def test_key_codes_equal_key_equal_code():
    frame = pd.DataFrame({"a": ["x", "y", "x", "x"], "b": [1, 1, 1, 2]})
    code = key_codes(frame, ["a", "b"])
    assert code[0] == code[2]
    assert len(set(code.tolist())) == 3


def test_to_timestamps_nan_and_inf_are_nat():
    out = to_timestamps(T0, np.array([1.5, np.nan, np.inf]))
    assert out[0] == T0 + pd.Timedelta(milliseconds=1500)
    assert out[1:].isna().all()


@pytest.mark.parametrize(("window", "seconds"), [("2min", 120.0), (90, 90.0),
                                                 (pd.Timedelta(hours=1), 3600.0)])
def test_parse_window(window, seconds):
    assert parse_window(window) == pd.Timedelta(seconds=seconds)


@pytest.mark.parametrize("window", ["soon", -5, "0s"])
def test_parse_window_rejects(window):
    with pytest.raises(KbpInputError, match="window"):
        parse_window(window)


def test_split_rows_and_int_column():
    assert split_rows(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert split_rows(0) == [slice(0, 0)]
    column = int_column(np.array([1.4, np.nan, np.inf, 2.6]))
    assert str(column.dtype) == "Int64"
    assert column.tolist() == [1, pd.NA, pd.NA, 3]
