"""Client-side and disk metrics: kafka-python's ``metrics()`` and DescribeLogDirs.

``client_metrics`` reads a live ``KafkaProducer`` or ``KafkaConsumer`` (the
client-wide metrics, not the per-topic or per-node ones) into canonical
METRICS rows. What kafka-python 3 reports, and what it does not:

=====================================  ============================================
canonical metric                       kafka-python 3 source (group / name)
=====================================  ============================================
``producer_request_latency_avg_ms``    producer-metrics / request-latency-avg
``producer_records_per_request_avg``   producer-metrics / records-per-request-avg
``producer_batch_size_avg``            producer-metrics / batch-size-avg (bytes)
``producer_record_queue_time_avg_ms``  producer-metrics / record-queue-time-avg
``producer_buffer_available_bytes``    not reported by kafka-python 3 (the Java
                                       client's buffer pool metric has no
                                       counterpart); absent from the frame
``consumer_records_lag_max``           consumer-fetch-manager-metrics / records-lag-max
``consumer_fetch_rate``                consumer-fetch-manager-metrics / fetch-rate
``consumer_records_consumed_rate``     consumer-fetch-manager-metrics / records-consumed-rate
=====================================  ============================================

Metrics that have no sample yet (NaN, or the ``-inf`` of an empty max) are
left out rather than written as numbers.

``log_dir_usage`` asks every broker for its log directories
(DescribeLogDirs): ``log_dir_used_bytes`` is the sum of the partition sizes;
``log_dir_total_bytes`` and ``log_dir_free_bytes`` come from the response
where the broker reports them (Kafka 3.3+, KIP-827).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from kbp_notebook.collect._kafka import admin_request
from kbp_notebook.errors import KbpInputError
from kbp_notebook.frames import empty_metrics_frame, validate_metrics_frame

__all__ = ["CLIENT_METRIC_SOURCES", "client_metrics", "log_dir_usage"]

#: canonical name -> (kafka-python metric group, metric name), per client kind.
CLIENT_METRIC_SOURCES: dict[str, dict[str, tuple[str, str]]] = {
    "producer": {
        "producer_request_latency_avg_ms": ("producer-metrics", "request-latency-avg"),
        "producer_records_per_request_avg": ("producer-metrics", "records-per-request-avg"),
        "producer_batch_size_avg": ("producer-metrics", "batch-size-avg"),
        "producer_record_queue_time_avg_ms": ("producer-metrics", "record-queue-time-avg"),
        "producer_buffer_available_bytes": ("producer-metrics", "buffer-available-bytes"),
    },
    "consumer": {
        "consumer_records_lag_max": ("consumer-fetch-manager-metrics", "records-lag-max"),
        "consumer_fetch_rate": ("consumer-fetch-manager-metrics", "fetch-rate"),
        "consumer_records_consumed_rate": (
            "consumer-fetch-manager-metrics",
            "records-consumed-rate",
        ),
    },
}

_PER_ENTITY_TAGS = ("topic", "node-id", "partition")


def _client_kind(client: Any) -> str:
    name = type(client).__name__.lower()
    if "producer" in name:
        return "producer"
    if "consumer" in name:
        return "consumer"
    raise KbpInputError(
        f"client_metrics expects a kafka-python KafkaProducer or KafkaConsumer, got "
        f"{type(client).__name__}.",
    )


def client_metrics(producer_or_consumer: Any, *, cluster: str = "default") -> pd.DataFrame:
    """Read a kafka-python client's own metrics into canonical METRICS rows.

    Parameters
    ----------
    producer_or_consumer
        A live ``kafka.KafkaProducer`` or ``kafka.KafkaConsumer``.
    cluster
        Your name for the cluster.

    Returns
    -------
    pandas.DataFrame
        A METRICS frame, one row per canonical metric the client reports,
        ``entity`` ``producer:<client-id>`` or ``consumer:<client-id>``, all at
        the time of the call. Call it periodically for a time series.

    Raises
    ------
    KbpInputError
        The object is not a kafka-python producer or consumer.

    Examples
    --------
    >>> from kafka import KafkaProducer  # doctest: +SKIP
    >>> producer = KafkaProducer(bootstrap_servers="127.0.0.1:9092")  # doctest: +SKIP
    >>> kbp.client_metrics(producer)  # doctest: +SKIP
    """
    kind = _client_kind(producer_or_consumer)
    metrics_method = getattr(producer_or_consumer, "metrics", None)
    if not callable(metrics_method):
        raise KbpInputError(
            f"{type(producer_or_consumer).__name__} has no metrics(); pass a kafka-python client."
        )
    raw = metrics_method(raw=True) or {}
    client_id = str(getattr(producer_or_consumer, "config", {}).get("client_id", "unknown"))
    # Client-wide metrics only: per-topic / per-node series share the same name.
    values: dict[tuple[str, str], float] = {}
    for metric_name, metric in raw.items():
        tags = getattr(metric_name, "tags", {}) or {}
        if any(tag in tags for tag in _PER_ENTITY_TAGS):
            continue
        try:
            value = float(metric.value())
        except (TypeError, ValueError):
            continue
        values[(metric_name.group, metric_name.name)] = value
    now = pd.Timestamp.now(tz="UTC")
    rows = [
        (canonical, values[source])
        for canonical, source in CLIENT_METRIC_SOURCES[kind].items()
        if source in values and math.isfinite(values[source])
    ]
    if not rows:
        return empty_metrics_frame()
    frame = pd.DataFrame(
        {
            "time": [now] * len(rows),
            "cluster": cluster,
            "entity": f"{kind}:{client_id}",
            "metric": [name for name, _ in rows],
            "value": [value for _, value in rows],
        }
    )
    return validate_metrics_frame(frame)


def log_dir_usage(
    bootstrap_servers: str | list[str], *, cluster: str = "default", **kafka_config: Any
) -> pd.DataFrame:
    """Read each broker's log-directory usage (DescribeLogDirs).

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,...]`` of the cluster.
    cluster
        Your name for the cluster.
    **kafka_config
        kafka-python client settings (security, timeouts), as for ``LagCollector``.

    Returns
    -------
    pandas.DataFrame
        A METRICS frame with ``entity`` ``logdir:<broker>:<path>`` and metrics
        ``log_dir_used_bytes`` (sum of partition sizes), plus
        ``log_dir_total_bytes`` and ``log_dir_free_bytes`` where the broker
        reports them.

    Raises
    ------
    KbpConnectionError
        The cluster cannot be reached.
    """
    def describe(admin: Any) -> tuple[pd.Timestamp, Any]:
        return pd.Timestamp.now(tz="UTC"), admin.describe_log_dirs()

    now, responses = admin_request(bootstrap_servers, kafka_config, "describing log dirs", describe)
    entities: list[str] = []
    metrics: list[str] = []
    values: list[float] = []
    for response in responses:
        broker = response.get("broker")
        for log_dir in response.get("log_dirs", ()):
            if log_dir.get("error_code", 0):
                continue  # an offline directory: nothing to measure
            entity = f"logdir:{broker}:{log_dir.get('log_dir')}"
            used = sum(
                int(part.get("partition_size", 0))
                for topic in log_dir.get("topics", ())
                for part in topic.get("partitions", ())
                if not part.get("is_future_key", False)
            )
            facts = [("log_dir_used_bytes", used)]
            total = log_dir.get("total_bytes", -1)
            usable = log_dir.get("usable_bytes", -1)
            if total is not None and total >= 0:
                facts.append(("log_dir_total_bytes", total))
            if usable is not None and usable >= 0:
                facts.append(("log_dir_free_bytes", usable))
            for metric, value in facts:
                entities.append(entity)
                metrics.append(metric)
                values.append(float(value))
    if not values:
        return empty_metrics_frame()
    frame = pd.DataFrame(
        {
            "time": [now] * len(values),
            "cluster": cluster,
            "entity": entities,
            "metric": metrics,
            "value": values,
        }
    )
    return validate_metrics_frame(frame)
