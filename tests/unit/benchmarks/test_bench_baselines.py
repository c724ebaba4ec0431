"""The baseline methods the benchmarks compare against, on inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks.baselines import (
    LagExporterTable,
    burrow_status,
    exporter_time_lag,
    naive_eta,
    predict_linear_eta,
)
from kbp_notebook.datasets import make_lag


def test_naive_eta_uses_only_the_last_interval():
    t = np.array([0.0, 10.0, 20.0])
    lag = np.array([5000.0, 1000.0, 900.0])  # last interval: -10 msg/s
    assert naive_eta(t, lag) == pytest.approx(90.0)


def test_naive_eta_no_answer_when_lag_did_not_fall():
    assert naive_eta(np.array([0.0, 5.0]), np.array([100.0, 150.0])) == math.inf
    assert naive_eta(np.array([0.0, 5.0]), np.array([100.0, 100.0])) == math.inf
    assert naive_eta(np.array([0.0, 5.0]), np.array([100.0, 0.0])) == 0.0
    assert math.isnan(naive_eta(np.array([0.0]), np.array([100.0])))


def test_predict_linear_on_an_exact_line_finds_the_zero_crossing():
    t = np.arange(0.0, 301.0, 5.0)
    lag = 10_000.0 - 20.0 * t  # reaches zero at t = 500, now = 300
    assert predict_linear_eta(t, lag) == pytest.approx(200.0)


def test_predict_linear_only_sees_the_last_five_minutes():
    t = np.arange(0.0, 1001.0, 5.0)
    # Growth until t=600 (ignored: older than 5 minutes), then a line falling 10/s.
    lag = np.where(t <= 600, 10.0 * t, 6000.0 - 10.0 * (t - 600))
    assert predict_linear_eta(t, lag) == pytest.approx(200.0)
    # With a 10-minute range the growth pulls the slope up: a later crossing.
    assert predict_linear_eta(t, lag, window_s=600.0) > 200.0


def test_predict_linear_rising_or_flat_line_gives_no_eta_and_fitted_zero_gives_zero():
    t = np.arange(0.0, 100.0, 5.0)
    assert predict_linear_eta(t, 100.0 + t) == math.inf
    assert predict_linear_eta(t, np.full_like(t, 50.0)) == math.inf
    assert predict_linear_eta(t, 100.0 - 2.0 * t) == 0.0  # fitted value at now is below zero


def test_predict_linear_least_squares_through_noise_matches_numpy_polyfit():
    rng = np.random.default_rng(3)
    t = np.arange(0.0, 300.0, 5.0)
    lag = 9000.0 - 15.0 * t + rng.normal(0, 200, size=t.shape)
    slope, intercept = np.polyfit(t - t[-1], lag, 1)
    assert predict_linear_eta(t, lag) == pytest.approx(-intercept / slope)


def test_exporter_table_interpolates_inside_and_extrapolates_outside():
    table = LagExporterTable()
    for offset, when in [(100, 0.0), (400, 30.0), (500, 60.0)]:
        table.add(offset, when)
    assert table.lookup_time(250) == pytest.approx(15.0)
    assert table.lookup_time(450) == pytest.approx(45.0)
    # Older than the table: the line through the oldest and newest points (400 msgs / 60 s).
    assert table.lookup_time(20) == pytest.approx(-12.0)
    assert table.time_lag_s(250, 500, 60.0) == pytest.approx(45.0)
    assert table.time_lag_s(500, 500, 60.0) == 0.0


def test_exporter_table_keeps_at_most_size_points_and_needs_two():
    table = LagExporterTable(size=3)
    assert math.isnan(table.lookup_time(5))
    for i in range(10):
        table.add(100 * i, 30.0 * i)
    assert [p[0] for p in table.points] == [700.0, 800.0, 900.0]
    table.add(900, 300.0)  # same latest offset: no new point
    assert len(table.points) == 3 and table.points[-1] == (900.0, 270.0)


def test_exporter_time_lag_polls_every_nth_snapshot_from_its_phase():
    t = np.arange(0.0, 60.0, 5.0)
    log_end = 1000.0 + 10.0 * t
    committed = log_end - 100.0  # 10 s behind at a steady 10 msg/s
    out = exporter_time_lag(t, committed, log_end, poll_every=6, phase=1)
    polled = np.flatnonzero(~np.isnan(out))
    assert list(polled) == [7]  # index 1 has one table point: no answer yet (NaN)
    assert out[7] == pytest.approx(10.0)


def test_burrow_status_words_for_growing_and_caught_up_groups():
    growing = make_lag(n=40, produce_rate=100.0, consume_rate=50.0, seed=1)
    status = burrow_status(growing)
    assert list(status.columns) == ["group", "status"]
    assert status["status"].iloc[0] in {"WARN", "ERR"}
    healthy = make_lag(n=40, produce_rate=100.0, consume_rate=150.0, seed=1)
    assert burrow_status(healthy)["status"].iloc[0] == "OK"
    assert isinstance(status, pd.DataFrame)
