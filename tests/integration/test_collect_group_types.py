"""Every group type Kafka 4.1 has, read by LagCollector and checked against Kafka's own tools.

Real members of each kind on the session sandbox:

* a KIP-848 group: Kafka's console consumer from the sandbox jars with
  ``--consumer-property group.protocol=consumer`` (described only by
  ConsumerGroupDescribe);
* a classic group: two kafka-python consumers;
* a share group (KIP-932): Kafka's console share consumer. Kafka 4.1 ships
  share groups off: the ``share.version`` feature is finalized at 0, and the
  broker answers share RPCs only after ``kafka-features upgrade --feature
  share.version=1`` (no broker property needed; ``group.share.enable`` is not
  what gates them in 4.1).

The official ``kafka-consumer-groups --describe`` must agree row for row (offsets,
lag, consumer id, host, client id) for the first two; ``kafka-share-groups
--describe`` (start offsets) and ``--members`` for the third.
"""

import subprocess
import uuid
from functools import partial

import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from kbp_notebook import LagCollector, parse_consumer_groups
from tests.helpers import waiting

pytestmark = pytest.mark.integration

COMPARED = [
    "group", "topic", "partition", "committed_offset", "log_end_offset", "lag",
    "consumer_id", "host", "client_id",
]  # fmt: skip
SHARE_COMMAND = "org.apache.kafka.tools.consumer.group.ShareGroupCommand"


#: how long this file waits for the cluster at most
wait_until = partial(waiting.wait_until, timeout_s=90)


def rows(frame):
    return sorted(
        tuple(None if pd.isna(value) else value for value in row)
        for row in frame[COMPARED].itertuples(index=False)
    )


def produce(bootstrap, topic, partitions, per_partition):
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for partition in range(partitions):
        for i in range(per_partition * (partition + 1)):
            producer.send(topic, b"m%d" % i, partition=partition)
    producer.flush()
    producer.close()


def java_tool(sandbox, output, main_class, *args):
    """Start a Kafka tool that keeps running; its records go to ``output``."""
    with open(output, "w") as out:
        return subprocess.Popen(
            sandbox.tool_command(main_class, *args), stdout=out, stderr=subprocess.DEVNULL
        )


def lines(path):
    with open(path) as handle:
        return sum(1 for line in handle if line.startswith("m"))


@pytest.fixture(scope="module")
def groups(sandbox, tmp_path_factory):
    logs = tmp_path_factory.mktemp("group-types")
    bootstrap = sandbox.bootstrap_servers
    prefix = f"kbp-types-{uuid.uuid4().hex[:6]}"
    topics = {"kip848": (f"{prefix}-kip848", 4), "classic": (f"{prefix}-classic", 3),
              "share": (f"{prefix}-share", 2)}  # fmt: skip
    names = {kind: f"{prefix}-{kind}-group" for kind in topics}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, n, 1) for name, n in topics.values()])
    wait_until(lambda: {t for t, _ in topics.values()} <= set(admin.list_topics()), what="topics")
    for topic, n in topics.values():
        produce(bootstrap, topic, n, 30)

    upgrade = sandbox.run_tool(
        "org.apache.kafka.tools.FeatureCommand", "--bootstrap-server", bootstrap,
        "upgrade", "--feature", "share.version=1",
    )  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    # a share group starts at the log end unless told otherwise (a group config)
    reset = sandbox.run_tool(
        "kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap, "--alter",
        "--entity-type", "groups", "--entity-name", names["share"],
        "--add-config", "share.auto.offset.reset=earliest",
    )  # fmt: skip
    assert reset.returncode == 0, reset.stdout + reset.stderr

    processes = [
        java_tool(
            sandbox, logs / "kip848.out", "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server", bootstrap, "--topic", topics["kip848"][0],
            "--group", names["kip848"], "--from-beginning",
            "--consumer-property", "group.protocol=consumer",
            "--consumer-property", "client.id=kip848-console",
            "--consumer-property", "auto.commit.interval.ms=500",
        ),
        java_tool(
            sandbox, logs / "share.out", "org.apache.kafka.tools.consumer.ConsoleShareConsumer",
            "--bootstrap-server", bootstrap, "--topic", topics["share"][0],
            "--group", names["share"],
            "--consumer-property", "client.id=share-console",
        ),
    ]  # fmt: skip
    classic = [
        KafkaConsumer(
            topics["classic"][0], bootstrap_servers=bootstrap, group_id=names["classic"],
            client_id=f"classic-{i}", auto_offset_reset="earliest", enable_auto_commit=False,
        )
        for i in range(2)
    ]  # fmt: skip
    try:

        def classic_stable():
            for consumer in classic:
                consumer.poll(timeout_ms=200)
            described = admin.describe_groups([names["classic"]])[names["classic"]]
            return described["group_state"] == "Stable" and len(described["members"]) == 2

        wait_until(classic_stable, what="classic group to stabilise")
        for consumer in classic:
            consumer.poll(timeout_ms=500)
            consumer.commit()

        def kip848_caught_up():
            offsets = admin.list_group_offsets({names["kip848"]: None})[names["kip848"]]
            return sum(o.offset for o in offsets.values()) == 30 * (1 + 2 + 3 + 4)

        wait_until(kip848_caught_up, what="the KIP-848 console consumer to commit everything")

        wait_until(lambda: lines(logs / "share.out") == 30 * (1 + 2), what="the share consumer")

        def share_offsets_known():
            described = sandbox.run_tool(
                SHARE_COMMAND, "--bootstrap-server", bootstrap, "--describe",
                "--group", names["share"],
            )  # fmt: skip
            started = [
                fields
                for fields in (line.split() for line in described.stdout.splitlines())
                if len(fields) == 4 and fields[1] == topics["share"][0] and fields[3].isdigit()
            ]
            return len(started) == 2

        wait_until(share_offsets_known, what="the share group's start offsets")
        yield {"names": names, "topics": topics, "admin": admin}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for consumer in classic:
            consumer.close(autocommit=False)
        admin.close()


