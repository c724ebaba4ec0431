"""Recordings on the real sandbox: kill -9 mid-run, resume, Ctrl-C, a broker outage, SCRAM."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from kbp_notebook import LagCollector, read_dataset
from kbp_notebook.errors import KbpConnectionError

pytestmark = pytest.mark.integration

PROGRESS = re.compile(r"^kbp collect: (\d+) intervals")


def committed_group(bootstrap, partitions, *, leader_spread=False, **client):
    """A topic with ``partitions`` partitions and an empty group committed on all of them."""
    name = f"kbp-rec-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client)
    admin.create_topics([NewTopic(name, partitions, 1)])
    deadline = time.monotonic() + 30
    while name not in admin.list_topics() and time.monotonic() < deadline:
        time.sleep(0.2)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=name, **client)
    consumer.commit(
        {TopicPartition(name, p): OffsetAndMetadata(0, "", -1) for p in range(partitions)}
    )
    consumer.close()
    leaders = {}
    if leader_spread:
        for topic in admin.describe_topics([name]):
            for part in topic["partitions"]:
                leaders[part["partition_index"]] = part["leader_id"]
    admin.close()
    return name, leaders


def kbp_collect(*args, stderr=subprocess.PIPE):
    return subprocess.Popen(
        [sys.executable, "-m", "kbp_notebook.cli", "collect", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def read_progress(proc, until, timeout_s=90):
    """Collect progress lines from the recorder until ``until(count)`` holds."""
    seen = []
    done = threading.Event()

    def pump():
        for line in proc.stderr:
            match = PROGRESS.match(line)
            if match:
                seen.append(int(match.group(1)))
                if until(seen[-1]):
                    done.set()
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    assert done.wait(timeout_s), "recorder made no progress"
    return seen


def test_kill_9_loses_nothing_completed_and_resume_appends(sandbox, tmp_path):
    group, _ = committed_group(sandbox.bootstrap_servers, 3)
    out = tmp_path / "recording"
    args = ["--bootstrap-server", sandbox.bootstrap_servers, "--group", group, "--out", str(out)]
    proc = kbp_collect(*args, "--every", "0.5s")
    try:
        seen = read_progress(proc, until=lambda n: n >= 6)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    completed = max(seen)

    ds = read_dataset(out)  # readable after kill -9
    snapshots = ds.lag["time"].nunique()
    # every interval reported complete is on disk (one more may have landed before the kill)
    assert completed <= snapshots <= completed + 1
    assert (ds.lag.groupby("time").size() == 3).all()
    assert set(ds.lag["group"]) == {group}
    assert ds.meta["every_s"] == 0.5 and ds.meta["groups"] == [group]
    times = ds.lag["time"].drop_duplicates().sort_values()
    # drift-free grid: consecutive snapshots 0.5 s apart on average
    assert (times.diff().dropna().dt.total_seconds() >= 0.25).all()

    resumed = kbp_collect(*args, "--every", "0.5s", "--duration", "1.5s", "--no-progress")
    _, err = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, err
    after = read_dataset(out)
    total = after.lag["time"].nunique()
    assert snapshots + 2 <= total <= snapshots + 3  # 3 ticks; one may be skipped under load
    assert after.lag["time"].min() == ds.lag["time"].min()  # appended, nothing lost
    assert len(after.meta["sessions"]) == 2
    assert f"wrote {total - snapshots} snapshot(s), {3 * (total - snapshots)} rows" in err


def test_ctrl_c_stops_the_cli_cleanly(sandbox, tmp_path):
    group, _ = committed_group(sandbox.bootstrap_servers, 1)
    out = tmp_path / "recording"
    proc = kbp_collect(
        "--bootstrap-server", sandbox.bootstrap_servers, "--group", group, "--out", str(out),
        "--every", "0.5s",
    )  # fmt: skip
    try:
        read_progress(proc, until=lambda n: n >= 2)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    ds = read_dataset(out)
    assert ds.lag["time"].nunique() >= 2
    assert "stopped_at" in ds.meta


@pytest.mark.three_brokers
@pytest.mark.slow
def test_a_leader_outage_is_recorded_as_events_and_rows_come_back(sandbox3, tmp_path):
    group, leaders = committed_group(sandbox3.bootstrap_servers, 6, leader_spread=True)
    victim = max(set(leaders.values()), key=lambda b: sum(v == b for v in leaders.values()))
    victim_partitions = {p for p, b in leaders.items() if b == victim}
    out = tmp_path / "recording"
    proc = kbp_collect(
        "--bootstrap-server", sandbox3.bootstrap_servers, "--group", group, "--out", str(out),
        "--every", "1s", "--max-backoff", "2s", "--no-progress", stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(4)
        stopped_at = pd.Timestamp.now(tz="UTC")
        sandbox3.stop_broker(victim)
        time.sleep(6)
        sandbox3.start_broker(victim)
        restarted_at = pd.Timestamp.now(tz="UTC")

        def recovered():
            lag = read_dataset(out).lag
            later = lag[lag["time"] > restarted_at]
            last_two = later[later["time"].isin(sorted(set(later["time"]))[-2:])]
            return len(last_two) == 12 and last_two["log_end_offset"].notna().all()

        deadline = time.monotonic() + 90
        while not recovered() and time.monotonic() < deadline:
            time.sleep(1)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        sandbox3.restart_stopped_brokers()

    ds = read_dataset(out)
    lag, events = ds.lag, ds.events
    errors = events[events["kind"] == "collector_error"]
    assert len(errors) >= 1
    assert errors["time"].between(stopped_at, restarted_at + pd.Timedelta("5s")).any()
    assert errors["text"].str.contains("127.0.0.1:").all()
    during = lag[(lag["time"] > stopped_at + pd.Timedelta("2s")) & (lag["time"] < restarted_at)]
    if len(during):  # a partial snapshot: the victim's partitions unknown, the others read
        gone = during[during["partition"].isin(victim_partitions)]
        assert gone["log_end_offset"].isna().any()
        kept = during[~during["partition"].isin(victim_partitions)]
        assert kept["log_end_offset"].notna().all()
    after = lag[lag["time"] > restarted_at]
    last = after[after["time"] == after["time"].max()]
    assert len(last) == 6 and last["log_end_offset"].notna().all()  # rows again, complete
    assert (after.groupby("time").size() == 6).all()
    print(events.to_string())  # shown with -s: what an SRE would read


def test_scram_recording_works_and_keeps_the_password_out(scram_sandbox, tmp_path):
    config = scram_sandbox.scram_client_config()
    bootstrap = config.pop("bootstrap_servers")
    password = config["sasl_plain_password"]
    group, _ = committed_group(bootstrap, 2, **config)

    with LagCollector(bootstrap, cluster="secure", **config) as collector:
        ds = collector.record(tmp_path / "api", every="0.5s", duration="1.5s", groups=[group],
                              progress=False)  # fmt: skip
        assert password not in repr(collector)
    # 0.5 s grid over 1.5 s: three ticks; a tick missed on a loaded machine is skipped
    snapshots = ds.lag["time"].nunique()
    assert 2 <= snapshots <= 3 and len(ds.lag) == 2 * snapshots
    assert ds.meta["kafka_config"]["sasl_mechanism"] == config["sasl_mechanism"]

    properties = tmp_path / "client.properties"
    properties.write_text(
        f"security.protocol={config['security_protocol']}\n"
        f"sasl.mechanism={config['sasl_mechanism']}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{config["sasl_plain_username"]}" password="{password}";\n'
    )
    cli = kbp_collect(
        "--bootstrap-server", bootstrap, "--group", group, "--out", str(tmp_path / "cli"),
        "--every", "0.5s", "--duration", "1s", "--command-config", str(properties),
    )  # fmt: skip
    _, err = cli.communicate(timeout=90)
    assert cli.returncode == 0, err
    assert read_dataset(tmp_path / "cli").lag["time"].nunique() >= 1
    assert password not in err

    for folder in (tmp_path / "api", tmp_path / "cli"):
        for path in Path(folder).rglob("*"):
            if path.is_file():
                assert password.encode() not in path.read_bytes(), path


def test_scram_wrong_password_is_a_clear_error(scram_sandbox):
    config = scram_sandbox.scram_client_config()
    bootstrap = config.pop("bootstrap_servers")
    config["sasl_plain_password"] = "not-the-password-41"
    with pytest.raises(KbpConnectionError) as info:
        LagCollector(bootstrap, bootstrap_timeout_ms=5000, **config)
    message = str(info.value)
    assert bootstrap in message
    assert "not-the-password-41" not in message
    assert re.search(r"credential|authenticat|password", message, re.IGNORECASE)
