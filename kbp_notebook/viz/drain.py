"""Drain forecast fan chart and capacity plan figures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kbp_notebook.lagdata import lag_totals
from kbp_notebook.units import format_count, format_duration, format_rate
from kbp_notebook.viz._style import (
    colour_for,
    empty_figure,
    esc,
    key_label,
    new_figure,
    table_figure,
)

__all__ = ["plot_capacity", "plot_drain", "plot_what_if"]


def _float(row: pd.Series, name: str) -> float:
    value = row.get(name, np.nan)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _as_of(result: Any, table: pd.DataFrame, lag: pd.DataFrame | None) -> pd.Timestamp:
    for name in ("as_of", "time", "now"):
        value = getattr(result, name, None)
        if isinstance(value, pd.Timestamp | np.datetime64) and not pd.isna(value):
            return pd.Timestamp(value)
    if "as_of" in table.columns and table["as_of"].notna().any():
        return pd.Timestamp(table["as_of"].dropna().iloc[0])
    if lag is not None and len(lag):
        return pd.Timestamp(lag["time"].max())
    # drain_time = last snapshot + eta_s, for any key or partition that drains
    for frame in (table, getattr(result, "partitions", None)):
        if isinstance(frame, pd.DataFrame) and {"drain_time", "eta_s"} <= set(frame.columns):
            eta = frame["eta_s"].astype(float)
            finite = frame[np.isfinite(eta.to_numpy()) & frame["drain_time"].notna().to_numpy()]
            if len(finite):
                row = finite.iloc[0]
                return pd.Timestamp(row["drain_time"]) - pd.to_timedelta(float(row["eta_s"]),
                                                                         unit="s")
    return pd.Timestamp.now(tz="UTC").floor("s")


def _curve(lag0: float, eta_s: float, net_rate: float, t_s: np.ndarray) -> np.ndarray:
    """Projected lag at ``t_s`` seconds: straight to zero at ``eta_s``, or growing at net rate."""
    if np.isfinite(eta_s) and eta_s > 0:
        return lag0 * np.clip(1.0 - t_s / eta_s, 0.0, None)
    if np.isfinite(eta_s) and eta_s <= 0:
        return np.zeros_like(t_s)
    rate = net_rate if np.isfinite(net_rate) and net_rate > 0 else 0.0
    return lag0 + rate * t_s


def _recorded(totals: pd.DataFrame, keys: list[str], row: pd.Series) -> pd.DataFrame:
    """Select the recorded total lag of ``row``'s key."""
    mask = np.ones(len(totals), dtype=bool)
    for k in keys:
        mask &= (totals[k].astype(str) == str(row[k])).to_numpy()
    return totals[mask]


def _drain_horizon(
    rows: pd.DataFrame, history: pd.DataFrame | None, now: pd.Timestamp, horizon_s: float | None
) -> np.ndarray:
    """Seconds after "now" to draw: past the slowest ETA, or as far as the record looks back.

    Without a finite ETA, look ahead as far as the record looks back (at least 10 min),
    and always far enough to show recorded history after "now".
    """
    etas = np.concatenate([rows[c].astype(float).to_numpy() for c in
                           ("eta_s", "eta_high_s", "retention_loss_s") if c in rows.columns])
    finite = etas[np.isfinite(etas) & (etas > 0)]
    span_s = 600.0
    if isinstance(history, pd.DataFrame) and len(history):
        span_s = max(span_s, (now - history["time"].min()).total_seconds(),
                     (history["time"].max() - now).total_seconds() * 1.1)
    horizon = float(horizon_s or (finite.max() * 1.15 if finite.size else span_s))
    return np.linspace(0.0, horizon, 121)


