"""retention_risk: analytic cases for each way retention can reach unread messages."""

import numpy as np
import pandas as pd
import pytest

import kbp_notebook as kbp
from kbp_notebook.analysis import RetentionRisk, retention_risk
from kbp_notebook.datasets import make_lag
from kbp_notebook.errors import KbpInputError


def configs(**values):
    row = {"topic": "orders", "retention_ms": np.nan, "retention_bytes": np.nan,
           "segment_bytes": 1 << 20, "segment_ms": 7 * 86_400_000, "cleanup_policy": "delete",
           "retention_check_ms": 30_000, "size_bytes": np.nan}  # fmt: skip
    row.update(values)
    return pd.DataFrame([row])


def only_row(result):
    assert isinstance(result, RetentionRisk)
    assert len(result.table) == 1
    return result.table.iloc[0]


def test_a_moving_log_start_closes_in_on_a_stopped_consumer():
    # producer 100/s; retention keeps 100,000 messages (the log start moves all along);
    # the consumer keeps pace for 100 s, then stops: 10 minutes of history
    lag = make_lag(
        n=120, produce_rate=100, consume_rate=[(0, 100), (100, 0)], start_lag=25_000,
        retention_msgs=100_000,
    )  # fmt: skip
    row = only_row(retention_risk(lag))
    gap = row["committed_offset"] - row["log_start_offset"]
    assert gap > 0 and row["limit"] == "observed"
    # current rates: the consumer's stop is not averaged with its first 100 s
    assert row["start_rate"] == pytest.approx(100, rel=0.01)
    assert row["consume_rate"] == 0
    assert row["loss_s"] == pytest.approx(gap / 100, rel=0.01)
    step = 100 * 5  # the log start moved one snapshot's worth at a time
    assert row["loss_low_s"] == pytest.approx(max(gap - step, 0) / 100, rel=0.01)
    assert row["loss_high_s"] == pytest.approx((gap + step) / 100, rel=0.01)


def test_a_consumer_at_a_log_start_that_does_not_move_is_not_at_risk():
    # stuck at offset 0 with the log start at 0: the oldest kept message is still there
    lag = make_lag(n=30, produce_rate=50, consume_rate=0)
    lag["log_start_offset"] = 0
    lag["committed_offset"] = 0
    lag["lag"] = lag["log_end_offset"]
    result = retention_risk(lag)
    row = only_row(result)
    assert np.isinf(row["loss_s"]) and not row["at_risk"] and row["limit"] == "none"
    assert "no unread message" in result.summary_lines()[0]
    drain = kbp.time_to_drain(lag)
    assert np.isinf(drain.table["retention_loss_s"]).all()  # no "data loss in 0 s" marker


def test_retention_bytes_deletes_once_the_lag_fills_the_kept_band():
    # 100 msg/s of 1,000 bytes, stopped consumer, retention.bytes 10 MB + 1 MiB segments
    lag = make_lag(n=20, produce_rate=100, consume_rate=0, start_lag=0)
    lag["log_start_offset"] = 0
    last = lag.iloc[-1]
    size = int(last["log_end_offset"]) * 1000
    row = only_row(retention_risk(lag, configs(retention_bytes=10e6, size_bytes=size)))
    lag_now = row["lag"]
    assert row["limit"] == "retention.bytes"
    assert row["loss_low_s"] == pytest.approx((10_000 - lag_now) / 100, rel=1e-6)
    band_top = (10e6 + (1 << 20)) / 1000
    assert row["loss_high_s"] == pytest.approx((band_top - lag_now) / 100 + 30, rel=1e-6)
    assert row["loss_low_s"] < row["loss_s"] < row["loss_high_s"]


def test_retention_ms_deletes_when_the_unread_record_ages_into_the_limit():
    lag = make_lag(n=20, produce_rate=100, consume_rate=0, start_lag=0)
    lag["log_start_offset"] = 0
    # the collector read the record times: the first unread record is 600 s old and ageing 1 s/s
    seconds = (lag["time"] - lag["time"].iloc[0]).dt.total_seconds()
    lag["time_lag_s"] = 600 + seconds
    lag["time_lag_source"] = "record"
    row = only_row(retention_risk(lag, configs(retention_ms=3_600_000)))
    assert row["limit"] == "retention.ms"
    assert row["loss_s"] == pytest.approx(3600 - row["time_lag_s"], rel=1e-6)
    assert row["loss_low_s"] == pytest.approx(row["loss_s"])
    # the slow end: the segment's newest record may be up to a segment fill later
    # (no partition size, so the byte rate is unknown: segment.ms bounds the fill)
    assert row["loss_high_s"] == pytest.approx(3600 + 7 * 86_400 - row["time_lag_s"] + 30)


def test_already_deleted_is_zero_and_compacted_topics_are_never_at_risk():
    lag = make_lag(n=10, produce_rate=100, consume_rate=0, start_lag=0)
    lag["log_start_offset"] = lag["log_end_offset"]
    lag["committed_offset"] = 0
    lag["lag"] = lag["log_end_offset"]
    row = only_row(retention_risk(lag))
    assert row["loss_s"] == 0 and row["limit"] == "deleted"
    lag["log_start_offset"] = 0
    compacted = configs(retention_bytes=1.0, size_bytes=10**9, cleanup_policy="compact")
    assert not only_row(retention_risk(lag, compacted))["at_risk"]


def test_samples_show_no_retention_marker():
    for name in ("stuck-consumer", "producer-burst"):
        result = retention_risk(kbp.load_sample(name).lag)
        assert not result.keys["at_risk"].any(), name
    assert result.plot() is not None


def test_needs_the_log_start_column():
    lag = make_lag(n=5)
    with pytest.raises(KbpInputError, match="log_start_offset"):
        retention_risk(lag.drop(columns=["log_start_offset"], errors="ignore"))
    with pytest.raises(KbpInputError, match="topic_configs"):
        retention_risk(make_lag(n=5, retention_msgs=10), configs=pd.DataFrame({"x": [1]}))
