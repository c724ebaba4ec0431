"""kbp_notebook: investigate Kafka consumer lag and backpressure from Jupyter.

The public names are re-exported here lazily, so ``import kbp_notebook``
(and ``import kbp_notebook.analysis``) does not pull in kafka-python, plotly
or ipywidgets until a name that needs them is used.

Examples
--------
>>> import kbp_notebook as kbp
>>> ds = kbp.load_sample("slow-consumer-then-scale-out")
>>> kbp.lag_trend(ds.lag).table  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbp_notebook._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # vocabulary
    "KbpError": "kbp_notebook.errors",
    "KbpConnectionError": "kbp_notebook.errors",
    "KbpInputError": "kbp_notebook.errors",
    "KbpDataError": "kbp_notebook.errors",
    "Dataset": "kbp_notebook.frames",
    "validate_lag_frame": "kbp_notebook.frames",
    "validate_metrics_frame": "kbp_notebook.frames",
    # collect
    "LagCollector": "kbp_notebook.collect",
    "parse_consumer_groups": "kbp_notebook.collect",
    "PrometheusSource": "kbp_notebook.collect",
    "client_metrics": "kbp_notebook.collect",
    "log_dir_usage": "kbp_notebook.collect",
    "load_sample": "kbp_notebook.collect",
    "list_samples": "kbp_notebook.collect",
    "sample_path": "kbp_notebook.collect",
    "read_dataset": "kbp_notebook.collect",
    "write_dataset": "kbp_notebook.collect",
    "analyse_recording": "kbp_notebook.collect",
    "topic_configs": "kbp_notebook.collect",
    # analysis
    "lag_trend": "kbp_notebook.analysis",
    "lag_status": "kbp_notebook.analysis",
    "time_lag": "kbp_notebook.analysis",
    "time_to_drain": "kbp_notebook.analysis",
    "retention_risk": "kbp_notebook.analysis",
    "capacity_plan": "kbp_notebook.analysis",
    "correlate": "kbp_notebook.analysis",
    "flush_latency_vs_lag": "kbp_notebook.analysis",
    "diagnose": "kbp_notebook.analysis",
    "incidents": "kbp_notebook.analysis",
}

__all__ = sorted([*_EXPORTS, "__version__"])


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from kbp_notebook.analysis import (
        capacity_plan,
        correlate,
        diagnose,
        flush_latency_vs_lag,
        incidents,
        lag_status,
        lag_trend,
        retention_risk,
        time_lag,
        time_to_drain,
    )
    from kbp_notebook.collect import (
        LagCollector,
        PrometheusSource,
        analyse_recording,
        client_metrics,
        list_samples,
        load_sample,
        log_dir_usage,
        parse_consumer_groups,
        read_dataset,
        sample_path,
        topic_configs,
        write_dataset,
    )
    from kbp_notebook.errors import KbpConnectionError, KbpDataError, KbpError, KbpInputError
    from kbp_notebook.frames import Dataset, validate_lag_frame, validate_metrics_frame
