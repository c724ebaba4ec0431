"""Cluster faults during collection and live monitoring, on real brokers.

* Three brokers: the group's coordinator, then the leader of a watched
  partition, is killed (SIGKILL) mid-recording and brought back. The recorder
  keeps going, every row it wrote is true (committed offsets are ones the
  consumers committed, log-end offsets never go back), any hole in the
  schedule or any NA offset is explained by a ``collector_error`` event, and
  complete snapshots resume once the broker is back.
* One broker: the only broker stops under a ``LiveMonitor``; the readout says
  "cluster unreachable since …" (no freeze, no crash) and polling recovers.
* One broker frozen (SIGSTOP: sockets open, nothing answers) under a
  ``LiveMonitor`` and a recording: both notice within their timeouts, write
  no row for the frozen time, and carry on after SIGCONT.
* A rebalance storm while snapshots are taken: every snapshot is whole (each
  partition once, all of them) and consistent with the consumers' commit log.
"""

from __future__ import annotations

import re
import threading
import time

import pandas as pd
import pytest

from kbp_notebook.collect.kafka_lag import LagCollector
from kbp_notebook.collect.storage import read_dataset
from tests.helpers.reliability import (
    FIGURES,
    GroupWorkload,
    create_topic,
    produce_and_commit,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _coordinator(sandbox, group: str) -> int:
    done = sandbox.consumer_groups("--describe", "--group", group, "--state")
    match = re.search(r"\((\d+)\)", done.stdout)
    assert match, done.stdout + done.stderr
    return int(match.group(1))


def _leader(bootstrap: str, topic: str, partition: int) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        for part in admin.describe_topics([topic])[0]["partitions"]:
            if part["partition_index"] == partition:
                return int(part["leader_id"])
    finally:
        admin.close()
    raise AssertionError(f"no partition {partition} in {topic}")


def _check_rows_are_true(lag: pd.DataFrame, workload: GroupWorkload, group: str) -> None:
    ours = lag[lag["group"] == group]
    truth = workload.committed_offsets()
    for row in ours.dropna(subset=["committed_offset"]).itertuples():
        assert int(row.committed_offset) in truth[(row.topic, row.partition)], row
    for _, series in ours.sort_values("time").groupby(["topic", "partition"]):
        ends = series["log_end_offset"].dropna().astype("int64")
        assert ends.is_monotonic_increasing, "a log-end offset went back: invented or stale row"


def test_recording_survives_coordinator_and_leader_loss(sandbox3, tmp_path) -> None:
    bootstrap = sandbox3.bootstrap_servers
    topic, group = unique("rel-fault-topic"), unique("rel-fault-group")
    create_topic(bootstrap, topic, 6, replication=3)
    workload = GroupWorkload(bootstrap, topic, group, consumers=2, produce_per_s=100).start()
    out = tmp_path / "recording"
    every_s = 1.0
    result: dict[str, object] = {}

    def record() -> None:
        try:
            with LagCollector(bootstrap, cluster="faults", request_timeout_ms=5000) as collector:
                result["dataset"] = collector.record(
                    out, every=every_s, duration="150s", groups=[group], progress=False,
                    max_backoff_s=4,
                )  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    recorder = threading.Thread(target=record, daemon=True)
    outages: list[tuple[str, int, pd.Timestamp, pd.Timestamp]] = []
    try:
        recorder.start()
        time.sleep(8)
        for role in ("coordinator", "leader"):
            victim = _coordinator(sandbox3, group) if role == "coordinator" else None
            if victim is None:
                victim = _leader(bootstrap, topic, 0)
            down_at = pd.Timestamp.now(tz="UTC")
            sandbox3.stop_broker(victim, graceful=False)
            time.sleep(15)
            sandbox3.start_broker(victim)
            up_at = pd.Timestamp.now(tz="UTC")
            outages.append((role, victim, down_at, up_at))
            time.sleep(10)
        recorder.join(timeout=400)
        assert not recorder.is_alive(), "the recorder froze"
    finally:
        sandbox3.restart_stopped_brokers()
        workload.stop()
    assert "error" not in result, result.get("error")

    dataset = read_dataset(out)
    lag, events = dataset.lag, dataset.events
    times = pd.Series(sorted(lag["time"].unique()))
    errors = events[events["kind"] == "collector_error"]
    # kept going, and complete snapshots came back after each outage
    for role, victim, _down_at, up_at in outages:
        after = lag[lag["time"] > up_at]
        assert after["time"].nunique() >= 3, f"no snapshots after {role} {victim} returned"
        last = after[after["time"] == after["time"].max()]
        assert len(last) == 6 and last["log_end_offset"].notna().all(), last
    # every hole in the schedule and every NA offset is explained by an error event
    gaps = times.diff().dt.total_seconds()
    for index in gaps.index[gaps > 3 * every_s + 5]:
        start, end = times[index - 1], times[index]
        explained = errors[(errors["time"] >= start) & (errors["time"] <= end)]
        assert len(explained), f"unexplained hole in the recording from {start} to {end}"
    # (a lasting partial outage is one event, written at its first partial snapshot
    # or failed attempt: look back to the last complete snapshot)
    partial = lag.groupby("time")["log_end_offset"].apply(lambda s: bool(s.isna().any()))
    complete_times = partial.index[~partial.to_numpy()]
    for when in partial.index[partial.to_numpy()]:
        before = complete_times[complete_times < when]
        since = before.max() if len(before) else times.iloc[0] - pd.Timedelta(seconds=1)
        window = (errors["time"] >= since) & (errors["time"] <= when + pd.Timedelta(seconds=2))
        assert window.any(), f"NA offsets at {when} without an error event since {since}"
    _check_rows_are_true(lag, workload, group)
    FIGURES["faults: snapshots / error events / outages"] = (
        f"{len(times)} / {len(errors)} / {[(r, v) for r, v, _, _ in outages]}"
    )


def test_live_monitor_says_cluster_unreachable_and_recovers(sandbox) -> None:
    from kbp_notebook.widgets.live_monitor import LiveMonitor

    monitor = LiveMonitor(
        sandbox.bootstrap_servers, every_s=1.0, request_timeout_ms=3000, bootstrap_timeout_ms=3000
    )
    try:
        assert monitor.poll_once(), monitor.last_error
        sandbox.stop_broker(sandbox.broker_ids[0])
        try:
            started = time.monotonic()
            assert monitor.poll_once() is False
            assert time.monotonic() - started < 60, "the poll froze"
            assert "cluster unreachable since" in monitor.readout.value
            assert sandbox.bootstrap_servers in monitor.readout.value
            since = monitor.unreachable_since
            assert monitor.poll_once() is False
            assert monitor.unreachable_since == since  # the outage start is kept
        finally:
            sandbox.start_broker(sandbox.broker_ids[0])
        deadline = time.monotonic() + 90
        while not monitor.poll_once():
            assert time.monotonic() < deadline, monitor.last_error
            time.sleep(1)
        assert monitor.unreachable_since is None
        assert "unreachable" not in monitor.readout.value
    finally:
        monitor.close_collector()


def test_rebalance_storm_during_snapshots_gives_whole_consistent_rows(sandbox, tmp_path) -> None:
    bootstrap = sandbox.bootstrap_servers
    topic, group = unique("rel-rebalance-topic"), unique("rel-rebalance-group")
    create_topic(bootstrap, topic, 6)
    base = GroupWorkload(bootstrap, topic, group, consumers=1, commit_every_s=0.3).start()
    joiners: list[GroupWorkload] = []
    snapshots: list[pd.DataFrame] = []
    try:
        with LagCollector(bootstrap, cluster="rebalance") as collector:
            for round_ in range(4):  # members join and leave while we take snapshots
                extra = GroupWorkload(bootstrap, topic, group, consumers=1, produce_per_s=0,
                                      commit_every_s=0.3)  # fmt: skip
                extra._stop.clear()
                thread = threading.Thread(target=extra._consume, args=(round_ + 1,), daemon=True)
                extra._threads = [thread]
                thread.start()
                joiners.append(extra)
                end = time.monotonic() + 4
                while time.monotonic() < end:
                    snapshots.append(collector.snapshot([group]))
                extra.stop()
        time.sleep(1)
    finally:
        for extra in joiners:
            extra.stop()
        base.stop()
    assert len(snapshots) >= 8
    rebalances = len(base.assignments)
    assert rebalances >= 3, "the storm did not rebalance the group"
    truth: dict[tuple[str, int], set[int]] = {}
    for workload in (base, *joiners):
        for key, offsets in workload.committed_offsets().items():
            truth.setdefault(key, set()).update(offsets)
    for frame in snapshots:
        ours = frame[frame["group"] == group]
        assert sorted(ours["partition"]) == list(range(6)), "a half snapshot"
        assert (ours["time"] == ours["time"].iloc[0]).all()
        for row in ours.dropna(subset=["committed_offset"]).itertuples():
            assert int(row.committed_offset) in truth[(row.topic, row.partition)], row
    FIGURES["faults: rebalance storm snapshots / rebalance callbacks"] = (
        f"{len(snapshots)} / {rebalances}"
    )


def test_a_frozen_broker_freezes_neither_the_monitor_nor_the_recording(sandbox, tmp_path) -> None:
    # SIGSTOP: the broker's sockets stay open but nothing answers (a GC pause, a hung
    # disk, a VM stall): unlike a dead broker, only timeouts can tell
    import os
    import signal

    from kbp_notebook.widgets.live_monitor import LiveMonitor

    bootstrap = sandbox.bootstrap_servers
    topic, group = unique("rel-frozen-topic"), unique("rel-frozen-group")
    create_topic(bootstrap, topic, 1)
    produce_and_commit({"bootstrap_servers": bootstrap}, topic, group, messages=50, offset=20)
    out = tmp_path / "recording"
    result: dict[str, object] = {}

    def record() -> None:
        try:
            with LagCollector(bootstrap, cluster="frozen", request_timeout_ms=3000) as collector:
                collector.record(out, every=1.0, duration="45s", groups=[group], progress=False,
                                 max_backoff_s=2)  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    monitor = LiveMonitor(
        bootstrap, every_s=1.0, groups=[group], request_timeout_ms=3000, bootstrap_timeout_ms=3000
    )
    pid = sandbox.broker_pid(sandbox.broker_ids[0])
    assert pid is not None
    recorder = threading.Thread(target=record, daemon=True)
    try:
        assert monitor.poll_once(), monitor.last_error
        recorder.start()
        time.sleep(6)
        frozen_at = pd.Timestamp.now(tz="UTC")
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert monitor.poll_once() is False
            FIGURES["frozen broker: seconds until the monitor said unreachable"] = round(
                time.monotonic() - started, 1
            )
            assert time.monotonic() - started < 30, "the poll froze with the broker"
            assert "cluster unreachable since" in monitor.readout.value
            time.sleep(max(0.0, 14 - (time.monotonic() - started)))
        finally:
            os.kill(pid, signal.SIGCONT)
        thawed_at = pd.Timestamp.now(tz="UTC")
        deadline = time.monotonic() + 60
        while not monitor.poll_once():
            assert time.monotonic() < deadline, monitor.last_error
            time.sleep(1)
        assert monitor.unreachable_since is None
        recorder.join(timeout=180)
        assert not recorder.is_alive(), "the recorder froze"
    finally:
        os.kill(pid, signal.SIGCONT)  # never leave the shared broker stopped
        monitor.close_collector()
    assert "error" not in result, result.get("error")

    dataset = read_dataset(out)
    lag, events = dataset.lag, dataset.events
    errors = events[(events["kind"] == "collector_error") & (events["time"] >= frozen_at)]
    assert len(errors), "the freeze left no error event"
    assert (errors["time"] <= thawed_at + pd.Timedelta(seconds=10)).any()
    # the rows written are true: the committed offset and the log end never changed
    assert set(lag["committed_offset"].dropna().astype(int)) == {20}
    assert set(lag["log_end_offset"].dropna().astype(int)) == {50}
    after = lag[lag["time"] > thawed_at]
    assert after["time"].nunique() >= 3, "snapshots did not resume after the thaw"
    during = lag[(lag["time"] > frozen_at + pd.Timedelta(seconds=4)) & (lag["time"] < thawed_at)]
    FIGURES["frozen broker: snapshots before / during / after the freeze"] = (
        f"{lag[lag['time'] < frozen_at]['time'].nunique()} / {during['time'].nunique()} / "
        f"{after['time'].nunique()}"
    )
