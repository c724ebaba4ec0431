"""What is wrong and what to change: findings from every signal, then advice.

``diagnose(dataset)`` runs the checks below on one recording and returns a
:class:`Diagnosis` with one **finding** per signal (severity ``critical``,
``warning``, ``info`` or ``ok``, and evidence in words with the numbers and
times it rests on) and **recommendations** that follow from those findings.

Signals (``signal`` column, spelled once in :class:`Signal`) and where they come from:

========================================  =============================================
``lag_episode``                           :func:`incidents`: episodes and their causes
``lag_growing``                           :func:`lag_trend` per group and topic
``consumers_slower_than_producers``       :func:`time_to_drain` rates per group and topic
``under_replicated_partitions``           broker metric ``under_replicated_partitions``
``disk_usage_high``                       ``log_dir_used_bytes`` / ``log_dir_free_bytes``
``producer_request_latency_up``           ``producer_request_latency_avg_ms`` vs its baseline
``producer_queue_time_up``                ``producer_record_queue_time_avg_ms`` vs baseline
``broker_latency_at_onset``               broker latency at each episode's onset vs before
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
from enum import StrEnum
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from kbp_notebook.analysis._result import Result
from kbp_notebook.errors import KbpDataError, KbpError, KbpInputError
from kbp_notebook.units import (
    format_bytes,
    format_count,
    format_duration,
    format_number,
    format_rate,
    format_time,
)

__all__ = ["Diagnosis", "Signal", "diagnose"]

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

class Signal(StrEnum):
    """The names in the findings' ``signal`` column (the table in this module's docstring).

    The one place they are spelled: checks name their findings with these, and
    the advice rules read the flagged ones by them. Members are strings.
    """

    LAG_EPISODE = "lag_episode"
    LAG_GROWING = "lag_growing"
    CONSUMERS_SLOWER_THAN_PRODUCERS = "consumers_slower_than_producers"
    UNDER_REPLICATED_PARTITIONS = "under_replicated_partitions"
    DISK_USAGE_HIGH = "disk_usage_high"
    PRODUCER_REQUEST_LATENCY_UP = "producer_request_latency_up"
    PRODUCER_QUEUE_TIME_UP = "producer_queue_time_up"
    BROKER_LATENCY_AT_ONSET = "broker_latency_at_onset"
    FLUSH_LATENCY_CORRELATED_WITH_LAG = "flush_latency_correlated_with_lag"
    REQUEST_HANDLER_IDLE_LOW = "request_handler_idle_low"
    NETWORK_PROCESSOR_IDLE_LOW = "network_processor_idle_low"
    CONSUMER_COUNT = "consumer_count"
    PARTITION_SKEW = "partition_skew"
    RETENTION_RISK = "retention_risk"


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
        if top["signal"] == Signal.LAG_GROWING:
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


def _when(value: Any) -> str:
    """Return a time with its date, or "an unknown time"."""
    return "an unknown time" if value is None or pd.isna(value) else format_time(value, date=True)


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


@dataclass(frozen=True)
class _Context:
    """What the checks read: the recording, the options and the analyses run on it once.

    Built whole by :func:`_run_analyses`; a ``*_error`` says why its table is None.
    """

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
    episodes: pd.DataFrame | None = None
    episodes_error: str = ""


# --------------------------------------------------------------------------- checks


def _check_lag_growing(ctx: _Context) -> list[dict[str, Any]]:
    """Judge whether lag grows *now* (each key's current regime, from ``lag_trend``)."""
    signal = Signal.LAG_GROWING
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
        return [
            _finding(
                signal,
                "ok",
                f"lag is not growing now for any of {len(judged)} group/topic key(s) "
                f"({draining} draining, {len(judged) - draining} stable)",
                value=float(judged["slope_per_s"].max()),
                threshold=0.0,
            )
        ]
    top = growing.iloc[0]
    since = (
        f"since {format_time(top['onset'], date=True)}"
        if pd.notna(top["onset"])
        else "since the start of the recording"
    )
    others = f"; {len(growing) - 1} more key(s) growing" if len(growing) > 1 else ""
    evidence = (
        f"lag of {_key(top['group'], top['topic'])} grows {format_rate(top['slope_per_s'])} "
        f"now (interval {format_number(top['ci_low'])} to {format_number(top['ci_high'])}) "
        f"{since}{others}"
    )
    start = top["onset"] if pd.notna(top["onset"]) else ctx.dataset.lag["time"].min()
    return [
        _finding(signal, "warning", evidence, time_start=start,
                 value=float(top["slope_per_s"]), threshold=0.0)
    ]


def _check_episodes(ctx: _Context) -> list[dict[str, Any]]:
    """One finding per episode of the incident model, and one per cause it names."""
    signal = Signal.LAG_EPISODE
    episodes = ctx.episodes
    if episodes is None:
        return [_finding(signal, "info", f"episodes could not be found: {ctx.episodes_error}")]
    if not len(episodes):
        return [_finding(signal, "ok", "no group fell behind its own usual lag in this recording")]
    rows = []
    for _, episode in episodes.iterrows():
        over = bool(episode["recovered"])
        severity = "warning" if over else "critical"
        end = (f"back at its usual lag at {format_time(episode['end'])} after "
               f"{format_duration(episode['duration_s'])}" if over
               else f"still behind after {format_duration(episode['duration_s'])}")
        rows.append(_finding(
            signal, severity,
            f"{_key(episode['group'], episode['topic'])} fell behind at "
            f"{format_time(episode['start'], date=True)}, peaked at "
            f"{format_count(episode['peak_lag'])} messages at "
            f"{format_time(episode['peak_time'])} "
            f"(grew {format_rate(episode['growth_rate_per_s'])})"
            f" and was {end}",
            time_start=episode["start"], value=float(episode["peak_lag"]),
            threshold=float(episode["baseline_lag"]),
        ))
        rows.append(_finding(
            str(episode["cause"]), severity,
            f"{_key(episode['group'], episode['topic'])}: {episode['evidence']}",
            time_start=episode["start"], value=float(episode["peak_lag"]),
        ))
    return rows


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
    signal = Signal.CONSUMERS_SLOWER_THAN_PRODUCERS
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
            f"{format_duration(float(worst['eta_low_s']))} or more)"
        )
        evidence = (
            f"{_key(worst['group'], worst['topic'])} consumes "
            f"{format_number(worst['consume_rate'])} "
            f"messages/s while producers write {format_number(worst['produce_rate'])} messages/s: "
            f"its lag ({format_number(worst['lag'])} messages) {verdict}{others}"
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
            f"drains its {format_number(slowest['lag'])} messages in about "
            f"{format_duration(float(slowest['eta_s']))} (consume "
            f"{format_number(slowest['consume_rate'])} vs produce "
            f"{format_number(slowest['produce_rate'])} messages/s)"
        )
        value = float(slowest["consume_rate"]) / max(float(slowest["produce_rate"]), 1e-12)
        return [_finding(signal, "ok", evidence, value=value, threshold=1.0)]
    most = float(known["lag"].max())
    text = (
        "no lag: consumers are caught up"
        if most <= 0
        else f"consumers keep up: lag is at most {format_number(most)} messages, within the noise "
        f"of a caught-up group"
    )
    return [_finding(signal, "ok", text, threshold=1.0)]