def _add_fan(fig: go.Figure, row: pd.Series, label: str, colour: str, now: pd.Timestamp,
             t_s: np.ndarray) -> None:
    """Draw a draining key: the interval as a shaded fan, the median line and its end."""
    x = now + pd.to_timedelta(t_s, unit="s")
    lag0 = row["_lag"]
    eta, low, high = (_float(row, c) for c in ("eta_s", "eta_low_s", "eta_high_s"))
    net = _float(row, "produce_rate") - _float(row, "consume_rate")
    fast = _curve(lag0, low if np.isfinite(low) else eta, net, t_s)
    slow = _curve(lag0, high, net, t_s)
    fig.add_trace(go.Scatter(x=x, y=fast, mode="lines", line={"width": 0},
                             showlegend=False, legendgroup=label, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=x, y=slow, mode="lines", line={"width": 0}, fill="tonexty",
        fillcolor=_rgba(colour, 0.18), name=f"{label} interval",
        legendgroup=label, showlegend=False, hoverinfo="skip",
    ))
    median = _curve(lag0, eta, net, t_s)
    text = (f"drains in {format_duration(eta)} (between {format_duration(low)} and "
            f"{format_duration(high)})")
    fig.add_trace(go.Scatter(
        x=x, y=median, mode="lines", name=f"{label}: {text}", legendgroup=label,
        line={"color": colour, "width": 2.5},
        hovertemplate="%{y:,.0f} messages projected<extra>" + label + "</extra>",
    ))
    if np.isfinite(eta):
        done = now + pd.to_timedelta(eta, unit="s")
        fig.add_trace(go.Scatter(
            x=[done], y=[0], mode="markers", showlegend=False, legendgroup=label,
            marker={"symbol": "circle", "size": 10, "color": colour},
            hovertemplate=f"drained at {done:%Y-%m-%d %H:%M:%S} UTC (median)"
                          f"<extra>{label}</extra>",
        ))


def _add_data_loss(fig: go.Figure, row: pd.Series, label: str, now: pd.Timestamp,
                   drains: bool) -> None:
    """Mark when the key's consumer would fall off retention, where known."""
    loss_s = _float(row, "retention_loss_s")
    if not (np.isfinite(loss_s) and loss_s >= 0):
        return
    net = _float(row, "produce_rate") - _float(row, "consume_rate")
    eta = _float(row, "eta_s")
    curve = _curve(row["_lag"], eta if drains else np.inf, net, np.array([loss_s]))
    at = now + pd.to_timedelta(loss_s, unit="s")
    fig.add_trace(go.Scatter(
        x=[at], y=curve, mode="markers+text", text=["data loss"],
        textposition="top center", legendgroup=label,
        name=f"{label}: falls off retention in {format_duration(loss_s)}",
        marker={"symbol": "x", "size": 13, "color": "#b00020"},
        hovertemplate=f"unread messages start to be deleted at {at:%Y-%m-%d %H:%M} UTC"
                      f"<extra>{label}</extra>",
    ))


