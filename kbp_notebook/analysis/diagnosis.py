"""What is wrong and what to change: findings from every signal, then advice.

``diagnose(dataset)`` runs the checks below on one recording and returns a
:class:`Diagnosis` with one **finding** per signal (severity ``critical``,
``warning``, ``info`` or ``ok``, and evidence in words with the numbers and
times it rests on) and **recommendations** that follow from those findings.

Signals (``signal`` column) and where they come from:

========================================  =============================================
``lag_growing``                           :func:`lag_trend` per group and topic
``consumers_slower_than_producers``       :func:`time_to_drain` rates per group and topic
``under_replicated_partitions``           broker metric ``under_replicated_partitions``
``disk_usage_high``                       ``log_dir_used_bytes`` / ``log_dir_free_bytes``
``producer_request_latency_up``           ``producer_request_latency_avg_ms`` vs its baseline
``producer_queue_time_up``                ``producer_record_queue_time_avg_ms`` vs baseline
``flush_latency_correlated_with_lag``     :func:`flush_latency_vs_lag` (lag and its growth)
``request_handler_idle_low``              ``request_handler_idle_ratio`` below 0.3
``network_processor_idle_low``            ``network_processor_idle_ratio`` below 0.3
``consumer_count``                        distinct ``consumer_id`` vs partitions per group
``partition_skew``                        one partition's share of its group/topic's lag
``retention_risk``                        ``log_start_offset``: lag vs what the log keeps
========================================  =============================================

A signal that cannot be evaluated (nothing recorded for it) still gets a row,
severity ``info``, saying what is missing, so an empty check is never
mistaken for a healthy one. "Baseline" is the first quarter of the recording
(``baseline=0.25``), compared with its last quarter.

Recommendations are derived from the findings by explicit rules, each
naming the finding(s) it follows from in ``because``. They never contradict
the findings: when every partition already has its own consumer the advice
is to add partitions (more consumers would sit idle), never to add
consumers; tuning advice (batching, compression, ``linger.ms`` /
``batch.size``, ``acks``, ``num.io.threads`` / ``num.network.threads``,
retention and segment settings, flow control, broker resources) appears
only where a finding points there.

Group and topic names appear in the evidence text as plain data; the HTML
repr escapes them (as do the plots).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from kbp_notebook.analysis._result import Result
from kbp_notebook.errors import KbpDataError, KbpError, KbpInputError

__all__ = ["Diagnosis", "diagnose"]

SEVERITIES = ("critical", "warning", "info", "ok")
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

#: Idle ratios below this are a saturated broker thread pool (Kafka's own guidance).
IDLE_WARN = 0.3
IDLE_CRITICAL = 0.1
#: Share of a log dir's capacity in use.
DISK_WARN = 0.80
DISK_CRITICAL = 0.90
#: Recent median over baseline median for producer latencies.
LATENCY_RATIO_WARN = 2.0
LATENCY_RATIO_CRITICAL = 5.0
#: Ignore rises smaller than this many ms (0.2 -> 0.6 ms is not an incident).
LATENCY_MIN_RISE_MS = 2.0
#: One partition holding this share (or more) of its group/topic's lag is skew.
SKEW_SHARE = 0.5
#: With more groups than this, groups that are not behind share one consumer_count row.
MAX_GROUP_ROWS = 10
#: Retention: seconds until the consumer falls behind the log start.
RETENTION_CRITICAL_S = 3600.0
RETENTION_WARN_S = 6 * 3600.0
#: Retention: lag as a share of what the log holds (log end - log start).
RETENTION_SHARE_WARN = 0.8

FINDING_COLUMNS = ("signal", "severity", "evidence", "time_start", "value", "threshold")
RECOMMENDATION_COLUMNS = ("recommendation", "because", "detail")


@dataclass(frozen=True, repr=False)
class Diagnosis(Result):
    """Findings per signal and the recommendations that follow from them.

    Attributes
    ----------
    table
        Findings, worst first: ``signal``, ``severity`` (critical, warning,
        info, ok), ``evidence`` (text with numbers and UTC times),
        ``time_start`` (when it began, NaT if not applicable), ``value`` and
        ``threshold`` (the number the severity was decided on, and its bar).
    recommendations
        ``recommendation``, ``because`` (the finding signal(s) it follows
        from, comma-separated) and ``detail``.
    """

    recommendations: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(RECOMMENDATION_COLUMNS))
    )

    plot_builder: ClassVar[str] = "plot_diagnosis"
    title: ClassVar[str] = "Diagnosis"

    @property
    def findings(self) -> pd.DataFrame:
        """The findings table (same as ``table``)."""
        return self.table

    def finding(self, signal: str) -> pd.Series:
        """Return the (worst) finding row of one signal.

        Raises
        ------
        KbpInputError
            No finding has that signal name.
        """
        rows = self.table[self.table["signal"] == signal]
        if not len(rows):
            raise KbpInputError(
                f"no finding named {signal!r}; signals are {sorted(set(self.table['signal']))}."
            )
        return rows.iloc[0]

    def summary_lines(self) -> list[str]:
        """Return the top finding in one sentence, and the counts."""
        if not len(self.table):
            return ["No signals could be evaluated."]
        top = self.table.iloc[0]
        counts = self.table["severity"].value_counts()
        tally = ", ".join(f"{int(counts.get(s, 0))} {s}" for s in SEVERITIES)
        if top["severity"] in ("critical", "warning"):
            return [f"Top finding ({top['severity']}): {top['evidence']}.", tally]
        missing = int(counts.get("info", 0))
        lines = [
            f"No warning or critical finding: {int(counts.get('ok', 0))} signal(s) ok, "
            f"{missing} informational (mostly signals with nothing recorded).",
            tally,
        ]
        if top["signal"] == "lag_growing":
            lines.insert(1, f"Earlier: {top['evidence']}.")
        return lines

    def __repr__(self) -> str:
        text = super().__repr__()
        with pd.option_context("display.max_rows", 30, "display.width", 160):
            recs = (
                self.recommendations.to_string(index=False)
                if len(self.recommendations)
                else "(no recommendations)"
            )
        return f"{text}\nRecommendations:\n{recs}"

    def _repr_html_(self) -> str:
        recs = self.recommendations.to_html(escape=True, index=False, na_rep="—")
        return (
            f"{super()._repr_html_()}<div class='kbp-result'>"
            f"<strong>{html.escape('Recommendations')}</strong>{recs}</div>"
        )


# --------------------------------------------------------------------------- helpers


def _fmt_time(value: Any) -> str:
    if value is None or pd.isna(value):
        return "an unknown time"
    return f"{pd.Timestamp(value).tz_convert('UTC'):%Y-%m-%d %H:%M:%S} UTC"


def _fmt_duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "never"
    seconds = max(float(seconds), 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _fmt_num(value: float) -> str:
    if not np.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _fmt_bytes(value: float) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size:.0f} B"
        size /= 1024
    return f"{size:.1f} TiB"


def _row_at(frame: pd.DataFrame, values: Any, *, lowest: bool = False) -> pd.Series:
    """Return the row of ``frame`` where aligned ``values`` is largest (or smallest)."""
    numbers = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype="float64")
    numbers = np.where(np.isnan(numbers), np.inf if lowest else -np.inf, numbers)
    position = int(np.argmin(numbers) if lowest else np.argmax(numbers))
    row: pd.Series = frame.iloc[position]
    return row


def _key(group: Any, topic: Any) -> str:
    return f"group {str(group)!r} on topic {str(topic)!r}"


def _finding(
    signal: str,
    severity: str,
    evidence: str,
    *,
    time_start: Any = None,
    value: float = float("nan"),
    threshold: float = float("nan"),
) -> dict[str, Any]:
    return {
        "signal": signal,
        "severity": severity,
        "evidence": evidence,
        "time_start": pd.NaT if time_start is None else pd.Timestamp(time_start),
        "value": float(value),
        "threshold": float(threshold),
    }


def _metric_rows(metrics: pd.DataFrame, name: str) -> pd.DataFrame:
    if not len(metrics):
        return metrics
    rows = metrics[(metrics["metric"] == name) & np.isfinite(metrics["value"].to_numpy())]
    ordered: pd.DataFrame = rows.sort_values(["entity", "time"], kind="stable")
    return ordered


def _windows(rows: pd.DataFrame, fraction: float) -> tuple[pd.Series, pd.Series]:
    """Masks of the baseline (first ``fraction``) and recent (last ``fraction``) samples."""
    start, end = rows["time"].min(), rows["time"].max()
    span = end - start
    return rows["time"] <= start + span * fraction, rows["time"] >= end - span * fraction


@dataclass
class _Context:
    dataset: Any
    baseline: float
    alpha: float
    min_skew_lag: float
    trend: pd.DataFrame | None = None
    trend_error: str = ""
    drain: pd.DataFrame | None = None
    drain_partitions: pd.DataFrame | None = None
    drain_error: str = ""
    consumers: pd.DataFrame | None = None
    stuck_groups: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------- checks


def _check_lag_growing(ctx: _Context) -> list[dict[str, Any]]:
    signal = "lag_growing"
    table = ctx.trend
    if table is None:
        return [_finding(signal, "info", f"lag trend could not be computed: {ctx.trend_error}")]
    growing = table[table["status"] == "growing"].sort_values("slope_per_s", ascending=False)
    judged = table[table["status"].notna()]
    if not len(judged):
        reasons = "; ".join(sorted(set(table["reason"].astype(str))))
        return [_finding(signal, "info", f"no group/topic had enough lag samples: {reasons}")]
    if not len(growing):
        draining = int((judged["status"] == "draining").sum())
        now = (
            f"lag is not growing now for any of {len(judged)} group/topic key(s) "
            f"({draining} draining, {len(judged) - draining} stable)"
        )
        episode = _lag_episode(ctx)
        if episode is not None:
            return [episode | {"evidence": f"{episode['evidence']}; {now}"}]
        return [
            _finding(
                signal,
                "ok",
                now,
                value=float(judged["slope_per_s"].max()),
                threshold=0.0,
            )
        ]
    top = growing.iloc[0]
    since = (
        f"since {_fmt_time(top['onset'])}"
        if pd.notna(top["onset"])
        else "since the start of the recording"
    )
    others = f"; {len(growing) - 1} more key(s) growing" if len(growing) > 1 else ""
    evidence = (
        f"lag of {_key(top['group'], top['topic'])} grows {_fmt_num(top['slope_per_s'])} "
        f"messages/s (interval {_fmt_num(top['ci_low'])} to {_fmt_num(top['ci_high'])}) "
        f"{since}{others}"
    )
    start = top["onset"] if pd.notna(top["onset"]) else ctx.dataset.lag["time"].min()
    return [
        _finding(
            signal,
            "warning",
            evidence,
            time_start=start,
            value=float(top["slope_per_s"]),
            threshold=0.0,
        )
    ]


def _lag_episode(ctx: _Context) -> dict[str, Any] | None:
    """Find a rise of total lag inside the recording that the end-to-end trend hides.

    Per group/topic: baseline = median total lag over the first ``baseline``
    share of the recording; a rise is a peak at least ``min_skew_lag``
    messages and twice the baseline above it. If lag came back down (within
    a quarter of the rise) it is reported as a resolved episode (``info``),
    otherwise as lag that stays high (``warning``).
    """
    lag = ctx.dataset.lag
    totals = (
        lag.groupby(["group", "topic", "time"], observed=True)["lag"]
        .sum(min_count=1)
        .astype("float64")
        .dropna()
        .reset_index()
    )
    if len(totals) < 4:
        return None
    keys = [totals["group"], totals["topic"]]
    by_key = totals.groupby(keys, observed=True)
    first, last = by_key["time"].transform("min"), by_key["time"].transform("max")
    early = totals["time"] <= first + (last - first) * ctx.baseline
    base = totals["lag"].where(early).groupby(keys, observed=True).transform("median")
    peak = by_key["lag"].transform("max")
    rise = peak - base
    eligible = (rise >= ctx.min_skew_lag) & (peak >= 2 * base) & (totals["lag"] == peak)
    if not bool(eligible.any()):
        return None
    top = _row_at(totals[eligible], rise[eligible])
    own = totals[(totals["group"] == top["group"]) & (totals["topic"] == top["topic"])]
    base_level = float(base[top.name])
    amount = float(top["lag"]) - base_level
    before = own[(own["time"] <= top["time"]) & (own["lag"] <= base_level + 0.1 * amount)]
    began = before["time"].max() if len(before) else own["time"].min()
    after = own[(own["time"] > top["time"]) & (own["lag"] <= base_level + 0.25 * amount)]
    story = (
        f"lag of {_key(top['group'], top['topic'])} rose from about {_fmt_num(base_level)} "
        f"messages after {_fmt_time(began)} to a peak of {_fmt_num(float(top['lag']))} at "
        f"{_fmt_time(top['time'])}"
    )
    rate = amount / max((top["time"] - began).total_seconds(), 1e-9)
    if len(after):
        back = after["time"].min()
        return _finding(
            "lag_growing",
            "info",
            f"{story} (about {_fmt_num(rate)} messages/s), and was back down by "
            f"{_fmt_time(back)}: a resolved episode",
            time_start=began,
            value=rate,
            threshold=0.0,
        )
    ctx.stuck_groups.add(str(top["group"]))
    return _finding(
        "lag_growing",
        "warning",
        f"{story} (about {_fmt_num(rate)} messages/s) and has not come back down "
        f"({_fmt_num(float(own['lag'].iloc[-1]))} at the end)",
        time_start=began,
        value=rate,
        threshold=0.0,
    )


def _behind(table: pd.DataFrame, min_lag: float) -> tuple[pd.Series, pd.Series]:
    """Keys whose consumers are slower than producers: (confidently, plausibly and material).

    Confident: the ETA interval excludes every finite time (``eta_low_s`` is
    inf). Plausible: it does not drain at the point estimate but the interval
    reaches finite times; counted only when the lag is at least ``min_lag``
    messages, so a caught-up group whose rates differ by noise is not flagged.
    """
    slower = (
        ~table["drains"].fillna(False).astype(bool)
        & (table["lag"] > 0)
        & (table["consume_rate"] < table["produce_rate"])
    )
    confident = slower & np.isinf(table["eta_low_s"].astype(float))
    plausible = slower & ~confident & (table["lag"] >= min_lag)
    return confident, plausible


def _check_rates(ctx: _Context) -> list[dict[str, Any]]:
    signal = "consumers_slower_than_producers"
    table = ctx.drain
    if table is None:
        return [_finding(signal, "info", f"rates could not be computed: {ctx.drain_error}")]
    known = table[np.isfinite(table["produce_rate"]) & np.isfinite(table["consume_rate"])]
    if not len(known):
        return [_finding(signal, "info", "no group/topic had enough samples for rates")]
    confident, plausible = _behind(known, ctx.min_skew_lag)
    start = ctx.dataset.lag["time"].min()
    for mask, severity in ((confident, "critical"), (plausible, "warning")):
        behind = known[mask]
        if not len(behind):
            continue
        ratio = behind["consume_rate"] / behind["produce_rate"].where(behind["produce_rate"] > 0)
        worst = _row_at(behind, ratio, lowest=True)
        others = f"; {len(behind) - 1} more key(s) like it" if len(behind) > 1 else ""
        verdict = (
            "never drains at these rates"
            if severity == "critical"
            else f"does not drain at these rates (the interval still allows it to, in "
            f"{_fmt_duration(float(worst['eta_low_s']))} or more)"
        )
        evidence = (
            f"{_key(worst['group'], worst['topic'])} consumes {_fmt_num(worst['consume_rate'])} "
            f"messages/s while producers write {_fmt_num(worst['produce_rate'])} messages/s: "
            f"its lag ({_fmt_num(worst['lag'])} messages) {verdict}{others}"
        )
        return [
            _finding(
                signal,
                severity,
                evidence,
                time_start=start,
                value=float(ratio.min()),
                threshold=1.0,
            )
        ]
    lagging = known[(known["lag"] > 0) & np.isfinite(known["eta_s"].astype(float))]
    if len(lagging):
        slowest = _row_at(lagging, lagging["eta_s"])
        evidence = (
            f"consumers keep up: {_key(slowest['group'], slowest['topic'])}, the slowest, "
            f"drains its {_fmt_num(slowest['lag'])} messages in about "
            f"{_fmt_duration(float(slowest['eta_s']))} (consume "
            f"{_fmt_num(slowest['consume_rate'])} vs produce "
            f"{_fmt_num(slowest['produce_rate'])} messages/s)"
        )
        value = float(slowest["consume_rate"]) / max(float(slowest["produce_rate"]), 1e-12)
        return [_finding(signal, "ok", evidence, value=value, threshold=1.0)]
    most = float(known["lag"].max())
    text = (
        "no lag: consumers are caught up"
        if most <= 0
        else f"consumers keep up: lag is at most {_fmt_num(most)} messages, within the noise "
        f"of a caught-up group"
    )
    return [_finding(signal, "ok", text, threshold=1.0)]


def _check_under_replicated(ctx: _Context) -> list[dict[str, Any]]:
    signal = "under_replicated_partitions"
    rows = _metric_rows(ctx.dataset.metrics, "under_replicated_partitions")
    if not len(rows):
        return [_finding(signal, "info", "no under_replicated_partitions recorded")]
    bad = rows[rows["value"] > 0]
    if not len(bad):
        brokers = rows["entity"].nunique()
        return [
            _finding(
                signal,
                "ok",
                f"no under-replicated partitions on {brokers} broker(s) throughout",
                value=0.0,
                threshold=0.0,
            )
        ]
    worst = _row_at(bad, bad["value"])
    first = bad["time"].min()
    evidence = (
        f"{_fmt_num(worst['value'])} under-replicated partition(s) on {worst['entity']} at "
        f"{_fmt_time(worst['time'])}; first seen {_fmt_time(first)} "
        f"({bad['entity'].nunique()} broker(s) affected)"
    )
    return [
        _finding(
            signal,
            "critical",
            evidence,
            time_start=first,
            value=float(worst["value"]),
            threshold=0.0,
        )
    ]


def _check_disk(ctx: _Context) -> list[dict[str, Any]]:
    signal = "disk_usage_high"
    used = _metric_rows(ctx.dataset.metrics, "log_dir_used_bytes")
    free = _metric_rows(ctx.dataset.metrics, "log_dir_free_bytes")
    if not len(used):
        return [_finding(signal, "info", "no log_dir_used_bytes recorded")]
    last_used = used.groupby("entity", sort=True).last()
    if not len(free):
        largest = _row_at(last_used, last_used["value"])
        return [
            _finding(
                signal,
                "info",
                f"no log_dir_free_bytes recorded, so capacity is unknown; largest log dir "
                f"{largest.name} holds {_fmt_bytes(float(largest['value']))} at "
                f"{_fmt_time(largest['time'])}",
                value=float(largest["value"]),
            )
        ]
    last_free = free.groupby("entity", sort=True)["value"].last()
    joined = last_used.join(last_free.rename("free"), how="inner")
    if not len(joined):
        return [_finding(signal, "info", "log dir used and free bytes name different log dirs")]
    share = joined["value"] / (joined["value"] + joined["free"])
    fullest = _row_at(joined, share)
    top = fullest.name
    value = float(share.max())
    severity = "critical" if value >= DISK_CRITICAL else "warning" if value >= DISK_WARN else "ok"
    evidence = (
        f"log dir {top} is {value:.0%} full ({_fmt_bytes(float(fullest['value']))} used, "
        f"{_fmt_bytes(float(fullest['free']))} free) at {_fmt_time(fullest['time'])}"
    )
    start = None
    if severity != "ok":
        both = used.merge(
            free[["entity", "time", "value"]], on=["entity", "time"], suffixes=("", "_free")
        )
        over = both[both["value"] / (both["value"] + both["value_free"]) >= DISK_WARN]
        start = over["time"].min() if len(over) else None
    return [
        _finding(signal, severity, evidence, time_start=start, value=value, threshold=DISK_WARN)
    ]


def _check_latency(ctx: _Context, signal: str, metric: str, what: str) -> list[dict[str, Any]]:
    rows = _metric_rows(ctx.dataset.metrics, metric)
    if not len(rows):
        return [_finding(signal, "info", f"no {metric} recorded")]
    base_mask, recent_mask = _windows(rows, ctx.baseline)
    base = rows[base_mask].groupby("entity")["value"].median()
    recent = rows[recent_mask].groupby("entity")["value"].median()
    both = pd.DataFrame({"base": base, "recent": recent}).dropna()
    if not len(both) or rows["time"].nunique() < 4:
        return [
            _finding(signal, "info", f"{metric} recorded too briefly to compare with a baseline")
        ]
    ratio = both["recent"] / both["base"].where(both["base"] > 0)
    ratio = ratio.where(ratio.notna(), np.where(both["recent"] > 0, np.inf, 1.0))
    rise = both["recent"] - both["base"]
    entity = ratio.index[int(np.argmax(ratio.to_numpy(dtype=float)))]
    value = float(ratio.max())
    meaningful = float(rise.loc[entity]) >= LATENCY_MIN_RISE_MS
    if meaningful and value >= LATENCY_RATIO_CRITICAL:
        severity = "critical"
    elif meaningful and value >= LATENCY_RATIO_WARN:
        severity = "warning"
    else:
        severity = "ok"
    evidence = (
        f"{what} of {entity} is {_fmt_num(both.loc[entity, 'recent'])} ms (median of the last "
        f"{ctx.baseline:.0%} of the recording) against a baseline of "
        f"{_fmt_num(both.loc[entity, 'base'])} ms (first {ctx.baseline:.0%}): "
        f"{value:.1f}x"
    )
    start = None
    if severity != "ok":
        own = rows[rows["entity"] == entity]
        over = own[own["value"] >= LATENCY_RATIO_WARN * both.loc[entity, "base"]]
        start = over["time"].min() if len(over) else None
        evidence += f", above {LATENCY_RATIO_WARN:g}x since {_fmt_time(start)}"
    return [
        _finding(
            signal,
            severity,
            evidence,
            time_start=start,
            value=value,
            threshold=LATENCY_RATIO_WARN,
        )
    ]


def _check_flush(ctx: _Context) -> list[dict[str, Any]]:
    from kbp_notebook.analysis.correlation import flush_latency_vs_lag

    signal = "flush_latency_correlated_with_lag"
    metric = "log_flush_time_ms_p99"
    if not len(_metric_rows(ctx.dataset.metrics, metric)):
        return [_finding(signal, "info", f"no {metric} recorded")]
    results = []
    last_error = ""
    targets: tuple[Literal["lag", "lag_growth"], ...] = ("lag", "lag_growth")
    for target in targets:
        try:
            results.append(flush_latency_vs_lag(ctx.dataset, target=target))
        except KbpError as exc:
            last_error = str(exc)
    if not results:
        return [_finding(signal, "info", f"flush latency could not be correlated: {last_error}")]
    # Two targets tested: Bonferroni, each at alpha / 2.
    best = min(results, key=lambda r: r.p_value)
    level = ctx.alpha / 2
    peak = float(ctx.dataset.metrics.loc[ctx.dataset.metrics["metric"] == metric, "value"].max())
    what = f"{best.y_name} (r = {best.r:+.2f}, p = {best.p_value:.2g}"
    lead = _lead_words(best.shift, metric)
    if best.p_value < level and best.r > 0:
        evidence = (
            f"broker {metric} rises with {what}, {lead}); flush latency peaked at "
            f"{_fmt_num(peak)} ms. A correlation, not proof of cause"
        )
        return [_finding(signal, "warning", evidence, value=best.r, threshold=level)]
    evidence = (
        f"no evidence that broker {metric} moves with lag: best was {what}) after allowing "
        f"for autocorrelation and the ±{_fmt_duration(best.max_shift.total_seconds())} search; "
        f"flush latency peaked at {_fmt_num(peak)} ms"
    )
    return [_finding(signal, "ok", evidence, value=best.r, threshold=level)]


def _lead_words(shift: pd.Timedelta, metric: str) -> str:
    seconds = float(shift.total_seconds())
    if seconds > 0:
        return f"{metric} moving first by {_fmt_duration(seconds)}"
    if seconds < 0:
        return f"lag moving first by {_fmt_duration(-seconds)}"
    return "at the same time"


def _check_idle(ctx: _Context, signal: str, metric: str, what: str) -> list[dict[str, Any]]:
    rows = _metric_rows(ctx.dataset.metrics, metric)
    if not len(rows):
        return [_finding(signal, "info", f"no {metric} recorded")]
    _, recent_mask = _windows(rows, ctx.baseline)
    recent = rows[recent_mask].groupby("entity")["value"].median()
    lowest = rows.groupby("entity")["value"].min()
    entity = recent.index[int(np.argmin(recent.to_numpy(dtype=float)))]
    value = float(recent.min())
    severity = "critical" if value < IDLE_CRITICAL else "warning" if value < IDLE_WARN else "ok"
    low_ever = float(lowest.min())
    low_entity = lowest.index[int(np.argmin(lowest.to_numpy(dtype=float)))]
    evidence = (
        f"{what} idle ratio of {entity} is {value:.2f} recently (median of the last "
        f"{ctx.baseline:.0%}), lowest sample {low_ever:.2f} on {low_entity}; "
        f"healthy is above {IDLE_WARN:g}"
    )
    start = None
    if severity != "ok":
        own = rows[(rows["entity"] == entity) & (rows["value"] < IDLE_WARN)]
        start = own["time"].min() if len(own) else None
        evidence += f"; below {IDLE_WARN:g} since {_fmt_time(start)}"
    elif low_ever < IDLE_WARN:
        severity = "info"
        evidence += " (dipped below it earlier, recovered since)"
    highest = float(rows["value"].max())
    if highest > 1.05:
        evidence += (
            f"; recorded values reach {highest:.2f}, above 1, so this may not be a 0-1 ratio "
            f"(check how it was collected)"
        )
    return [
        _finding(signal, severity, evidence, time_start=start, value=value, threshold=IDLE_WARN)
    ]


def _consumer_counts(lag: pd.DataFrame) -> pd.DataFrame | None:
    """Per group at its latest snapshot: members with partitions, and partitions."""
    if "consumer_id" not in lag.columns:
        return None
    latest_time = lag.groupby("group")["time"].transform("max")
    latest = lag[lag["time"] == latest_time]
    member = latest["consumer_id"].astype("string").str.strip()
    member = member.where(~member.isin(["", "-"]))
    counted = latest.assign(_member=member)
    out = counted.groupby("group").agg(
        time=("time", "max"),
        consumers=("_member", "nunique"),
        partitions=("partition", "size"),
        topics=("topic", lambda s: ", ".join(sorted(map(str, set(s))))),
    )
    return out.reset_index()


def _check_consumers(ctx: _Context) -> list[dict[str, Any]]:
    signal = "consumer_count"
    counts = ctx.consumers
    if counts is None:
        return [_finding(signal, "info", "no consumer_id recorded, so group membership is unknown")]
    rows = []
    lagging = _lagging_groups(ctx)
    if len(counts) > MAX_GROUP_ROWS:
        # Many groups: a row each for those that are behind or have no member, one for the rest.
        detail = counts["group"].astype(str).isin(lagging) | (counts["consumers"] == 0)
        rest = counts[~detail]
        counts = counts[detail]
        if len(rest):
            full = int((rest["consumers"] >= rest["partitions"]).sum())
            rows.append(
                _finding(
                    signal,
                    "info",
                    f"{len(rest)} other group(s) are not behind: {len(rest) - full} with fewer "
                    f"consumers than partitions, {full} with one consumer per partition",
                )
            )
    for record in counts.itertuples(index=False):  # one row per group, not per partition
        consumers, partitions = int(str(record.consumers)), int(str(record.partitions))
        where = f"group {str(record.group)!r} ({record.topics})"
        if consumers == 0:
            severity, text = (
                "warning" if record.group in lagging else "info",
                f"{where} has no active member owning its {partitions} partition(s) at "
                f"{_fmt_time(record.time)}: nothing is consuming",
            )
        elif consumers >= partitions:
            severity, text = (
                "warning" if record.group in lagging else "info",
                f"{where} already has {consumers} consumer(s) for {partitions} partition(s): "
                f"one per partition, so more consumers would sit idle",
            )
        else:
            severity, text = (
                "info",
                f"{where} has {consumers} consumer(s) for {partitions} partition(s): up to "
                f"{partitions - consumers} more could share the work",
            )
        rows.append(
            _finding(
                signal,
                severity,
                text,
                value=float(consumers),
                threshold=float(partitions),
            )
            | {"_group": str(record.group), "_consumers": consumers, "_partitions": partitions}
        )
    return rows


def _lagging_groups(ctx: _Context) -> set[str]:
    groups: set[str] = set(ctx.stuck_groups)
    if ctx.trend is not None:
        groups |= set(map(str, ctx.trend.loc[ctx.trend["status"] == "growing", "group"]))
    if ctx.drain is not None:
        confident, plausible = _behind(ctx.drain, ctx.min_skew_lag)
        groups |= set(map(str, ctx.drain.loc[confident | plausible, "group"]))
    return groups


def _check_skew(ctx: _Context) -> list[dict[str, Any]]:
    signal = "partition_skew"
    lag = ctx.dataset.lag
    if not len(lag):
        return [_finding(signal, "info", "no lag recorded")]
    latest = lag[lag["time"] == lag.groupby(["group", "topic"])["time"].transform("max")]
    latest = latest.assign(_lag=latest["lag"].astype("Float64").fillna(0).astype(float))
    by_key = latest.groupby(["group", "topic"])
    total = by_key["_lag"].transform("sum")
    count = by_key["_lag"].transform("size")
    share = latest["_lag"] / total.where(total > 0)
    bar = np.maximum(SKEW_SHARE, 1.5 / count)
    skewed = latest[(share >= bar) & (count >= 2) & (total >= ctx.min_skew_lag)]
    skewed = skewed.assign(_share=share[skewed.index], _total=total[skewed.index])
    if not len(skewed):
        eligible = int(
            ((count >= 2) & (total >= ctx.min_skew_lag))
            .groupby([latest["group"], latest["topic"]])
            .any()
            .sum()
        )
        if not eligible:
            return [
                _finding(
                    signal,
                    "ok",
                    f"no group/topic with two or more partitions holds {_fmt_num(ctx.min_skew_lag)}"
                    f" or more messages of lag, so there is no skew to speak of",
                    threshold=SKEW_SHARE,
                )
            ]
        return [
            _finding(
                signal,
                "ok",
                f"lag is spread over partitions: no partition holds {SKEW_SHARE:.0%} or more of "
                f"its group/topic's lag",
                value=float(share.max()),
                threshold=SKEW_SHARE,
            )
        ]
    worst = _row_at(skewed, skewed["_share"])
    others = f"; {len(skewed) - 1} more skewed key(s)" if len(skewed) > 1 else ""
    evidence = (
        f"partition {int(worst['partition'])} holds {worst['_share']:.0%} of the lag of "
        f"{_key(worst['group'], worst['topic'])} ({_fmt_num(worst['_lag'])} of "
        f"{_fmt_num(worst['_total'])} messages over {int(count[worst.name])} partitions) at "
        f"{_fmt_time(worst['time'])}{others}"
    )
    return [
        _finding(
            signal,
            "warning",
            evidence,
            time_start=None,
            value=float(worst["_share"]),
            threshold=SKEW_SHARE,
        )
    ]


def _check_retention(ctx: _Context) -> list[dict[str, Any]]:
    signal = "retention_risk"
    lag = ctx.dataset.lag
    if "log_start_offset" not in lag.columns or not lag["log_start_offset"].notna().any():
        return [_finding(signal, "info", "no log_start_offset recorded, so retention is unknown")]
    known = lag[lag["log_start_offset"].notna() & lag["committed_offset"].notna()]
    latest = known[known["time"] == known.groupby(["group", "topic"])["time"].transform("max")]
    held = (latest["log_end_offset"] - latest["log_start_offset"]).astype("Float64")
    share = (latest["lag"].astype("Float64") / held.where(held > 0)).astype(float)
    behind = latest["committed_offset"] < latest["log_start_offset"]
    if bool(behind.any()):
        row = latest[behind.to_numpy()].iloc[0]
        evidence = (
            f"{_key(row['group'], row['topic'])} partition {int(row['partition'])} has committed "
            f"offset {int(row['committed_offset'])} below the log start "
            f"{int(row['log_start_offset'])} at {_fmt_time(row['time'])}: messages were deleted "
            f"before they were consumed"
        )
        return [_finding(signal, "critical", evidence, value=0.0, threshold=RETENTION_WARN_S)]
    loss_s = np.inf
    loss_row = None
    parts = ctx.drain_partitions
    if parts is not None and "retention_loss_s" in parts.columns:
        finite = parts[np.isfinite(parts["retention_loss_s"].astype(float))]
        if len(finite):
            loss_row = _row_at(finite, finite["retention_loss_s"], lowest=True)
            loss_s = float(loss_row["retention_loss_s"])
    top_share = float(np.nanmax(share.to_numpy())) if share.notna().any() else 0.0
    if loss_row is not None and loss_s < RETENTION_WARN_S:
        severity = "critical" if loss_s < RETENTION_CRITICAL_S else "warning"
        evidence = (
            f"at current rates {_key(loss_row['group'], loss_row['topic'])} partition "
            f"{int(loss_row['partition'])} falls behind the log start (retention deletes "
            f"unread messages) in about {_fmt_duration(loss_s)}; lag is up to "
            f"{top_share:.0%} of what the log retains"
        )
        return [_finding(signal, severity, evidence, value=loss_s, threshold=RETENTION_WARN_S)]
    if top_share >= RETENTION_SHARE_WARN:
        row = _row_at(latest, share)
        evidence = (
            f"lag of {_key(row['group'], row['topic'])} partition {int(row['partition'])} is "
            f"{top_share:.0%} of what the log retains at {_fmt_time(row['time'])}; little "
            f"headroom before retention deletes unread messages"
        )
        return [
            _finding(signal, "warning", evidence, value=top_share, threshold=RETENTION_SHARE_WARN)
        ]
    horizon = (
        f"; at current rates none is lost for {_fmt_duration(loss_s)}"
        if np.isfinite(loss_s)
        else "; at current rates no consumer falls off retention"
    )
    return [
        _finding(
            signal,
            "ok",
            f"lag is at most {top_share:.0%} of what the logs retain{horizon}",
            value=top_share,
            threshold=RETENTION_SHARE_WARN,
        )
    ]


# --------------------------------------------------------------------------- advice


def _recommend(
    findings: pd.DataFrame, consumer_rows: list[dict[str, Any]], lagging: set[str]
) -> pd.DataFrame:
    bad = findings[findings["severity"].isin(["critical", "warning"])]
    flagged = set(bad["signal"])
    recs: list[dict[str, str]] = []

    def add(text: str, because: list[str], detail: str) -> None:
        recs.append({"recommendation": text, "because": ", ".join(because), "detail": detail})

    behind = [s for s in ("consumers_slower_than_producers", "lag_growing") if s in flagged]
    # Scaling advice only for the groups that are behind, from their own member count.
    consumer_rows = [r for r in consumer_rows if r["_group"] in lagging]
    if behind:
        full = [r for r in consumer_rows if r["_consumers"] >= r["_partitions"] > 0]
        room = [r for r in consumer_rows if 0 < r["_consumers"] < r["_partitions"]]
        idle = [r for r in consumer_rows if r["_consumers"] == 0]
        for row in idle:
            add(
                f"Start consumers for group {row['_group']!r}",
                [*behind, "consumer_count"],
                "no member owns its partitions, so nothing consumes; check that the "
                "application is running and can reach the cluster",
            )
        for row in room:
            add(
                f"Add consumers to group {row['_group']!r} (up to {row['_partitions']})",
                [*behind, "consumer_count"],
                f"it has {row['_consumers']} consumer(s) for {row['_partitions']} partitions; "
                f"each added member takes partitions off the busiest ones",
            )
        for row in full:
            add(
                f"Add partitions to the topic(s) of group {row['_group']!r}, then consumers",
                [*behind, "consumer_count"],
                f"every one of its {row['_partitions']} partitions already has its own consumer "
                f"({row['_consumers']} members), so more consumers would sit idle; more "
                f"partitions (note: this remaps keys) or faster per-record processing "
                f"(batch work per poll, max.poll.records, fetch.min.bytes) raise throughput",
            )
        if full:
            add(
                "Apply flow control to the producers until consumers catch up",
                [*behind, "consumer_count"],
                "the group cannot scale out further without new partitions; client quotas "
                "(producer_byte_rate) or back-pressure in the producing application stop "
                "the backlog from growing meanwhile",
            )
        if not consumer_rows:
            add(
                "Check the group's member count against its partitions before scaling",
                [*behind],
                "consumer_id was not recorded: if there are fewer consumers than partitions, "
                "add consumers; if every partition has one, add partitions instead",
            )
    if "partition_skew" in flagged:
        add(
            "Look at the hot partition: key distribution or its one consumer",
            ["partition_skew"],
            "one partition holds most of the lag: a hot key (check the producer's key choice "
            "and partitioner) or a slow/stuck consumer on that partition; adding consumers "
            "does not split one partition",
        )
    if "retention_risk" in flagged:
        add(
            "Raise retention on the topic now (retention.ms / retention.bytes)",
            ["retention_risk"],
            "the consumer is about to read (or already reads) behind the log start; longer "
            "retention buys time while consumption is fixed. Check disk headroom first"
            + (" (disk usage is already high)" if "disk_usage_high" in flagged else ""),
        )
    if "disk_usage_high" in flagged:
        add(
            "Free or add disk on the full log dir",
            ["disk_usage_high"],
            "lower retention.ms / retention.bytes on the largest topics, smaller "
            "segment.bytes / segment.ms so deletion is timelier, or add disk / brokers",
        )
    if "under_replicated_partitions" in flagged:
        detail = (
            "followers are not keeping up: check the affected broker's health, disk and "
            "network (broker logs, iostat), and num.replica.fetchers"
        )
        because = ["under_replicated_partitions"]
        if "producer_request_latency_up" in flagged:
            detail += (
                "; with acks=all producers wait for the slow followers, which explains their "
                "latency -- fix replication rather than lowering acks (that trades durability)"
            )
            because.append("producer_request_latency_up")
        add("Restore replication on the lagging broker", because, detail)
    broker_busy = [
        s
        for s in (
            "request_handler_idle_low",
            "network_processor_idle_low",
            "flush_latency_correlated_with_lag",
        )
        if s in flagged
    ]
    if "request_handler_idle_low" in flagged:
        add(
            "Raise num.io.threads on the brokers (or add broker capacity)",
            ["request_handler_idle_low"],
            "request handler threads are busy most of the time; more threads help if CPU and "
            "disk have headroom, otherwise add brokers / faster disks",
        )
    if "network_processor_idle_low" in flagged:
        add(
            "Raise num.network.threads, and cut the request count",
            ["network_processor_idle_low"],
            "network threads are saturated; larger producer batches (linger.ms, batch.size) "
            "and compression mean fewer, smaller requests",
        )
    if "flush_latency_correlated_with_lag" in flagged:
        add(
            "Investigate broker disk latency",
            ["flush_latency_correlated_with_lag"],
            "log flush time moves with lag: check disk I/O on the slowest broker (iostat, "
            "other tenants), leave log.flush.interval.* at their defaults (forced flushes "
            "are costly), move logs to faster disks or spread partitions over brokers",
        )
    producer = [
        s for s in ("producer_request_latency_up", "producer_queue_time_up") if s in flagged
    ]
    if producer:
        where = (
            "the brokers look busy (" + ", ".join(broker_busy) + "), so fix the broker side first; "
            if broker_busy
            else ""
        )
        add(
            "Batch and compress on the producers (linger.ms, batch.size, compression.type)",
            producer + broker_busy,
            f"{where}producer requests got slower than their own baseline; linger.ms of "
            f"5-20 ms with a larger batch.size and lz4/zstd compression send fewer, larger "
            f"requests"
            + (
                "; records also queue in the producer buffer (buffer.memory), so slow "
                "producers down (flow control) if the brokers cannot take more"
                if "producer_queue_time_up" in flagged
                else ""
            ),
        )
    if not recs:
        if len(bad):
            add(
                "Review the findings above",
                sorted(flagged),
                "no specific change follows from them alone",
            )
        elif "resolved episode" in " ".join(findings["evidence"].astype(str)):
            add(
                "No change needed now; plan capacity for the peak",
                ["lag_growing"],
                "lag rose and drained again during the recording; to avoid a repeat, size the "
                "group for the peak produce rate (capacity_plan) and keep recording",
            )
        else:
            add(
                "No change needed",
                ["all signals"],
                "no signal is in warning or critical; keep recording to compare with the next "
                "incident",
            )
    return pd.DataFrame(recs, columns=list(RECOMMENDATION_COLUMNS)).astype("string")


# --------------------------------------------------------------------------- public


def diagnose(
    dataset: Any,
    *,
    baseline: float = 0.25,
    alpha: float = 0.05,
    min_skew_lag: float = 1000.0,
) -> Diagnosis:
    """Check every backpressure signal in a recording and say what to change.

    Parameters
    ----------
    dataset
        A :class:`kbp_notebook.frames.Dataset` (``lag`` and, for the broker,
        disk and client signals, ``metrics``).
    baseline
        Share of the recording at its start used as each metric's own
        baseline, and at its end as "recent".
    alpha
        Significance level of the flush-latency correlation (split over its
        two targets, lag and lag growth).
    min_skew_lag
        Smallest group/topic lag (messages) for which partition skew is
        judged (small backlogs are noise).

    Returns
    -------
    Diagnosis
        ``.findings`` (also ``.table``), worst first, and
        ``.recommendations``.

    Raises
    ------
    KbpInputError
        ``dataset`` is not a Dataset, or an option is out of range.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> ds = kbp.load_sample("slow-consumer-then-scale-out")  # doctest: +SKIP
    >>> kbp.diagnose(ds).recommendations  # doctest: +SKIP
    """
    lag = getattr(dataset, "lag", None)
    metrics = getattr(dataset, "metrics", None)
    if not isinstance(lag, pd.DataFrame) or not isinstance(metrics, pd.DataFrame):
        raise KbpInputError(
            "diagnose needs a Dataset (kbp_notebook.frames.Dataset(lag, metrics)); got "
            f"{type(dataset).__name__}."
        )
    if not 0.0 < baseline <= 0.5:
        raise KbpInputError(f"baseline={baseline!r} must be in (0, 0.5].", column="baseline")
    if not 0.0 < alpha < 1.0:
        raise KbpInputError(f"alpha={alpha!r} must be between 0 and 1.", column="alpha")
    ctx = _Context(dataset=dataset, baseline=baseline, alpha=alpha, min_skew_lag=min_skew_lag)
    _run_analyses(ctx)
    rows: list[dict[str, Any]] = []
    checks: list[Callable[[_Context], list[dict[str, Any]]]] = [
        _check_lag_growing,
        _check_rates,
        _check_retention,
        _check_skew,
        _check_under_replicated,
        _check_disk,
        lambda c: _check_latency(
            c,
            "producer_request_latency_up",
            "producer_request_latency_avg_ms",
            "producer request latency",
        ),
        lambda c: _check_latency(
            c,
            "producer_queue_time_up",
            "producer_record_queue_time_avg_ms",
            "producer record queue time",
        ),
        _check_flush,
        lambda c: _check_idle(
            c, "request_handler_idle_low", "request_handler_idle_ratio", "request handler"
        ),
        lambda c: _check_idle(
            c, "network_processor_idle_low", "network_processor_idle_ratio", "network processor"
        ),
    ]
    for check in checks:
        rows.extend(check(ctx))
    # after the lag checks, which decide which groups are behind
    consumer_rows = _check_consumers(ctx)
    rows.extend({k: v for k, v in row.items() if not k.startswith("_")} for row in consumer_rows)
    findings = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    findings["time_start"] = pd.to_datetime(findings["time_start"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    findings["value"] = findings["value"].astype("float64")
    findings["threshold"] = findings["threshold"].astype("float64")
    findings = (
        findings.assign(_rank=findings["severity"].map(_RANK))
        .sort_values("_rank", kind="stable")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )
    for name in ("signal", "severity", "evidence"):
        findings[name] = findings[name].astype("string")
    recommendations = _recommend(
        findings, [r for r in consumer_rows if "_group" in r], _lagging_groups(ctx)
    )
    return Diagnosis(table=findings, recommendations=recommendations)


def _run_analyses(ctx: _Context) -> None:
    from kbp_notebook.analysis.drain import time_to_drain
    from kbp_notebook.analysis.trend import lag_trend

    lag = ctx.dataset.lag
    if not len(lag):
        ctx.trend_error = ctx.drain_error = "no lag recorded"
    else:
        try:
            ctx.trend = lag_trend(lag).table
        except KbpDataError as exc:
            ctx.trend_error = str(exc)
        try:
            forecast = time_to_drain(lag)
            ctx.drain, ctx.drain_partitions = forecast.table, forecast.partitions
        except KbpDataError as exc:
            ctx.drain_error = str(exc)
    ctx.consumers = _consumer_counts(lag) if len(lag) else None