def _check_under_replicated(ctx: _Context) -> list[dict[str, Any]]:
    signal = Signal.UNDER_REPLICATED_PARTITIONS
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
        f"{format_number(worst['value'])} under-replicated partition(s) on {worst['entity']} at "
        f"{_when(worst['time'])}; first seen {_when(first)} "
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
    signal = Signal.DISK_USAGE_HIGH
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
                f"{largest.name} holds {format_bytes(float(largest['value']))} at "
                f"{_when(largest['time'])}",
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
        f"log dir {top} is {value:.0%} full ({format_bytes(float(fullest['value']))} used, "
        f"{format_bytes(float(fullest['free']))} free) at {_when(fullest['time'])}"
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


def _check_latency(ctx: _Context, signal: Signal, metric: str, what: str) -> list[dict[str, Any]]:
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
        f"{what} of {entity} is {format_number(both.loc[entity, 'recent'])} ms (median of the last "
        f"{ctx.baseline:.0%} of the recording) against a baseline of "
        f"{format_number(both.loc[entity, 'base'])} ms (first {ctx.baseline:.0%}): "
        f"{value:.1f}x"
    )
    start = None
    if severity != "ok":
        own = rows[rows["entity"] == entity]
        over = own[own["value"] >= LATENCY_RATIO_WARN * both.loc[entity, "base"]]
        start = over["time"].min() if len(over) else None
        evidence += f", above {LATENCY_RATIO_WARN:g}x since {_when(start)}"
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


