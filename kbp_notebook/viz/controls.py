"""Controls that work without a kernel: plotly's own dropdown or slider over precomputed figures.

An explorer in a live notebook recomputes when a control moves; a mailed
HTML report has no kernel. :func:`choice_figure` merges the figures an
explorer draws for each value of one control into a single figure whose
dropdown (or slider) shows the traces, title, readout, shapes, annotations
and axis ranges of the chosen value, all drawn by plotly.js in the page.
Traces shared by several choices (the recorded history, say) are stored once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["choice_figure", "with_readout"]

#: Layout parts that belong to one choice (swapped when the control moves).
_PER_CHOICE = ("annotations", "shapes")
_AXIS_PARTS = ("range", "autorange", "type")
_READOUT_LINE_CHARS = 110


def _plain(fig: go.Figure) -> dict[str, Any]:
    """Return the figure as plain JSON (numpy arrays, timestamps, NaN encoded by plotly)."""
    out: dict[str, Any] = json.loads(pio.to_json(fig, validate=False, remove_uids=True))
    return out


def _readout_lines(readout_html: str) -> list[str]:
    """Split a one-line readout into lines of about ``_READOUT_LINE_CHARS`` at '; '."""
    lines: list[str] = []
    for part in readout_html.split("; "):
        if lines and len(lines[-1]) + len(part) < _READOUT_LINE_CHARS:
            lines[-1] += "; " + part
        else:
            lines.append(part)
    return lines


def with_readout(fig: go.Figure, readout_html: str) -> go.Figure:
    """Return a copy of ``fig`` whose title carries the explorer's readout below it.

    ``readout_html`` is already escaped (``widgets._base.message``); plotly
    draws its ``<span style=...>`` and line breaks.
    """
    out = go.Figure(fig)
    if not readout_html:
        return out
    lines = _readout_lines(readout_html)
    title = out.layout.title.text or ""
    small = "<br>".join(f"<span style='font-size:12px'>{line}</span>" for line in lines)
    out.update_layout(title_text=f"{title}<br>{small}" if title else small)
    top = (out.layout.margin.t if out.layout.margin.t is not None else 64) + 17 * len(lines)
    out.update_layout(margin_t=top, height=(out.layout.height or 460) + 17 * len(lines))
    return out


def _axes(layout: dict[str, Any]) -> list[str]:
    return [k for k in layout if k.startswith(("xaxis", "yaxis"))]


def _layout_update(layout: dict[str, Any], axes: list[str]) -> dict[str, Any]:
    update: dict[str, Any] = {"title.text": layout.get("title", {}).get("text", "")}
    for part in _PER_CHOICE:
        update[part] = layout.get(part, [])
    for axis in axes:
        own = layout.get(axis, {})
        if "range" in own:
            update[f"{axis}.range"] = own["range"]
            update[f"{axis}.autorange"] = False
        else:
            update[f"{axis}.autorange"] = True
        update[f"{axis}.title.text"] = own.get("title", {}).get("text", "")
    return update


def choice_figure(
    choices: Sequence[tuple[str, go.Figure]],
    *,
    label: str,
    control: Literal["dropdown", "slider"] = "dropdown",
    active: int = 0,
) -> go.Figure:
    """Merge precomputed figures into one whose dropdown or slider picks the one shown.

    Parameters
    ----------
    choices
        ``(choice label, figure)`` pairs, in the control's order. Labels are
        drawn by plotly (its small HTML subset): escape user-named strings
        (:func:`kbp_notebook.viz.esc`). The figures should share their subplot
        layout (the first figure's axes are used).
    label
        What the control chooses (``"group"``, ``"consumers"``), shown next to it.
    control
        ``"dropdown"`` (plotly ``updatemenus``) or ``"slider"`` (plotly ``sliders``).
    active
        Index of the choice shown when the page opens.

    Returns
    -------
    plotly.graph_objects.Figure
        One trace list (each distinct trace once), the active choice visible,
        and ``layout.meta["kbp_control"]`` describing the control for tests.

    Raises
    ------
    ValueError
        No choices, or ``active`` out of range.
    """
    if not choices:
        raise ValueError("choice_figure needs at least one (label, figure) pair")
    if not 0 <= active < len(choices):
        raise ValueError(f"active={active} is not one of the {len(choices)} choices")
    plains = [_plain(fig) for _, fig in choices]
    base_layout = dict(plains[active]["layout"])
    axes = _axes(base_layout)
    data: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    owners: list[list[tuple[int, Any]]] = []  # per choice: (trace index, its own visibility)
    for plain in plains:
        mine = []
        for trace in plain["data"]:
            own_visibility = trace.pop("visible", True)
            key = json.dumps(trace, sort_keys=True)
            if key not in seen:
                seen[key] = len(data)
                data.append(trace)
            mine.append((seen[key], own_visibility))
        owners.append(mine)
    visibility = []
    for mine in owners:
        shown: list[Any] = [False] * len(data)
        for index, own in mine:
            shown[index] = own
        visibility.append(shown)
    for index, trace in enumerate(data):
        trace["visible"] = visibility[active][index]
    steps = []
    for (name, _), plain, shown in zip(choices, plains, visibility, strict=True):
        update = _layout_update(plain["layout"], axes)
        shown_label = f"{label}: {name}" if control == "dropdown" else name
        steps.append({"label": shown_label, "method": "update",
                      "args": [{"visible": shown}, update]})
    layout = base_layout
    margin = dict(layout.get("margin", {}))
    extra = 40 if control == "dropdown" else 130
    height = int(layout.get("height", 460)) + extra
    if control == "dropdown":
        margin["t"] = int(margin.get("t", 64)) + extra
        # the header sits in the top right corner of the figure, 6 px below its edge (in
        # paper units above the plot area), and the list opens down over the plot
        plot_px = max(height - margin["t"] - int(margin.get("b", 48)), 1)
        layout["updatemenus"] = [{
            "type": "dropdown", "direction": "down", "active": active, "showactive": True,
            "buttons": steps, "x": 1.0, "xanchor": "right",
            "y": 1.0 + (margin["t"] - 6) / plot_px, "yanchor": "top", "pad": {"r": 0, "t": 0},
            "bgcolor": "#f7f7f7", "bordercolor": "#bbbbbb", "font": {"size": 12},
        }]
    else:
        # below the x axis title and a legend drawn under the plot
        margin["b"] = int(margin.get("b", 48)) + extra
        layout["sliders"] = [{
            "active": active, "steps": steps, "pad": {"t": 100},
            "currentvalue": {"prefix": f"{label}: ", "font": {"size": 13}},
            "len": 1.0, "x": 0.0,
        }]
    layout["margin"] = margin
    layout["height"] = height
    layout["meta"] = {"kbp_control": {"label": label, "kind": control,
                                      "choices": [name for name, _ in choices]}}
    return go.Figure({"data": data, "layout": layout})
