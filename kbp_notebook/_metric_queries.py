"""Our metric names as PromQL: the one owner of the mapping (private).

* :data:`BROKER_METRIC_QUERIES`: each canonical broker metric of DESIGN.md
  (``log_flush_time_ms_p99``, ...) -> PromQL candidates over the series the
  Prometheus JMX exporter writes, tried in order until one returns data. The
  first candidate of each matches the sandbox's exporter rules
  (``sandbox_assets/jmx-exporter.yaml``).
* :data:`LAG_EXPORTER_SCHEMES`: the metric and label names of the lag
  exporters people run (``kafka_exporter``, ``kafka-lag-exporter``,
  ``kminion``), read by ``PrometheusSource.lag`` and written by
  ``RemoteWriter``.

``collect.prometheus`` (reading), ``collect.remote_write`` (writing) and the
sandbox's documentation use these tables; none spells the names again.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BROKER_METRIC_QUERIES", "LAG_EXPORTER_SCHEMES", "ExporterScheme"]

# Series names accepted with and without the ``_total`` suffix the 1.x JMX exporter adds.
_C = "(_total)?"

#: canonical metric -> PromQL candidates, tried in order until one returns data.
#: ``{w}`` is the rate window, ``{by}`` the label(s) naming the broker.
BROKER_METRIC_QUERIES: dict[str, tuple[str, ...]] = {
    "messages_in_per_s": (
        # JMX exporter 1.x with counter rules (the sandbox): ..._messagesin_total
        'sum by ({by}) (rate({{__name__=~"kafka_server_brokertopicmetrics_messagesin(_total)?",'
        'topic=""}}[{w}]))',
        'sum by ({by}) (rate({{__name__=~"kafka_server_brokertopicmetrics_messagesinpersec_count'
        + _C
        + '",topic=""}}[{w}]))',
        'sum by ({by}) (rate({{__name__=~"kafka_server_brokertopicmetrics_messagesinpersec_count'
        + _C
        + '"}}[{w}]))',
        "sum by ({by}) (messages_in_per_s)",
    ),
    "bytes_in_per_s": (
        # JMX exporter 1.x with counter rules (the sandbox): ..._bytesin_total
        'sum by ({by}) (rate({{__name__=~"kafka_server_brokertopicmetrics_bytesin(_total)?",'
        'topic=""}}[{w}]))',
        'sum by ({by}) (rate({{__name__=~"kafka_server_brokertopicmetrics_bytesinpersec_count'
        + _C
        + '",topic=""}}[{w}]))',
        'sum by ({by}) (rate({{__name__=~"kafka_server_brokertopicmetrics_bytesinpersec_count'
        + _C
        + '"}}[{w}]))',
    ),
    "bytes_out_per_s": (
        # JMX exporter 1.x with counter rules (the sandbox): ..._bytesout_total
        'sum by ({by}) (rate({{__name__=~"kafka_server_brokertopicmetrics_bytesout(_total)?",'
        'topic=""}}[{w}]))',
        'sum by ({by}) (rate({{__name__=~"kafka_server_brokertopicmetrics_bytesoutpersec_count'
        + _C
        + '",topic=""}}[{w}]))',
        'sum by ({by}) (rate({{__name__=~"kafka_server_brokertopicmetrics_bytesoutpersec_count'
        + _C
        + '"}}[{w}]))',
    ),
    "log_flush_rate": (
        'sum by ({by}) (rate({{__name__=~"kafka_log_logflushstats_logflushrateandtimems_count'
        + _C
        + '"}}[{w}]))',
    ),
    "log_flush_time_ms_mean": (
        # mean over the window from the timer's running sum and count
        'sum by ({by}) (rate({{__name__=~"kafka_log_logflushstats_logflushrateandtimems_sum'
        + _C
        + '"}}[{w}])) / sum by ({by}) (rate({{__name__=~'
        '"kafka_log_logflushstats_logflushrateandtimems_count' + _C + '"}}[{w}]))',
        "max by ({by}) (kafka_log_logflushstats_logflushrateandtimems_mean)",
        'max by ({by}) (kafka_log_logflushstats_logflushrateandtimems{{quantile=~"0.50?"}})',
    ),
    "log_flush_time_ms_p99": (
        'max by ({by}) (kafka_log_logflushstats_logflushrateandtimems{{quantile="0.99"}})',
    ),
    "under_replicated_partitions": (
        "sum by ({by}) (kafka_server_replicamanager_underreplicatedpartitions)",
        "sum by ({by}) (kafka_server_replicamanager_underreplicatedpartitions_value)",
    ),
    "produce_total_time_ms_p99": (
        "max by ({by}) (kafka_network_requestmetrics_totaltimems"
        '{{request="Produce",quantile="0.99"}})',
    ),
    "fetch_consumer_total_time_ms_p99": (
        "max by ({by}) (kafka_network_requestmetrics_totaltimems"
        '{{request="FetchConsumer",quantile="0.99"}})',
    ),
    "produce_request_queue_time_ms_p99": (
        "max by ({by}) (kafka_network_requestmetrics_requestqueuetimems"
        '{{request="Produce",quantile="0.99"}})',
    ),
    "request_handler_idle_ratio": (
        # The gauge is an average since start; its _count is idle nanoseconds.
        "sum by ({by}) (rate({{__name__=~"
        '"kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_count'
        + _C
        + '"}}[{w}])) / 1e9',
        "max by ({by}) "
        "(kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent_oneminuterate)",
    ),
    "network_processor_idle_ratio": (
        "max by ({by}) (kafka_network_socketserver_networkprocessoravgidlepercent)",
        "max by ({by}) (kafka_network_socketserver_networkprocessoravgidlepercent_value)",
    ),
}


@dataclass(frozen=True)
class ExporterScheme:
    """Metric and label names of one lag exporter."""

    committed: str | None
    log_end: str
    lag: str
    group_label: str
    topic_label: str
    partition_label: str
    cluster_label: str | None = None


LAG_EXPORTER_SCHEMES: dict[str, ExporterScheme] = {
    "kafka_exporter": ExporterScheme(
        committed="kafka_consumergroup_current_offset",
        log_end="kafka_topic_partition_current_offset",
        lag="kafka_consumergroup_lag",
        group_label="consumergroup",
        topic_label="topic",
        partition_label="partition",
    ),
    "kafka-lag-exporter": ExporterScheme(
        committed="kafka_consumergroup_group_offset",
        log_end="kafka_partition_latest_offset",
        lag="kafka_consumergroup_group_lag",
        group_label="group",
        topic_label="topic",
        partition_label="partition",
        cluster_label="cluster_name",
    ),
    "kminion": ExporterScheme(
        committed=None,  # kminion exports lag and high water marks, not committed offsets
        log_end="kminion_kafka_topic_partition_high_water_mark",
        lag="kminion_kafka_consumer_group_topic_partition_lag",
        group_label="group_id",
        topic_label="topic_name",
        partition_label="partition_id",
    ),
}
