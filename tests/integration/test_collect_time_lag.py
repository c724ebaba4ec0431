"""Lag in seconds read from the records themselves, on the real sandbox.

``LagCollector.snapshot(time_lag=True)`` fetches the record at each lagging
partition's committed offset (never joining a group) and takes its timestamp.
Every case the issue names is set up for real: records written two hours ago
(CreateTime set by the producer) on a topic that keeps three hours, a
LogAppendTime topic, a producer clock ahead of the broker's, offsets deleted
by DeleteRecords, a transaction whose commit marker is the only thing left,
and a caught-up (idle) partition.
"""

import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

import kbp_notebook as kbp
from kbp_notebook import LagCollector

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def commit(bootstrap, group, offsets):
    member = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    member.commit(
        {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
    )
    member.close()


@pytest.fixture(scope="module")
def cases(sandbox):
    bootstrap = sandbox.bootstrap_servers
    prefix = f"kbp-tl-{uuid.uuid4().hex[:6]}"
    topics = {
        "create": NewTopic(
            f"{prefix}-create", 1, 1, topic_configs={"retention.ms": str(3 * HOUR_MS)}
        ),
        "append": NewTopic(
            f"{prefix}-append", 1, 1, topic_configs={"message.timestamp.type": "LogAppendTime"}
        ),
        "skew": NewTopic(f"{prefix}-skew", 1, 1),
        "deleted": NewTopic(f"{prefix}-deleted", 1, 1),
        "txn": NewTopic(f"{prefix}-txn", 1, 1),
        "idle": NewTopic(f"{prefix}-idle", 1, 1),
    }
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics(list(topics.values()))
    names = {kind: topic.name for kind, topic in topics.items()}
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    now_ms = int(time.time() * 1000)
    two_hours_ago = now_ms - 2 * HOUR_MS
    for i in range(10):  # one record a minute, from two hours ago
        producer.send(names["create"], b"c", partition=0, timestamp_ms=two_hours_ago + i * 60_000)
        producer.send(names["append"], b"a", partition=0, timestamp_ms=two_hours_ago)
        producer.send(names["deleted"], b"d", partition=0, timestamp_ms=now_ms - 600_000 + i * 1000)
        producer.send(names["idle"], b"i", partition=0)
    # a producer whose clock runs 10 minutes ahead (within the broker's 1 h tolerance)
    producer.send(names["skew"], b"s", partition=0, timestamp_ms=now_ms + 600_000)
    producer.flush()
    producer.close()
    admin.delete_records({TopicPartition(names["deleted"], 0): 6})
    transactional = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{prefix}-tx")
    transactional.init_transactions()
    transactional.begin_transaction()
    for _ in range(3):
        transactional.send(names["txn"], b"t", partition=0)
    transactional.commit_transaction()  # offsets 0-2 data, 3 the commit marker
    transactional.close()
    group = f"{prefix}-group"
    commit(bootstrap, group, {
        (names["create"], 0): 0, (names["append"], 0): 0, (names["skew"], 0): 0,
        (names["deleted"], 0): 2, (names["txn"], 0): 3, (names["idle"], 0): 10,
    })  # fmt: skip
    yield {"names": names, "group": group, "written_ms": now_ms}
    admin.close()


@pytest.fixture(scope="module")
def snapshot(sandbox, cases):
    with LagCollector(sandbox.bootstrap_servers, cluster="sandbox") as collector:
        frame = collector.snapshot([cases["group"]], time_lag=True)
        cost = collector.last_time_lag_cost
        problems = list(collector.last_problems)
    by_topic = {row["topic"]: row for _, row in frame.iterrows()}
    return {"frame": frame, "rows": {k: by_topic[n] for k, n in cases["names"].items()},
            "cost": cost, "problems": problems}  # fmt: skip


def age_s(snapshot_row, written_ms):
    return snapshot_row["time"].value / 1e9 - written_ms / 1000


def test_two_hours_behind_reads_two_hours(snapshot, cases):
    row = snapshot["rows"]["create"]
    expected = age_s(row, cases["written_ms"] - 2 * HOUR_MS)
    assert row["lag"] == 10
    assert row["time_lag_source"] == "record" and row["timestamp_type"] == "CreateTime"
    assert abs(row["time_lag_s"] - expected) < 1.0
    assert row["time_lag_s"] > 7190  # no cap
    assert snapshot["problems"] == []


def test_log_append_time_is_the_brokers_clock(snapshot, cases):
    row = snapshot["rows"]["append"]
    assert row["timestamp_type"] == "LogAppendTime"
    # written seconds ago by the broker's clock, whatever the producer claimed (2 h ago)
    assert 0 <= row["time_lag_s"] < 120


def test_producer_clock_ahead_is_clamped_and_flagged(snapshot):
    row = snapshot["rows"]["skew"]
    assert row["time_lag_s"] == 0.0 and row["time_lag_note"] == "clock_skew"


def test_deleted_offsets_give_the_next_available_record_flagged(snapshot, cases):
    row = snapshot["rows"]["deleted"]
    assert row["log_start_offset"] == 6 and row["committed_offset"] == 2
    assert row["time_lag_note"] == "next_available"
    # record 6 was stamped 600 - 6 = 594 s before the fixture's clock reading
    assert abs(row["time_lag_s"] - age_s(row, cases["written_ms"] - 594_000)) < 1.0


def test_a_commit_marker_alone_is_nothing_to_consume(snapshot):
    row = snapshot["rows"]["txn"]
    assert row["lag"] == 1  # the official lag counts the marker
    assert row["time_lag_s"] == 0.0 and row["time_lag_note"] == "only_markers"


def test_an_idle_partition_is_zero_seconds(snapshot):
    row = snapshot["rows"]["idle"]
    assert row["lag"] == 0 and row["time_lag_s"] == 0.0 and row["time_lag_source"] == "record"


def test_one_fetch_for_all_partitions_of_a_leader(snapshot):
    cost = snapshot["cost"]
    assert cost.requests == 1  # one broker, one offset per partition
    assert cost.partitions == 5 and cost.answered == 5
    assert 0 < cost.bytes < 5 * 4096


def test_kbp_time_lag_keeps_the_record_figures(snapshot):
    table = kbp.time_lag(snapshot["frame"]).table  # one snapshot: no history at all
    assert (table["time_lag_source"] == "record").all()
    assert table.set_index("topic")["time_lag_s"].equals(
        snapshot["frame"].set_index("topic")["time_lag_s"]
    )


def test_time_lag_reads_are_read_only(sandbox, cases):
    admin = KafkaAdminClient(bootstrap_servers=sandbox.bootstrap_servers)
    try:
        before = admin.list_group_offsets({cases["group"]: None})[cases["group"]]
        groups_before = sorted(g["group_id"] for g in admin.list_groups())
        with LagCollector(sandbox.bootstrap_servers) as collector:
            for _ in range(5):
                collector.snapshot([cases["group"]], time_lag=True)
        assert admin.list_group_offsets({cases["group"]: None})[cases["group"]] == before
        assert sorted(g["group_id"] for g in admin.list_groups()) == groups_before
        described = admin.describe_groups([cases["group"]])[cases["group"]]
        assert described["members"] == [] and described["group_state"] == "Empty"
    finally:
        admin.close()


def test_a_batch_larger_than_its_share_is_asked_again_or_reported(sandbox):
    bootstrap = sandbox.bootstrap_servers
    prefix = f"kbp-tlbig-{uuid.uuid4().hex[:6]}"
    topic, group = f"{prefix}-topic", f"{prefix}-group"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=500, batch_size=1 << 20)
    producer.send(topic, b"small", partition=0)
    for _ in range(100):  # one ~100 KB batch on partitions 1 and 2
        producer.send(topic, b"b" * 1000, partition=1)
        producer.send(topic, b"b" * 1000, partition=2)
    producer.flush()
    producer.close()
    commit(bootstrap, group, {(topic, 0): 0, (topic, 1): 50, (topic, 2): 50})
    with LagCollector(bootstrap) as collector:
        # ~107 KiB each at first would fit; 320 KiB: 107 KiB each, fits at once
        roomy = collector.snapshot([group], time_lag=True, time_lag_max_bytes=320 << 10)
        assert collector.last_time_lag_cost.requests == 1
        # 240 KiB: 80 KiB each; the broker sends the big ones nothing (only the first
        # partition with data may exceed its share), asked again with what is left they fit
        retried = collector.snapshot([group], time_lag=True, time_lag_max_bytes=240 << 10)
        assert collector.last_time_lag_cost.requests == 2
        # 64 KiB: the retry's first partition gets its whole batch anyway (the broker's
        # one-batch minimum); the other cannot fit in what is left: NA and a notice
        tight = collector.snapshot([group], time_lag=True, time_lag_max_bytes=64 << 10)
        cost = collector.last_time_lag_cost
        problems = list(collector.last_problems)
    assert roomy["time_lag_source"].eq("record").all()
    assert retried["time_lag_source"].eq("record").all()
    assert tight["time_lag_s"].isna().sum() == 1
    assert cost.bytes < (64 << 10) + 110_000  # over the cap by at most one batch
    assert any("larger than the byte cap" in text for _, text in problems)


def test_kbp_collect_time_lag_records_the_figures(sandbox, cases, tmp_path):
    from kbp_notebook.collect.cli import collect_main

    out = tmp_path / "rec"
    code = collect_main([
        "--bootstrap-server", sandbox.bootstrap_servers, "--group", cases["group"],
        "--every", "1s", "--duration", "2s", "--out", str(out), "--no-progress", "--time-lag",
    ])  # fmt: skip
    assert code == 0
    lag = kbp.read_dataset(out).lag
    assert lag["time"].nunique() == 2
    assert (lag["time_lag_source"] == "record").all()
    two_hours = lag[lag["topic"] == cases["names"]["create"]]["time_lag_s"]
    assert (two_hours > 7190).all()
    assert (kbp.time_lag(lag).table["time_lag_source"] == "record").all()
