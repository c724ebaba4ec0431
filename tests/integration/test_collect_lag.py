"""LagCollector against the real sandbox: agreement with the official tool, read-only, NA cases.

One module-scoped scenario (unique topic and group names, producers stopped) is
read by our snapshot and by ``kafka-consumer-groups --describe --all-groups``
run from Kafka's own jars; the rows must be equal, value for value.
"""

import threading
import time
import uuid
from functools import partial

import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from kbp_notebook import LagCollector, client_metrics, log_dir_usage, parse_consumer_groups
from kbp_notebook.errors import KbpInputError
from tests.helpers import waiting

pytestmark = pytest.mark.integration

COMPARED = [
    "group",
    "topic",
    "partition",
    "committed_offset",
    "log_end_offset",
    "lag",
    "consumer_id",
    "host",
    "client_id",
]


class LiveConsumer:
    """A group member polling in its own thread; commits only when asked."""

    def __init__(self, bootstrap, group, topics, client_id):
        self.consumer = KafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=client_id,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=7,
        )
        self.consumed = 0
        self._commit = threading.Event()
        self.committed = threading.Event()
        self._stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                batch = self.consumer.poll(timeout_ms=100)
                self.consumed += sum(len(records) for records in batch.values())
                if self._commit.is_set():
                    self._commit.clear()
                    self.consumer.commit()
                    self.committed.set()
        except Exception as exc:  # surfaced by the test
            self.error = exc
        finally:
            self.consumer.close()

    def generation(self):
        generation = self.consumer._coordinator._generation
        return generation.generation_id, generation.member_id

    def commit(self, timeout_s=30):
        self.committed.clear()
        self._commit.set()
        assert self.committed.wait(timeout_s), "consumer did not commit"

    def stop(self):
        self._stop.set()
        self.thread.join(30)


#: how long this file waits for the cluster at most
wait_until = partial(waiting.wait_until, timeout_s=60, poll_s=0.2)


def rows(frame, groups):
    part = frame[frame["group"].isin(groups)][COMPARED]
    return sorted(
        tuple(None if pd.isna(value) else value for value in row)
        for row in part.itertuples(index=False)
    )


