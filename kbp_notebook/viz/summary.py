"""HTML blocks a report leads with: the verdict box and human tables.

A report is read by someone who did not run it. It opens with the verdict
(what happened, how far behind, why, what to do) and shows tables as people
read them: a short table of the columns that matter, every number through
:mod:`kbp_notebook.units`, and the full width under a collapsed
``<details>``. Every user-named string is escaped here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kbp_notebook.units import (
    format_count,
    format_duration,
    format_rate,
    format_table,
    format_time,
)

__all__ = ["PLAIN_LABELS", "HtmlBlock", "episode_facts", "human_table", "verdict_box"]

#: Plain labels for the internal column names results carry (the name stays in brackets
#: where a reader may need it to find the column in code).
PLAIN_LABELS: dict[str, str] = {
    "group": "group",
    "topic": "topic",
    "partition": "partition",
    "cluster": "cluster",
    "lag": "messages behind",
    "current_lag": "messages behind now",
    "totallag": "messages behind",
    "peak_lag": "peak (messages behind)",
    "peak_time_lag_s": "peak (time behind)",
    "time_lag_s": "time behind",
    "start": "fell behind at",
    "peak_time": "worst at",
    "end": "back to usual at",
    "onset": "growth began",
    "slope_per_s": "growth (msg/s)",
    "ci_low": "growth, low end (msg/s)",
    "ci_high": "growth, high end (msg/s)",
    "p_value": "p-value",
    "n": "snapshots used",
    "status": "status",
    "produce_rate": "produce rate",
    "consume_rate": "consume rate",
    "eta_s": "drains in",
    "eta_low_s": "drains in, at best",
    "eta_high_s": "drains in, at worst",
    "drains": "drains at current rates",
    "retention_loss_s": "unread data deleted in",
    "consumers_now": "consumers now",
    "consumers_needed": "consumers needed",
    "consumers_planned": "consumers planned",
    "partitions": "partitions",
    "partitions_needed": "partitions needed",
    "per_consumer_rate": "rate per consumer",
    "eta_s_at_plan": "drains in (as planned)",
    "feasible": "feasible",
    "rho": "autocorrelation (rho)",
    "n_eff": "effective samples (n_eff)",
    "r": "correlation r",
    "shift": "lead",
    "cause": "cause",
    "evidence": "evidence",
    "growth_rate_per_s": "grew at",
    "drain_rate_per_s": "drained at",
    "partitions_involved": "partitions involved",
    "recommendation": "what to do",
    "note": "note",
}
#: How kbp's own columns read when the name alone does not say.
_KINDS: dict[str, str] = {
    "ci_low": "rate",
    "ci_high": "rate",
    "produce_rate": "rate",
    "consume_rate": "rate",
    "per_consumer_rate": "rate",
    "target_lag": "count",
    "partition": "text",
    "n": "count",
    "n_eff": "number",
    "consumers_now": "number",
    "consumers_needed": "number",
    "consumers_planned": "number",
    "partitions": "number",
    "partitions_needed": "number",
    "partitions_involved": "text",
}
NEVER = "does not drain at current rates"


@dataclass(frozen=True)
class HtmlBlock:
    """A block of trusted (already escaped) HTML that Jupyter and nbconvert display."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


def _frame_of(data: Any) -> pd.DataFrame:
    table = getattr(data, "table", data)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a result with .table or a DataFrame, got {type(data).__name__}")
    if not isinstance(table.index, pd.RangeIndex):
        table = table.reset_index()
    return table


