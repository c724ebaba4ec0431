"""Workload drivers shared by the scenarios: real kafka-python clients on the sandbox.

* ``RateProducer`` — a thread that produces at a target rate (messages/s),
  changeable while it runs; every message carries its send time (ns since
  the epoch) both in a ``sent_ns`` header and at the start of its value, so
  a consumer can tell how old a record is when it processes it.
* ``ConsumerWorker`` — one member of a consumer group in its own thread:
  poll, "process" each record for ``delay_s`` seconds, commit synchronously
  (the at-least-once loop most services run). It can be slowed down,
  stalled (stays a member, heartbeats, re-commits the same offsets, makes
  no progress), hung (stops polling: the group expels it once
  ``max_poll_interval_ms`` passes) and stopped (leaves the group).
* ``ConsumerGroupDriver`` — a set of workers in one group, with join/leave.
* ``DiskNeighbour`` — a bounded disk-heavy process (``dd`` with direct
  I/O) writing beside the broker's data, for flush-pressure windows.
* ``EventLog`` — the scenario's own ground truth (``time``, ``kind``, ``text``).

Everything here is scenario machinery, not part of the ``kbp_notebook``
package: it produces and consumes, which the collectors never do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import CommitFailedError, KafkaError
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata, TopicPartition

log = logging.getLogger("scenarios")

SENT_HEADER = "sent_ns"


def utc_now() -> pd.Timestamp:
    """Return the current time as a timezone-aware UTC timestamp."""
    return pd.Timestamp.now(tz="UTC")


def partition_for_key(key: bytes, partitions: int) -> int:
    """Return the partition the Java/kafka-python default partitioner picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# --------------------------------------------------------------------------- topics


def create_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    partitions: int,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
) -> None:
    """Create ``topic`` and wait until its metadata is visible."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="scenario-admin")
    try:
        admin.create_topics(
            [NewTopic(topic, partitions, replication_factor, topic_configs=dict(config or {}))],
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def alter_broker_config(
    bootstrap_servers: str, broker_ids: Iterable[int], settings: dict[str, str | None]
) -> None:
    """Set (or, with None, delete) dynamic per-broker settings on every broker given.

    Used for settings such as ``log.flush.interval.messages`` that Kafka lets
    an operator change at run time without a restart.
    """
    from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

    configs: dict[str, Any] = {
        key: (AlterConfigOp.DELETE, None) if value is None else (AlterConfigOp.SET, value)
        for key, value in settings.items()
    }
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="scenario-admin")
    try:
        resources = [
            ConfigResource(ConfigResourceType.BROKER, str(broker_id), configs=dict(configs))
            for broker_id in broker_ids
        ]
        result = admin.alter_configs(resources, incremental=True)
    finally:
        admin.close()
    failed = {
        name: outcome
        for by_name in result.values()
        for name, outcome in by_name.items()
        if getattr(outcome, "errno", 0)
    }
    if failed:
        raise RuntimeError(f"altering broker configs {settings} failed: {failed}")


def prefill(
    bootstrap_servers: str,
    topic: str,
    *,
    partitions: int,
    per_partition: int,
    value_bytes: int = 200,
) -> int:
    """Write ``per_partition`` messages to every partition of ``topic`` as fast as it goes.

    The history a topic holds before the recording starts (yesterday's
    traffic), so that an offset reset has something to replay. Returns the
    number of messages written.
    """
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers, client_id="scenario-prefill", acks=1, linger_ms=20
    )
    padding = b"x" * max(0, value_bytes - 24)
    try:
        for index in range(per_partition):
            for partition in range(partitions):
                now_ns = time.time_ns()
                producer.send(
                    topic,
                    value=b"%d|" % now_ns + padding,
                    key=b"history-%d" % index,
                    partition=partition,
                    headers=[(SENT_HEADER, str(now_ns).encode())],
                )
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    return per_partition * partitions


# --------------------------------------------------------------------------- events


class EventLog:
    """Ground-truth events written by a scenario as they happen (thread-safe)."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def mark(self, kind: str, text: str, *, time: pd.Timestamp | None = None) -> pd.Timestamp:
        """Record that ``kind`` happened now (or at ``time``); return the timestamp."""
        when = utc_now() if time is None else time
        with self._lock:
            self._rows.append({"time": when, "kind": kind, "text": text})
        log.info("event %-22s %s", kind, text)
        return when

    def first(self, kind: str) -> pd.Timestamp | None:
        """Return the time of the first event of ``kind``, or None."""
        with self._lock:
            times = [row["time"] for row in self._rows if row["kind"] == kind]
        return min(times) if times else None

    def frame(self) -> pd.DataFrame:
        """Return the events as an events frame (``time``, ``kind``, ``text``)."""
        with self._lock:
            rows = list(self._rows)
        frame = pd.DataFrame(rows, columns=["time", "kind", "text"])
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        return frame.astype({"kind": "string", "text": "string"})


