"""DrainPlanner: what if we had N consumers, each this fast, and produce grew by x%."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kbp_notebook import analysis, viz
from kbp_notebook.errors import KbpError
from kbp_notebook.units import format_duration, format_rate
from kbp_notebook.widgets._base import Explorer, as_lag_frame, groups_by_latest_lag, message

__all__ = ["DrainPlanner"]


def _first(table: pd.DataFrame, names: tuple[str, ...]) -> Any:
    for name in names:
        if name in table.columns and len(table) and not pd.isna(table[name].iloc[0]):
            return table[name].iloc[0]
    return None


class DrainPlanner(Explorer):
    """Sliders for consumers, per-consumer rate, produce growth and target time.

    Shows the ETA to drain and the consumers / partitions needed, from
    ``capacity_plan(...).what_if(...)``; the figure is the drain forecast fan
    chart of the chosen scenario (``viz.plot_drain``). No maths here.

    Parameters
    ----------
    source
        A Dataset or a LAG frame.
    group
        The consumer group first selected (default: largest lag).
    target_s
        Initial "drain within" target in seconds.
    """

    def __init__(self, source: Any, *, group: str | None = None, target_s: float = 1800) -> None:
        self.lag, _, self.dataset = as_lag_frame(source)
        lag = self.lag
        ranking = groups_by_latest_lag(lag)
        groups = [str(g) for g in ranking.index] or sorted(lag["group"].astype(str).unique())
        self.group = widgets.Dropdown(options=groups, value=group if group in groups else groups[0],
                                      description="group")
        self.consumers = widgets.IntSlider(value=1, min=1, max=8, description="consumers",
                                           continuous_update=False)
        self.per_consumer_rate = widgets.FloatSlider(
            value=1.0, min=0.1, max=10.0, step=0.1, description="msg/s each",
            continuous_update=False, readout_format=",.1f")
        self.produce_growth = widgets.FloatSlider(
            value=0.0, min=-0.5, max=2.0, step=0.05, description="produce +",
            continuous_update=False, readout_format="+.0%")
        self.target_min = widgets.FloatSlider(
            value=target_s / 60, min=1, max=max(240.0, target_s / 60), step=1,
            description="target min", continuous_update=False, readout_format=".0f")
        self.plan: Any = None
        self.scenario: Any = None
        self.eta_s: float = float("nan")
        self._loading = False
        super().__init__([self.group, self.consumers, self.per_consumer_rate,
                          self.produce_growth, self.target_min])
        self._load_group()
        self.group.observe(self._on_group, names="value")
        self._observe_all([self.consumers, self.per_consumer_rate, self.produce_growth,
                           self.target_min])
        self.refresh()

    def _rows(self) -> pd.DataFrame:
        rows: pd.DataFrame = self.lag[self.lag["group"] == self.group.value]
        return rows

    def _load_group(self) -> None:
        """Fit the plan for the group and set the sliders to today's values."""
        self._loading = True
        try:
            self.plan = analysis.capacity_plan(self._rows(), target_s=self.target_min.value * 60)
            table = self.plan.table
            partitions = _first(table, ("partitions",))
            consumers = _first(table, ("consumers_now",))
            rate = _first(table, ("per_consumer_rate",))
            high = int(max(2 * (partitions or 4), 8))
            with self.hold_trait_notifications():
                self.consumers.max = high
                self.consumers.value = int(np.clip(consumers or 1, 1, high))
                if rate is not None and np.isfinite(float(rate)) and float(rate) > 0:
                    self.per_consumer_rate.max = float(rate) * 5
                    self.per_consumer_rate.step = max(float(rate) / 50, 0.01)
                    self.per_consumer_rate.min = self.per_consumer_rate.step
                    self.per_consumer_rate.value = float(rate)
                self.produce_growth.value = 0.0
        except KbpError as exc:
            self.plan = None
            self.readout.value = message(f"No plan for this group: {exc}", tone="warn")
        finally:
            self._loading = False

    def _on_group(self, _: Any) -> None:
        self._load_group()
        self.refresh()

    def refresh(self, *args: Any) -> None:
        """Recompute the scenario (skipped while sliders are being reset)."""
        if not self._loading:
            super().refresh(*args)

    def offline_figure(self) -> go.Figure:
        """Return the what-if figure with plotly's own consumers slider (every count precomputed).

        Offline the slider covers the number of consumers of the group shown;
        the other sliders (rate, growth, target) stay at the values rendered
        (the readout says them).
        """
        if self.plan is None:
            return super().offline_figure()
        counts = list(range(int(self.consumers.min), int(self.consumers.max) + 1))
        return self._choices_figure(self.consumers, counts, label="consumers", kind="slider")

    def _build_figure(self) -> tuple[go.Figure, str]:
        if self.plan is None:
            return viz.plot_lag(self._rows(), title=f"Lag of {self.group.value}"), \
                self.readout.value
        target_s = float(self.target_min.value) * 60
        try:
            self.scenario = self.plan.what_if(
                consumers=int(self.consumers.value),
                produce_growth=float(self.produce_growth.value),
                per_consumer_rate=float(self.per_consumer_rate.value),
                target_s=target_s,
            )
        except KbpError as exc:
            return viz.plot_lag(self._rows()), message(str(exc), tone="warn")
        table = self.scenario.table
        eta = _first(table, ("eta_s_at_plan",))
        self.eta_s = float(eta) if eta is not None else float("nan")
        needed = _first(table, ("consumers_needed",))
        partitions_needed = _first(table, ("partitions_needed",))
        partitions = _first(table, ("partitions",))
        note = _first(table, ("note",))
        parts = [f"{self.consumers.value} consumers × {format_rate(self.per_consumer_rate.value)}"
                 f", produce {self.produce_growth.value:+.0%}: "]
        if np.isfinite(self.eta_s):
            parts.append(f"ETA to drain {format_duration(self.eta_s)}")
            tone = "ok" if self.eta_s <= target_s else "warn"
        else:
            parts.append("does not drain (consumers slower than producers)")
            tone = "error"
        if needed is not None:
            parts.append(f"; {int(needed)} consumers needed to drain within "
                         f"{format_duration(target_s)}")
        if partitions_needed is not None and partitions is not None and \
                int(partitions_needed) > int(partitions):
            parts.append(f"; only {int(partitions)} partitions: add partitions "
                         f"(to {int(partitions_needed)}) or speed up each consumer")
        if note and not partitions_needed:
            parts.append(f" ({note})")
        figure = viz.plot_what_if(self.scenario, lag=self._rows(),
                                  title=f"What if: {self.group.value}")
        return figure, message("".join(parts), tone=tone)
