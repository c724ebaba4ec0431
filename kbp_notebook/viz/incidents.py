"""The episode timeline: each key's lag, its episodes shaded by cause, derived events marked."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from kbp_notebook.units import format_count, format_duration, format_rate, format_time
from kbp_notebook.viz._style import colour_for, empty_figure, esc, key_label, new_figure

__all__ = ["CAUSE_COLOURS", "plot_incidents"]

#: One colour per cause (episode shading).
CAUSE_COLOURS: dict[str, str] = {
    "producer_surge": "#ff7f0e",
    "consumer_slowdown": "#d62728",
    "consumer_stopped": "#7f1d1d",
    "consumer_stalled": "#e4572e",
    "partition_skew": "#9467bd",
    "rebalance_churn": "#f2b701",
    "broker_slow": "#8c564b",
    "offset_rewind": "#17becf",
    "none": "#9e9e9e",
}
#: Derived events drawn as markers (episode start/peak/end are drawn by the shading).
MARKED = {
    "member_joined": ("triangle-up", "#2ca02c"),
    "member_left": ("triangle-down", "#d62728"),
    "rebalance": ("diamond", "#f2b701"),
    "commits_stopped": ("x", "#7f1d1d"),
    "commits_resumed": ("circle-open", "#2ca02c"),
    "offset_rewind": ("star", "#17becf"),
    "produce_rate_change": ("line-ns-open", "#ff7f0e"),
    "consume_rate_change": ("line-ns-open", "#1f77b4"),
    "broker_latency_high": ("square", "#8c564b"),
}


def _key_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in ("cluster", "group", "topic") if c in frame.columns]


def plot_incidents(result: Any, *, title: str = "Lag and its episodes") -> go.Figure:
    """Draw an ``Incidents`` result: lag per key, shaded episodes, event markers.

    Each episode is a band from its start to its end (to the last snapshot while it
    is not over) coloured by its cause; the hover of the band's label gives the
    episode's peak, rates and evidence. Derived events sit on a lane under the lag.
    """
    lag = result.lag
    if not isinstance(lag, pd.DataFrame) or lag.empty:
        return empty_figure(title, "No lag to draw.")
    keys = _key_columns(lag)
    fig = new_figure(esc(title), height=520)
    fig.update_layout(
        yaxis={"title": "messages behind", "rangemode": "tozero", "domain": [0.18, 1.0]},
        yaxis2={"domain": [0.0, 0.12], "showticklabels": False, "showgrid": False,
                "zeroline": False, "range": [-1, 1]},
        xaxis={"anchor": "y2"},
        hovermode="closest",
    )
    affected = set()
    if len(result.table):
        affected = {tuple(row) for row in result.table[keys].itertuples(index=False, name=None)}
    for index, (key, series) in enumerate(lag.groupby(keys, sort=False)):
        key_tuple = key if isinstance(key, tuple) else (key,)
        label = key_label(*key_tuple[1:]) or key_label(*key_tuple)
        fig.add_trace(
            go.Scatter(
                x=series["time"], y=series["lag"], mode="lines", name=label,
                line={"color": colour_for(index), "width": 2},
                visible=True if (not affected or key_tuple in affected) else "legendonly",
                hovertemplate="%{x|%H:%M:%S} UTC: %{y:,.0f} messages<extra>" + label + "</extra>",
            )
        )
    end_of_data = lag["time"].max()
    for _, row in result.table.iterrows():
        colour = CAUSE_COLOURS.get(str(row["cause"]), "#9e9e9e")
        until = row["end"] if pd.notna(row["end"]) else end_of_data
        fig.add_vrect(x0=row["start"], x1=until, fillcolor=colour, opacity=0.14, line_width=0,
                      layer="below")
        summary = (
            f"{key_label(row.get('group'), row.get('topic'))}: {esc(row['cause'])}<br>"
            f"from {format_time(row['start'])}, peak {format_count(row['peak_lag'])} at "
            f"{format_time(row['peak_time'])}<br>grew {format_rate(row['growth_rate_per_s'])}"
            f", {format_duration(row['duration_s'])}<br>{esc(row['evidence'])}"
        )
        fig.add_trace(
            go.Scatter(
                x=[row["peak_time"]], y=[row["peak_lag"]], mode="markers+text",
                marker={"color": colour, "size": 11, "symbol": "circle"},
                text=[esc(str(row["cause"]).replace("_", " "))], textposition="top center",
                name=f"episode: {esc(row['cause'])}", hovertext=[summary],
                hoverinfo="text", showlegend=False,
            )
        )
    events = result.events
    if isinstance(events, pd.DataFrame) and len(events):
        for kind, (symbol, colour) in MARKED.items():
            part = events[events["kind"] == kind]
            if part.empty:
                continue
            who = part["group"].fillna(part.get("entity", pd.Series(index=part.index)))
            texts = [f"{esc(w)}: {esc(t)}" if pd.notna(w) else esc(t)
                     for w, t in zip(who, part["text"], strict=True)]
            fig.add_trace(
                go.Scatter(
                    x=part["time"], y=[0] * len(part), yaxis="y2", mode="markers",
                    marker={"symbol": symbol, "color": colour, "size": 10},
                    name=esc(kind.replace("_", " ")), hovertext=texts, hoverinfo="text+x",
                )
            )
    fig.update_layout(legend={"orientation": "h", "y": -0.12, "yanchor": "top"},
                      margin={"b": 110})
    return fig
