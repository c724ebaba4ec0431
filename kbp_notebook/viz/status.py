"""Burrow-style consumer status: per-partition grid now, and a timeline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kbp_notebook.units import format_count
from kbp_notebook.viz._style import (
    BURROW_COLOURS,
    BURROW_ORDER,
    empty_figure,
    esc,
    key_label,
    new_figure,
)

__all__ = ["plot_lag_status", "plot_status_timeline"]

_LEGEND = (
    "OK keeping up or catching up · WARN lag grew across the window while offsets move · STALL"
    " owned partition stands still with lag · STOP no commits · REWIND offset went backwards ·"
    " ERR group has a stalled, stopped or rewound partition"
)


def _status_order(statuses: pd.Series) -> list[str]:
    seen = set(statuses.astype(str))
    return [s for s in BURROW_ORDER if s in seen] + sorted(seen - set(BURROW_ORDER))


def plot_lag_status(result: Any, *, history: pd.DataFrame | None = None,
                    over_time: bool = False) -> go.Figure:
    """Draw a ``LagStatus``: each partition's Burrow status, coloured, with group roll-ups.

    Parameters
    ----------
    result
        ``LagStatus`` with ``.partitions`` (``group``, ``topic``, ``partition``,
        ``status``, ``current_lag``) and ``.groups`` (``group``, ``status``,
        ``totallag``).
    history
        Optional frame of statuses over time (``time``, ``group``, ``status``
        [, ``topic``, ``partition``]): drawn as a timeline instead
        (see :func:`plot_status_timeline`).
    over_time
        Draw the result's own ``group_timeline`` (``lag_status(..., timeline=True)``).
    """
    if history is not None:
        return plot_status_timeline(history)
    if over_time:
        return plot_status_timeline(getattr(result, "group_timeline", None))
    parts = getattr(result, "partitions", None)
    if parts is None or not len(parts):
        return empty_figure("Consumer status", "No partitions were evaluated.")
    groups = getattr(result, "groups", None)
    group_status: dict[str, str] = {}
    if isinstance(groups, pd.DataFrame) and len(groups):
        group_status = dict(zip(groups["group"].astype(str), groups["status"].astype(str),
                                strict=False))
    rows = parts.assign(
        row_label=[
            f"{key_label(g, t)} [{esc(group_status.get(str(g), '?'))}]"
            for g, t in zip(parts["group"], parts["topic"], strict=True)
        ],
        status=parts["status"].astype(str),
    )
    current = rows.get("current_lag", pd.Series(np.nan, index=rows.index))
    current = pd.to_numeric(current, errors="coerce").astype(float)
    n_rows = rows["row_label"].nunique()
    fig = new_figure("Consumer status per partition (Burrow rules)",
                     height=max(240, 110 + 36 * n_rows))
    for status in _status_order(rows["status"]):
        mask = (rows["status"] == status).to_numpy()
        sel = rows[mask]
        fig.add_trace(go.Scatter(
            x=sel["partition"].astype(int), y=sel["row_label"], mode="markers", name=esc(status),
            marker={"symbol": "square", "size": 18, "color": BURROW_COLOURS.get(status, "#333"),
                    "line": {"color": "white", "width": 1}},
            customdata=[format_count(v) for v in current[mask]],
            hovertemplate=f"partition %{{x}}: {esc(status)}, lag %{{customdata}}"
                          "<extra>%{y}</extra>",
        ))
    fig.update_xaxes(title_text="partition", dtick=1, showgrid=False)
    fig.update_yaxes(type="category", autorange="reversed", showgrid=False)
    fig.update_layout(hovermode="closest")
    fig.add_annotation(text=_LEGEND, xref="paper", yref="paper", x=0, y=-0.02, yanchor="top",
                       showarrow=False, font={"size": 10, "color": "#666666"}, xanchor="left",
                       yshift=-30)
    return fig


def plot_status_timeline(history: pd.DataFrame | None, *, level: str = "group") -> go.Figure:
    """Draw statuses over time: one row per group (or partition), one coloured cell per time.

    Parameters
    ----------
    history
        ``time``, ``group``, ``status`` and, for ``level="partition"``,
        ``topic`` and ``partition``; ``LagStatus.group_timeline`` or
        ``LagStatus.timeline`` (a partition timeline is rolled up to groups
        for ``level="group"``). A ``totallag``/``current_lag`` column goes
        into the hover.
    level
        ``"group"`` or ``"partition"``.
    """
    if history is None or not len(history):
        return empty_figure("Consumer status over time", "No status history to draw.")
    if level == "group" and {"partition", "group_falling_behind"} <= set(history.columns):
        from kbp_notebook.analysis.status import group_timeline

        history = group_timeline(history)
    keys = ["group"] if level == "group" else ["group", "topic", "partition"]
    frame = history.copy()
    frame["status"] = frame["status"].astype(str)
    frame["row_label"] = [key_label(*k) for k in frame[keys].itertuples(index=False, name=None)]
    lag_column = next((c for c in ("totallag", "current_lag") if c in frame.columns), None)
    n_rows = frame["row_label"].nunique()
    fig = new_figure("Consumer status over time (Burrow rules)",
                     height=max(220, 120 + 34 * n_rows))
    for status in _status_order(frame["status"]):
        sel = frame[frame["status"] == status]
        lag_text = ([", lag " + format_count(v) for v in pd.to_numeric(sel[lag_column])]
                    if lag_column else [""] * len(sel))
        fig.add_trace(go.Scatter(
            x=sel["time"], y=sel["row_label"], mode="markers", name=esc(status),
            marker={"symbol": "square", "size": 14, "color": BURROW_COLOURS.get(status, "#333")},
            customdata=lag_text,
            hovertemplate=f"{esc(status)} at %{{x|%H:%M:%S}}%{{customdata}}<extra>%{{y}}</extra>",
        ))
    fig.update_yaxes(type="category", autorange="reversed", showgrid=False)
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_layout(hovermode="closest")
    fig.add_annotation(text=_LEGEND, xref="paper", yref="paper", x=0, y=-0.02, yanchor="top",
                       showarrow=False, font={"size": 10, "color": "#666666"}, xanchor="left",
                       yshift=-40)
    return fig
