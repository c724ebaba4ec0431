"""Scoring and ground-truth code of the drain backtest and the time-lag benchmark."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks.backtest_drain import (
    Case,
    abs_errors,
    backtest_case,
    baseline_ceiling,
    coverage,
    find_episode,
    first_within,
    median_abs_error,
    moments,
    summarise,
)
from benchmarks.time_lag_accuracy import score
from kbp_notebook.datasets import make_lag


def test_abs_errors_count_missing_etas_as_infinitely_wrong():
    errors = abs_errors(np.array([90.0, np.inf, np.nan]), np.array([100.0, 50.0, 10.0]))
    assert errors[0] == pytest.approx(10.0)
    assert np.isinf(errors[1]) and np.isinf(errors[2])


def test_median_abs_error_in_seconds_and_percent():
    eta = np.array([110.0, 45.0, 10.0, np.inf])
    remaining = np.array([100.0, 50.0, 20.0, 40.0])
    seconds, pct = median_abs_error(eta, remaining)
    # errors 10, 5, 10, inf -> median 10; relative 10%, 10%, 50%, inf -> median 30%
    assert seconds == pytest.approx(10.0)
    assert pct == pytest.approx(30.0)


def test_coverage_counts_truth_inside_the_interval():
    low = np.array([0.0, 10.0, 50.0, np.inf])
    high = np.array([20.0, 30.0, 60.0, np.inf])
    remaining = np.array([20.0, 5.0, 55.0, 10.0])
    assert coverage(low, high, remaining) == pytest.approx(0.5)


def test_first_within_finds_the_first_moment_inside_the_tolerance():
    t = np.array([0.0, 10.0, 20.0, 30.0])
    remaining = np.array([100.0, 90.0, 80.0, 70.0])
    eta = np.array([np.inf, 130.0, 95.0, 71.0])  # 95 is within 20% of 80
    assert first_within(t, eta, remaining) == 20.0
    assert math.isnan(first_within(t, np.full(4, np.inf), remaining))


def test_episode_found_on_a_known_shape():
    t = np.arange(0.0, 100.0, 5.0)
    total = np.array(
        [5, 5, 5, 100, 300, 500, 700, 600, 450, 300, 150, 60, 5, 5, 5, 5, 5, 5, 5, 5.0]
    )
    episode = find_episode(t, total, ceiling=10.0)
    assert (episode.onset, episode.peak, episode.end) == (2, 6, 12)
    # never back at baseline -> no episode; too small a peak -> no episode
    assert find_episode(t, np.where(t > 50, 700.0, total), ceiling=10.0) is None
    assert find_episode(t, np.minimum(total, 40.0), ceiling=10.0) is None


def test_baseline_ceiling_is_twice_the_healthy_p90_unless_given():
    t = np.arange(0.0, 200.0, 1.0)
    total = np.where(t < 30, 50.0, 5000.0)
    assert baseline_ceiling(t, total) == pytest.approx(100.0)
    assert baseline_ceiling(t, total, given=400.0) == 400.0


def test_moments_cover_growth_and_drain_without_the_end():
    from benchmarks.backtest_drain import Episode

    picks = moments(Episode(onset=2, peak=6, end=12, ceiling=10.0), limit=100)
    assert picks == [("growth", 3), ("growth", 4), ("growth", 5)] + [
        ("drain", i) for i in range(6, 12)
    ]


def test_backtest_case_truth_matches_the_simulated_drain():
    # 1 partition: +20 msg/s for 600 s (12,000), then -60 msg/s: drained 200 s after the peak.
    frame = make_lag(n=260, produce_rate=50.0, consume_rate=[(0, 80.0), (300, 30.0), (900, 110.0)])
    rows = backtest_case(Case(name="known", source="synthetic", lag=frame))
    drain = rows[rows["phase"] == "drain"]
    assert drain["drain_s"].iloc[0] == pytest.approx(200.0, abs=10.0)
    # noiseless: the naive method is exact (up to the baseline) once the drain is under way
    late = drain[drain["t_s"] >= 10]
    assert np.allclose(late["naive"], late["remaining_s"], atol=10.0)
    summary = summarise(rows).set_index("method")
    assert summary.loc["naive", "median_abs_error_s"] < 10.0
    assert summary.loc["predict_linear", "growth_finite_eta_share"] == 0.0


def test_time_lag_score_separates_figures_from_lower_bounds():
    frame = pd.DataFrame(
        {
            "true_time_lag_s": [20.0, 40.0, 100.0, 5.0],
            "m": [22.0, 60.0, 80.0, 9.0],
            "b": [False, False, True, False],
        }
    )
    s = score(frame, "m", bound="b")
    assert s["figures"] == 3 and s["lower_bounds"] == 1 and s["valid_bounds"] == 1.0
    # truth >= 10 s: 20 (10% off), 40 (50% off) -> half over 20%; max 50%
    assert s["share_over_20pct_big"] == pytest.approx(0.5)
    assert s["max_rel_error_big"] == pytest.approx(0.5)
    assert s["median_abs_error_s"] == pytest.approx(4.0)
