"""Reading the next record's timestamp from Fetch bytes, on batches built by kafka-python."""

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder

from kbp_notebook.collect._record_times import record_time_from_bytes


def batch(base_offset, timestamps, *, log_append_time=None, control=False):
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=control, producer_id=7 if control else -1,
        producer_epoch=0 if control else -1, base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    for delta, ts in enumerate(timestamps):
        builder.append(delta, timestamp=ts, key=None, value=b"v", headers=[])
    data = bytearray(builder.build())
    data[0:8] = base_offset.to_bytes(8, "big")
    attributes = int.from_bytes(data[21:23], "big")
    if control:
        attributes |= 0x20
    if log_append_time is not None:
        attributes |= 0x08
        data[35:43] = log_append_time.to_bytes(8, "big")
    data[21:23] = attributes.to_bytes(2, "big")
    return bytes(data)  # CRC not recomputed: the reader does not check it


def test_the_record_at_the_offset_inside_a_batch():
    got = record_time_from_bytes(batch(100, [1000, 2000, 3000]), 101, high_watermark=103)
    assert (got.timestamp_ms, got.offset, got.timestamp_type, got.note) == (
        2000,
        101,
        "CreateTime",
        "",
    )


def test_a_compacted_offset_gives_the_next_record_flagged():
    data = batch(100, [1000]) + batch(105, [5000, 6000])
    got = record_time_from_bytes(data, 102, high_watermark=107)
    assert (got.timestamp_ms, got.offset, got.note) == (5000, 105, "next_available")


def test_log_append_time_is_the_batch_time():
    got = record_time_from_bytes(batch(0, [1, 2, 3], log_append_time=9000), 1, high_watermark=3)
    assert (got.timestamp_ms, got.timestamp_type) == (9000, "LogAppendTime")


def test_transaction_markers_are_skipped():
    data = batch(10, [0], control=True) + batch(11, [4000])
    got = record_time_from_bytes(data, 10, high_watermark=12)
    assert (got.timestamp_ms, got.offset) == (4000, 11)


def test_only_markers_left_means_nothing_to_consume():
    got = record_time_from_bytes(batch(10, [0], control=True), 10, high_watermark=11)
    assert got.timestamp_ms is None and got.note == "only_markers"


def test_a_batch_cut_by_the_byte_cap_gives_its_first_timestamp():
    whole = batch(50, [7000, 7100, 7200, 7300])
    got = record_time_from_bytes(whole[:70], 52, high_watermark=54)
    assert (got.timestamp_ms, got.offset, got.note) == (7000, 50, "batch_start")


@pytest.mark.parametrize("data", [b"", b"\x00" * 20])
def test_nothing_readable_is_unknown(data):
    assert record_time_from_bytes(data, 5, high_watermark=9) is None
