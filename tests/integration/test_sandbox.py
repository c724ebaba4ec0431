"""The sandbox is a real Kafka + JMX exporter + Prometheus, and its documented series exist."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError

from kbp_notebook.errors import KbpError
from kbp_notebook.sandbox import Sandbox, fetch_jars

pytestmark = pytest.mark.integration

# Every series the module docstring promises for the canonical broker metrics.
DOCUMENTED_SERIES = [
    'kafka_log_logflushstats_logflushrateandtimems{quantile="0.99"}',
    "kafka_log_logflushstats_logflushrateandtimems_count_total",
    "kafka_log_logflushstats_logflushrateandtimems_mean",
    "kafka_server_replicamanager_underreplicatedpartitions",
    'kafka_network_requestmetrics_totaltimems{request="Produce",quantile="0.99"}',
    'kafka_network_requestmetrics_totaltimems{request="FetchConsumer",quantile="0.99"}',
    'kafka_network_requestmetrics_requestqueuetimems{request="Produce",quantile="0.99"}',
    "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_count_total",
    "kafka_network_socketserver_networkprocessoravgidlepercent",
    'kafka_server_brokertopicmetrics_bytesin_total{topic=""}',
    'kafka_server_brokertopicmetrics_bytesout_total{topic=""}',
    'kafka_server_brokertopicmetrics_messagesin_total{topic=""}',
]


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create_topic(bootstrap: str, name: str, *, partitions: int, rf: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, rf)], wait_for_metadata=True)
    finally:
        admin.close()


def _produce(bootstrap: str, topic: str, n: int, **config: object) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **config)
    try:
        for i in range(n):
            producer.send(topic, key=str(i % 7).encode(), value=f"message-{i}".encode())
        producer.flush(timeout=60)
    finally:
        producer.close()


def _consume(bootstrap: str, topic: str, n: int, *, group: str | None = None) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20_000,
    )
    values: list[bytes] = []
    try:
        for record in consumer:
            values.append(record.value)
            if len(values) >= n:
                break
        if group is not None:
            consumer.commit()
    finally:
        consumer.close()
    return values


def test_fetch_jars_is_cached_and_complete() -> None:
    root = fetch_jars()
    assert fetch_jars() == root
    names = {p.name for p in (root / "lib").glob("*.jar")}
    assert any(n.startswith("kafka_2.13-4.") for n in names)
    assert any(n.startswith("kafka-tools-4.") for n in names)
    assert any(n.startswith("log4j-slf4j-impl-") for n in names)
    assert (root / "agent" / "jmx_prometheus_javaagent.jar").stat().st_size > 100_000


def test_fetch_jars_names_the_artifact_when_maven_cannot_resolve_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KBP_CACHE_DIR", str(tmp_path))
    with pytest.raises(KbpError, match=r"org\.apache\.kafka:kafka_2\.13:4\.0\.97"):
        fetch_jars(kafka_version="4.0.97")
    assert not any((tmp_path / "jars").glob("kafka-4.0.97*/.complete"))


def test_produce_consume_and_messages_in_reach_prometheus(sandbox: Sandbox) -> None:
    topic = _topic("sandbox-roundtrip")
    n = 500
    _create_topic(sandbox.bootstrap_servers, topic, partitions=3, rf=1)
    _produce(sandbox.bootstrap_servers, topic, n)

    values = _consume(sandbox.bootstrap_servers, topic, n)
    assert sorted(values) == sorted(f"message-{i}".encode() for i in range(n))

    series = f'kafka_server_brokertopicmetrics_messagesin_total{{topic="{topic}"}}'
    result = sandbox.wait_for_prometheus_series(f"{series} >= {n}", timeout_s=60)
    assert len(result) == 1
    assert result[0]["metric"]["broker"] == "1"
    assert result[0]["metric"]["job"] == "kafka"
    # The per-topic counter counts exactly the records appended.
    assert float(result[0]["value"][1]) == n
    bytes_in = sandbox.query_prometheus(
        f'kafka_server_brokertopicmetrics_bytesin_total{{topic="{topic}"}}'
    )
    assert float(bytes_in[0]["value"][1]) > n * len(b"message-0")


@pytest.mark.parametrize("series", DOCUMENTED_SERIES)
def test_documented_series_are_in_prometheus(sandbox: Sandbox, series: str) -> None:
    result = sandbox.wait_for_prometheus_series(series, timeout_s=30)
    assert [r["metric"]["broker"] for r in result] == ["1"]


def test_consumer_groups_tool_describes_committed_offsets(sandbox: Sandbox) -> None:
    topic = _topic("sandbox-cg")
    group = _topic("sandbox-group")
    _create_topic(sandbox.bootstrap_servers, topic, partitions=1, rf=1)
    _produce(sandbox.bootstrap_servers, topic, 40)
    assert len(_consume(sandbox.bootstrap_servers, topic, 25, group=group)) == 25
    _produce(sandbox.bootstrap_servers, topic, 10)

    proc = sandbox.consumer_groups("--describe", "--group", group)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith(group)]
    assert len(rows) == 1
    header = next(line.split() for line in proc.stdout.splitlines() if line.startswith("GROUP"))
    row = dict(zip(header, rows[0], strict=False))
    assert row["TOPIC"] == topic
    assert row["CURRENT-OFFSET"] == "25"
    assert row["LOG-END-OFFSET"] == "50"
    assert row["LAG"] == "25"

    listed = sandbox.consumer_groups("--list")
    assert group in listed.stdout.split()


def test_run_tool_runs_any_kafka_class(sandbox: Sandbox) -> None:
    topic = _topic("sandbox-tool")
    _create_topic(sandbox.bootstrap_servers, topic, partitions=2, rf=1)
    proc = sandbox.run_tool(
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        sandbox.bootstrap_servers,
        "--describe",
        "--topic",
        topic,
    )
    assert proc.returncode == 0, proc.stderr
    assert "PartitionCount: 2" in proc.stdout


def test_scram_listener_accepts_right_and_rejects_wrong_credentials(scram_sandbox: Sandbox) -> None:
    config = scram_sandbox.scram_client_config()
    topic = _topic("sandbox-scram")
    admin = KafkaAdminClient(**config)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)], wait_for_metadata=True)
    finally:
        admin.close()
    producer = KafkaProducer(**config)
    producer.send(topic, b"secret-hello").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic, auto_offset_reset="earliest", consumer_timeout_ms=20_000, **config
    )
    assert next(iter(consumer)).value == b"secret-hello"
    consumer.close()

    wrong = dict(config, sasl_plain_password="not-the-password")
    with pytest.raises(KafkaError):
        KafkaAdminClient(**wrong, bootstrap_timeout_ms=5000).describe_cluster()
    # It failed because the broker refused the credentials, not for want of a broker.
    log = scram_sandbox.broker_log(1).read_text()
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in log

    proc = scram_sandbox.consumer_groups(
        "--list",
        command_config={
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
            f'required username="{config["sasl_plain_username"]}" '
            f'password="{config["sasl_plain_password"]}";',
        },
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.three_brokers
@pytest.mark.slow
def test_stopping_a_broker_shows_under_replicated_partitions(sandbox3: Sandbox) -> None:
    assert sandbox3.broker_ids == [1, 2, 3]
    topic = _topic("sandbox-urp")
    _create_topic(sandbox3.bootstrap_servers, topic, partitions=3, rf=3)
    _produce(sandbox3.bootstrap_servers, topic, 300)
    urp = "kafka_server_replicamanager_underreplicatedpartitions"
    sandbox3.wait_for_prometheus_series(f"sum({urp}) == 0 and count({urp}) == 3", timeout_s=60)
    try:
        sandbox3.stop_broker(3)
        assert sandbox3.broker_pid(3) is None
        result = sandbox3.wait_for_prometheus_series(
            f'sum({urp}{{broker=~"1|2"}}) > 0', timeout_s=90
        )
        assert float(result[0]["value"][1]) >= 1
        # The cluster still serves the topic with one broker down.
        _produce(sandbox3.broker_address(1), topic, 30)
    finally:
        sandbox3.restart_stopped_brokers()
    assert sandbox3.broker_pid(3) is not None
    sandbox3.wait_for_prometheus_series(f"sum({urp}) == 0 and count({urp}) == 3", timeout_s=120)
    # The restarted broker's own exporter answers with its own gauge at 0.
    text = sandbox3.exporter_text(3)
    assert f"{urp} 0.0" in text


@pytest.mark.slow
def test_broker_config_restart_then_stop_ends_every_process_and_removes_the_workdir() -> None:
    sb = Sandbox(brokers=1, prometheus=False, broker_config={"log.flush.interval.messages": 1})
    sb.start()
    # broker_config reaches the broker as a static setting...
    admin = KafkaAdminClient(bootstrap_servers=sb.bootstrap_servers)
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.BROKER, "1", configs=None)], config_filter="All"
    )
    admin.close()
    setting = described["broker"]["1"]["log.flush.interval.messages"]
    assert (setting["value"], setting["config_source"]) == ("1", "STATIC_BROKER_CONFIG")

    # ...and takes effect: a flush per produced record shows in the exporter's counter.
    # (The metadata log adds ~2 flushes/s too, so the bound is loose but not vacuous:
    # without the setting, 30 records took 2 flushes.)
    flushes = "kafka_log_logflushstats_logflushrateandtimems_count_total"

    def flush_count() -> float:
        line = next(x for x in sb.exporter_text(1).splitlines() if x.startswith(flushes + " "))
        return float(line.split()[1])

    topic = _topic("sandbox-flush")
    _create_topic(sb.bootstrap_servers, topic, partitions=1, rf=1)
    before = flush_count()
    producer = KafkaProducer(bootstrap_servers=sb.bootstrap_servers, linger_ms=0)
    for i in range(30):
        producer.send(topic, f"m{i}".encode()).get(timeout=30)
    producer.close()
    assert flush_count() - before >= 30

    first_pid = sb.broker_pid(1)
    sb.stop_broker(1, graceful=False)
    assert sb.broker_pid(1) is None
    assert first_pid is not None and not _alive(first_pid)
    sb.start_broker(1)
    pid = sb.broker_pid(1)
    admin = KafkaAdminClient(bootstrap_servers=sb.bootstrap_servers)
    assert [b["broker_id"] for b in admin.describe_cluster()["brokers"]] == [1]
    admin.close()
    workdir = sb.workdir
    assert pid is not None and workdir.exists()
    sb.stop()
    assert not Path(f"/proc/{pid}").exists()
    assert not workdir.exists()
    assert not sb.is_running


@pytest.mark.slow
def test_killing_the_python_parent_kills_the_brokers(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from kbp_notebook.sandbox import Sandbox\n"
        f"sb = Sandbox(brokers=1, workdir={str(tmp_path)!r}).start()\n"
        "print(sb.broker_pid(1), sb._prometheus.proc.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, line
        for pid in pids:
            assert Path(f"/proc/{pid}").exists()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids)
    finally:
        if child.poll() is None:
            child.kill()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_cli_up_status_down(tmp_path: Path) -> None:
    env = dict(os.environ, KBP_SANDBOX_STATE=str(tmp_path / "state.json"))
    kbp = [sys.executable, "-m", "kbp_notebook.cli", "sandbox"]
    up = subprocess.run(
        [*kbp, "up", "--no-prometheus"], env=env, capture_output=True, text=True, timeout=300
    )
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads((tmp_path / "state.json").read_text())
        bootstrap = state["bootstrap_servers"]
        assert f"bootstrap servers: {bootstrap}" in up.stdout
        # The detached broker outlived the `up` process and answers.
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        assert [b["broker_id"] for b in admin.describe_cluster()["brokers"]] == [1]
        admin.close()
        status = subprocess.run(
            [*kbp, "status"], env=env, capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0
        assert "running" in status.stdout
    finally:
        down = subprocess.run([*kbp, "down"], env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    pid = state["brokers"]["1"]["pid"]
    assert not _alive(pid)
    assert not Path(state["workdir"]).exists()
    status = subprocess.run([*kbp, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 1


@pytest.mark.slow
def test_start_retries_on_new_ports_when_one_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    # the Sandbox class looks _free_ports up in its own module, kbp_notebook.sandbox._cluster
    from kbp_notebook.sandbox import _cluster as sandbox_module

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real_free_ports = sandbox_module._free_ports
    calls: list[list[int]] = []

    def first_call_hands_out_a_taken_port(count: int) -> list[int]:
        ports = real_free_ports(count)
        if not calls:
            ports[0] = taken  # broker 1's PLAINTEXT listener
        calls.append(ports)
        return ports

    monkeypatch.setattr(sandbox_module, "_free_ports", first_call_hands_out_a_taken_port)
    try:
        sb = Sandbox(brokers=1, prometheus=False).start()
        try:
            assert len(calls) == 2
            assert sb.broker_address(1) != f"127.0.0.1:{taken}"
            admin = KafkaAdminClient(bootstrap_servers=sb.bootstrap_servers)
            assert [b["broker_id"] for b in admin.describe_cluster()["brokers"]] == [1]
            admin.close()
        finally:
            sb.stop()
    finally:
        squatter.close()