# --------------------------------------------------------------------------- producer

KeyFunction = Callable[[int], bytes | None]


def spread_keys(distinct: int = 1000) -> KeyFunction:
    """Return a key function cycling over ``distinct`` keys (spreads evenly over partitions)."""

    def key(sequence: int) -> bytes:
        return b"key-%d" % (sequence % distinct)

    return key


def skewed_keys(
    hot_key: bytes, hot_share: float, *, distinct: int = 1000, seed: int = 7
) -> KeyFunction:
    """Return a key function sending ``hot_share`` of the messages to ``hot_key``."""
    rng = random.Random(seed)

    def key(sequence: int) -> bytes:
        if rng.random() < hot_share:
            return hot_key
        return b"key-%d" % (sequence % distinct)

    return key


class RateProducer:
    """Produce to ``topic`` at ``rate_per_s`` messages per second from a background thread.

    The rate is integrated piecewise, so ``set_rate`` takes effect at once
    without catching up or losing the messages owed so far.

    Parameters
    ----------
    bootstrap_servers
        Sandbox bootstrap address.
    topic
        Target topic (must exist).
    rate_per_s
        Initial target rate.
    client_id
        Producer client id (appears in client metrics as ``producer:<client_id>``).
    value_bytes
        Size of each message value (send time, then padding).
    keys
        Key for each sequence number; default spreads over 1000 keys.
    producer_config
        Extra ``KafkaProducer`` settings.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        rate_per_s: float,
        client_id: str = "scenario-producer",
        value_bytes: int = 200,
        keys: KeyFunction | None = None,
        producer_config: dict[str, Any] | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "acks": 1,
            "linger_ms": 5,
            **(producer_config or {}),
        }
        self.topic = topic
        self.client_id = client_id
        self.producer = KafkaProducer(**config)
        self._keys = keys or spread_keys()
        self._padding = b"x" * max(0, value_bytes - 24)
        self._rate = float(rate_per_s)
        self._lock = threading.Lock()
        self._owed_since = time.monotonic()
        self._owed_base = 0.0
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"producer-{client_id}", daemon=True)

    @property
    def rate_per_s(self) -> float:
        """Current target rate in messages per second."""
        return self._rate

    def start(self) -> RateProducer:
        """Start producing."""
        self._owed_since = time.monotonic()
        self._thread.start()
        return self

    def set_rate(self, rate_per_s: float) -> None:
        """Change the target rate from now on."""
        with self._lock:
            now = time.monotonic()
            self._owed_base += self._rate * (now - self._owed_since)
            self._owed_since = now
            self._rate = float(rate_per_s)

    def _owed(self) -> float:
        with self._lock:
            return self._owed_base + self._rate * (time.monotonic() - self._owed_since)

    def _on_error(self, _exc: BaseException) -> None:
        self.errors += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            due = int(self._owed()) - self.sent
            # Cap one tick's catch-up so a stalled broker does not trigger a flood afterwards.
            for _ in range(min(due, 5000)):
                now_ns = time.time_ns()
                value = b"%d|" % now_ns + self._padding
                try:
                    future = self.producer.send(
                        self.topic,
                        value=value,
                        key=self._keys(self.sent),
                        headers=[(SENT_HEADER, str(now_ns).encode())],
                    )
                    future.add_errback(self._on_error)
                except KafkaError:
                    self.errors += 1
                self.sent += 1
            self._stop.wait(0.01)

    def stop(self) -> None:
        """Stop producing, flush what is buffered and close the client."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with contextlib.suppress(KafkaError):
            self.producer.flush(timeout=10)
        self.producer.close(timeout=5)


# --------------------------------------------------------------------------- consumers

RUNNING, STALLED, HUNG = "running", "stalled", "hung"


