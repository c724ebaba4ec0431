"""The incident model: episodes, causes, derived events and a verdict.

``incidents(data)`` is the backbone every post-mortem section reads, so the
trend, the diagnosis, the capacity plan, the notebooks and the reports quote
the same onset, peak, rates and recovery.

* ``.episodes`` -- one row per episode per key: ``cluster``, ``group``,
  ``topic``, ``start`` (lag left the key's own baseline), ``peak_time``,
  ``peak_lag``, ``end`` (back at baseline; NaT while not over),
  ``growth_rate_per_s`` and ``drain_rate_per_s`` with intervals
  (``*_low_per_s``, ``*_high_per_s``), produce / consume rates before and
  during (from log-end and committed offset counters),
  ``partitions_involved``, ``cause``, ``causes`` (ranked), ``evidence``,
  ``peak_time_lag_s`` (how far behind in seconds at the peak),
  ``recommendation``. A healthy key has no episode.
* ``.events`` -- derived from the data, in the shape of ``Dataset.events``
  plus ``group``, ``topic``, ``partition``: member joined / left, rebalance,
  commits stopped / resumed, offset rewind, produce / consume rate changes,
  broker latency excursions, and each episode's start, peak and end.
* ``.verdict`` -- at most five plain lines: what, since when, how far behind,
  why, recovered or when, what to do.

The rules for baselines and episodes are in ``_episodes``, for causes in
``_causes``, for events in ``_derived_events``; each states its rule in words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from kbp_notebook.analysis._causes import (
    CAUSES,
    RECOMMENDATIONS,
    OnsetSignals,
    is_churn,
    judge,
    onset_signals,
)
from kbp_notebook.analysis._derived_events import (
    LATENCY_MIN_S,
    RATE_STEP_FRACTION,
    DerivedEvent,
    KeyFacts,
    broker_latency,
    broker_latency_events,
    key_events,
    key_facts,
)
from kbp_notebook.analysis._episodes import Baseline, Span, baseline_of, find_spans, slope_interval
from kbp_notebook.analysis._keyed import KeyBlock, key_blocks, window_rate
from kbp_notebook.analysis._result import Result
from kbp_notebook.analysis._series import normalise_by, prepare_lag, quiet
from kbp_notebook.errors import KbpDataError, KbpInputError
from kbp_notebook.frames import Dataset, validate_metrics_frame
from kbp_notebook.units import (
    format_count,
    format_duration,
    format_rate,
    format_time,
)

__all__ = ["CAUSES", "Incidents", "incidents"]

#: Fewest snapshots for an incident judgement.
MIN_SNAPSHOTS = 6

CAUSE_WORDS: dict[str, str] = {
    "producer_surge": "a producer surge",
    "consumer_slowdown": "slower consumers",
    "consumer_stopped": "consumers stopped",
    "consumer_stalled": "a stalled consumer",
    "partition_skew": "a hot partition (skew)",
    "rebalance_churn": "rebalance churn",
    "broker_slow": "slow brokers",
    "offset_rewind": "offsets rewound",
    "none": "no cause the data shows",
}

EPISODE_COLUMNS = (
    "start", "peak_time", "peak_lag", "end", "duration_s", "recovered", "began_before_data",
    "baseline_lag", "growth_rate_per_s", "growth_rate_low_per_s", "growth_rate_high_per_s",
    "drain_rate_per_s", "drain_rate_low_per_s", "drain_rate_high_per_s",
    "produce_rate_before_per_s", "produce_rate_during_per_s", "consume_rate_before_per_s",
    "consume_rate_during_per_s", "partitions_involved", "peak_time_lag_s",
    "peak_time_lag_is_lower_bound", "expected_end", "expected_end_low", "expected_end_high",
    "broker_latency_ratio", "broker_evidence", "cause", "causes", "evidence", "recommendation",
)


@dataclass(frozen=True, repr=False)
class Incidents(Result):
    """Episodes, causes, derived events and a verdict (see the module docstring).

    Attributes
    ----------
    table
        The episodes (also ``.episodes``), worst first within each key's time order.
    events
        Derived events: ``time``, ``kind``, ``text``, ``group``, ``topic``, ``partition``.
    verdict
        At most five plain lines.
    baselines
        One row per key: ``usual_lag``, ``behind_level``, ``produce_rate_per_s``.
    as_of
        Time of the last snapshot.
    confidence
        Level of the rate intervals.
    lag
        The key totals over time (``time``, key columns, ``lag``) that the plot draws.
    """

    events: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdict: tuple[str, ...] = ()
    baselines: pd.DataFrame = field(default_factory=pd.DataFrame)
    as_of: pd.Timestamp | None = None
    confidence: float = 0.9
    lag: pd.DataFrame = field(default_factory=pd.DataFrame)

    plot_builder: ClassVar[str] = "plot_incidents"
    title: ClassVar[str] = "Incidents"

    @property
    def episodes(self) -> pd.DataFrame:
        """One row per episode per key (the same frame as ``table``)."""
        return self.table

    def worst(self) -> pd.Series | None:
        """Return the episode the verdict is about (largest peak in seconds, then messages)."""
        if len(self.table) == 0:
            return None
        order = self.table.assign(
            _s=self.table["peak_time_lag_s"].fillna(-1.0), _m=self.table["peak_lag"]
        ).sort_values(["_s", "_m"], ascending=False)
        row: pd.Series = self.table.loc[order.index[0]]
        return row

    def summary_lines(self) -> list[str]:
        """Return the verdict lines."""
        return list(self.verdict)


def _as_frames(data: object) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    if isinstance(data, Dataset):
        return data.lag, data.metrics
    if isinstance(data, pd.DataFrame):
        return data, None
    raise KbpInputError(
        f"incidents() needs a Dataset or a LAG frame, not {type(data).__name__}; e.g. "
        "kbp.incidents(kbp.load_sample('producer-burst')) or kbp.incidents(ds.lag)."
    )


def _check_enough(frame: pd.DataFrame) -> None:
    snapshots = frame["time"].nunique()
    if snapshots < MIN_SNAPSHOTS:
        raise KbpDataError(
            f"incidents() needs at least {MIN_SNAPSHOTS} snapshots to tell a build-up from "
            f"noise; the LAG frame has {snapshots}. Record longer (LagCollector.record)."
        )
    if frame["committed_offset"].isna().all():
        raise KbpDataError(
            "incidents(): no partition has a committed offset, so there is no lag to judge; "
            "check that the groups commit offsets (enable.auto.commit or commitSync)."
        )
    if frame["log_end_offset"].isna().all():
        raise KbpDataError(
            "incidents(): no log end offsets in the LAG frame; the collector could not read "
            "them (check the brokers' ListOffsets)."
        )


def _time_lag_at(block: KeyBlock, index: int) -> tuple[float, bool]:
    """Return seconds behind the head at snapshot ``index``, from the log-end offset history.

    The second value is True where the committed offset is older than the history (a bound).
    """
    committed = block.total_committed[index]
    ends, t = block.total_log_end, block.t
    valid = ~np.isnan(ends)
    if np.isnan(committed) or not valid.any():
        return float("nan"), False
    ends_v, t_v = ends[valid], t[valid]
    if committed >= ends[index]:
        return 0.0, False
    if committed < ends_v[0]:
        return float(t[index] - t_v[0]), True
    when = float(np.interp(committed, np.maximum.accumulate(ends_v), t_v))
    return float(t[index] - when), False


def _later_causes(block: KeyBlock, span: Span, signals: OnsetSignals, facts: KeyFacts,
                  events: list[DerivedEvent],
                  broker_events: list[tuple[DerivedEvent, str]]) -> list[str]:
    """Causes seen after the onset window, from the events inside the episode."""
    onset_end = signals.onset_end
    last = span.end if span.end >= 0 else len(block.t) - 1
    stop, after = block.times[last], block.times[onset_end]
    out: list[str] = []
    if block.owners_known and (block.members()[onset_end : last + 1] == 0).any():
        out.append("consumer_stopped")
    kinds = [e.kind for e in events if after < e.time <= stop]
    if "offset_rewind" in kinds:
        out.append("offset_rewind")
    if is_churn([c for c in facts.changes if onset_end < c.index <= last]):
        out.append("rebalance_churn")
    if any(onset_end < m.last and m.first <= last for m in facts.stalls):
        out.append("consumer_stalled")
    if any(e.kind == "produce_rate_change" and "rose" in e.text for e in events
           if after < e.time <= stop):
        out.append("producer_surge")
    if any(e.kind == "broker_latency_high" and after < e.time <= stop
           and _consumption_fell(block, span, e.time) for e, _ in broker_events):
        out.append("broker_slow")
    return out


def _consumption_fell(block: KeyBlock, span: Span, at: pd.Timestamp) -> bool:
    """Whether the key's consume rate fell by ``RATE_STEP_FRACTION`` when a broker got slow.

    A slow broker explains a group's lag only if the group read less while it
    lasted: compares ``LATENCY_MIN_S`` after ``at`` with as long before it. The
    span after must end while the backlog is still there (a group that has
    caught up reads only what arrives); False where the data cannot tell.
    """
    t = block.t
    last = span.end if span.end >= 0 else len(t) - 1
    now = float((at - block.times[0]).total_seconds()) + float(t[0])
    before, after = now - LATENCY_MIN_S, now + LATENCY_MIN_S
    if before < t[0] or after > t[last]:
        return False
    committed = block.forward_commits()
    rate_before = window_rate(t, committed, before, now)
    rate_after = window_rate(t, committed, now, after)
    return bool(rate_after <= (1.0 - RATE_STEP_FRACTION) * rate_before)  # False if NaN


def _episode_row(
    block: KeyBlock,
    base: Baseline,
    span: Span,
    *,
    facts: KeyFacts,
    events: list[DerivedEvent],
    broker_events: list[tuple[DerivedEvent, str]],
    latency: pd.DataFrame,
    confidence: float,
) -> dict[str, Any]:
    t, y = block.t, block.total_lag
    signals = onset_signals(block, base, span, facts=facts, latency=latency)
    later = _later_causes(block, span, signals, facts, events, broker_events)
    cause, causes, evidence = judge(signals, later)
    growth = slope_interval(t[span.start : span.peak + 1], y[span.start : span.peak + 1],
                            confidence=confidence)
    drain_to = span.end + 1 if span.end >= 0 else len(t)
    drain = slope_interval(t[span.peak : drain_to], y[span.peak : drain_to],
                           confidence=confidence)
    time_lag, lower_bound = _time_lag_at(block, span.peak)
    with quiet():
        base_lag = np.nan_to_num(block.lag[:, span.start])
        rise = np.nan_to_num(block.lag[:, span.peak]) - base_lag
    total_rise = float(np.clip(rise, 0, None).sum())
    involved = tuple(
        block.units[u] for u in np.flatnonzero(rise > 0.5 * total_rise / max(len(rise), 1))
    )
    drain_rate = (-drain[0], -drain[2], -drain[1])
    expected = _expected_end(block, base, span, drain_rate)
    end_time = block.times[span.end] if span.end >= 0 else pd.NaT
    return {
        **block.key,
        "start": block.times[span.start],
        "peak_time": block.times[span.peak],
        "peak_lag": float(y[span.peak]),
        "end": end_time,
        "duration_s": float((t[span.end] if span.end >= 0 else t[-1]) - t[span.start]),
        "recovered": span.end >= 0,
        "began_before_data": span.began_before_data,
        "baseline_lag": base.usual_lag,
        "growth_rate_per_s": growth[0],
        "growth_rate_low_per_s": growth[1],
        "growth_rate_high_per_s": growth[2],
        "drain_rate_per_s": drain_rate[0],
        "drain_rate_low_per_s": drain_rate[1],
        "drain_rate_high_per_s": drain_rate[2],
        "produce_rate_before_per_s": signals.produce_before,
        "produce_rate_during_per_s": signals.produce_during,
        "consume_rate_before_per_s": signals.consume_before,
        "consume_rate_during_per_s": signals.consume_during,
        "partitions_involved": involved,
        "peak_time_lag_s": time_lag,
        "peak_time_lag_is_lower_bound": lower_bound,
        "expected_end": expected[0],
        "expected_end_low": expected[1],
        "expected_end_high": expected[2],
        "broker_latency_ratio": signals.broker.ratio if signals.broker else float("nan"),
        "broker_evidence": _broker_words(signals, recorded=len(latency) > 0),
        "cause": cause,
        "causes": causes,
        "evidence": evidence,
        "recommendation": RECOMMENDATIONS[cause],
    }


def _broker_words(signals: OnsetSignals, *, recorded: bool) -> str:
    """Return the broker latency at the onset against its own level before, in words."""
    if not recorded:
        return "no broker latency was recorded, so the brokers cannot be judged"
    b = signals.broker
    if b is None:
        return ("no broker latency signal rose to twice its own level before the onset "
                "(or there was too little before it to tell)")
    return (f"{b.entity} {b.name} rose to {b.top_ms:.0f} ms from {b.usual_ms:.0f} ms before "
            f"the onset ({b.ratio:.1f}x) at {format_time(b.first_high)}")


def _expected_end(block: KeyBlock, base: Baseline, span: Span,
                  drain: tuple[float, float, float]) -> tuple[Any, Any, Any]:
    """When an episode that is not over gets back to its baseline at its drain rate.

    ``drain`` is the episode's drain rate with its interval (messages/s, positive while
    draining); the slow end is NaT where the interval allows no drain.
    """
    nat = (pd.NaT, pd.NaT, pd.NaT)
    excess = float(block.total_lag[-1] - base.usual_lag)
    if span.end >= 0 or not (drain[0] > 0 and excess > 0):
        return nat

    def at(rate: float) -> Any:
        if not rate > 0:
            return pd.NaT
        return block.times[-1] + pd.Timedelta(seconds=excess / rate)

    return at(drain[0]), at(drain[2]), at(drain[1])


def incidents(
    data: object,
    *,
    by: str | Iterable[str] = ("group", "topic"),
    confidence: float = 0.9,
) -> Incidents:
    r"""Find each key's episodes of falling behind, say why, and write the verdict.

    Parameters
    ----------
    data
        A :class:`~kbp_notebook.frames.Dataset` (broker metrics are used when present) or
        a LAG frame.
    by
        Key columns (``cluster`` is always part of the key).
    confidence
        Level of the growth and drain rate intervals.

    Returns
    -------
    Incidents
        ``.episodes``, ``.events``, ``.verdict``, ``.plot()``.

    Raises
    ------
    KbpInputError
        ``data`` is not a Dataset or LAG frame, or the frame is malformed.
    KbpDataError
        Fewer than six snapshots, no committed offsets or no log end offsets.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> found = kbp.incidents(kbp.load_sample("producer-burst"))  # doctest: +SKIP
    >>> print("\\n".join(found.verdict))  # doctest: +SKIP
    """
    if not 0 < confidence < 1:
        raise KbpInputError(f"confidence={confidence!r} must be between 0 and 1, e.g. 0.9.")
    lag, metrics = _as_frames(data)
    keys = normalise_by(by)
    frame = prepare_lag(lag)
    _check_enough(frame)
    latency = broker_latency(None if metrics is None else validate_metrics_frame(metrics))
    broker_events = broker_latency_events(latency)
    rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    base_rows: list[dict[str, Any]] = []
    totals: list[tuple[dict[str, object], np.ndarray, np.ndarray]] = []
    for block in key_blocks(frame, keys):
        if np.isnan(block.total_lag).all():
            continue
        base = baseline_of(block)
        facts = key_facts(block, base.window_s)
        events = key_events(block, facts)
        base_rows.append({**block.key, "usual_lag": base.usual_lag,
                          "behind_level": base.behind_level,
                          "produce_rate_per_s": base.produce_rate_per_s})
        totals.append((block.key, block.t, block.total_lag))
        for span in find_spans(block, base):
            row = _episode_row(block, base, span, facts=facts, events=events,
                               broker_events=broker_events,
                               latency=latency, confidence=confidence)
            rows.append(row)
            events = events + _episode_events(row)
        event_rows.extend(
            {"time": e.time, "kind": e.kind, "text": e.text, **block.key,
             "partition": e.partition} for e in events
        )
    for event, entity in broker_events:
        event_rows.append({"time": event.time, "kind": event.kind, "text": event.text,
                           "cluster": frame["cluster"].iloc[0], "entity": entity})
    episodes = _episode_frame(rows, keys)
    events_frame = _event_frame(event_rows)
    baselines = pd.DataFrame(base_rows)
    as_of = pd.Timestamp(frame["time"].max())
    lag_totals = _totals_frame(totals, keys, t0=pd.Timestamp(frame["time"].min()))
    return Incidents(
        table=episodes,
        events=events_frame,
        verdict=verdict_lines(episodes, baselines, as_of=as_of),
        baselines=baselines,
        as_of=as_of,
        confidence=confidence,
        lag=lag_totals,
    )


def _totals_frame(
    totals: list[tuple[dict[str, object], np.ndarray, np.ndarray]],
    keys: tuple[str, ...],
    *,
    t0: pd.Timestamp,
) -> pd.DataFrame:
    """One frame of every key's total lag over time (what the timeline draws)."""
    if not totals:
        return pd.DataFrame(columns=[*keys, "time", "lag"])
    sizes = [len(times) for _, times, _ in totals]
    frame = pd.DataFrame({
        name: pd.Series(np.repeat([key[name] for key, _, _ in totals], sizes), dtype="string")
        for name in keys
    })
    seconds = np.concatenate([t for _, t, _ in totals])
    frame["time"] = t0 + pd.to_timedelta(seconds, unit="s")
    frame["lag"] = np.concatenate([values for _, _, values in totals])
    return frame