@pytest.fixture(scope="module")
def scenario(sandbox):
    bootstrap = sandbox.bootstrap_servers
    prefix = f"kbp-agree-{uuid.uuid4().hex[:6]}"
    topics = {f"{prefix}-orders": 3, f"{prefix}-audit": 2}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, n, 1) for name, n in topics.items()])
    wait_until(lambda: set(topics) <= set(admin.list_topics()), what="topics")
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for name, partitions in topics.items():
        for partition in range(partitions):
            for _ in range(40 * (partition + 1)):
                producer.send(name, b"m", partition=partition)
    producer.flush()
    producer.close()  # producers stopped: log-end offsets are fixed from here on

    groups = {
        "live": f"{prefix}-live",
        "spaced": f"{prefix} team billing",  # group ids may contain spaces
        "empty": f"{prefix}-empty",
        "partial": f"{prefix}-partial",
    }
    orders, audit = list(topics)
    # an empty group with commits on every partition of one topic
    once = KafkaConsumer(
        orders, bootstrap_servers=bootstrap, group_id=groups["empty"],
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    wait_until(lambda: sum(len(b) for b in once.poll(200).values()) >= 0 and once.assignment(),
               what="assignment")  # fmt: skip
    once.commit({TopicPartition(orders, p): OffsetAndMetadata(10 * p, "", -1) for p in range(3)})
    once.close()
    # a group that committed only one partition, never a member now
    partial = KafkaConsumer(bootstrap_servers=bootstrap, group_id=groups["partial"])
    partial.commit({TopicPartition(audit, 1): OffsetAndMetadata(5, "", -1)})
    partial.close()

    members = [
        LiveConsumer(bootstrap, groups["live"], [orders, audit], "live-a"),
        LiveConsumer(bootstrap, groups["live"], [orders, audit], "live-b"),
        LiveConsumer(bootstrap, groups["spaced"], [audit], "billing app"),  # never commits
    ]
    wait_until(
        lambda: sum(m.consumed for m in members[:2]) >= 150,
        what="live consumers to consume",
    )

    def stable():
        described = admin.describe_groups([groups["live"], groups["spaced"]])
        return (
            described[groups["live"]]["group_state"] == "Stable"
            and len(described[groups["live"]]["members"]) == 2
            and described[groups["spaced"]]["group_state"] == "Stable"
        )

    wait_until(stable, what="groups to stabilise")
    for member in members[:2]:
        member.commit()
    time.sleep(0.5)
    yield {"groups": groups, "topics": topics, "members": members, "admin": admin}
    for member in members:
        member.stop()
    admin.close()


def test_snapshot_equals_the_official_tool_row_for_row(sandbox, scenario):
    groups = list(scenario["groups"].values())
    with LagCollector(sandbox.bootstrap_servers, cluster="sandbox") as collector:
        ours = collector.snapshot()  # all groups, like --all-groups
        named = collector.snapshot(groups)
    tool = sandbox.consumer_groups("--describe", "--all-groups")
    assert tool.returncode == 0, tool.stderr
    theirs = parse_consumer_groups(tool.stdout + "\n" + tool.stderr, cluster="sandbox")

    expected = rows(theirs, groups)
    assert rows(ours, groups) == expected
    assert rows(named, groups) == expected
    assert {row[0] for row in expected} == set(groups)

    # the facts we set up, read back through both paths
    g = scenario["groups"]
    orders, audit = list(scenario["topics"])
    by_key = {(r[0], r[1], r[2]): r for r in expected}
    assert by_key[(g["empty"], orders, 2)][3:6] == (20, 120, 100)
    assert by_key[(g["partial"], audit, 1)][3:6] == (5, 80, 75)
    assert (g["partial"], audit, 0) not in by_key  # no commit, no member: no row
    spaced = [r for r in expected if r[0] == g["spaced"]]
    assert len(spaced) == 2 and all(r[3] is None and r[5] is None for r in spaced)
    assert all(r[8] == "billing app" and r[7].startswith("/") for r in spaced)
    live_owners = {r[8] for r in expected if r[0] == g["live"]}
    assert live_owners == {"live-a", "live-b"}
    empty_rows = [r for r in expected if r[0] == g["empty"]]
    assert all(r[6] is None and r[7] is None and r[8] is None for r in empty_rows)
    assert "has no active members" in tool.stderr


def test_snapshot_shape_and_one_time(sandbox, scenario):
    with LagCollector(sandbox.bootstrap_servers) as collector:
        lag = collector.snapshot(list(scenario["groups"].values()))
    assert len(set(lag["time"])) == 1
    assert str(lag["time"].dt.tz) == "UTC"
    assert {"log_start_offset", "consumer_id", "host", "client_id"} <= set(lag.columns)
    assert (lag["log_start_offset"] == 0).all()
    assert (lag["lag"].dropna() >= 0).all()


def test_verbose_output_parses_to_the_same_rows(sandbox, scenario):
    groups = list(scenario["groups"].values())
    plain = sandbox.consumer_groups("--describe", "--all-groups")
    verbose = sandbox.consumer_groups("--describe", "--all-groups", "--verbose")
    assert "LEADER-EPOCH" in verbose.stdout
    assert rows(parse_consumer_groups(verbose.stdout), groups) == rows(
        parse_consumer_groups(plain.stdout), groups
    )


def test_nonexistent_group_gives_no_rows_and_a_notice(sandbox, scenario):
    missing = f"kbp-missing-{uuid.uuid4().hex[:6]}"
    with LagCollector(sandbox.bootstrap_servers) as collector:
        lag = collector.snapshot([missing])
        assert lag.empty
        assert any(missing in text for _, text in collector.last_problems)
    tool = sandbox.consumer_groups("--describe", "--group", missing)
    output = tool.stdout + tool.stderr
    # Kafka 4.1 reports GroupIdNotFoundException with a stack trace; older tools say
    # "does not exist". Either way the parser skips the noise and finds no rows.
    assert "does not exist" in output or "GroupIdNotFoundException" in output
    assert parse_consumer_groups(output).empty


def test_snapshots_are_read_only(sandbox, scenario):
    admin = scenario["admin"]
    group = scenario["groups"]["live"]
    members = scenario["members"][:2]
    topics_before = sorted(admin.list_topics())
    groups_before = sorted(g["group_id"] for g in admin.list_groups())
    generations_before = [m.generation() for m in members]
    members_before = sorted(
        m["member_id"] for m in admin.describe_groups([group])[group]["members"]
    )
    committed_before = admin.list_group_offsets({group: None})[group]

    with LagCollector(sandbox.bootstrap_servers) as collector:
        for _ in range(100):
            assert len(collector.snapshot([group])) == 5

    described = admin.describe_groups([group])[group]
    assert described["group_state"] == "Stable"
    assert sorted(m["member_id"] for m in described["members"]) == members_before
    assert [m.generation() for m in members] == generations_before
    assert admin.list_group_offsets({group: None})[group] == committed_before
    assert sorted(admin.list_topics()) == topics_before
    assert sorted(g["group_id"] for g in admin.list_groups()) == groups_before
    assert all(m.error is None for m in members)


def test_group_names_are_checked(sandbox):
    with LagCollector(sandbox.bootstrap_servers) as collector, pytest.raises(KbpInputError):
        collector.snapshot([""])


def test_log_dir_usage_reports_used_bytes(sandbox, scenario):
    metrics = log_dir_usage(sandbox.bootstrap_servers, cluster="sandbox")
    used = metrics[metrics["metric"] == "log_dir_used_bytes"]
    assert len(used) >= 1
    assert used["entity"].str.match(r"logdir:1:/").all()
    assert (used["value"] > 0).all()  # our scenario wrote records
    # Kafka 4.1 answers DescribeLogDirs v4+, which carries the volume's total and usable bytes
    total = metrics.loc[metrics["metric"] == "log_dir_total_bytes", "value"].iloc[0]
    free = metrics.loc[metrics["metric"] == "log_dir_free_bytes", "value"].iloc[0]
    assert 0 < free <= total
    assert used["value"].sum() < total


def test_client_metrics_from_real_clients(sandbox, scenario):
    orders = list(scenario["topics"])[0]
    producer = KafkaProducer(bootstrap_servers=sandbox.bootstrap_servers, client_id="kbp-prod")
    try:
        for _ in range(200):
            producer.send(orders, b"x" * 100, partition=0)
        producer.flush()
        produced = client_metrics(producer, cluster="sandbox")
    finally:
        producer.close()
    assert set(produced["entity"]) == {"producer:kbp-prod"}
    names = set(produced["metric"])
    assert {"producer_request_latency_avg_ms", "producer_batch_size_avg"} <= names
    assert produced.loc[produced["metric"] == "producer_batch_size_avg", "value"].iloc[0] > 0

    consumer = KafkaConsumer(
        orders, bootstrap_servers=sandbox.bootstrap_servers, client_id="kbp-cons",
        group_id=f"kbp-metrics-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest",
        enable_auto_commit=False,
    )  # fmt: skip
    try:
        consumed = 0
        # kafka-python records fetch metrics once a fetch response is fully drained:
        # read everything (until polls come back empty) before looking at them
        deadline = time.monotonic() + 90
        empty_polls = 0
        while empty_polls < 3 and time.monotonic() < deadline:
            got = sum(len(b) for b in consumer.poll(300).values())
            consumed += got
            empty_polls = empty_polls + 1 if (got == 0 and consumed) else 0
        read = client_metrics(consumer)
        assert consumed >= 240, "the consumer did not get its records (group join too slow?)"
    finally:
        consumer.close()
    assert set(read["entity"]) == {"consumer:kbp-cons"}
    assert {"consumer_fetch_rate", "consumer_records_consumed_rate"} <= set(read["metric"])
    assert read.loc[read["metric"] == "consumer_records_consumed_rate", "value"].iloc[0] > 0