class ConsumerWorker:
    """One consumer-group member in its own thread.

    The loop is poll, process (``delay_s`` per record, slept in one piece per
    batch), commit synchronously. ``stall()`` keeps the member in the group
    (it keeps polling with its partitions paused, so it heartbeats and is
    never kicked out) and re-commits the same offsets every few seconds, as
    a consumer wedged on a poison record does: the committed offsets stand
    still while the log moves on. ``stop()`` leaves the group.

    Parameters
    ----------
    bootstrap_servers, topic, group
        Where to consume from and as which group.
    client_id
        Consumer client id (``consumer:<client_id>`` in client metrics).
    delay_s
        Processing time per record, in seconds.
    max_poll_records
        Records per poll, i.e. per commit.
    consumer_config
        Extra ``KafkaConsumer`` settings.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        group: str,
        *,
        client_id: str,
        delay_s: float = 0.0,
        max_poll_records: int = 100,
        consumer_config: dict[str, Any] | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "group_id": group,
            "client_id": client_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": max_poll_records,
            "session_timeout_ms": 10_000,
            "heartbeat_interval_ms": 2_000,
            **(consumer_config or {}),
        }
        self.topic = topic
        self.group = group
        self.client_id = client_id
        self.delay_s = float(delay_s)
        self.consumer = KafkaConsumer(**config)
        self.consumer.subscribe([topic])
        self.mode = RUNNING
        self.consumed = 0
        self.commits = 0
        self.commit_failures = 0
        self.last_record_age_s: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"consumer-{client_id}", daemon=True)

    def start(self) -> ConsumerWorker:
        """Join the group and start consuming."""
        self._thread.start()
        return self

    def set_delay(self, delay_s: float) -> None:
        """Change the per-record processing time from the next batch on."""
        self.delay_s = float(delay_s)

    def stall(self) -> None:
        """Stop making progress while staying a member of the group."""
        self.mode = STALLED

    def hang(self) -> None:
        """Stop calling ``poll`` (a handler stuck in a call that never returns).

        The heartbeat thread goes on until ``max_poll_interval_ms`` passes
        without a poll; then the client leaves the group and the group
        rebalances, the way ``max.poll.interval.ms`` expulsions happen.
        """
        self.mode = HUNG

    def resume(self) -> None:
        """Leave the stalled state."""
        self.mode = RUNNING

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata] | None = None) -> None:
        try:
            self.consumer.commit(offsets)
            self.commits += 1
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance in flight: the next owner resumes from the last commit.
            self.commit_failures += 1
            log.debug("%s: commit failed (%s)", self.client_id, exc)

    def _stalled_step(self, last_recommit: float) -> float:
        assigned = self.consumer.assignment()
        if assigned:
            self.consumer.pause(*assigned)
        self.consumer.poll(timeout_ms=500)
        now = time.monotonic()
        if assigned and now - last_recommit >= 5.0:
            committed = {}
            for tp in assigned:
                offset = self.consumer.committed(tp)
                if offset is not None:
                    committed[tp] = OffsetAndMetadata(offset, "", -1)
            if committed:
                self._commit(committed)
            return now
        return last_recommit

    def _run(self) -> None:
        last_recommit = 0.0
        while not self._stop.is_set():
            if self.mode == HUNG:
                self._stop.wait(0.5)
                continue
            if self.mode == STALLED:
                last_recommit = self._stalled_step(last_recommit)
                continue
            if self.consumer.paused():
                self.consumer.resume(*self.consumer.paused())
            try:
                batch = self.consumer.poll(timeout_ms=500)
            except KafkaError as exc:
                log.debug("%s: poll failed (%s)", self.client_id, exc)
                continue
            records = [record for part in batch.values() for record in part]
            if not records:
                continue
            if self.delay_s > 0:
                self._stop.wait(self.delay_s * len(records))
            self.consumed += len(records)
            self._commit()
            sent_ns = _sent_ns(records[-1])
            if sent_ns is not None:
                self.last_record_age_s = (time.time_ns() - sent_ns) / 1e9

    def stop(self) -> None:
        """Leave the group (LeaveGroup is sent on close) and end the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        with contextlib.suppress(KafkaError):
            self.consumer.close(autocommit=False)


def _sent_ns(record: Any) -> int | None:
    for name, value in record.headers or ():
        if name == SENT_HEADER:
            return int(value)
    return None


