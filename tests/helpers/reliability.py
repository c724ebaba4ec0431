"""Helpers shared by the reliability tests (``from tests.helpers.reliability import ...``).

``TRIED`` counts the generated inputs each property test actually ran (keyed
by target); ``FIGURES`` holds measured figures (long run, fault timings). The
conftest prints both at the end of the session and writes them to
``build/reliability/summary.json``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRIED: Counter[str] = Counter()
FIGURES: dict[str, object] = {}

ROOT = Path(__file__).resolve().parents[2]

#: Chromium flags that keep a headless browser from phoning home (see NOTES.md).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


# ---------------------------------------------------------------- Kafka workloads


def unique(prefix: str) -> str:
    """A name no other test in the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(
    bootstrap: str, name: str, partitions: int, *, replication: int = 1, **config: Any
) -> None:
    """Create a topic and wait until every partition has a leader."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **config)
    try:
        admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=replication)]
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            described = admin.describe_topics([name])
            parts = described[0].get("partitions") or [] if described else []
            if len(parts) == partitions and all(p.get("leader_id", -1) >= 0 for p in parts):
                return
            time.sleep(0.2)
        raise AssertionError(f"topic {name} has no leaders after 60 s")
    finally:
        admin.close()


def commit_offset(config: dict[str, Any], topic: str, group: str, offset: int) -> None:
    """Commit ``offset`` for partition 0 of ``topic`` as ``group``, without joining it.

    ``config`` holds kafka-python settings, ``bootstrap_servers`` included.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(group_id=group, enable_auto_commit=False, **config)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
    finally:
        consumer.close(autocommit=False)


def produce_and_commit(
    config: dict[str, Any], topic: str, group: str, *, messages: int, offset: int
) -> None:
    """Write ``messages`` to partition 0 of ``topic``, then :func:`commit_offset` ``offset``."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**config)
    for i in range(messages):
        producer.send(topic, value=b"%d" % i, partition=0)
    producer.flush(timeout=30)
    producer.close()
    commit_offset(config, topic, group, offset)


def list_topics_and_groups(bootstrap: str, **config: Any) -> tuple[set[str], set[str]]:
    """Every topic and every group on the cluster (internal ones included)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **config)
    try:
        topics = set(admin.list_topics())
        groups = {str(g["group_id"]) for g in admin.list_groups()}
        return topics, groups
    finally:
        admin.close()


@dataclass
class Commit:
    """One offset commit made by a workload consumer."""

    time: float
    client_id: str
    generation: int
    topic: str
    partition: int
    offset: int