def _check_broker_at_onset(ctx: _Context) -> list[dict[str, Any]]:
    """Broker latency at each episode's onset against its own level before it."""
    signal = Signal.BROKER_LATENCY_AT_ONSET
    episodes = ctx.episodes
    if episodes is None or not len(episodes):
        return [_finding(signal, "info", "no episode, so no onset to judge the brokers at")]
    rows = []
    for _, episode in episodes.iterrows():
        ratio = float(episode["broker_latency_ratio"])
        where = _key(episode["group"], episode["topic"])
        rows.append(_finding(
            signal,
            "warning" if np.isfinite(ratio) else "info",
            f"{where}: {episode['broker_evidence']}",
            time_start=episode["start"],
            value=ratio,
            threshold=2.0,
        ))
    return rows


def _check_flush(ctx: _Context) -> list[dict[str, Any]]:
    """Correlate broker flush latency with lag: a lead when significant, no alibi when not."""
    from kbp_notebook.analysis.correlation import flush_latency_vs_lag

    signal = Signal.FLUSH_LATENCY_CORRELATED_WITH_LAG
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
    what = (f"{best.y_name} (correlation {best.r:+.2f}, p = {best.p_value:.2g}, "
            f"{best.n_eff:.0f} effectively independent samples")
    lead = _lead_words(best.shift, metric)
    if best.p_value < level and best.r > 0:
        evidence = (
            f"broker {metric} rises with {what}, {lead}); flush latency peaked at "
            f"{format_number(peak)} ms. A correlation, not proof of cause"
        )
        return [_finding(signal, "warning", evidence, value=best.r, threshold=level)]
    evidence = (
        f"no significant correlation of broker {metric} with {what}) after allowing for "
        f"autocorrelation and the ±{format_duration(best.max_shift.total_seconds())} search; "
        f"flush latency peaked at {format_number(peak)} ms. Too little to clear the brokers: "
        f"judge them by their latency at the onset (broker_latency_at_onset)"
    )
    return [_finding(signal, "info", evidence, value=best.r, threshold=level)]


def _lead_words(shift: pd.Timedelta, metric: str) -> str:
    seconds = float(shift.total_seconds())
    if seconds > 0:
        return f"{metric} moving first by {format_duration(seconds)}"
    if seconds < 0:
        return f"lag moving first by {format_duration(-seconds)}"
    return "at the same time"


def _check_idle(ctx: _Context, signal: Signal, metric: str, what: str) -> list[dict[str, Any]]:
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
        evidence += f"; below {IDLE_WARN:g} since {_when(start)}"
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
    signal = Signal.CONSUMER_COUNT
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
                f"{_when(record.time)}: nothing is consuming",
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
    """Return the groups with an episode not over, or whose lag grows now."""
    groups: set[str] = set()
    if ctx.episodes is not None and len(ctx.episodes):
        groups |= set(map(str, ctx.episodes.loc[~ctx.episodes["recovered"].astype(bool), "group"]))
    if ctx.trend is not None:
        groups |= set(map(str, ctx.trend.loc[ctx.trend["status"] == "growing", "group"]))
    if ctx.drain is not None:
        confident, plausible = _behind(ctx.drain, ctx.min_skew_lag)
        groups |= set(map(str, ctx.drain.loc[confident | plausible, "group"]))
    return groups