@dataclass
class ConsumerGroupDriver:
    """A consumer group made of ``ConsumerWorker`` threads, with join and leave."""

    bootstrap_servers: str
    topic: str
    group: str
    delay_s: float = 0.0
    max_poll_records: int = 100
    consumer_config: dict[str, Any] = field(default_factory=dict)
    workers: list[ConsumerWorker] = field(default_factory=list)
    _serial: int = 0

    def add(self, count: int = 1) -> list[ConsumerWorker]:
        """Start ``count`` more members; return them."""
        added = []
        for _ in range(count):
            self._serial += 1
            worker = ConsumerWorker(
                self.bootstrap_servers,
                self.topic,
                self.group,
                client_id=f"{self.group}-c{self._serial}",
                delay_s=self.delay_s,
                max_poll_records=self.max_poll_records,
                consumer_config=self.consumer_config,
            )
            added.append(worker.start())
        self.workers.extend(added)
        return added

    def set_delay(self, delay_s: float) -> None:
        """Change every member's per-record processing time."""
        self.delay_s = float(delay_s)
        for worker in self.workers:
            worker.set_delay(delay_s)

    def remove(self, worker: ConsumerWorker) -> None:
        """Make one member leave the group."""
        worker.stop()
        self.workers.remove(worker)

    def wait_assigned(self, timeout_s: float = 30.0) -> bool:
        """Wait until every member has partitions (or the group has settled)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.workers and all(w.consumer.assignment() for w in self.workers):
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        """Make every member leave."""
        for worker in list(self.workers):
            self.remove(worker)

    @property
    def consumed(self) -> int:
        """Records processed by members still in the group."""
        return sum(worker.consumed for worker in self.workers)


# --------------------------------------------------------------------------- disk neighbour


class DiskNeighbour:
    """A bounded disk-heavy neighbour: ``dd`` writers in a loop beside the broker's data.

    Each writer writes a file of ``file_mib`` MiB to ``directory`` (put it on
    the broker's data disk), deletes it and starts again, until ``stop()`` or
    ``max_seconds``. The first ``direct_writers`` stream with direct I/O
    (``oflag=direct``); the others fill the page cache and then fsync it all
    (``conv=fsync``: a backup, a compaction, a database checkpoint). The
    latter is what hurts a broker that fsyncs: on ext4 (``data=ordered``) a
    small fsync has to wait for the journal commit that carries the
    neighbour's dirty data. On this machine four such writers raised the p99
    of a small append+fsync from ~15-130 ms (depending on what else ran) to
    ~450 ms while they ran. Nothing is left behind.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        writers: int = 4,
        direct_writers: int = 0,
        file_mib: int = 512,
        max_seconds: float = 300.0,
    ) -> None:
        self.directory = Path(directory)
        self.writers = writers
        self.direct_writers = direct_writers
        self.file_mib = file_mib
        self.max_seconds = max_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self.bytes_written = 0

    def start(self) -> DiskNeighbour:
        """Start the writers."""
        if shutil.which("dd") is None:
            raise RuntimeError(
                "dd is not installed; the flush-pressure neighbour needs coreutils dd"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.max_seconds
        for index in range(self.writers):
            thread = threading.Thread(
                target=self._loop,
                args=(index, deadline),
                name=f"disk-neighbour-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self, index: int, deadline: float) -> None:
        target = self.directory / f"neighbour-{os.getpid()}-{index}.bin"
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                flags = ["oflag=direct"] if index < self.direct_writers else ["conv=fsync"]
                command = [
                    "dd", "if=/dev/zero", f"of={target}", "bs=4M",
                    f"count={max(1, self.file_mib // 4)}", *flags, "status=none",
                ]  # fmt: skip
                with self._lock:
                    if self._stop.is_set():
                        break
                    proc = subprocess.Popen(command)
                    self._procs.append(proc)
                proc.wait()
                with self._lock:
                    self._procs.remove(proc)
                if proc.returncode == 0:
                    self.bytes_written += self.file_mib * 1024 * 1024
                target.unlink(missing_ok=True)
        finally:
            target.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the writers and delete their files."""
        self._stop.set()
        with self._lock:
            for proc in self._procs:
                proc.terminate()
        for thread in self._threads:
            thread.join(timeout=30)


def stop_all(things: Iterable[Any]) -> None:
    """Call ``stop()`` on each, ignoring errors (used on the way out of a scenario)."""
    for thing in things:
        try:
            thing.stop()
        except Exception:  # noqa: BLE001 - best effort shutdown
            log.exception("stopping %r failed", thing)