def _episode_events(row: dict[str, Any]) -> list[DerivedEvent]:
    out = [
        DerivedEvent(row["start"], "episode_start",
                     f"lag left its usual level (cause: {CAUSE_WORDS[row['cause']]})"),
        DerivedEvent(row["peak_time"], "episode_peak",
                     f"peak: {format_count(row['peak_lag'])} messages behind"),
    ]
    if row["recovered"]:
        out.append(DerivedEvent(row["end"], "episode_end", "lag back at its usual level"))
    return out


def _episode_frame(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> pd.DataFrame:
    if not rows:
        frame = pd.DataFrame({name: pd.Series(dtype="string") for name in keys})
        for name in EPISODE_COLUMNS:
            frame[name] = pd.Series(dtype="object")
        return frame
    frame = pd.DataFrame(rows)
    for name in keys:
        frame[name] = frame[name].astype("string")
    for name in ("start", "peak_time", "end", "expected_end", "expected_end_low",
                 "expected_end_high"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    frame["cause"] = frame["cause"].astype("string")
    frame["evidence"] = frame["evidence"].astype("string")
    return frame.sort_values([*keys, "start"], kind="stable").reset_index(drop=True)


def _event_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["time", "kind", "text", "cluster", "group", "topic", "partition", "entity"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    for name in ("kind", "text", "cluster", "group", "topic", "entity"):
        frame[name] = frame[name].astype("string")
    frame["partition"] = frame["partition"].astype("string")
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def _key_words(row: pd.Series) -> str:
    group, topic = row.get("group"), row.get("topic")
    if group is not None and topic is not None:
        return f"{group} on {topic}"
    return str(group if group is not None else topic)


def verdict_lines(episodes: pd.DataFrame, baselines: pd.DataFrame, *, as_of: pd.Timestamp
                  ) -> tuple[str, ...]:
    """At most five plain lines about the worst episode (see the module docstring)."""
    if len(episodes) == 0:
        if len(baselines) == 0:
            return ("No group has lag to judge.",)
        worst = baselines.sort_values("usual_lag", ascending=False).iloc[0]
        return (
            f"No incident: every group stayed within its usual lag (largest usual lag: "
            f"{format_count(worst['usual_lag'])} messages, {_key_words(worst)}).",
            "Nothing to do.",
        )
    order = episodes.assign(_s=episodes["peak_time_lag_s"].fillna(-1.0)).sort_values(
        ["_s", "peak_lag"], ascending=False)
    row = episodes.loc[order.index[0]]
    others = episodes.loc[order.index[1:]]
    other_keys = sorted({_key_words(r) for _, r in others.iterrows()} - {_key_words(row)})
    also = ""
    if other_keys:
        shown = ", ".join(other_keys[:3]) + (" ..." if len(other_keys) > 3 else "")
        also = f" Also behind: {shown}."
    start = format_time(row["start"], date=True)
    if row["recovered"]:
        what = (f"{_key_words(row)} fell behind at {start} and was back at its usual lag at "
                f"{format_time(row['end'])}, after {format_duration(row['duration_s'])}.{also}")
    else:
        what = (f"{_key_words(row)} fell behind at {start} and is still behind at "
                f"{format_time(as_of)} ({format_duration(row['duration_s'])} so far).{also}")
    seconds = row["peak_time_lag_s"]
    behind = ""
    if pd.notna(seconds):
        behind = (f" (more than {format_duration(seconds)} behind the newest message)"
                  if row["peak_time_lag_is_lower_bound"]
                  else f" (about {format_duration(seconds)} behind the newest message)")
    how = (", most of it at once when offsets moved back"
           if row["cause"] == "offset_rewind"
           else f"; it grew {format_rate(row['growth_rate_per_s'])}")
    worst_line = (f"At worst {format_count(row['peak_lag'])} messages behind{behind}, at "
                  f"{format_time(row['peak_time'])}{how}.")
    later = [CAUSE_WORDS[str(c)] for c in tuple(row["causes"])[1:]]
    then = f" Later: {', then '.join(later)}." if later else ""
    why = f"Why: {CAUSE_WORDS[str(row['cause'])]} — {row['evidence']}.{then}"
    if row["recovered"]:
        when = (f"Recovered: it drained at {format_rate(row['drain_rate_per_s'])} and was back "
                f"at its usual {format_count(row['baseline_lag'])} messages at "
                f"{format_time(row['end'])}.")
    elif pd.notna(row["expected_end"]):
        when = (f"Not over: draining at {format_rate(row['drain_rate_per_s'])}, back at its "
                f"usual lag around {format_time(row['expected_end'])} (between "
                f"{format_time(row['expected_end_low'])} and "
                f"{_or_later(row['expected_end_high'])}).")
    else:
        when = ("Not over and not draining at current rates: it will not recover until the "
                "cause is fixed.")
    return (what, worst_line, why, when, f"What to do: {row['recommendation']}")


def _or_later(value: Any) -> str:
    return "later, at the slowest rate the data allows" if pd.isna(value) else format_time(value)