@dataclass
class GroupWorkload:
    """A producer and a consumer group with manual commits, each commit logged.

    The consumers keep their own record of the truth: ``commits`` (every offset
    they committed), ``assignments`` (every rebalance callback) and
    ``generations`` (the generation each consumer saw at each poll). A tool
    that joined the group, or committed for it, would show up here.
    """

    bootstrap: str
    topic: str
    group: str
    consumers: int = 2
    produce_per_s: float = 200.0
    commit_every_s: float = 0.5
    consume_delay_s: float = 0.0
    client_config: dict[str, Any] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)
    assignments: list[tuple[float, str, str, list[tuple[str, int]]]] = field(default_factory=list)
    generations: dict[str, set[int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    produced: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._members: dict[str, Any] = {}

    # -- threads -----------------------------------------------------------------

    def _produce(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, linger_ms=5, **self.client_config
        )
        try:
            k = 0
            while not self._stop.is_set():
                producer.send(self.topic, key=str(k % 97).encode(), value=b"x" * 100)
                k += 1
                self.produced = k
                if self.produce_per_s:
                    self._stop.wait(1.0 / self.produce_per_s)
            producer.flush(timeout=10)
        except Exception as exc:  # noqa: BLE001 - faults are part of some tests
            self.errors.append(f"producer: {type(exc).__name__}: {exc}")
        finally:
            producer.close(timeout=5)

    def _consume(self, index: int) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer
        from kafka.structs import OffsetAndMetadata

        client_id = f"{self.group}-c{index}"
        workload = self
        # next offset to commit, kept from the records we were given: position()
        # and commit() without a timeout can block forever across a rebalance
        consumed: dict[Any, int] = {}

        def note(what: str, partitions: Any) -> None:
            names = sorted((tp.topic, tp.partition) for tp in partitions)
            entry = (time.time(), client_id, what, names)
            with workload._lock:
                workload.assignments.append(entry)

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                for tp in revoked:  # whoever owns it next commits from there
                    consumed.pop(tp, None)
                note("revoked", revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                note("assigned", assigned)

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=200,
            # a leader that assigned before it knew the topic re-joins within seconds
            metadata_max_age_ms=3000,
            **self.client_config,
        )
        # Know the topic before joining: a member that joins first assigns nothing
        # ("No partition metadata"), re-joins at once, and in CI such a member was
        # seen to hang in that re-join (kafka-python 3.0.12) until its session expired.
        known = time.monotonic() + 30
        while not consumer.partitions_for_topic(self.topic) and time.monotonic() < known:
            time.sleep(0.2)
        self._members[client_id] = consumer
        consumer.subscribe([self.topic], listener=Listener())
        last_commit = time.monotonic()
        try:
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=200)
                for tp, records in batches.items():
                    if records:
                        consumed[tp] = records[-1].offset + 1
                if self.consume_delay_s:
                    self._stop.wait(self.consume_delay_s)
                meta = consumer.group_metadata()
                generation = int(getattr(meta, "generation_id", -1))
                with self._lock:
                    self.generations.setdefault(client_id, set()).add(generation)
                if time.monotonic() - last_commit < self.commit_every_s:
                    continue
                last_commit = time.monotonic()
                owned = consumer.assignment()
                offsets = {
                    tp: OffsetAndMetadata(pos, "", -1)
                    for tp, pos in consumed.items()
                    if tp in owned
                }
                if not offsets:
                    continue
                try:
                    consumer.commit(offsets, timeout_ms=10_000)
                except Exception as exc:  # noqa: BLE001 - a rebalance may interrupt
                    self.errors.append(f"{client_id} commit: {type(exc).__name__}: {exc}")
                    continue
                now = time.time()
                with self._lock:
                    self.commits.extend(
                        Commit(now, client_id, generation, tp.topic, tp.partition, o.offset)
                        for tp, o in offsets.items()
                    )
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"{client_id}: {type(exc).__name__}: {exc}")
        finally:
            consumer.close(autocommit=False)

    # -- control -----------------------------------------------------------------

    def start(self, *, stable_timeout_s: float = 150.0) -> GroupWorkload:
        """Start producing and consuming; return once every consumer owns partitions.

        Members join one at a time, each once the ones before it own partitions,
        and each knows the topic's partitions before it joins (see ``_consume``).
        """
        deadline = time.monotonic() + stable_timeout_s
        producer = threading.Thread(target=self._produce, daemon=True)
        producer.start()
        self._threads = [producer]
        for index in range(self.consumers):
            thread = threading.Thread(target=self._consume, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
            self._wait_owned(index + 1, deadline)
        self.wait_stable(max(deadline - time.monotonic(), 30.0))
        return self

    def _wait_owned(self, members: int, deadline: float) -> None:
        """Wait until ``members`` consumers exist and each owns partitions (or the deadline)."""
        while time.monotonic() < deadline:
            owned = [m.assignment() for m in list(self._members.values())]
            if len(owned) >= members and all(owned):
                return
            time.sleep(0.2)

    def wait_stable(self, timeout_s: float = 90.0) -> None:
        """Wait until every consumer owns partitions and the group has committed."""
        deadline = time.monotonic() + timeout_s
        owned: dict[str, Any] = {}
        committed_by: set[str] = set()
        while time.monotonic() < deadline:
            with self._lock:
                committed_by = {c.client_id for c in self.commits}
            owned = {cid: m.assignment() for cid, m in list(self._members.items())}
            if committed_by and len(owned) == self.consumers and all(owned.values()):
                # one more commit round after the last rebalance
                time.sleep(2 * self.commit_every_s + 1)
                return
            time.sleep(0.2)
        with self._lock:
            recent = self.assignments[-6:]
            state = (
                f"owned={ {cid: len(tps) for cid, tps in owned.items()} }, "
                f"committed_by={sorted(committed_by)}, generations={self.generations}, "
                f"last rebalance callbacks={recent}, errors={self.errors}"
            )
        raise AssertionError(f"group {self.group} not stable after {timeout_s} s: {state}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def snapshot_of_truth(self) -> tuple[int, int, int]:
        """(number of commits, number of rebalance callbacks, number of generations seen)."""
        with self._lock:
            gens = set().union(*self.generations.values()) if self.generations else set()
            return len(self.commits), len(self.assignments), len(gens)

    def committed_offsets(self) -> dict[tuple[str, int], set[int]]:
        """Every offset the consumers committed, per partition."""
        out: dict[tuple[str, int], set[int]] = {}
        with self._lock:
            for c in self.commits:
                out.setdefault((c.topic, c.partition), set()).add(c.offset)
        return out

    def last_commits(self) -> dict[tuple[str, int], int]:
        """The latest offset committed per partition."""
        out: dict[tuple[str, int], tuple[float, int]] = {}
        with self._lock:
            for c in self.commits:
                key = (c.topic, c.partition)
                if key not in out or c.time >= out[key][0]:
                    out[key] = (c.time, c.offset)
        return {key: value[1] for key, value in out.items()}