def _check_skew(ctx: _Context) -> list[dict[str, Any]]:
    """Judge whether an episode sat on few partitions with a disproportionate produce rate."""
    signal = Signal.PARTITION_SKEW
    episodes = ctx.episodes
    if episodes is None:
        return [_finding(signal, "info", f"episodes could not be found: {ctx.episodes_error}")]
    skewed = episodes[[("partition_skew" in tuple(c)) for c in episodes["causes"]]]
    if len(skewed) and not (skewed["cause"] == "partition_skew").any():
        row = skewed.iloc[0]
        return [_finding(
            signal, "info",
            f"{_key(row['group'], row['topic'])}: the backlog later concentrated on partition(s) "
            f"{', '.join(map(str, row['partitions_involved']))}, but skew did not start the "
            f"episode ({row['cause']} did)",
            time_start=row["start"],
        )]
    if len(skewed):
        return []  # the cause finding of the episode says it, with its evidence
    if not len(episodes):
        return [_finding(signal, "ok", "no episode, so no skew to speak of", threshold=SKEW_SHARE)]
    return [_finding(
        signal, "ok",
        f"no episode sat on a few hot partitions: {len(episodes)} episode(s) spread over "
        f"{', '.join(str(len(p)) for p in episodes['partitions_involved'])} partition(s)",
        threshold=SKEW_SHARE,
    )]


