"""Collectors: the only code that talks to Kafka, Prometheus or disk.

Every collector returns frames that pass ``kbp_notebook.frames`` validation,
with timezone-aware UTC times. Nothing here computes statistics.

* ``LagCollector`` — read-only lag snapshots and recordings (kafka-python admin client).
* ``parse_consumer_groups`` — saved ``kafka-consumer-groups --describe`` output.
* ``PrometheusSource`` — broker metrics and exporter lag history from PromQL.
* ``client_metrics``, ``log_dir_usage`` — client-side and disk metrics.
* ``topic_configs`` — retention settings and partition sizes (for ``retention_risk``).
* ``read_client_properties`` — a ``--command-config`` file as kafka-python settings.
* ``load_sample``, ``list_samples``, ``sample_path`` — bundled recordings.
* ``read_dataset``, ``write_dataset``, ``DatasetAppender`` — Dataset folders
  (``read_dataset`` pushes group/topic/time filters into the Parquet scan).
* ``analyse_recording`` — run an analysis over a recording larger than memory,
  a chunk of whole groups at a time.

Names are imported lazily so that reading a sample does not import kafka-python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbp_notebook._lazy import lazy_exports
from kbp_notebook.collect.storage import DatasetAppender, read_dataset, write_dataset

_LAZY: dict[str, str] = {
    "LagCollector": "kbp_notebook.collect.kafka_lag",
    "parse_consumer_groups": "kbp_notebook.collect.consumer_groups_text",
    "PrometheusSource": "kbp_notebook.collect.prometheus",
    "client_metrics": "kbp_notebook.collect.clients",
    "log_dir_usage": "kbp_notebook.collect.clients",
    "topic_configs": "kbp_notebook.collect.topic_configs",
    "load_sample": "kbp_notebook.collect.samples",
    "read_client_properties": "kbp_notebook.collect.cli",
    "list_samples": "kbp_notebook.collect.samples",
    "sample_path": "kbp_notebook.collect.samples",
    "analyse_recording": "kbp_notebook.collect.streaming",
}

__all__ = [
    "DatasetAppender",
    "LagCollector",
    "PrometheusSource",
    "analyse_recording",
    "client_metrics",
    "list_samples",
    "load_sample",
    "log_dir_usage",
    "parse_consumer_groups",
    "read_client_properties",
    "read_dataset",
    "sample_path",
    "topic_configs",
    "write_dataset",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)


if TYPE_CHECKING:  # pragma: no cover
    from kbp_notebook.collect.cli import read_client_properties
    from kbp_notebook.collect.clients import client_metrics, log_dir_usage
    from kbp_notebook.collect.consumer_groups_text import parse_consumer_groups
    from kbp_notebook.collect.kafka_lag import LagCollector
    from kbp_notebook.collect.prometheus import PrometheusSource
    from kbp_notebook.collect.samples import list_samples, load_sample, sample_path
    from kbp_notebook.collect.streaming import analyse_recording
    from kbp_notebook.collect.topic_configs import topic_configs
