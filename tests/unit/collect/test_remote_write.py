"""The remote-write body: Prometheus WriteRequest protobuf, checked byte for byte."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest

from kbp_notebook.collect.remote_write import (
    RemoteWriter,
    _field,
    _varint,
    encode_write_request,
    lag_series,
)
from kbp_notebook.errors import KbpInputError


def _reference(series) -> bytes:  # type: ignore[no-untyped-def]
    """Field by field, as prompb defines it (one sample at a time)."""
    out = b""
    for labels, stamps, values in series:
        body = b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in labels)
        for t, v in zip(stamps.tolist(), values.tolist(), strict=True):
            body += _field(2, b"\x09" + struct.pack("<d", v) + b"\x10" + _varint(int(t)))
        out += _field(1, body)
    return out


@pytest.mark.parametrize(
    "stamps",
    [
        np.array([1_796_000_000_000, 1_796_000_005_000]),  # ms now: 6-byte varints
        np.array([0, 1, 127, 128, 16_383, 16_384]),  # mixed widths
        np.array([-5, 3]),  # negative: ten-byte varints
        np.array([], dtype="int64"),
    ],
)
def test_vectorised_encoding_equals_the_reference(stamps: np.ndarray) -> None:
    values = np.linspace(-1.5, 1e12, len(stamps))
    series = [((("__name__", "kafka_consumergroup_lag"), ("topic", "t é")), stamps, values)]
    assert encode_write_request(series) == _reference(series)


def test_varint() -> None:
    assert _varint(1) == b"\x01"
    assert _varint(300) == b"\xac\x02"
    assert len(_varint(-1)) == 10


def test_lag_series_names_and_skips_missing_commits() -> None:
    t = pd.Timestamp("2026-11-30T12:00:00Z")
    lag = pd.DataFrame(
        {
            "time": [t, t],
            "cluster": ["c", "c"],
            "group": ["g", "g"],
            "topic": ["t", "t"],
            "partition": [0, 1],
            "committed_offset": pd.array([5, None], dtype="Int64"),
            "log_end_offset": pd.array([9, 4], dtype="Int64"),
            "lag": pd.array([4, None], dtype="Int64"),
        }
    )
    series = {
        dict(labels)["__name__"] + "/" + dict(labels).get("partition_id", "?"): (s, v)
        for labels, s, v in lag_series(lag, scheme="kminion")
    }
    assert series["kminion_kafka_topic_partition_high_water_mark/1"][1].tolist() == [4.0]
    assert series["kminion_kafka_consumer_group_topic_partition_lag/0"][1].tolist() == [4.0]
    assert len(series["kminion_kafka_consumer_group_topic_partition_lag/1"][1]) == 0
    assert series["kminion_kafka_consumer_group_topic_partition_lag/0"][0].tolist() == [
        t.value // 1_000_000
    ]
    with pytest.raises(KbpInputError, match="Unknown exporter naming"):
        list(lag_series(lag, scheme="burrow"))
    with pytest.raises(KbpInputError, match="http"):
        RemoteWriter("victoria:8428/api/v1/write")