def plot_drain(
    result: Any,
    *,
    lag: pd.DataFrame | None = None,
    max_keys: int = 6,
    horizon_s: float | None = None,
    as_of: pd.Timestamp | None = None,
    title: str | None = None,
) -> go.Figure:
    """Draw a ``DrainForecast`` as a fan chart: when will each backlog be gone.

    The solid line runs from the current lag to zero at the median ETA; the
    shaded fan spans the interval (``eta_low_s`` .. ``eta_high_s``). A backlog
    that does not drain at current rates is a rising dashed line. A red
    cross marks when the consumer would fall off retention (data loss), where
    known. With ``lag`` (a LAG frame) the recorded history is drawn first, and
    "now" is its last snapshot (without it, "now" is the result's ``as_of``).
    ``as_of`` sets "now" explicitly: for a
    post-mortem, forecast from a slice of the recording and pass the whole
    ``lag`` to see the forecast against what happened next.
    """
    table = getattr(result, "table", result)
    if table is None or not len(table):
        return empty_figure("Drain forecast", "No backlog to forecast.")
    history = lag if lag is not None else getattr(result, "lag", None)
    now = pd.Timestamp(as_of) if as_of is not None else _as_of(result, table, history)
    keys = [c for c in ("group", "topic") if c in table.columns]
    rows = table.assign(_lag=pd.to_numeric(table["lag"], errors="coerce").astype(float))
    rows = rows.sort_values("_lag", ascending=False).head(max_keys)
    t_s = _drain_horizon(rows, history, now, horizon_s)
    fig = new_figure(esc(title or "When will the backlog drain? (median ETA and interval)"),
                     height=480)
    fig.update_yaxes(title_text="lag (messages)", rangemode="tozero")
    fig.update_xaxes(title_text="time (UTC)")
    if isinstance(history, pd.DataFrame) and len(history):
        totals: pd.DataFrame | None = lag_totals(history, by=keys)
    else:
        totals = None
    for index, (_, row) in enumerate(rows.iterrows()):
        colour = colour_for(index)
        label = key_label(*(row[k] for k in keys))
        drains = bool(row.get("drains", np.isfinite(_float(row, "eta_s"))))
        if totals is not None:
            past = _recorded(totals, keys, row)
            fig.add_trace(go.Scatter(
                x=past["time"], y=past["lag"], mode="lines", name=f"{label} (recorded)",
                line={"color": colour, "width": 1.5}, legendgroup=label, showlegend=False,
                hovertemplate="%{y:,.0f} messages<extra>" + label + "</extra>",
            ))
        if not np.isfinite(row["_lag"]):
            continue
        if drains:
            _add_fan(fig, row, label, colour, now, t_s)
        else:
            net = _float(row, "produce_rate") - _float(row, "consume_rate")
            fig.add_trace(go.Scatter(
                x=now + pd.to_timedelta(t_s, unit="s"), y=_curve(row["_lag"], np.inf, net, t_s),
                mode="lines", legendgroup=label,
                name=f"{label}: does not drain at current rates ({format_rate(net, signed=True)})",
                line={"color": colour, "dash": "dash", "width": 2.5},
                hovertemplate="%{y:,.0f} messages projected<extra>" + label + "</extra>",
            ))
        _add_data_loss(fig, row, label, now, drains)
    fig.add_vline(x=now, line={"color": "#888888", "dash": "dot", "width": 1},
                  annotation_text="now" if as_of is None else "forecast from here",
                  annotation_position="top")
    fig.update_layout(hovermode="closest", legend={"orientation": "v", "y": -0.2,
                                                   "yanchor": "top"},
                      margin={"b": 40 + 22 * min(len(rows) * 2, 12)})
    return fig


