"""CorrelationExplorer: does a broker metric move with lag, and which moves first."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from kbp_notebook import analysis, viz
from kbp_notebook.errors import KbpError
from kbp_notebook.frames import Dataset
from kbp_notebook.viz._style import empty_figure
from kbp_notebook.widgets._base import ALL, Explorer, message

__all__ = ["CorrelationExplorer"]

_PREFERRED = ("log_flush_time_ms_p99", "log_flush_time_ms_mean", "produce_total_time_ms_p99",
              "request_handler_idle_ratio")
#: Broker signals a report precomputes first (each choice is a full figure in the file).
_REPORT_FIRST = (*_PREFERRED, "fetch_consumer_total_time_ms_p99",
                 "produce_request_queue_time_ms_p99", "network_processor_idle_ratio",
                 "under_replicated_partitions", "messages_in_per_s", "bytes_in_per_s",
                 "bytes_out_per_s", "log_flush_rate")
#: At most this many metrics in a report's dropdown, so a report stays light to mail
#: (the live notebook offers every recorded metric).
REPORT_CHOICES = 12


class CorrelationExplorer(Explorer):
    """Pick a metric, the lag target, the shift window and the method; see r by shift.

    Calls ``flush_latency_vs_lag`` (any broker metric, against total lag or
    its growth) and draws ``viz.plot_correlation``.

    Parameters
    ----------
    dataset
        A Dataset with ``metrics``.
    metric
        Metric first selected (default: p99 log flush time when recorded).
    """

    def __init__(self, dataset: Dataset, *, metric: str | None = None) -> None:
        if not isinstance(dataset, Dataset):
            raise TypeError("CorrelationExplorer needs a Dataset (lag and metrics).")
        self.dataset = dataset
        metrics = sorted(dataset.metrics["metric"].astype(str).unique()) \
            if dataset.metrics is not None and len(dataset.metrics) else []
        default = metric if metric in metrics else next(
            (m for m in _PREFERRED if m in metrics), metrics[0] if metrics else None)
        self.metric = widgets.Dropdown(options=metrics, value=default, description="metric")
        self.target = widgets.Dropdown(options=[("total lag", "lag"),
                                                ("lag growth (msg/s)", "lag_growth")],
                                       value="lag", description="against")
        groups = [ALL, *sorted(dataset.lag["group"].astype(str).unique())]
        self.group = widgets.Dropdown(options=groups, value=ALL, description="group")
        self.max_shift_min = widgets.FloatSlider(value=5, min=0.5, max=30, step=0.5,
                                                 description="± shift min",
                                                 continuous_update=False)
        self.method = widgets.ToggleButtons(options=["spearman", "pearson"], value="spearman",
                                            style={"button_width": "90px"})
        self.result: Any = None
        controls = [self.metric, self.target, self.group, self.max_shift_min, self.method]
        super().__init__(controls)
        self._observe_all(controls)
        self.refresh()

    def offline_figure(self) -> go.Figure:
        """Return the correlation figure with plotly's own metric dropdown (each precomputed).

        At most ``REPORT_CHOICES`` metrics, broker latency and load signals first.
        """
        options = list(self.metric.options)
        first = [m for m in _REPORT_FIRST if m in options]
        metrics = (first + [m for m in options if m not in first])[:REPORT_CHOICES]
        if len(metrics) < 2:
            return super().offline_figure()
        return self._choices_figure(self.metric, metrics, label="metric", kind="dropdown",
                                    name=viz.esc)

    def _build_figure(self) -> tuple[go.Figure, str]:
        if self.metric.value is None:
            self.result = None
            return (empty_figure("Correlation", "This recording has no broker metrics."),
                    message("No metrics recorded: nothing to correlate.", tone="warn"))
        try:
            self.result = analysis.flush_latency_vs_lag(
                self.dataset,
                metric=self.metric.value,
                target=self.target.value,
                max_shift=f"{float(self.max_shift_min.value) * 60:.0f}s",
                group=None if self.group.value == ALL else self.group.value,
                method=self.method.value,
            )
        except KbpError as exc:
            self.result = None
            title = f"{self.metric.value} against {self.target.label}"
            return empty_figure(title, str(exc)), message(str(exc), tone="warn")
        lines = self.result.summary_lines()
        text = lines[0] if lines else ""
        tone = "warn" if self.result.significant else "info"
        return viz.plot_correlation(self.result), message(text, tone=tone)
