"""Many consumer groups over many partitions, made cheaply, for scale tests and benchmarks.

No consumer runs: topics are created in batches, every partition gets a few
records from one producer, and each group commits its offsets once through
the admin API (OffsetCommit with no member, one request per group). The
groups are then ``Empty`` with committed offsets, which is what a collector
reads on a big cluster's many quiet groups.

Layout: ``groups`` groups; ``groups_per_topic`` groups share each topic of
``partitions_per_topic`` partitions. Group ``g`` commits offset
``(g + p) % records`` on partition ``p``, so every row's lag is known:
``records - (g + p) % records``. With ``records=0`` nothing is produced and
every group commits offset 0 (lag 0): what a snapshot costs does not depend
on the lag values, and it spares producing to every partition of a big
cluster (20,000 partitions one by one took over an hour on the loaded
2-core machine).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import CoordinatorNotAvailableError
from kafka.structs import OffsetAndMetadata

__all__ = ["ManyGroups", "make_many_groups"]


def _commit_with_retry(admin: KafkaAdminClient, group: str, offsets: dict) -> None:
    # The first commit creates __consumer_offsets; its coordinator is not ready at once.
    deadline = time.monotonic() + 120
    while True:
        try:
            admin.alter_group_offsets(group, offsets)
            return
        except CoordinatorNotAvailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@dataclass(frozen=True)
class ManyGroups:
    """What ``make_many_groups`` created."""

    group_ids: tuple[str, ...]
    topics: tuple[str, ...]
    partitions_per_topic: int
    groups_per_topic: int
    records: int

    @property
    def partitions(self) -> int:
        """Partitions in all topics."""
        return len(self.topics) * self.partitions_per_topic

    @property
    def rows(self) -> int:
        """Rows of one snapshot of every group."""
        return len(self.group_ids) * self.partitions_per_topic

    def topic_of(self, index: int) -> str:
        """Topic that group number ``index`` commits on."""
        return self.topics[index // self.groups_per_topic]

    def expected_lag(self, index: int, partition: int) -> int:
        """Lag of group number ``index`` on ``partition``."""
        return self.records - _committed(index, partition, self.records)


def _committed(index: int, partition: int, records: int) -> int:
    """Offset group number ``index`` commits on ``partition`` (0 when nothing was produced)."""
    return (index + partition) % records if records else 0


def make_many_groups(
    bootstrap: str,
    *,
    groups: int,
    partitions_per_topic: int,
    groups_per_topic: int = 1,
    records: int = 5,
    prefix: str = "scale",
    topic_batch: int = 50,
) -> ManyGroups:
    """Create topics, a few records per partition, and groups that committed once.

    Parameters
    ----------
    bootstrap
        The sandbox's bootstrap servers.
    groups
        Number of groups (ids ``{prefix}-group-00000`` ...).
    partitions_per_topic
        Partitions of each topic.
    groups_per_topic
        Groups committing on the same topic.
    records
        Records produced to every partition (committed offsets are below it);
        0 produces nothing and commits offset 0 everywhere.
    prefix
        Names of topics and groups.
    topic_batch
        Topics per CreateTopics request.

    Returns
    -------
    ManyGroups
        The ids and layout.
    """
    n_topics = -(-groups // groups_per_topic)
    topics = tuple(f"{prefix}-t{t:05d}" for t in range(n_topics))
    group_ids = tuple(f"{prefix}-group-{g:05d}" for g in range(groups))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=120_000)
    try:
        for start in range(0, n_topics, topic_batch):
            batch = topics[start : start + topic_batch]
            admin.create_topics(
                [NewTopic(name, partitions_per_topic, 1) for name in batch], timeout_ms=120_000
            )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            described = admin.describe_topics(list(topics))
            ready = sum(
                1
                for topic in described
                if topic.get("error_code", 0) == 0
                and len(topic.get("partitions", ())) == partitions_per_topic
                and all(p.get("leader_id", -1) >= 0 for p in topic["partitions"])
            )
            if ready == n_topics:
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"only {ready} of {n_topics} topics got leaders in 300 s")

        if records:
            producer = KafkaProducer(
                bootstrap_servers=bootstrap, linger_ms=50, batch_size=1 << 16, acks=1
            )
            for topic in topics:
                for partition in range(partitions_per_topic):
                    for _ in range(records):
                        producer.send(topic, b"x", partition=partition)
            producer.flush(timeout=300)
            producer.close()

        for index, group in enumerate(group_ids):
            topic = topics[index // groups_per_topic]
            offsets = {
                TopicPartition(topic, p): OffsetAndMetadata(_committed(index, p, records), "", -1)
                for p in range(partitions_per_topic)
            }
            _commit_with_retry(admin, group, offsets)
    finally:
        admin.close()
    return ManyGroups(group_ids, topics, partitions_per_topic, groups_per_topic, records)