def _rgba(hex_colour: str, alpha: float) -> str:
    value = hex_colour.lstrip("#")
    r, g, b = (int(value[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def plot_capacity(result: Any, *, title: str | None = None) -> go.Figure:
    """Draw a ``CapacityPlan``: consumers today against consumers needed, capped by partitions.

    Each key gets grouped bars (consumers now, needed to drain within the
    target, partitions); where the partition count caps the consumers the
    needed partitions are shown too. Unknown table shapes fall back to a table.
    """
    table = getattr(result, "table", result)
    if table is None or not len(table):
        return empty_figure("Capacity plan", "Nothing to plan: no rows.")
    keys = [c for c in ("group", "topic") if c in table.columns]
    numeric = [c for c in table.columns
               if c not in keys and pd.api.types.is_numeric_dtype(table[c])
               and not pd.api.types.is_bool_dtype(table[c])
               and ("consumer" in c or "partition" in c) and "rate" not in c]
    if not numeric:
        return table_figure(table, esc(title or "Capacity plan"))
    labels = [key_label(*row) for row in table[keys].itertuples(index=False, name=None)] \
        if keys else [str(i) for i in range(len(table))]
    fig = new_figure(esc(title or "Consumers and partitions: today vs needed"),
                     height=max(320, 140 + 40 * len(table)))
    for index, column in enumerate(numeric):
        values = pd.to_numeric(table[column], errors="coerce").astype(float)
        fig.add_trace(go.Bar(
            y=labels, x=values, orientation="h", name=esc(column.replace("_", " ")),
            marker={"color": colour_for(index)},
            text=[format_count(v) for v in values], textposition="outside",
            hovertemplate=esc(column) + ": %{x:,.1f}<extra>%{y}</extra>",
        ))
    fig.update_layout(barmode="group", hovermode="closest")
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="count", rangemode="tozero")
    return fig


def plot_what_if(
    plan: Any,
    *,
    lag: pd.DataFrame | None = None,
    max_keys: int = 6,
    title: str | None = None,
) -> go.Figure:
    """Draw a ``CapacityPlan`` scenario: the backlog under the planned consumers, and the target.

    From the last snapshot each key's backlog falls in a straight line to
    zero at ``eta_s_at_plan``; where the planned consumers cannot keep up it
    rises (dashed red) at produce rate minus planned capacity. A dotted line
    marks the drain target. With ``lag`` the recorded history is drawn first.
    """
    table = getattr(plan, "table", plan)
    if table is None or not len(table):
        return empty_figure("What-if", "Nothing to plan: no rows.")
    keys = [c for c in ("group", "topic") if c in table.columns]
    now = pd.Timestamp(lag["time"].max()) if lag is not None and len(lag) else \
        pd.Timestamp.now(tz="UTC").floor("s")
    target_s = float(getattr(plan, "target_s", np.nan))
    rows = table.assign(_lag=pd.to_numeric(table["lag"], errors="coerce").astype(float))
    rows = rows.sort_values("_lag", ascending=False).head(max_keys)
    etas = rows["eta_s_at_plan"].astype(float).to_numpy() if "eta_s_at_plan" in rows else \
        np.array([np.nan])
    finite = etas[np.isfinite(etas) & (etas > 0)]
    horizon = max([v for v in (*finite, target_s) if np.isfinite(v)] or [3600.0]) * 1.2
    t_s = np.linspace(0.0, horizon, 121)
    x = now + pd.to_timedelta(t_s, unit="s")
    fig = new_figure(esc(title or "What if: the backlog with the planned consumers"), height=460)
    fig.update_yaxes(title_text="lag (messages)", rangemode="tozero")
    fig.update_xaxes(title_text="time (UTC)")
    if lag is not None and len(lag):
        totals = lag_totals(lag, by=keys)
    else:
        totals = None
    for index, (_, row) in enumerate(rows.iterrows()):
        colour = colour_for(index)
        label = key_label(*(row[k] for k in keys))
        if totals is not None:
            past = _recorded(totals, keys, row)
            fig.add_trace(go.Scatter(x=past["time"], y=past["lag"], mode="lines",
                                     line={"color": colour, "width": 1.5}, showlegend=False,
                                     hovertemplate="%{y:,.0f} messages<extra>" + label
                                     + "</extra>"))
        lag0, eta = row["_lag"], _float(row, "eta_s_at_plan")
        planned = _float(row, "consumers_planned")
        if not np.isfinite(lag0):
            continue
        if np.isfinite(eta):
            fig.add_trace(go.Scatter(
                x=x, y=_curve(lag0, eta, np.nan, t_s), mode="lines",
                name=f"{label}: {planned:.0f} consumers drain in {format_duration(eta)}",
                line={"color": colour, "width": 2.5},
                hovertemplate="%{y:,.0f} messages projected<extra>" + label + "</extra>",
            ))
        else:
            net = _float(row, "produce_rate") - planned * _float(row, "per_consumer_rate")
            fig.add_trace(go.Scatter(
                x=x, y=_curve(lag0, np.inf, net, t_s), mode="lines",
                name=(f"{label}: {planned:.0f} consumers never drain "
                      f"({format_rate(net, signed=True)})"),
                line={"color": "#d62728", "dash": "dash", "width": 2.5},
                hovertemplate="%{y:,.0f} messages projected<extra>" + label + "</extra>",
            ))
    if np.isfinite(target_s):
        fig.add_vline(x=now + pd.Timedelta(seconds=target_s),
                      line={"color": "#444444", "dash": "dot", "width": 1},
                      annotation_text=f"target {format_duration(target_s)}",
                      annotation_position="top")
    fig.add_vline(x=now, line={"color": "#888888", "dash": "dot", "width": 1},
                  annotation_text="now", annotation_position="bottom right")
    fig.update_layout(hovermode="closest", legend={"orientation": "v", "y": -0.2,
                                                   "yanchor": "top"})
    return fig
