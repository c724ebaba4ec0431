"""Topic retention settings and partition sizes, for :func:`kbp_notebook.retention_risk`.

Read-only requests: Metadata, DescribeConfigs (the topics' ``retention.ms``,
``retention.bytes``, ``segment.bytes``, ``segment.ms``, ``cleanup.policy``
and each broker's ``log.retention.check.interval.ms``; one request for all
topics), DescribeLogDirs (each partition's size on its leader's disk; one
request per broker) and ListOffsets (the offsets those bytes span).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import pandas as pd

from kbp_notebook.collect._kafka import admin_request

__all__ = ["topic_configs"]

_TOPIC_KEYS = {
    "retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "segment.bytes": "segment_bytes",
    "segment.ms": "segment_ms",
    "cleanup.policy": "cleanup_policy",
}
_CHECK_KEY = "log.retention.check.interval.ms"


def _number(value: Any) -> float:
    """Read a config value as float; NaN for unlimited (negative) or unknown."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number if number >= 0 else float("nan")


def topic_configs(
    bootstrap_servers: str | list[str],
    topics: Iterable[str] | None = None,
    *,
    cluster: str = "default",
    **kafka_config: Any,
) -> pd.DataFrame:
    """Read the retention settings and sizes of topics' partitions.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,...]`` of the cluster.
    topics
        Topic names; ``None`` reads every topic (internal ones excluded).
    cluster
        Your name for the cluster.
    **kafka_config
        kafka-python client settings (security, timeouts), as for ``LagCollector``.

    Returns
    -------
    pandas.DataFrame
        One row per (topic, partition): ``cluster``, ``topic``, ``partition``,
        ``retention_ms``, ``retention_bytes``, ``segment_bytes``,
        ``segment_ms`` (float; NaN = unlimited), ``cleanup_policy``,
        ``retention_check_ms`` (the leader's broker setting), ``size_bytes``
        (the partition's bytes on its leader; NA if unknown) and the log
        start / end offsets read right after it (``size_log_start_offset``,
        ``size_log_end_offset``: the span those bytes hold).

    Raises
    ------
    KbpConnectionError
        The cluster cannot be reached.
    """
    answers = admin_request(
        bootstrap_servers, kafka_config, "reading topic configs", lambda a: _read(a, topics)
    )
    return _frame(answers, cluster)


class _Answers(NamedTuple):
    """What the brokers said, as kafka-python returns it."""

    leaders: dict[tuple[str, int], int]  # (topic, partition) -> leader broker id, -1 if none
    configs: dict[str, Any]  # describe_configs: {"topic": {...}, "broker": {...}}
    log_dirs: list[Any]  # describe_log_dirs, one answer per broker
    starts: dict[Any, Any]  # TopicPartition -> log start offset (ListOffsets -2)
    ends: dict[Any, Any]  # TopicPartition -> log end offset (ListOffsets -1)


def _read(admin: Any, topics: Iterable[str] | None) -> _Answers:
    """Ask Metadata, DescribeConfigs, DescribeLogDirs and ListOffsets (the only I/O here)."""
    from kafka import TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType

    names = (
        sorted(t for t in admin.list_topics() if not t.startswith("__"))
        if topics is None
        else list(dict.fromkeys(str(t) for t in topics))
    )
    described = admin.describe_topics(names) if names else []
    leaders = {
        (str(t["name"]), int(p["partition_index"])): int(p.get("leader_id", -1))
        for t in described
        if not t.get("error_code")
        for p in t.get("partitions", ())
    }
    brokers = sorted({b for b in leaders.values() if b >= 0})
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, t, dict.fromkeys(_TOPIC_KEYS)) for t in names
    ]
    resources += [
        ConfigResource(ConfigResourceType.BROKER, str(b), {_CHECK_KEY: None}) for b in brokers
    ]
    configs = admin.describe_configs(resources, config_filter="all") if resources else {}
    log_dirs = admin.describe_log_dirs(names) if names else []
    # the offsets the sizes cover, read right after them: bytes per offset
    led = [TopicPartition(t, p) for (t, p), leader in leaders.items() if leader >= 0]
    ends = admin.list_partition_offsets(dict.fromkeys(led, -1)) if led else {}
    starts = admin.list_partition_offsets(dict.fromkeys(led, -2)) if led else {}
    return _Answers(leaders, configs, log_dirs, starts, ends)


def _partition_sizes(log_dirs: list[Any]) -> dict[tuple[int, str, int], int]:
    """(broker, topic, partition) -> bytes on that broker's disk (future replicas left out)."""
    sizes: dict[tuple[int, str, int], int] = {}
    for response in log_dirs:
        for log_dir in response.get("log_dirs", ()):
            for topic in log_dir.get("topics", ()):
                for part in topic.get("partitions", ()):
                    if not part.get("is_future_key", False):
                        key = (
                            int(response["broker"]),
                            str(topic["name"]),
                            int(part["partition_index"]),
                        )
                        sizes[key] = int(part.get("partition_size", 0))
    return sizes


def _frame(answers: _Answers, cluster: str) -> pd.DataFrame:
    """One row per (topic, partition) from the brokers' answers."""
    from kafka import TopicPartition

    topic_values = answers.configs.get("topic", {})
    check = {
        int(broker): _number(values.get(_CHECK_KEY, {}).get("value"))
        for broker, values in answers.configs.get("broker", {}).items()
    }
    sizes = _partition_sizes(answers.log_dirs)
    starts, ends = answers.starts, answers.ends
    rows = []
    for (topic, partition), leader in sorted(answers.leaders.items()):
        values = topic_values.get(topic, {})
        row: dict[str, Any] = {"cluster": cluster, "topic": topic, "partition": partition}
        for name, column in _TOPIC_KEYS.items():
            raw = values.get(name, {}).get("value")
            row[column] = raw if column == "cleanup_policy" else _number(raw)
        row["retention_check_ms"] = check.get(leader, float("nan"))
        row["size_bytes"] = sizes.get((leader, topic, partition))
        tp = TopicPartition(topic, partition)
        row["size_log_start_offset"] = starts[tp].offset if tp in starts else None
        row["size_log_end_offset"] = ends[tp].offset if tp in ends else None
        rows.append(row)
    columns = [
        "cluster", "topic", "partition", *_TOPIC_KEYS.values(), "retention_check_ms",
        "size_bytes", "size_log_start_offset", "size_log_end_offset",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype(
        {"cluster": "string", "topic": "string", "partition": "int32", "cleanup_policy": "string",
         "size_bytes": "Int64", "size_log_start_offset": "Int64",
         "size_log_end_offset": "Int64", "retention_ms": "float64", "retention_bytes": "float64",
         "segment_bytes": "float64", "segment_ms": "float64", "retention_check_ms": "float64"}
    )  # fmt: skip
