"""Retention risk: when unread messages start to be deleted, per group/topic."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from kbp_notebook.units import format_duration
from kbp_notebook.viz._style import empty_figure, esc, key_label, new_figure

__all__ = ["plot_retention_risk"]


def plot_retention_risk(result: Any, *, max_keys: int = 20) -> go.Figure:
    """Draw each group/topic's forecast deletion time as a point with its interval.

    Keys with no forecast loss (``inf``) are listed in the title, not drawn.
    """
    keys = getattr(result, "keys", None)
    if keys is None or not len(keys):
        return empty_figure("Retention risk", "No partitions with a log start offset.")
    risky = keys[keys["at_risk"]].sort_values("loss_s").head(max_keys)
    safe = int((~keys["at_risk"]).sum())
    title = "Retention risk: when unread messages start to be deleted"
    if safe:
        title += f" ({safe} group/topic(s) not at risk at current rates)"
    if not len(risky):
        return empty_figure(
            "Retention risk", "At current rates retention deletes no unread message."
        )
    fig = new_figure(title)
    labels = [key_label(g, t) for g, t in zip(risky["group"], risky["topic"], strict=True)]
    point = risky["loss_s"].to_numpy(float)
    low = risky["loss_low_s"].to_numpy(float)
    high = risky["loss_high_s"].to_numpy(float)
    fig.add_trace(
        go.Scatter(
            x=point,
            y=labels,
            mode="markers",
            name="forecast",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": np.maximum(high - point, 0),
                "arrayminus": np.maximum(point - low, 0),
            },
            customdata=[
                (f"{format_duration(p)} ({format_duration(lo)} to {format_duration(hi)}), "
                 f"{esc(limit)}")
                for p, lo, hi, limit in zip(point, low, high, risky["limit"], strict=True)
            ],
            hovertemplate="%{y}: %{customdata}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="seconds from the last snapshot", rangemode="tozero")
    return fig