def test_kip848_and_classic_groups_match_the_official_tool_row_for_row(sandbox, groups):
    names = groups["names"]
    asked = [names["kip848"], names["classic"]]
    with LagCollector(sandbox.bootstrap_servers, cluster="sandbox") as collector:
        ours = collector.snapshot(asked)
        everything = collector.snapshot()
    tool = sandbox.consumer_groups("--describe", "--group", asked[0], "--group", asked[1])
    assert tool.returncode == 0, tool.stderr
    theirs = parse_consumer_groups(tool.stdout, cluster="sandbox")

    assert rows(ours) == rows(theirs)
    assert rows(everything[everything["group"].isin(asked)]) == rows(theirs)
    kip848 = ours[ours["group"] == names["kip848"]]
    assert len(kip848) == 4
    # the KIP-848 member is described: real owners, not NA (the bug this fixes)
    assert kip848["consumer_id"].notna().all() and len(set(kip848["consumer_id"])) == 1
    assert set(kip848["client_id"]) == {"kip848-console"}
    assert kip848["host"].str.startswith("/").all()
    assert set(kip848["group_type"]) == {"consumer"}
    assert set(kip848["group_state"]) == {"Stable"}
    classic = ours[ours["group"] == names["classic"]]
    assert len(classic) == 3
    assert set(classic["client_id"]) == {"classic-0", "classic-1"}
    assert set(classic["group_type"]) == {"classic"}
    assert set(classic["group_state"]) == {"Stable"}


def test_share_group_matches_the_official_share_tool(sandbox, groups):
    names, topics = groups["names"], groups["topics"]
    share_topic = topics["share"][0]
    with LagCollector(sandbox.bootstrap_servers, cluster="sandbox") as collector:
        ours = collector.snapshot([names["share"]])
        everything = collector.snapshot()
    assert rows(everything[everything["group"] == names["share"]]) == rows(ours)
    assert set(ours["group_type"]) == {"share"}
    assert set(ours["group_state"]) == {"Stable"}
    assert sorted(ours["partition"]) == [0, 1]

    offsets = sandbox.run_tool(
        SHARE_COMMAND, "--bootstrap-server", sandbox.bootstrap_servers,
        "--describe", "--group", names["share"],
    )  # fmt: skip
    members = sandbox.run_tool(
        SHARE_COMMAND, "--bootstrap-server", sandbox.bootstrap_servers,
        "--describe", "--group", names["share"], "--members",
    )  # fmt: skip
    assert offsets.returncode == 0 and members.returncode == 0, offsets.stderr + members.stderr
    start = {
        int(fields[2]): int(fields[3])
        for fields in (line.split() for line in offsets.stdout.splitlines())
        if len(fields) == 4 and fields[1] == share_topic
    }
    assert start, offsets.stdout
    by_partition = ours.set_index("partition")
    for partition, start_offset in start.items():
        row = by_partition.loc[partition]
        assert row["committed_offset"] == start_offset
        assert row["lag"] == row["log_end_offset"] - start_offset
    member_line = [line.split() for line in members.stdout.splitlines() if names["share"] in line]
    assert len(member_line) == 1, members.stdout
    consumer_id, host, client_id = member_line[0][1:4]
    assert set(ours["consumer_id"]) == {consumer_id}
    assert set(ours["host"]) == {host}
    assert set(ours["client_id"]) == {client_id} == {"share-console"}


def test_describing_all_group_types_costs_a_constant_number_of_requests(sandbox, groups):
    """The requests of one snapshot do not grow with the number of groups."""
    names = list(groups["names"].values())
    classic_topic = groups["topics"]["classic"][0]
    extra = [f"{names[0]}-extra-{i}" for i in range(20)]
    for group in extra:  # 20 more (empty, classic) groups with a commit each
        member = KafkaConsumer(bootstrap_servers=sandbox.bootstrap_servers, group_id=group)
        member.commit({TopicPartition(classic_topic, 0): OffsetAndMetadata(1, "", -1)})
        member.close()

    def requests_of(collector, asked):
        sent: list[str] = []
        manager = collector._admin._manager
        original = manager.send

        def counting(request, *args, **kwargs):
            sent.append(type(request).__name__.split("_v")[0])
            return original(request, *args, **kwargs)

        manager.send = counting
        try:
            frame = collector.snapshot(asked)
        finally:
            manager.send = original
        return pd.Series(sent).value_counts().to_dict(), frame

    with LagCollector(sandbox.bootstrap_servers) as collector:
        collector.snapshot(names + extra)  # warm: coordinators and metadata cached
        few, _ = requests_of(collector, names)
        many, frame = requests_of(collector, names + extra)
    assert set(frame["group"]) == set(names + extra)
    assert many == few
    # one broker (so one coordinator): one request of each group kind per snapshot
    group_requests = {
        "ListGroupsRequest", "DescribeGroupsRequest", "ConsumerGroupDescribeRequest",
        "ShareGroupDescribeRequest", "DescribeShareGroupOffsetsRequest", "OffsetFetchRequest",
    }  # fmt: skip
    assert {name: few.get(name) for name in group_requests} == dict.fromkeys(group_requests, 1)
