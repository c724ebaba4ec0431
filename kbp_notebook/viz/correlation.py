"""Lead/lag correlation figure and the diagnosis summary table."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kbp_notebook.units import format_duration
from kbp_notebook.viz._style import (
    SEVERITY_COLOURS,
    SEVERITY_RANK,
    empty_figure,
    esc,
    new_figure,
    table_figure,
)

__all__ = ["plot_correlation", "plot_diagnosis"]


def _shift_words(shift_s: float, x_name: str, y_name: str) -> str:
    if shift_s == 0:
        return "no lead either way"
    if shift_s > 0:
        return f"{x_name} leads {y_name} by {format_duration(shift_s)}"
    return f"{y_name} leads {x_name} by {format_duration(-shift_s)}"


def _short(label: str, limit: int = 34) -> str:
    """Shorten and escape an axis label: axis titles do not wrap."""
    return esc(label if len(label) <= limit else label[: limit - 1] + "…")


def plot_correlation(result: Any, *, title: str | None = None) -> go.Figure:
    """Draw a ``Correlation``: both series on one time axis, and r by shift.

    Top: ``x`` (left axis) and ``y`` (right axis) on the aligned grid.
    Bottom: the correlation at every shift searched, the chosen shift marked,
    with the honest p-value (autocorrelation and the search accounted for).
    """
    x_raw = str(getattr(result, "x_name", "x"))
    y_raw = str(getattr(result, "y_name", "y"))
    x_name, y_name = esc(x_raw), esc(y_raw)
    aligned = getattr(result, "aligned", None)
    table = getattr(result, "table", None)
    if table is None or not len(table):
        return empty_figure("Correlation", "No overlapping samples to correlate.")
    r = float(getattr(result, "r", np.nan))
    p = float(getattr(result, "p_value", np.nan))
    shift = getattr(result, "shift", pd.Timedelta(0))
    shift_s = float(pd.Timedelta(shift).total_seconds())
    significant = bool(getattr(result, "significant", False))
    n_eff = float(getattr(result, "n_eff", np.nan))
    method = esc(getattr(result, "method", ""))
    verdict = "<b>significant</b>" if significant else "not significant"
    heading = title and esc(title) or f"{x_name} vs {y_name}"
    subtitle = (f"{method} r = {r:+.2f} at {esc(_shift_words(shift_s, x_name, y_name))}; "
                f"p = {p:.3g} ({verdict}), effective n ≈ {n_eff:.0f}")
    fig = make_subplots(rows=2, cols=1, row_heights=[0.6, 0.4], vertical_spacing=0.14,
                        specs=[[{"secondary_y": True}], [{}]],
                        subplot_titles=("", "correlation by shift (+: first series leads)"))
    fig.update_layout(template="kbp", height=660,
                      title={"text": f"{heading}<br><span style='font-size:12px'>{subtitle}"
                                     "</span>", "y": 0.97, "yanchor": "top"},
                      legend={"y": 1.0, "yanchor": "bottom"},
                      margin={"t": 110, "l": 72, "r": 72})
    if isinstance(aligned, pd.DataFrame) and len(aligned):
        fig.add_trace(go.Scatter(x=aligned["time"], y=aligned["x"], name=x_name, mode="lines",
                                 line={"color": "#1f77b4", "width": 2},
                                 hovertemplate="%{y:,.3g}<extra>" + x_name + "</extra>"),
                      row=1, col=1, secondary_y=False)
        fig.add_trace(go.Scatter(x=aligned["time"], y=aligned["y"], name=y_name, mode="lines",
                                 line={"color": "#ff7f0e", "width": 2},
                                 hovertemplate="%{y:,.3g}<extra>" + y_name + "</extra>"),
                      row=1, col=1, secondary_y=True)
        fig.update_yaxes(title_text=_short(x_raw), row=1, col=1, secondary_y=False,
                         title_font={"color": "#1f77b4", "size": 11})
        fig.update_yaxes(title_text=_short(y_raw), row=1, col=1, secondary_y=True,
                         title_font={"color": "#ff7f0e", "size": 11}, showgrid=False)
    shifts = table["shift_s"].astype(float).to_numpy()
    values = table["r"].astype(float).to_numpy()
    fig.add_trace(go.Bar(x=shifts, y=values, name="r by shift", showlegend=False,
                         marker={"color": np.where(shifts == shift_s, "#d62728", "#9ecae1")},
                         hovertemplate="shift %{x:+.0f} s: r = %{y:+.3f}<extra></extra>"),
                  row=2, col=1)
    fig.add_trace(go.Scatter(x=[shift_s], y=[r], mode="markers+text", showlegend=False,
                             text=[f"chosen: {format_duration(abs(shift_s))}"],
                             textposition="top center",
                             marker={"size": 11, "color": "#d62728", "symbol": "diamond"},
                             hovertemplate="chosen shift %{x:+.0f} s, r = %{y:+.3f}"
                                           "<extra></extra>"),
                  row=2, col=1)
    fig.update_xaxes(title_text="shift (s)", row=2, col=1, zeroline=True,
                     zerolinecolor="#888888")
    fig.update_yaxes(title_text="r", range=[-1.05, 1.05], row=2, col=1)
    fig.update_layout(hovermode="closest")
    return fig


def _findings_frame(findings: Any) -> pd.DataFrame:
    if isinstance(findings, pd.DataFrame):
        return findings.copy()
    rows = []
    for item in findings or ():
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            rows.append(dataclasses.asdict(item))
        elif isinstance(item, dict):
            rows.append(dict(item))
        else:
            rows.append({"finding": str(item)})
    return pd.DataFrame(rows)


def _recommendation_frame(recommendations: Any) -> pd.DataFrame:
    if isinstance(recommendations, pd.DataFrame):
        return recommendations.copy()
    rows = []
    for item in recommendations or ():
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            rows.append(dataclasses.asdict(item))
        elif isinstance(item, dict):
            rows.append(dict(item))
        else:
            rows.append({"recommendation": str(item)})
    return pd.DataFrame(rows)


def _readable(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object:
            out[name] = [", ".join(map(str, v)) if isinstance(v, list | tuple) else
                         ("; ".join(f"{k}={w}" for k, w in v.items()) if isinstance(v, dict)
                          else v) for v in out[name]]
    return out


def plot_diagnosis(result: Any, *, title: str | None = None) -> go.Figure:
    """Draw a ``Diagnosis``: findings ranked by severity (colour-coded), then recommendations."""
    findings = _readable(_findings_frame(getattr(result, "findings", None)))
    recommendations = _readable(_recommendation_frame(getattr(result, "recommendations", None)))
    if findings.empty and recommendations.empty:
        return empty_figure(title or "Diagnosis", "No findings: every signal looked healthy.")
    fill: list[str] = []
    if "severity" in findings.columns:
        severity = findings["severity"].astype(str).str.lower()
        findings = findings.assign(_rank=severity.map(SEVERITY_RANK).fillna(9))
        findings = findings.sort_values("_rank", kind="stable").drop(columns="_rank")
        fill = [SEVERITY_COLOURS.get(s, "white")
                for s in findings["severity"].astype(str).str.lower()]
        first = ["severity", *[c for c in ("signal", "evidence") if c in findings.columns]]
        findings = findings[[*first, *[c for c in findings.columns if c not in first]]]
    # The summary: severity, signal, evidence (numbers stay in the result's table).
    findings = findings[[c for c in ("severity", "signal", "evidence") if c in findings.columns]
                        or list(findings.columns)]
    recommendations = recommendations[
        [c for c in ("recommendation", "because", "detail") if c in recommendations.columns]
        or list(recommendations.columns)]
    heading = esc(title or "Diagnosis: what the signals say, worst first")
    widths = {"severity": 0.9, "signal": 2.8, "evidence": 7.0, "recommendation": 3.0,
              "because": 1.8, "detail": 5.2}
    f_height = _table_height(findings, widths)
    r_height = _table_height(recommendations, widths) if len(recommendations) else 0
    total = f_height + r_height + 90
    fig = new_figure(heading, height=total)
    top = table_figure(findings, "", fill=fill or None,
                       column_widths=[widths.get(c, 2.0) for c in findings.columns]).data[0]
    top.domain = {"x": [0, 1], "y": [1 - f_height / (total - 70), 1]}
    fig.add_trace(top)
    if len(recommendations):
        bottom = table_figure(recommendations, "", column_widths=[
            widths.get(c, 2.0) for c in recommendations.columns]).data[0]
        bottom.domain = {"x": [0, 1], "y": [0, max(0.0, r_height / (total - 70) - 0.01)]}
        fig.add_trace(bottom)
    fig.update_layout(margin={"l": 16, "r": 16, "t": 56, "b": 14})
    return fig


def _table_height(frame: pd.DataFrame, widths: dict[str, float], *, width_px: int = 900) -> int:
    """Pixels a go.Table needs to show every row of ``frame`` without scrolling."""
    total_width = sum(widths.get(c, 2.0) for c in frame.columns) or 1.0
    lines = np.ones(len(frame))
    for name in frame.columns:
        chars_per_line = max(8, int(width_px * widths.get(name, 2.0) / total_width / 6.6))
        lengths = frame[name].astype(str).str.len().to_numpy(dtype=float)
        lines = np.maximum(lines, np.ceil(lengths / chars_per_line))
    return int(34 + np.sum(9 + 16 * lines))
