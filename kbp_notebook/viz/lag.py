"""Lag over time (with trend, onset and events), trend slopes, and lag in seconds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kbp_notebook.lagdata import lag_totals
from kbp_notebook.units import format_duration, format_rate, format_time
from kbp_notebook.viz._style import (
    TREND_COLOURS,
    colour_for,
    empty_figure,
    esc,
    key_label,
    new_figure,
)

__all__ = ["plot_lag", "plot_lag_trend", "plot_time_lag"]

_KEYS = ("group", "topic", "partition")


def _series_keys(by: Sequence[str], partitions: bool) -> list[str]:
    keys = [k for k in by if k in _KEYS or k == "cluster"]
    if partitions and "partition" not in keys:
        keys.append("partition")
    return keys


def _trend_rows(trend: Any, keys: list[str]) -> pd.DataFrame:
    table = getattr(trend, "table", trend)
    if not isinstance(table, pd.DataFrame) or "slope_per_s" not in table.columns:
        return pd.DataFrame()
    return table


def _match(table: pd.DataFrame, key: dict[str, Any]) -> pd.Series | None:
    mask = np.ones(len(table), dtype=bool)
    for name, value in key.items():
        if name in table.columns:
            mask &= (table[name].astype("string") == str(value)).fillna(False).to_numpy()
    rows = table[mask]
    return None if rows.empty else rows.iloc[0]


def plot_lag(
    lag: pd.DataFrame,
    events: pd.DataFrame | None = None,
    trend: Any = None,
    *,
    by: Sequence[str] = ("group", "topic"),
    partitions: bool = False,
    title: str | None = None,
    max_series: int = 12,
    height: int = 460,
) -> go.Figure:
    """Draw consumer lag over time, one line per key, with trend, onset and events.

    Parameters
    ----------
    lag
        LAG frame (validated or raw).
    events
        Optional events frame (``time``, ``kind``, ``text``): dotted vertical
        lines with their text.
    trend
        Optional ``LagTrend``: each regime's fitted line, dashed, over its own
        span and never below zero, coloured by status, its slope and interval
        (at the result's confidence) in the hover; and an onset marker. A bare
        trend table draws the current regime only.
    by
        Columns that make a series (default group and topic).
    partitions
        One line per partition as well (the per-partition breakdown).
    title
        Heading (escaped here).
    max_series
        Keep the series with the largest final lag; the rest are summed into
        "other" so the figure stays readable on big clusters.
    height
        Figure height in pixels.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    heading = esc(title or "Consumer lag (messages behind the log end)")
    if lag is None or not len(lag):
        return empty_figure(title or "Consumer lag", "No lag samples in this selection.")
    keys = _series_keys(by, partitions)
    totals = lag_totals(lag, by=keys)
    last = totals.sort_values("time").groupby(keys, observed=True)["lag"].last()
    order = last.fillna(0).sort_values(ascending=False).index.tolist()
    shown = order[:max_series]
    trend_table = _trend_rows(trend, keys) if trend is not None else pd.DataFrame()

    fig = new_figure(heading, height=height)
    fig.update_yaxes(title_text="lag (messages)", rangemode="tozero")
    fig.update_xaxes(title_text="time (UTC)")
    grouped = {k if isinstance(k, tuple) else (k,): part
               for k, part in totals.groupby(keys, observed=True, sort=False)}
    for index, key_value in enumerate(shown):
        key_tuple = key_value if isinstance(key_value, tuple) else (key_value,)
        series = grouped[key_tuple]
        label = key_label(*key_tuple)
        colour = colour_for(index)
        fig.add_trace(
            go.Scatter(
                x=series["time"], y=series["lag"], mode="lines", name=label,
                line={"color": colour, "width": 2},
                hovertemplate="%{y:,.0f} messages<extra>" + label + "</extra>",
            )
        )
        if not trend_table.empty:
            key = dict(zip(keys, key_tuple, strict=True))
            row = _match(trend_table, key)
            if row is not None:
                _add_trend(fig, series, row, colour, label, segments=_segment_rows(trend, key),
                           confidence=getattr(trend, "confidence", None))
    hidden = order[max_series:]
    if hidden:
        wanted = [k if isinstance(k, tuple) else (k,) for k in hidden]
        other = lag_totals(lag[pd.MultiIndex.from_frame(lag[keys]).isin(wanted)], by=())
        fig.add_trace(
            go.Scatter(x=other["time"], y=other["lag"], mode="lines",
                       name=f"{len(hidden)} other series", line={"color": "#bbbbbb", "width": 1})
        )
    if events is not None and len(events):
        add_events(fig, events)
    return fig


def _clipped_line(start: pd.Timestamp, end: pd.Timestamp, y_start: float,
                  y_end: float) -> tuple[list[pd.Timestamp], list[float]]:
    """Points of ``max(0, line)`` from start to end: lag is never drawn below zero."""
    if y_start >= 0 and y_end >= 0:
        return [start, end], [y_start, y_end]
    if y_start < 0 and y_end < 0:
        return [start, end], [0.0, 0.0]
    crossing = start + (end - start) * (y_start / (y_start - y_end))
    if y_start < 0:
        return [start, crossing, end], [0.0, 0.0, y_end]
    return [start, crossing, end], [y_start, 0.0, 0.0]


def _interval_text(low: float, high: float, confidence: float | None) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return ""
    level = f"{confidence:.0%} CI" if confidence is not None else "interval"
    return f" ({level} {format_rate(low, signed=True)} to {format_rate(high, signed=True)})"


def _segment_rows(trend: Any, key: dict[str, Any]) -> pd.DataFrame | None:
    segments = getattr(trend, "segments", None)
    if not isinstance(segments, pd.DataFrame) or segments.empty:
        return None
    mask = np.ones(len(segments), dtype=bool)
    for name, value in key.items():
        if name in segments.columns:
            mask &= (segments[name].astype("string") == str(value)).fillna(False).to_numpy()
    rows = segments[mask]
    return None if rows.empty else rows


def _add_trend(fig: go.Figure, series: pd.DataFrame, row: pd.Series, colour: str,
               label: str, *, segments: pd.DataFrame | None = None,
               confidence: float | None = None) -> None:
    """Draw each regime's fitted line over its own span (or the current one), and the onset."""
    onset = row.get("onset", pd.NaT)
    if segments is None:
        segments = _current_only(series, row)
    for item in segments.to_dict("records"):
        slope = float(item["slope_per_s"])
        if not np.isfinite(slope):
            continue
        status = str(item["status"])
        start, end = pd.Timestamp(item["start"]), pd.Timestamp(item["end"])
        x, y = _clipped_line(start, end, float(item["fitted_lag_start"]),
                             float(item["fitted_lag_end"]))
        interval = _interval_text(float(item["ci_low"]), float(item["ci_high"]), confidence)
        current = bool(item.get("current", True))
        text = (f"{esc(status)} {format_rate(slope, signed=True)}{esc(interval)}<br>"
                f"{format_time(start)} to {format_time(end)}, {int(item['n'])} samples"
                + ("<br>current regime" if current else ""))
        fig.add_trace(
            go.Scatter(
                x=x, y=y, mode="lines",
                name=f"trend {label}: {format_rate(slope, signed=True)}, {esc(status)}"
                     + (" (now)" if current else ""),
                line={"color": TREND_COLOURS.get(status, colour), "dash": "dash", "width": 2},
                hovertemplate=f"{text}<extra>{label}</extra>",
                legendgroup=f"trend {label}", showlegend=current,
            )
        )
    if not pd.isna(onset):
        start = pd.Timestamp(onset)
        at = series.iloc[int(np.argmin(np.abs((series["time"] - start).dt.total_seconds())))]
        fig.add_trace(
            go.Scatter(
                x=[start], y=[at["lag"]], mode="markers+text", text=["onset"],
                textposition="top left", showlegend=False,
                marker={"symbol": "diamond", "size": 12, "color": TREND_COLOURS["growing"],
                        "line": {"color": "white", "width": 1}},
                hovertemplate=f"lag growth began {format_time(start)}<extra>{label}</extra>",
                name=f"onset {label}",
            )
        )


def _current_only(series: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    """Build a one-regime frame from a bare trend table row: the current regime's line."""
    slope = float(row.get("slope_per_s", np.nan))
    since = row.get("regime_start", row.get("onset", pd.NaT))
    start = pd.Timestamp(since) if not pd.isna(since) else series["time"].iloc[0]
    tail = series[series["time"] >= start].dropna(subset=["lag"])
    if len(tail) < 2 or not np.isfinite(slope):
        return pd.DataFrame()
    seconds = (tail["time"] - start).dt.total_seconds().to_numpy()
    # Anchor the drawn line like Theil-Sen does: the median residual at this slope.
    intercept = float(np.median(tail["lag"].to_numpy(dtype=float) - slope * seconds))
    return pd.DataFrame({
        "start": [start], "end": [tail["time"].iloc[-1]], "slope_per_s": [slope],
        "ci_low": [row.get("ci_low", np.nan)], "ci_high": [row.get("ci_high", np.nan)],
        "status": [row.get("status", "")], "n": [len(tail)], "fitted_lag_start": [intercept],
        "fitted_lag_end": [intercept + slope * seconds[-1]], "current": [True],
    })


def add_events(fig: go.Figure, events: pd.DataFrame) -> None:
    """Mark annotated events: a dotted vertical line each, a short label above the plot.

    Labels sit above the plotting area at staggered heights so they neither
    hide the data nor each other; the full text is in the label's hover.
    Everything is escaped.
    """
    for index, (when, kind, text) in enumerate(
            zip(events["time"], events["kind"], events["text"], strict=True)):
        label = str(kind) if not pd.isna(kind) else "event"
        short = label if len(label) <= 24 else label[:23] + "…"
        fig.add_vline(x=when, line={"color": "#555555", "dash": "dot", "width": 1})
        fig.add_annotation(
            x=when, xref="x", yref="paper", y=1.0 + 0.055 * (index % 3), yanchor="bottom",
            text=esc(short), hovertext=esc(f"{kind}: {text}"), showarrow=False,
            font={"size": 10, "color": "#444444"}, bgcolor="rgba(255,255,255,0.85)",
        )
    fig.update_layout(margin={"t": 110}, legend={"orientation": "h", "y": -0.22,
                                                 "yanchor": "top"})


def plot_lag_trend(result: Any, *, lag: pd.DataFrame | None = None,
                   events: pd.DataFrame | None = None) -> go.Figure:
    """Draw a ``LagTrend``: with ``lag``, the series and fitted trends; else the slopes.

    Without the lag frame the figure shows each key's slope in messages/s with
    its confidence interval, coloured growing / stable / draining, and the
    onset time in the hover.
    """
    source = lag if lag is not None else getattr(result, "lag", None)
    if isinstance(source, pd.DataFrame) and len(source):
        by = [c for c in ("group", "topic", "partition") if c in result.table.columns]
        return plot_lag(source, events=events, trend=result, by=by,
                        title="Consumer lag and its trend")
    table = result.table
    if table.empty:
        return empty_figure("Lag trend", "No series had enough samples for a trend.")
    keys = [c for c in ("cluster", "group", "topic", "partition") if c in table.columns]
    labels = [key_label(*row) for row in table[keys].itertuples(index=False, name=None)]
    slope = table["slope_per_s"].astype(float).to_numpy()
    low = table.get("ci_low", pd.Series(np.nan, index=table.index)).astype(float).to_numpy()
    high = table.get("ci_high", pd.Series(np.nan, index=table.index)).astype(float).to_numpy()
    status = table.get("status", pd.Series("", index=table.index)).astype(str).tolist()
    onset = table.get("onset", pd.Series(pd.NaT, index=table.index))
    onset_text = [format_time(t, date=True) for t in onset]
    confidence = getattr(result, "confidence", None)
    intervals = [esc(_interval_text(a, b, confidence)) for a, b in zip(low, high, strict=True)]
    fig = new_figure("Lag trend per key: current regime (messages/s, with confidence interval)",
                     height=max(260, 60 + 34 * len(table)))
    fig.add_trace(
        go.Bar(
            y=labels, x=slope, orientation="h",
            marker={"color": [TREND_COLOURS.get(s, "#7f7f7f") for s in status]},
            error_x={"type": "data", "symmetric": False,
                     "array": np.where(np.isfinite(high), high - slope, 0),
                     "arrayminus": np.where(np.isfinite(low), slope - low, 0),
                     "color": "#444444"},
            customdata=np.column_stack([[esc(s) for s in status], onset_text, intervals]),
            hovertemplate="%{x:+,.2f} msg/s%{customdata[2]}, %{customdata[0]}"
                          "<br>onset %{customdata[1]}<extra>%{y}</extra>",
            name="slope",
        )
    )
    fig.update_layout(hovermode="closest", showlegend=False)
    fig.update_xaxes(title_text="lag change (messages/s); >0 growing", zeroline=True,
                     zerolinecolor="#888888")
    fig.update_yaxes(autorange="reversed")
    return fig


def plot_time_lag(result: Any, *, by: Sequence[str] = ("group", "topic"),
                  max_series: int = 12) -> go.Figure:
    """Draw lag in seconds behind the head of the log, worst partition per key.

    Points where the committed offset is older than the recorded history are
    lower bounds: drawn as open up-triangles labelled "at least".
    """
    table = getattr(result, "table", result)
    if table is None or not len(table) or "time_lag_s" not in table.columns:
        return empty_figure("Lag in seconds", "No time-lag values to draw.")
    keys = [k for k in by if k in table.columns]
    frame = table[[*keys, "time", "time_lag_s"]].copy()
    frame["time_lag_s"] = frame["time_lag_s"].astype("Float64").astype("float64")
    bound = table.get("time_lag_is_lower_bound", pd.Series(False, index=table.index))
    frame["bound"] = bound.astype("boolean").fillna(False).astype(bool)
    frame = frame.dropna(subset=["time_lag_s"])
    # Worst partition per key and snapshot: sort once, keep the last.
    worst = frame.sort_values("time_lag_s", kind="stable").drop_duplicates([*keys, "time"],
                                                                             keep="last")
    worst = worst.sort_values([*keys, "time"])
    last = worst.groupby(keys, observed=True)["time_lag_s"].last().sort_values(ascending=False)
    fig = new_figure("Lag in seconds: how far behind the newest message (worst partition)")
    fig.update_yaxes(title_text="seconds behind", rangemode="tozero")
    fig.update_xaxes(title_text="time (UTC)")
    parts = {k if isinstance(k, tuple) else (k,): part
             for k, part in worst.groupby(keys, observed=True, sort=False)}
    any_bound = False
    for index, key_value in enumerate(last.index[:max_series]):
        key_tuple = key_value if isinstance(key_value, tuple) else (key_value,)
        part = parts[key_tuple]
        label = key_label(*key_tuple)
        colour = colour_for(index)
        exact = part["time_lag_s"].where(~part["bound"])
        fig.add_trace(go.Scatter(
            x=part["time"], y=exact, mode="lines", name=label, line={"color": colour, "width": 2},
            customdata=[format_duration(v) for v in part["time_lag_s"]],
            hovertemplate="%{customdata} behind<extra>" + label + "</extra>",
            connectgaps=False,
        ))
        lower = part[part["bound"]]
        if len(lower):
            any_bound = True
            fig.add_trace(go.Scatter(
                x=lower["time"], y=lower["time_lag_s"], mode="markers",
                name=f"{label}: at least (older than the history)",
                marker={"symbol": "triangle-up-open", "size": 9, "color": colour},
                customdata=[format_duration(v) for v in lower["time_lag_s"]],
                hovertemplate="at least %{customdata} behind (lower bound)<extra>" + label
                              + "</extra>",
            ))
    if any_bound:
        fig.add_annotation(
            text="open triangles: lower bounds, the committed offset is older than the recording",
            xref="paper", yref="paper", x=0, y=-0.18, showarrow=False,
            font={"size": 11, "color": "#555555"}, xanchor="left",
        )
    return fig
