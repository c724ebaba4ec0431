"""LagExplorer: pick a cluster, group, topic, partition and time range; see lag and trend."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kbp_notebook import analysis, viz
from kbp_notebook.errors import KbpError
from kbp_notebook.lagdata import lag_totals
from kbp_notebook.units import format_count, format_rate, format_time
from kbp_notebook.widgets._base import ALL, Explorer, as_lag_frame, groups_by_latest_lag, message

__all__ = ["LagExplorer"]

_MAX_TIME_OPTIONS = 240
_MAX_OFFLINE_GROUPS = 20


class LagExplorer(Explorer):
    """Interactive lag over time with the trend overlay and a per-partition breakdown.

    Parameters
    ----------
    source
        A Dataset (its events are drawn) or a LAG frame.
    group
        The group selected first (default: the one with the largest final lag).

    Attributes
    ----------
    cluster, group, topic, partition
        Dropdowns (``(all)`` for every topic / partition).
    time_range
        SelectionRangeSlider over the snapshot times.
    trend
        Checkbox: overlay ``lag_trend`` (Theil-Sen) with its onset.
    breakdown
        Checkbox: one line per partition.
    figure
        The current ``go.Figure`` (also :meth:`static_figure`).

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> from kbp_notebook.widgets import LagExplorer
    >>> LagExplorer(kbp.load_sample("skewed-partition"))  # doctest: +SKIP
    """

    def __init__(self, source: Any, *, group: str | None = None) -> None:
        self.lag, self.events, self.dataset = as_lag_frame(source)
        lag = self.lag
        clusters = sorted(lag["cluster"].astype(str).unique())
        ranking = groups_by_latest_lag(lag)
        groups = [str(g) for g in ranking.index] + sorted(
            set(lag["group"].astype(str)) - {str(g) for g in ranking.index})
        self.cluster = widgets.Dropdown(options=clusters, value=clusters[0], description="cluster")
        self.group = widgets.Dropdown(options=groups, value=group if group in groups else groups[0],
                                      description="group")
        self.topic = widgets.Dropdown(options=[ALL], value=ALL, description="topic")
        self.partition = widgets.Dropdown(options=[ALL], value=ALL, description="partition")
        times = np.sort(lag["time"].unique())
        if len(times) > _MAX_TIME_OPTIONS:
            times = times[np.linspace(0, len(times) - 1, _MAX_TIME_OPTIONS).round().astype(int)]
        stamps = [pd.Timestamp(t) for t in times]
        self._times = stamps
        same_day = stamps[0].normalize() == stamps[-1].normalize()
        label = "%H:%M:%S" if same_day else "%m-%d %H:%M"
        self.time_range = widgets.SelectionRangeSlider(
            options=[(f"{t:{label}}", t) for t in stamps],
            index=(0, len(stamps) - 1), description="time", continuous_update=False,
            layout=widgets.Layout(width="520px"),
        )
        self.trend = widgets.Checkbox(value=True, description="trend", indent=False)
        self.breakdown = widgets.Checkbox(value=False, description="per partition", indent=False)
        controls = [self.cluster, self.group, self.topic, self.partition, self.time_range,
                    self.trend, self.breakdown]
        self.last_trend: Any = None
        super().__init__(controls)
        self._sync_choices()
        self.cluster.observe(self._on_key_change, names="value")
        self.group.observe(self._on_key_change, names="value")
        self.topic.observe(self._on_key_change, names="value")
        self._observe_all([self.partition, self.time_range, self.trend, self.breakdown])
        self.refresh()

    # -- choices -------------------------------------------------------------------

    def _sync_choices(self) -> None:
        lag = self.lag
        rows = lag[(lag["cluster"] == self.cluster.value) & (lag["group"] == self.group.value)]
        topics = [ALL, *sorted(rows["topic"].astype(str).unique())]
        with self.hold_trait_notifications():
            if self.topic.value not in topics:
                self.topic.value = ALL
            self.topic.options = topics
            if self.topic.value != ALL:
                rows = rows[rows["topic"] == self.topic.value]
            partitions = [ALL, *(str(p) for p in sorted(rows["partition"].unique()))]
            if self.partition.value not in partitions:
                self.partition.value = ALL
            self.partition.options = partitions

    def _on_key_change(self, _: Any) -> None:
        self._sync_choices()
        self.refresh()

    # -- selection -----------------------------------------------------------------

    def selection(self) -> pd.DataFrame:
        """Return the LAG rows the controls select."""
        lag = self.lag
        mask = (lag["cluster"] == self.cluster.value) & (lag["group"] == self.group.value)
        if self.topic.value != ALL:
            mask &= lag["topic"] == self.topic.value
        if self.partition.value != ALL:
            mask &= lag["partition"] == int(self.partition.value)
        start, end = self.time_range.value
        mask &= (lag["time"] >= start) & (lag["time"] <= end)
        rows: pd.DataFrame = lag[mask]
        return rows

    def _build_figure(self) -> tuple[go.Figure, str]:
        rows = self.selection()
        per_partition = self.breakdown.value or self.partition.value != ALL
        by = ("group", "topic")
        self.last_trend = None
        note = ""
        if self.trend.value and len(rows):
            try:
                self.last_trend = analysis.lag_trend(
                    rows, by=(*by, "partition") if per_partition else by)
            except KbpError as exc:
                note = f" Trend not shown: {exc}"
        events = None
        if self.events is not None and len(self.events):
            start, end = self.time_range.value
            events = self.events[(self.events["time"] >= start) & (self.events["time"] <= end)]
        title = f"Lag of {self.group.value}" + (
            f" on {self.topic.value}" if self.topic.value != ALL else "")
        figure = viz.plot_lag(rows, events=events, trend=self.last_trend, by=by,
                              partitions=per_partition, title=title)
        return figure, self._describe(rows) + (message(note, tone="warn") if note else "")

    def offline_figure(self) -> go.Figure:
        """Return the lag figure with plotly's own group dropdown (every group precomputed).

        Only the group is offered (the groups with the largest lag first, up to
        ``_MAX_OFFLINE_GROUPS``); the time range is plotly's zoom, the trend and the
        per-partition lines its legend.
        """
        groups = list(self.group.options)[:_MAX_OFFLINE_GROUPS]
        if self.group.value not in groups:
            groups[-1] = self.group.value
        return self._choices_figure(self.group, groups, label="group", kind="dropdown",
                                    name=viz.esc)

    def _describe(self, rows: pd.DataFrame) -> str:
        if rows.empty:
            return message("No snapshots in this selection.", tone="warn")
        totals = lag_totals(rows, by=())
        total, when = totals["lag"].iloc[-1], totals["time"].iloc[-1]
        text = f"{self.group.value}: {format_count(total)} messages behind at {format_time(when)}"
        tone = "info"
        if self.last_trend is not None and len(self.last_trend.table):
            table = self.last_trend.table
            growing = table[table["status"].astype(str) == "growing"]
            if len(growing):
                tone = "warn"
                worst = growing.sort_values("slope_per_s", ascending=False).iloc[0]
                text += f"; growing at {format_rate(worst['slope_per_s'], signed=True)}"
                if not pd.isna(worst.get("onset", pd.NaT)):
                    text += f" since {format_time(worst['onset'])}"
            else:
                text += "; not growing"
        return message(text, tone=tone)