def _readable(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Turn timedeltas into seconds and tuples into words; return the frame and column kinds."""
    out = frame.copy()
    kinds = {k: v for k, v in _KINDS.items() if k in out.columns}
    for name in out.columns:
        column = out[name]
        if pd.api.types.is_timedelta64_dtype(column):
            out[name] = column.dt.total_seconds()
            kinds[str(name)] = "duration"
        elif column.dtype == object:
            out[name] = column.map(
                lambda v: ", ".join(str(x).replace("_", " ") for x in v)
                if isinstance(v, tuple | list) else v)
    return out, kinds


def _html_table(frame: pd.DataFrame) -> str:
    readable, kinds = _readable(frame)
    labels = {c: PLAIN_LABELS.get(str(c), str(c).replace("_", " ")) for c in frame.columns}
    # an infinite ETA means "does not drain"; any other infinite duration means "never"
    human = pd.concat(
        [format_table(readable[[name]], kinds=kinds, labels=labels,
                      never=NEVER if str(name).startswith("eta") else "never")
         for name in readable.columns],
        axis=1,
    )
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in human.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in human.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def human_table(
    data: Any,
    *,
    title: str,
    columns: Sequence[str] | None = None,
    facts: Sequence[str] | None = None,
    max_rows: int = 12,
) -> HtmlBlock:
    """Return a short human table of ``data`` with the full table under ``<details>``.

    Parameters
    ----------
    data
        An analysis result (its ``.table``) or a DataFrame.
    title
        The heading above the table.
    columns
        The columns of the short table, in order (those present are shown);
        default: all (then there is no ``<details>``).
    facts
        Lines shown above the table (default: the result's ``summary_lines()``).
    max_rows
        Rows of the short table; the rest are in the full table.

    Returns
    -------
    HtmlBlock
        Escaped HTML; in a notebook it displays as the tables.
    """
    frame = _frame_of(data)
    if facts is None:
        summary = getattr(data, "summary_lines", None)
        facts = list(summary()) if callable(summary) else []
    shown = [c for c in (columns or frame.columns) if c in frame.columns]
    parts = [f"<div class='kbp-table'><strong>{html.escape(title)}</strong>"]
    if facts:
        parts.append("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in facts) + "</ul>")
    if frame.empty:
        parts.append("<p>No rows.</p></div>")
        return HtmlBlock("".join(parts))
    parts.append(_html_table(frame[shown].head(max_rows)))
    hidden = len(frame.columns) > len(shown) or len(frame) > max_rows
    if hidden:
        parts.append(
            f"<details><summary>All {len(frame.columns)} columns, {format_count(len(frame))} "
            f"rows</summary>{_html_table(frame)}</details>"
        )
    parts.append("</div>")
    return HtmlBlock("".join(parts))


def _key_words(row: Any) -> str:
    parts = [str(row[k]) for k in ("group", "topic") if k in row and not pd.isna(row[k])]
    return " on ".join(parts)


def verdict_box(incidents: Any) -> HtmlBlock:
    """Return the box a report opens with: verdict, worst figures, cause and action.

    Parameters
    ----------
    incidents
        The result of ``kbp.incidents(ds)``: its ``.verdict`` lines (what, how
        far behind, why, recovered or when, what to do), its ``.episodes`` and
        its ``worst()`` episode (the one the verdict is about).

    Returns
    -------
    HtmlBlock
        ``<div class="kbp-verdict">``; green (``kbp-ok``) when there is no episode;
        grey (``kbp-none``) when ``incidents`` is None (too little data for a verdict).
    """
    if incidents is None:
        return HtmlBlock(
            "<div class='kbp-verdict kbp-none'><h2>No verdict</h2><p>This data is too short "
            "or too sparse for the incident model: the reason is printed above. Record for "
            "longer (at least a few minutes of snapshots) and run again.</p></div>")
    lines = [str(line) for line in getattr(incidents, "verdict", ())]
    episodes = getattr(incidents, "episodes", pd.DataFrame())
    worst = incidents.worst() if callable(getattr(incidents, "worst", None)) else None
    as_of = getattr(incidents, "as_of", None)
    ok = worst is None or len(episodes) == 0
    figures = []
    if not ok:
        assert worst is not None
        figures.append(("messages behind at worst", format_count(worst["peak_lag"])))
        seconds = worst.get("peak_time_lag_s")
        if seconds is not None and not pd.isna(seconds):
            bound = "more than " if bool(worst.get("peak_time_lag_is_lower_bound", False)) else ""
            figures.append(("behind the newest message", bound + format_duration(seconds)))
        figures.append(("worst at", format_time(worst["peak_time"])))
        figures.append(("cause", str(worst["cause"]).replace("_", " ")))
        keys = {_key_words(row) for _, row in episodes.iterrows()}
        figures.append((f"episode(s), on {len(keys)} group/topic pair(s)", str(len(episodes))))
    heading = "No incident" if ok else f"Incident: {_key_words(worst) if worst is not None else ''}"
    when = f" <small>(data up to {html.escape(format_time(as_of, date=True))})</small>" \
        if as_of is not None else ""
    items = []
    for line in lines:
        action = line.lower().startswith(("what to do", "nothing to do"))
        css = " class='kbp-action'" if action else ""
        items.append(f"<li{css}>{html.escape(line)}</li>")
    tiles = "".join(
        f"<div class='kbp-figure'><b>{html.escape(value)}</b>{html.escape(label)}</div>"
        for label, value in figures
    )
    css = "kbp-verdict kbp-ok" if ok else "kbp-verdict"
    body = (
        f"<div class='{css}'><h2>{html.escape(heading)}{when}</h2>"
        + (f"<div class='kbp-figures'>{tiles}</div>" if tiles else "")
        + f"<ul>{''.join(items)}</ul></div>"
    )
    return HtmlBlock(body)


def episode_facts(incidents: Any) -> HtmlBlock:
    """Return one line of the worst episode's figures, the same in every section of a report.

    Onset, peak (messages and time), growth and drain rates and the cause, all from the
    incident model and all through :mod:`kbp_notebook.units`, so each section that quotes
    them quotes the same numbers. Empty when there is no episode.
    """
    worst = incidents.worst() if incidents is not None else None
    if worst is None:
        return HtmlBlock("")
    drained = (f" · drained {format_rate(worst['drain_rate_per_s'])}"
               if pd.notna(worst["drain_rate_per_s"]) and worst["drain_rate_per_s"] > 0 else "")
    text = (
        f"Incident figures: {_key_words(worst)} · onset {format_time(worst['start'])} · peak "
        f"{format_count(worst['peak_lag'])} messages at {format_time(worst['peak_time'])} · grew "
        f"{format_rate(worst['growth_rate_per_s'])}{drained} · cause "
        f"{str(worst['cause']).replace('_', ' ')}"
    )
    return HtmlBlock(f"<p class='kbp-episode-facts'>{html.escape(text)}</p>")
