"""One look for every kbp figure: template, colours, escaping, small helpers.

Plotly renders titles, annotations, legend names and hover labels as a small
subset of HTML (``<b>``, ``<br>``, ``<a href>``). Group ids and topics come
from the cluster and are untrusted, so every user-named string goes through
:func:`esc` before it reaches a figure.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from kbp_notebook.units import format_number

__all__ = [
    "BURROW_COLOURS",
    "REPORT_TRACE_TYPES",
    "SEVERITY_COLOURS",
    "TREND_COLOURS",
    "esc",
    "key_label",
    "new_figure",
    "report_figure_html",
    "report_mode",
    "use_report_renderer",
]

#: Burrow's status vocabulary, green to red; STOP/STALL/REWIND stand out.
BURROW_COLOURS: dict[str, str] = {
    "OK": "#2ca02c",
    "WARN": "#f2b701",
    "ERR": "#d62728",
    "STOP": "#7f1d1d",
    "STALL": "#e4572e",
    "REWIND": "#9467bd",
    "NOTFOUND": "#9e9e9e",
}
BURROW_ORDER: tuple[str, ...] = ("OK", "WARN", "STALL", "REWIND", "STOP", "ERR", "NOTFOUND")

TREND_COLOURS: dict[str, str] = {
    "growing": "#d62728",
    "stable": "#7f7f7f",
    "draining": "#2ca02c",
}

SEVERITY_COLOURS: dict[str, str] = {
    "critical": "#f4cccc",
    "high": "#f4cccc",
    "error": "#f4cccc",
    "warning": "#fff2cc",
    "medium": "#fff2cc",
    "warn": "#fff2cc",
    "info": "#ddebf7",
    "low": "#ddebf7",
    "ok": "#d9ead3",
}
SEVERITY_RANK: dict[str, int] = {
    "critical": 0, "high": 0, "error": 0, "warning": 1, "medium": 1, "warn": 1,
    "info": 2, "low": 2, "ok": 3,
}

#: Qualitative palette for series (colour-blind friendly "Safe" set from carto).
SERIES_COLOURS: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
    "#bcbd22", "#7f7f7f", "#1a9850", "#6a3d9a", "#b15928",
)

_TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font={"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 13},
        title={"x": 0.01, "xanchor": "left", "font": {"size": 16}},
        paper_bgcolor="white",
        plot_bgcolor="white",
        colorway=list(SERIES_COLOURS),
        hovermode="x unified",
        margin={"l": 64, "r": 24, "t": 64, "b": 48},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0, "font": {"size": 11}},
        xaxis={"showgrid": True, "gridcolor": "#eeeeee", "zeroline": False, "linecolor": "#bbbbbb",
               "automargin": True},
        yaxis={"showgrid": True, "gridcolor": "#eeeeee", "zeroline": True,
               "zerolinecolor": "#cccccc", "linecolor": "#bbbbbb", "automargin": True},
    )
)
pio.templates["kbp"] = _TEMPLATE


def esc(value: Any) -> str:
    """Return ``str(value)`` safe to put into a plotly title, annotation, name or hover text."""
    # Plotly also reads "%{...}" as template fields in hovertemplates/texttemplates.
    return html.escape(str(value), quote=True).replace("%{", "%&#123;")


def key_label(*parts: Any) -> str:
    """Return an escaped ``a / b / c`` label of a key."""
    return " / ".join(esc(p) for p in parts if p is not None and not _isna(p))


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def new_figure(title: str, *, height: int = 460, **layout: Any) -> go.Figure:
    """Return an empty figure in the kbp look; ``title`` must already be escaped."""
    fig = go.Figure()
    fig.update_layout(template="kbp", title={"text": title}, height=height, **layout)
    return fig


def empty_figure(title: str, message: str) -> go.Figure:
    """Return a figure that says why there is nothing to draw (both strings escaped here)."""
    fig = new_figure(esc(title), height=260)
    fig.add_annotation(
        text=esc(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
        font={"size": 14, "color": "#666666"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def colour_for(index: int) -> str:
    """Return the series colour at ``index`` (cycling)."""
    return SERIES_COLOURS[index % len(SERIES_COLOURS)]


def table_figure(
    frame: pd.DataFrame,
    title: str,
    *,
    fill: Sequence[str] | None = None,
    column_widths: Sequence[float] | None = None,
    height: int | None = None,
) -> go.Figure:
    """Return a ``go.Table`` of ``frame`` with every cell escaped; ``title`` already escaped."""
    headers = [f"<b>{esc(c)}</b>" for c in frame.columns]
    cells = []
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_float_dtype(column):
            cells.append([format_number(v) for v in column.to_numpy(dtype=float)])
        else:
            cells.append(["—" if _isna(v) else esc(v) for v in column.tolist()])
    fill_colour: Any = [list(fill)] * len(frame.columns) if fill is not None else "white"
    table = go.Table(
        header={"values": headers, "fill_color": "#f3f3f3", "align": "left",
                "line_color": "#dddddd"},
        cells={"values": cells, "fill_color": fill_colour, "align": "left",
               "line_color": "#dddddd", "height": 26},
        columnwidth=list(column_widths) if column_widths is not None else None,
    )
    fig = new_figure(title, height=height or min(120 + 30 * max(len(frame), 1), 900))
    fig.add_trace(table)
    fig.update_layout(margin={"l": 16, "r": 16, "t": 56, "b": 16})
    return fig


def unique_in_order(values: Iterable[Any]) -> list[Any]:
    """Return the distinct values in first-seen order."""
    return list(dict.fromkeys(values))


#: Trace types in plotly.js's cartesian partial bundle, the one reports inline.
REPORT_TRACE_TYPES: frozenset[str] = frozenset({
    "bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour",
    "image", "pie", "scatter", "scatterternary", "violin",
})


#: A mailed report must not offer to upload its data ("Share chart..." sends it to a cloud).
REPORT_PLOT_CONFIG: dict[str, Any] = {"displaylogo": False, "showSendToCloud": False}


def _table_html(fig_dict: Mapping[str, Any]) -> str:
    """Return a figure made of ``go.Table`` traces as HTML tables.

    :func:`table_figure` has escaped every header and cell already (plotly
    draws the same small HTML subset), so they are placed as they are.
    """
    title = fig_dict.get("layout", {}).get("title", {}).get("text") or ""
    parts = ["<div class='kbp-table'>"] + ([f"<strong>{title}</strong>"] if title else [])
    for trace in fig_dict.get("data", []):
        headers = trace.get("header", {}).get("values", [])
        columns = trace.get("cells", {}).get("values", [])
        rows = zip(*columns, strict=False) if columns else iter(())
        head = "".join(f"<th>{h}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>" for row in rows)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</div>")
    return "".join(parts)


def report_figure_html(fig: go.Figure | Mapping[str, Any]) -> str:
    """Return a figure as report HTML: a plotly div (no plotly.js, no MathJax) or a table.

    Figures whose traces are all tables become HTML tables; a trace type the
    report's partial plotly.js cannot draw is said in words instead of an
    empty frame.
    """
    fig_dict = fig.to_dict() if isinstance(fig, go.Figure) else dict(fig)
    kinds = {trace.get("type", "scatter") for trace in fig_dict.get("data", [])}
    if kinds and kinds <= {"table"}:
        return _table_html(fig_dict)
    unsupported = sorted(kinds - REPORT_TRACE_TYPES)
    if unsupported:
        return (f"<p class='kbp-unsupported'>This figure uses {esc(', '.join(unsupported))}, "
                "which the report's plotly.js bundle does not draw; open the notebook in "
                "JupyterLab to see it.</p>")
    html_text: str = pio.to_html(
        fig_dict, include_plotlyjs=False, include_mathjax=False, full_html=False,
        default_width="100%", default_height=fig_dict.get("layout", {}).get("height") or 460,
        validate=False, config=dict(REPORT_PLOT_CONFIG),
    )
    return html_text


class _ReportRenderer(pio.base_renderers.NotebookRenderer):  # type: ignore[misc]
    """The ``notebook`` renderer for reports: no plotly.js, no MathJax CDN.

    plotly's own ``notebook`` renderer adds
    ``<script src="https://cdnjs.cloudflare.com/.../mathjax...">`` to every
    figure, and inlines plotly.js only if a figure is shown before any widget;
    the report template inlines plotly.js once in the page head instead, and a
    report opened offline must make no request at all.
    """

    def activate(self) -> None:
        """Do nothing: the report template provides plotly.js."""

    def to_mimebundle(self, fig_dict: Any) -> dict[str, Any]:
        return {"text/html": report_figure_html(fig_dict)}


pio.renderers["kbp_report"] = _ReportRenderer(connected=False)


def use_report_renderer() -> None:
    """Draw figures as offline HTML for ``kbp report`` (plotly.js comes from its template).

    Keeps the ``application/vnd.plotly.v1+json`` bundle for JupyterLab next to
    ``text/html`` without plotly.js or MathJax for the exported report.
    """
    pio.renderers.default = "plotly_mimetype+kbp_report"


if os.environ.get("KBP_REPORT") == "1":
    use_report_renderer()


def report_mode() -> bool:
    """Return True while figures are drawn for an exported report (no kernel behind them)."""
    return "kbp_report" in str(pio.renderers.default)


def figure_mimebundle(fig: go.Figure) -> dict[str, Any]:
    """Return a display bundle for ``fig`` that JupyterLab, Voilà and offline HTML can all draw.

    ``application/vnd.plotly.v1+json`` is drawn by jupyterlab-plotly in Lab
    and Voilà; ``text/html`` (no plotly.js, no MathJax) is drawn by an
    exported report, which has plotly.js inlined once.
    """
    # plotly's own encoder: numpy arrays, timestamps and NaN become plain JSON (widget comms
    # refuse anything else).
    as_json = json.loads(pio.to_json(fig, validate=False, remove_uids=True))
    html_text = report_figure_html(as_json)
    return {
        "application/vnd.plotly.v1+json": {"data": as_json["data"], "layout": as_json["layout"],
                                           "config": dict(REPORT_PLOT_CONFIG)},
        "text/html": html_text,
    }
