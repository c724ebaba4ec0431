"""A KIP-1071 streams group, read by LagCollector and checked against kafka-streams-groups.

Kafka 4.1 ships the streams rebalance protocol as early access: the broker
answers StreamsGroupHeartbeat only with ``unstable.api.versions.enable=true``
and ``unstable.feature.versions.enable=true`` (then ``streams.version`` is
finalized at 1 when the storage is formatted); without them the client fails
with "The cluster does not support the STREAMS group protocol". So this test
runs its own sandbox with those two settings, a pass-through Kafka Streams
app (``streams_app/PassThrough.java``, compiled here against ``kafka-streams``
from Maven Central) with ``group.protocol=streams``, and compares our
snapshot with ``StreamsGroupCommand --describe --offsets``, ``--members`` and
``--state``.
"""

import os
import shutil
import subprocess
import uuid
from functools import partial
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from kbp_notebook import LagCollector
from kbp_notebook.sandbox import DEFAULT_KAFKA_VERSION, Sandbox
from tests.helpers import waiting

pytestmark = pytest.mark.integration

STREAMS_COMMAND = "org.apache.kafka.tools.streams.StreamsGroupCommand"
APP = Path(__file__).parent / "streams_app" / "PassThrough.java"


#: how long this file waits for the cluster at most
wait_until = partial(waiting.wait_until, timeout_s=120)


def streams_jar(version):
    subprocess.run(
        [os.environ.get("KBP_MVN") or shutil.which("mvn") or "mvn", "-B", "-q",
         "dependency:get", f"-Dartifact=org.apache.kafka:kafka-streams:{version}",
         "-Dtransitive=false"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    jar = Path.home() / ".m2/repository/org/apache/kafka/kafka-streams" / version
    return jar / f"kafka-streams-{version}.jar"


def table(stdout, columns):
    """Rows of a kafka-*-groups table whose first column is the group."""
    lines = [line.split() for line in stdout.splitlines() if line.strip()]
    headers = [i for i, fields in enumerate(lines) if fields and fields[0] == "GROUP"]
    assert headers, stdout
    return [fields[:columns] for fields in lines[headers[0] + 1 :]]


@pytest.fixture(scope="module")
def streams_sandbox():
    sandbox = Sandbox(
        brokers=1,
        prometheus=False,
        broker_config={
            "unstable.api.versions.enable": True,
            "unstable.feature.versions.enable": True,
        },
    ).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def test_streams_group_type_state_offsets_and_lag_match_the_official_tool(
    streams_sandbox, tmp_path
):
    sandbox = streams_sandbox
    bootstrap = sandbox.bootstrap_servers
    version = os.environ.get("KBP_KAFKA_VERSION") or DEFAULT_KAFKA_VERSION
    jar = streams_jar(version)
    classpath = os.pathsep.join([sandbox.tool_command("x")[-2], str(jar)])  # lib/* of the jars
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", classpath, str(APP)], check=True)
    app_id = f"kbp-streams-{uuid.uuid4().hex[:6]}"
    source, sink = f"{app_id}-in", f"{app_id}-out"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(source, 2, 1), NewTopic(sink, 2, 1)])
    java = sandbox.tool_command("x")[0]
    app = subprocess.Popen(
        [java, "-Xmx256m", "-XX:+UseSerialGC", "-cp", os.pathsep.join([classpath, str(tmp_path)]),
         "PassThrough", bootstrap, app_id, source, sink],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        for i in range(100):
            producer.send(source, b"v%d" % i, partition=i % 2)
        producer.flush()

        def processed():
            try:
                offsets = admin.list_group_offsets({app_id: None}).get(app_id, {})
            except KafkaError:  # the offsets topic is still being created
                return False
            return sum(o.offset for o in offsets.values()) == 100

        wait_until(processed, what="the streams app to commit everything")
        with LagCollector(bootstrap) as collector:
            running = collector.snapshot([app_id])
            problems = list(collector.last_problems)
        running_offsets = sandbox.run_tool(
            STREAMS_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--group", app_id,
            "--offsets",
        )  # fmt: skip
        running_members = sandbox.run_tool(
            STREAMS_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--group", app_id,
            "--members",
        )  # fmt: skip
        running_state = sandbox.run_tool(
            STREAMS_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--group", app_id,
            "--state",
        )  # fmt: skip
    finally:
        app.terminate()
        app.wait(timeout=30)
    # stopped: produce more, so the lag is not zero
    for i in range(20):
        producer.send(source, b"w%d" % i, partition=i % 2)
    producer.flush()
    producer.close()
    wait_until(
        lambda: {g["group_id"]: g for g in admin.list_groups()}[app_id]["group_state"] == "Empty",
        what="the streams group to empty",
    )
    admin.close()
    with LagCollector(bootstrap) as collector:
        stopped = collector.snapshot([app_id])
    # the 4.1 tool gives offsets of active groups only ("has no active members"): its state
    state = sandbox.run_tool(
        STREAMS_COMMAND, "--bootstrap-server", bootstrap, "--describe", "--group", app_id,
        "--state",
    )  # fmt: skip

    assert set(running["group_type"]) == {"streams"}
    assert set(running["group_state"]) == {"Stable"}
    assert problems == []
    # owners from StreamsGroupDescribe: the member whose active tasks read the partitions
    members = table(running_members.stdout, 4)
    assert len(members) == 1, running_members.stdout
    _, member_id, _, client_id = members[0]
    assert set(running["consumer_id"]) == {member_id}
    assert set(running["client_id"]) == {client_id}
    assert running["host"].str.startswith("/").all()
    theirs = {
        (int(p), int(lag))
        for _, topic, p, lag in table(running_offsets.stdout, 4)
        if topic == source
    }
    ours = set(zip(running["partition"].astype(int), running["lag"].astype(int), strict=True))
    assert ours == theirs == {(0, 0), (1, 0)}
    assert running["committed_offset"].tolist() == [50, 50]
    assert set(running["group_state"]) == {table(running_state.stdout, 4)[0][3]}
    # stopped with 20 more records: 10 unread on each partition, and the state the tool says
    assert stopped["committed_offset"].tolist() == [50, 50]
    assert stopped["lag"].tolist() == [10, 10]
    assert set(stopped["group_state"]) == {table(state.stdout, 4)[0][3]} == {"Empty"}