def _check_retention(ctx: _Context) -> list[dict[str, Any]]:
    signal = Signal.RETENTION_RISK
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
            f"{int(row['log_start_offset'])} at {_when(row['time'])}: messages were deleted "
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
            f"unread messages) in about {format_duration(loss_s)}; lag is up to "
            f"{top_share:.0%} of what the log retains"
        )
        return [_finding(signal, severity, evidence, value=loss_s, threshold=RETENTION_WARN_S)]
    if top_share >= RETENTION_SHARE_WARN:
        row = _row_at(latest, share)
        evidence = (
            f"lag of {_key(row['group'], row['topic'])} partition {int(row['partition'])} is "
            f"{top_share:.0%} of what the log retains at {_when(row['time'])}; little "
            f"headroom before retention deletes unread messages"
        )
        return [
            _finding(signal, "warning", evidence, value=top_share, threshold=RETENTION_SHARE_WARN)
        ]
    horizon = (
        f"; at current rates none is lost for {format_duration(loss_s)}"
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


#: The checks in the order their findings are listed (within a severity). The
#: consumer-count check runs after them all: it reads which groups are behind.
CHECKS: tuple[Callable[[_Context], list[dict[str, Any]]], ...] = (
    _check_episodes,
    _check_lag_growing,
    _check_rates,
    _check_retention,
    _check_skew,
    _check_under_replicated,
    _check_disk,
    lambda c: _check_latency(
        c,
        Signal.PRODUCER_REQUEST_LATENCY_UP,
        "producer_request_latency_avg_ms",
        "producer request latency",
    ),
    lambda c: _check_latency(
        c,
        Signal.PRODUCER_QUEUE_TIME_UP,
        "producer_record_queue_time_avg_ms",
        "producer record queue time",
    ),
    _check_broker_at_onset,
    _check_flush,
    lambda c: _check_idle(
        c, Signal.REQUEST_HANDLER_IDLE_LOW, "request_handler_idle_ratio", "request handler"
    ),
    lambda c: _check_idle(
        c, Signal.NETWORK_PROCESSOR_IDLE_LOW, "network_processor_idle_ratio", "network processor"
    ),
)


# --------------------------------------------------------------------------- advice


@dataclass(frozen=True)
class _Advice:
    """What the recommendation rules read: the findings and the episodes behind them."""

    findings: pd.DataFrame
    flagged: frozenset[str]
    episodes: pd.DataFrame
    consumer_rows: tuple[dict[str, Any], ...]
    lagging: frozenset[str]


Recommendation = tuple[str, list[str], str]


def _scaling(advice: _Advice, groups: set[str], because: list[str]) -> list[Recommendation]:
    """Scale-out advice for ``groups`` from their own member count (never contradicting it)."""
    rows = [r for r in advice.consumer_rows if r["_group"] in groups]
    out: list[Recommendation] = []
    for row in rows:
        members, partitions = row["_consumers"], row["_partitions"]
        if members == 0:
            out.append((f"Start consumers for group {row['_group']!r}",
                        [*because, Signal.CONSUMER_COUNT],
                        "no member owns its partitions, so nothing consumes; check that the "
                        "application is running and can reach the cluster"))
        elif members < partitions:
            out.append((f"Add consumers to group {row['_group']!r} (up to {partitions})",
                        [*because, Signal.CONSUMER_COUNT],
                        f"it has {members} consumer(s) for {partitions} partitions; each added "
                        "member takes partitions off the busiest ones"))
        else:
            out.append((f"Add partitions to the topic(s) of group {row['_group']!r}, then "
                        "consumers", [*because, Signal.CONSUMER_COUNT],
                        f"every one of its {partitions} partitions already has its own consumer "
                        f"({members} members), so more consumers would sit idle; more partitions "
                        "(note: this remaps keys) or faster per-record processing (batch work "
                        "per poll, max.poll.records, fetch.min.bytes) raise throughput"))
            out.append(("Apply flow control to the producers until consumers catch up",
                        [*because, Signal.CONSUMER_COUNT],
                        "the group cannot scale out further without new partitions; client "
                        "quotas (producer_byte_rate) or back-pressure in the producing "
                        "application stop the backlog from growing meanwhile"))
    if groups and not rows:
        out.append(("Check the group's member count against its partitions before scaling",
                    because, "consumer_id was not recorded: if there are fewer consumers than "
                    "partitions, add consumers; if every partition has one, add partitions"))
    return out


def _episode_advice(advice: _Advice) -> list[Recommendation]:
    """Advice that follows the cause of each episode (the first, most specific rules)."""
    out: list[Recommendation] = []
    for _, ep in advice.episodes.iterrows():
        cause, group, topic = str(ep["cause"]), str(ep["group"]), str(ep["topic"])
        because = [Signal.LAG_EPISODE, cause]
        over = bool(ep["recovered"])
        if cause == "producer_surge" and over:
            out.append((
                f"No change for a one-off burst on {topic!r}; size {group!r} for the peak only "
                "if such bursts recur", because,
                f"producers wrote {format_rate(ep['produce_rate_during_per_s'])} (before: "
                f"{format_rate(ep['produce_rate_before_per_s'])}) while {group!r} read "
                f"{format_rate(ep['consume_rate_during_per_s'])}; it drained on its own and was "
                f"back at its usual lag after {format_duration(ep['duration_s'])}. If this "
                "recurs, plan for the peak rate with capacity_plan"))
        elif cause in ("producer_surge", "consumer_slowdown"):
            if cause == "consumer_slowdown":
                out.append((
                    f"Find what slowed the consumers of {group!r} at "
                    f"{format_time(ep['start'])}", because,
                    f"{ep['evidence']}; look for a deploy, a config change, slower downstream "
                    "calls or GC pauses at that time"))
            if not over:
                out.extend(_scaling(advice, {group}, because))
        elif cause == "consumer_stalled":
            out.append((f"Look at the stalled member of {group!r} and its partitions", because,
                        f"{ep['evidence']}: it is in the group but makes no progress (stuck "
                        "processing, a poison message, a deadlock); restart it or skip the "
                        "record"))
        elif cause == "consumer_stopped":
            out.append((f"Start consumers for group {group!r}", because,
                        f"{ep['evidence']}; check the deploy, crash loops and credentials"))
        elif cause == "partition_skew":
            out.append((f"Re-key the hot key or add partitions to {topic!r}; more consumers "
                        "will not help", because,
                        f"{ep['evidence']}; one partition is read by one consumer at a time, "
                        "so the hot partition's rate bounds the group whatever its size"))
        elif cause == "rebalance_churn":
            out.append((f"Stop the rebalance churn of {group!r}", because,
                        f"{ep['evidence']}; check max.poll.interval.ms and session.timeout.ms "
                        "against processing time, deploy loops and crashing members; static "
                        "membership (group.instance.id) or the cooperative assignor cut the "
                        "pauses"))
        elif cause == "broker_slow":
            out.append(("Brokers first: find why broker latency rose (disk fsync, IO "
                        "saturation, other tenants)", because,
                        f"{ep['evidence']}; the consumers slowed because the broker did, so "
                        "scaling them would not help; leave log.flush.interval.* at their "
                        "defaults, move logs to faster disks or spread partitions over brokers"))
        elif cause == "offset_rewind":
            out.append((f"Expect {group!r} to process replayed messages again", because,
                        f"{ep['evidence']}; make sure downstream is idempotent, and if the reset "
                        "was not intended, find who ran it"))
    return out


def _behind_now_advice(advice: _Advice) -> list[Recommendation]:
    """Scaling advice for groups behind now that no episode explains."""
    behind: list[str] = [s for s in (Signal.CONSUMERS_SLOWER_THAN_PRODUCERS, Signal.LAG_GROWING)
                         if s in advice.flagged]
    if not behind:
        return []
    specific = advice.episodes[advice.episodes["cause"].astype(str) != "none"]
    explained = set(map(str, specific["group"])) if len(specific) else set()
    return _scaling(advice, set(advice.lagging) - explained, behind)


def _cluster_advice(advice: _Advice) -> list[Recommendation]:
    """Advice from broker, disk, retention and producer signals."""
    flagged = advice.flagged
    out: list[Recommendation] = []
    if Signal.RETENTION_RISK in flagged:
        out.append(("Raise retention on the topic now (retention.ms / retention.bytes)",
                    [Signal.RETENTION_RISK],
                    "the consumer is about to read (or already reads) behind the log start; "
                    "longer retention buys time while consumption is fixed. Check disk headroom "
                    "first" + (" (disk usage is already high)" if Signal.DISK_USAGE_HIGH in flagged
                               else "")))
    if Signal.DISK_USAGE_HIGH in flagged:
        out.append(("Free or add disk on the full log dir", [Signal.DISK_USAGE_HIGH],
                    "lower retention.ms / retention.bytes on the largest topics, smaller "
                    "segment.bytes / segment.ms so deletion is timelier, or add disk / brokers"))
    if Signal.UNDER_REPLICATED_PARTITIONS in flagged:
        detail = ("followers are not keeping up: check the affected broker's health, disk and "
                  "network (broker logs, iostat), and num.replica.fetchers")
        because: list[str] = [Signal.UNDER_REPLICATED_PARTITIONS]
        if Signal.PRODUCER_REQUEST_LATENCY_UP in flagged:
            detail += ("; with acks=all producers wait for the slow followers, which explains "
                       "their latency -- fix replication rather than lowering acks (that trades "
                       "durability)")
            because.append(Signal.PRODUCER_REQUEST_LATENCY_UP)
        out.append(("Restore replication on the lagging broker", because, detail))
    if Signal.REQUEST_HANDLER_IDLE_LOW in flagged:
        out.append(("Raise num.io.threads on the brokers (or add broker capacity)",
                    [Signal.REQUEST_HANDLER_IDLE_LOW],
                    "request handler threads are busy most of the time; more threads help if "
                    "CPU and disk have headroom, otherwise add brokers / faster disks"))
    if Signal.NETWORK_PROCESSOR_IDLE_LOW in flagged:
        out.append(("Raise num.network.threads, and cut the request count",
                    [Signal.NETWORK_PROCESSOR_IDLE_LOW],
                    "network threads are saturated; larger producer batches (linger.ms, "
                    "batch.size) and compression mean fewer, smaller requests"))
    if Signal.FLUSH_LATENCY_CORRELATED_WITH_LAG in flagged:
        out.append(("Investigate broker disk latency", [Signal.FLUSH_LATENCY_CORRELATED_WITH_LAG],
                    "log flush time moves with lag: check disk I/O on the slowest broker "
                    "(iostat, other tenants), leave log.flush.interval.* at their defaults"))
    producer: list[str] = [
        s for s in (Signal.PRODUCER_REQUEST_LATENCY_UP, Signal.PRODUCER_QUEUE_TIME_UP)
        if s in flagged
    ]
    if producer:
        busy: list[str] = [
            s for s in (Signal.REQUEST_HANDLER_IDLE_LOW, Signal.NETWORK_PROCESSOR_IDLE_LOW,
                        Signal.FLUSH_LATENCY_CORRELATED_WITH_LAG, "broker_slow")
            if s in flagged
        ]
        where = ("the brokers look busy (" + ", ".join(busy) + "), so fix the broker side "
                 "first; " if busy else "")
        out.append((
            "Batch and compress on the producers (linger.ms, batch.size, compression.type)",
            producer + busy,
            f"{where}producer requests got slower than their own baseline; linger.ms of 5-20 ms "
            "with a larger batch.size and lz4/zstd compression send fewer, larger requests"
            + ("; records also queue in the producer buffer (buffer.memory), so slow producers "
               "down (flow control) if the brokers cannot take more"
               if Signal.PRODUCER_QUEUE_TIME_UP in flagged else "")))
    return out


#: The recommendation rules, most specific first; each reads an ``_Advice``.
ADVICE_RULES: tuple[Callable[[_Advice], list[Recommendation]], ...] = (
    _episode_advice,
    _behind_now_advice,
    _cluster_advice,
)


def _recommend(advice: _Advice) -> pd.DataFrame:
    recs: list[dict[str, str]] = []
    seen: set[str] = set()
    for rule in ADVICE_RULES:
        for text, because, detail in rule(advice):
            if text in seen:
                continue
            seen.add(text)
            recs.append({"recommendation": text, "because": ", ".join(dict.fromkeys(because)),
                         "detail": detail})
    if not recs:
        bad = advice.findings[advice.findings["severity"].isin(["critical", "warning"])]
        if len(bad):
            recs.append({"recommendation": "Review the findings above",
                         "because": ", ".join(sorted(advice.flagged)),
                         "detail": "no specific change follows from them alone"})
        else:
            recs.append({"recommendation": "No change needed", "because": "all signals",
                         "detail": "no group fell behind its usual lag and no signal is in "
                                   "warning or critical; keep recording to compare with the "
                                   "next incident"})
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
    ctx = _run_analyses(dataset, baseline=baseline, alpha=alpha, min_skew_lag=min_skew_lag)
    rows: list[dict[str, Any]] = []
    for check in CHECKS:
        rows.extend(check(ctx))
    # after the lag checks, which decide which groups are behind
    consumer_rows = _check_consumers(ctx)
    rows.extend({k: v for k, v in row.items() if not k.startswith("_")} for row in consumer_rows)
    findings = _findings_frame(rows)
    bad = findings[findings["severity"].isin(["critical", "warning"])]
    episodes = ctx.episodes if ctx.episodes is not None else pd.DataFrame(
        columns=["group", "topic", "cause", "recovered"])
    recommendations = _recommend(_Advice(
        findings=findings,
        flagged=frozenset(map(str, bad["signal"])),
        episodes=episodes,
        consumer_rows=tuple(r for r in consumer_rows if "_group" in r),
        lagging=frozenset(_lagging_groups(ctx)),
    ))
    return Diagnosis(table=findings, recommendations=recommendations)


def _findings_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Build the findings table: typed columns, worst severity first (stable within one)."""
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
    return findings


def _run_analyses(
    dataset: Any, *, baseline: float, alpha: float, min_skew_lag: float
) -> _Context:
    """Run the lag analyses the checks share, once, and keep why any of them could not run."""
    from kbp_notebook.analysis.drain import time_to_drain
    from kbp_notebook.analysis.incident_model import incidents
    from kbp_notebook.analysis.trend import lag_trend

    lag = dataset.lag
    trend = drain = drain_partitions = episodes = None
    trend_error = drain_error = episodes_error = ""
    if not len(lag):
        trend_error = drain_error = "no lag recorded"
    else:
        try:
            trend = lag_trend(lag).table
        except KbpDataError as exc:
            trend_error = str(exc)
        try:
            episodes = incidents(dataset).episodes
        except KbpDataError as exc:
            episodes_error = str(exc)
        try:
            forecast = time_to_drain(lag)
            drain, drain_partitions = forecast.table, forecast.partitions
        except KbpDataError as exc:
            drain_error = str(exc)
    return _Context(
        dataset=dataset,
        baseline=baseline,
        alpha=alpha,
        min_skew_lag=min_skew_lag,
        trend=trend,
        trend_error=trend_error,
        drain=drain,
        drain_partitions=drain_partitions,
        drain_error=drain_error,
        consumers=_consumer_counts(lag) if len(lag) else None,
        episodes=episodes,
        episodes_error=episodes_error,
    )
