"""Pure analysis: tidy frames in, frozen result objects out.

Nothing here imports kafka-python, plotly, ipywidgets or ``collect``; a
result's ``.plot()`` imports ``kbp_notebook.viz`` only when called. Names are
re-exported lazily from their modules.
"""

from __future__ import annotations

from kbp_notebook._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "lag_trend": "kbp_notebook.analysis.trend",
    "LagTrend": "kbp_notebook.analysis.trend",
    "lag_status": "kbp_notebook.analysis.status",
    "LagStatus": "kbp_notebook.analysis.status",
    "time_lag": "kbp_notebook.analysis.lag_seconds",
    "TimeLag": "kbp_notebook.analysis.lag_seconds",
    "time_to_drain": "kbp_notebook.analysis.drain",
    "retention_risk": "kbp_notebook.analysis.retention",
    "RetentionRisk": "kbp_notebook.analysis.retention",
    "DrainForecast": "kbp_notebook.analysis.drain",
    "capacity_plan": "kbp_notebook.analysis.capacity",
    "CapacityPlan": "kbp_notebook.analysis.capacity",
    "correlate": "kbp_notebook.analysis.correlation",
    "Correlation": "kbp_notebook.analysis.correlation",
    "flush_latency_vs_lag": "kbp_notebook.analysis.correlation",
    "diagnose": "kbp_notebook.analysis.diagnosis",
    "incidents": "kbp_notebook.analysis.incident_model",
    "Incidents": "kbp_notebook.analysis.incident_model",
    "Diagnosis": "kbp_notebook.analysis.diagnosis",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
