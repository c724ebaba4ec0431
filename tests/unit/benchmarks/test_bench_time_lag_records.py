"""Scoring and the rate schedule of the record-timestamp lag benchmark."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.time_lag_records import SCHEDULE, ScheduledProducer, score


def test_schedule_integral_has_bursts_and_an_idle_gap():
    producer = ScheduledProducer.__new__(ScheduledProducer)  # no Kafka needed for the schedule
    assert producer.rate_at(65) == 1500 and producer.rate_at(150) == 0
    assert producer.owed(10) == pytest.approx(6000)
    idle_start, idle_end = producer.owed(130), producer.owed(190)
    assert idle_end == idle_start  # nothing owed while idle
    assert producer.owed(300) - producer.owed(290) == pytest.approx(1500)
    assert len(SCHEDULE) == 8


def test_scaled_errors_use_the_larger_of_the_absolute_and_relative_allowance():
    rows = pd.DataFrame({
        "true_time_lag_s": [0.0, 10.0, 100.0, 200.0],
        "m": [0.5, 10.5, 104.0, 200.0],
        "b": [False, False, False, True],
    })  # fmt: skip
    s = score(rows, "m", "b")
    assert s["figures"] == 3 and s["bounds"] == 1
    # errors 0.5, 0.5, 4.0 over allowances max(1, 5%): 1, 1, 5
    assert s["median_scaled"] == pytest.approx(0.5)
    assert s["median_abs_s"] == pytest.approx(0.5)
    assert s["p95_scaled"] == pytest.approx(np.percentile([0.25, 0.25, 0.4], 95))
