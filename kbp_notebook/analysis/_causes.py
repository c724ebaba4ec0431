"""Why did the episode start? Signals at the onset, and the rules that read them.

Each cause is judged against the key's own pre-incident baseline, never a
fixed threshold tuned to a recording. The rules, in the order they are
tried (the first that holds is the ``cause``; every rule that holds at any
point of the episode is ranked into ``causes``):

1. ``offset_rewind`` -- committed offsets moved back near the onset and the
   jump is most of the backlog it built up to.
2. When the produce rate rose (by more than ``RISE_FRACTION`` of its level)
   and by more than consumption fell (``produce_up > consume_down``):
   ``partition_skew`` if the backlog sits on few partitions whose produce rate
   is disproportionate, else ``producer_surge``.
3. Otherwise consumption fell, and the consumer side is examined:
   ``rebalance_churn`` (at least ``CHURN_CHANGES`` membership changes around
   the onset, members leaving at two of them or more: one restart of the
   group is not churn), ``consumer_stopped`` (no member, or -- where nobody
   says who owns what -- every committed offset standing still),
   ``consumer_stalled`` (owned partitions whose committed offsets stand
   still), ``partition_skew``, ``broker_slow`` (broker latency at least twice
   its own level before the onset and 20 ms above it, at or just before it),
   else ``consumer_slowdown``.

A slow broker delays every partition it leads, so ``broker_slow`` is dropped
where ``partition_skew`` holds. After the onset window, a broker latency
excursion is ranked into ``causes`` only if the key's consume rate fell when it
began while the backlog was still there (``incident_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from kbp_notebook.analysis._derived_events import (
    BROKER_LATENCY_METRICS,
    LATENCY_MIN_RISE_MS,
    LATENCY_RATIO,
    CommitRun,
    KeyFacts,
    MembershipChange,
    MemberStall,
    Rewind,
)
from kbp_notebook.analysis._episodes import Baseline, Span
from kbp_notebook.analysis._keyed import KeyBlock, window_rate
from kbp_notebook.analysis._series import quiet
from kbp_notebook.units import format_count, format_duration, format_rate, format_time

__all__ = [
    "CAUSES",
    "RECOMMENDATIONS",
    "LatencyAtOnset",
    "OnsetSignals",
    "is_churn",
    "judge",
    "latency_at_onset",
    "onset_signals",
]

#: The closed vocabulary of causes.
CAUSES = (
    "producer_surge",
    "consumer_slowdown",
    "consumer_stopped",
    "consumer_stalled",
    "partition_skew",
    "rebalance_churn",
    "broker_slow",
    "offset_rewind",
    "none",
)
#: How long before the onset the "before" rates are read.
BEFORE_S = 120.0
#: How long after the onset the "during" rates are read (or until the peak).
ONSET_S = 60.0
#: A produce rate this much above its level before the onset is a rise, not noise.
RISE_FRACTION = 0.1
#: Membership changes around the onset that make churn.
CHURN_CHANGES = 3
#: Share of the backlog the hottest partitions must hold for skew ...
SKEW_SHARE = 0.8
#: ... and how many times the median partition's produce rate they must receive.
SKEW_RATE_RATIO = 2.0


@dataclass(frozen=True)
class OnsetSignals:
    """What the data says around one episode's onset (rates in messages/s)."""

    block: KeyBlock
    base: Baseline
    span: Span
    onset_end: int
    produce_before: float
    produce_during: float
    consume_before: float
    consume_during: float
    members_before: float
    members_during: float
    changes: list[MembershipChange] = field(default_factory=list)
    stalls: list[CommitRun] = field(default_factory=list)
    member_stalls: list[MemberStall] = field(default_factory=list)
    rewinds: list[Rewind] = field(default_factory=list)
    unit_growth: np.ndarray = field(default_factory=lambda: np.zeros(0))
    unit_produce: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: The broker latency signal most above its own level at the onset, if an excursion.
    broker: LatencyAtOnset | None = None

    @property
    def produce_up(self) -> float:
        """How much more producers wrote during than before."""
        return self.produce_during - self.produce_before

    @property
    def consume_down(self) -> float:
        """How much less consumers committed during than before."""
        return self.consume_before - self.consume_during

    def at(self, index: int) -> str:
        """Return the time of snapshot ``index`` as ``HH:MM:SS UTC``."""
        return format_time(self.block.times[index])


@dataclass(frozen=True)
class LatencyAtOnset:
    """One broker latency signal around an onset against its own level before it."""

    entity: str
    name: str
    top_ms: float
    usual_ms: float
    ceiling_ms: float
    first_high: pd.Timestamp | None

    @property
    def ratio(self) -> float:
        """How many times its usual level the signal reached."""
        return self.top_ms / self.usual_ms if self.usual_ms > 0 else float("nan")

    @property
    def excursion(self) -> bool:
        """At least twice its usual level, 20 ms above it, and above anything seen before."""
        return (self.usual_ms > 0 and self.top_ms >= LATENCY_RATIO * self.usual_ms
                and self.top_ms > self.ceiling_ms
                and self.top_ms >= self.usual_ms + LATENCY_MIN_RISE_MS)


def latency_at_onset(
    latency: pd.DataFrame, start: pd.Timestamp, until: pd.Timestamp, window_s: float
) -> list[LatencyAtOnset]:
    """Each broker latency signal's peak near the onset against its level before it.

    "Before" is ``BEFORE_S`` up to half a catch-up window ahead of the onset; "near"
    is from there to ``until``. Signals with fewer than three samples before are skipped.
    """
    out: list[LatencyAtOnset] = []
    if len(latency) == 0:
        return out
    before_from = start - pd.Timedelta(seconds=BEFORE_S)
    before_to = start - pd.Timedelta(seconds=window_s / 2.0)
    for (entity, metric), series in latency.groupby(["entity", "metric"], sort=True):
        times = series["time"]
        values = series["value"].to_numpy(dtype=np.float64)
        base = values[((times >= before_from) & (times <= before_to)).to_numpy()]
        near = ((times > before_to) & (times <= until)).to_numpy()
        if len(base) < 3 or near.sum() < 2:
            continue
        smooth = pd.Series(values).rolling(3, center=True, min_periods=1).median().to_numpy()
        with quiet():
            usual, top = float(np.nanmedian(base)), float(np.nanmax(smooth[near]))
            ceiling = float(np.nanmax(base))
        high = smooth[near] >= LATENCY_RATIO * usual
        first = pd.Timestamp(times.to_numpy()[near][int(np.argmax(high))]) if high.any() else None
        out.append(LatencyAtOnset(str(entity), BROKER_LATENCY_METRICS.get(str(metric), str(metric)),
                                  top, usual, ceiling, first))
    return out


def _broker_excursion(
    latency: pd.DataFrame, start: pd.Timestamp, until: pd.Timestamp, window_s: float
) -> LatencyAtOnset | None:
    """Return the broker latency signal most above its pre-onset level, if an excursion.

    Its ``first_high`` is the onset ``start`` where the smoothed signal never
    reached the excursion level itself.
    """
    found = [s for s in latency_at_onset(latency, start, until, window_s) if s.excursion]
    if not found:
        return None
    best = max(found, key=lambda s: s.ratio)
    return best if best.first_high is not None else replace(best, first_high=start)


def onset_signals(
    block: KeyBlock,
    base: Baseline,
    span: Span,
    *,
    facts: KeyFacts,
    latency: pd.DataFrame,
) -> OnsetSignals:
    """Measure rates, membership, stalls, rewinds and broker latency around the onset."""
    t = block.t
    t_start = t[span.start]
    onset_to = min(t[span.peak], t_start + ONSET_S)
    if onset_to - t_start < base.window_s:
        onset_to = t_start + base.window_s
    onset_end = int(min(np.searchsorted(t, onset_to, side="right") - 1, len(t) - 1))
    produced, committed = block.produced(), block.forward_commits()
    before_from = max(t[0], t_start - BEFORE_S)
    members = block.members().astype(np.float64)
    in_before = (t >= before_from) & (t <= t_start)
    in_during = (t > t_start) & (t <= t[onset_end])
    with quiet():
        growth = np.nan_to_num(block.lag[:, onset_end] - block.lag[:, span.start])
        if span.peak > onset_end:
            growth = np.nan_to_num(block.lag[:, span.peak] - block.lag[:, span.start])
        unit_produce = produced[:, in_during].sum(axis=1) / max(t[onset_end] - t_start, 1e-9)
    window_lo = t_start - base.window_s
    near_changes = [c for c in facts.changes if window_lo <= t[c.index] <= t[onset_end]]
    stalls = [r for r in facts.runs if r.first <= onset_end and r.last >= span.start
              and t[r.first] <= t[onset_end]]
    stalled_members = [m for m in facts.stalls if m.first <= onset_end and m.last >= span.start]
    near_rewinds = [r for r in facts.rewinds if span.start - 1 <= r.index <= onset_end]
    broker = _broker_excursion(latency, block.times[span.start], block.times[onset_end],
                               base.window_s)
    return OnsetSignals(
        block=block,
        base=base,
        span=span,
        onset_end=onset_end,
        produce_before=window_rate(t, produced, before_from, t_start),
        produce_during=window_rate(t, produced, t_start, t[onset_end]),
        consume_before=window_rate(t, committed, before_from, t_start),
        consume_during=window_rate(t, committed, t_start, t[onset_end]),
        members_before=float(np.mean(members[in_before])) if in_before.any() else np.nan,
        members_during=float(np.mean(members[in_during])) if in_during.any() else np.nan,
        changes=near_changes,
        stalls=stalls,
        member_stalls=stalled_members,
        rewinds=near_rewinds,
        unit_growth=growth,
        unit_produce=unit_produce,
        broker=broker,
    )


# --------------------------------------------------------------------------- the rules
# Each rule returns evidence (plain words with the figures) when it holds, else None.


def _rewind(s: OnsetSignals) -> str | None:
    if not s.rewinds:
        return None
    jump = sum(r.messages for r in s.rewinds)
    built = float(np.nanmax(s.block.total_lag[s.span.start : s.span.peak + 1])) - s.base.usual_lag
    if jump < 0.5 * max(built, 1.0):
        return None
    first = s.rewinds[0]
    return (f"committed offsets moved back by {format_count(jump)} messages at "
            f"{s.at(first.index)} (a reset or seek): lag jumped with no matching change in "
            f"produce ({format_rate(s.produce_before)} before) or consume rates")


def _skew(s: OnsetSignals) -> str | None:
    growth = np.clip(s.unit_growth, 0.0, None)
    total = float(growth.sum())
    units = len(growth)
    if units < 2 or total <= 0:
        return None
    order = np.argsort(-growth)
    share = np.cumsum(growth[order]) / total
    hot = order[: int(np.searchsorted(share, SKEW_SHARE)) + 1]
    if len(hot) > max(1, units // 3):
        return None
    produce = s.unit_produce
    median = float(np.median(produce))
    hot_rate = float(produce[hot].max())
    if not hot_rate >= SKEW_RATE_RATIO * max(median, 1e-9):
        return None
    names = ", ".join(str(s.block.units[u]) for u in hot)
    ratio = hot_rate / median if median > 0 else float("inf")
    times = "many" if not np.isfinite(ratio) else f"{ratio:.0f}"
    return (f"partition(s) {names} hold {share[len(hot) - 1]:.0%} of the backlog; the hottest "
            f"receives {format_rate(hot_rate)}, {times}x the median partition's "
            f"{format_rate(median)}, more than one consumer can read from one partition")


def _surge(s: OnsetSignals) -> str | None:
    if not s.produce_up > RISE_FRACTION * s.produce_before:
        return None
    held = "held" if s.consume_during >= 0.9 * s.consume_before else "fell"
    return (f"produce rate rose from {format_rate(s.produce_before)} to "
            f"{format_rate(s.produce_during)} at {s.at(s.span.start)} while consumers read "
            f"{format_rate(s.consume_during)} (before: {format_rate(s.consume_before)}; "
            f"per-consumer throughput {held})")


def is_churn(changes: list[MembershipChange]) -> bool:
    """Whether membership ``changes`` make churn: enough of them, and members left more than once.

    One restart of the group (everyone leaves, members come back one by one)
    is several changes but no churn: churn is members leaving again and again.
    """
    leaving = sum(1 for change in changes if change.left)
    return len(changes) >= CHURN_CHANGES and leaving >= 2


def _churn(s: OnsetSignals) -> str | None:
    if not is_churn(s.changes):
        return None
    first, last = s.changes[0].index, s.changes[-1].index
    return (f"group membership changed {len(s.changes)} times between {s.at(first)} and "
            f"{s.at(last)}; consumption fell from {format_rate(s.consume_before)} to "
            f"{format_rate(s.consume_during)} as partitions moved between members")


def _stopped(s: OnsetSignals) -> str | None:
    block = s.block
    if block.owners_known:
        if not s.members_during <= 0.5:
            return None
        return (f"the group had no active member from about {s.at(s.span.start)} while "
                f"producers wrote {format_rate(s.produce_during)}: commits stopped")
    units = block.committed.shape[0]
    stalled_units = {r.unit for r in s.stalls}
    if len(stalled_units) < units or s.consume_during > 0.05 * max(s.consume_before, 1e-9):
        return None
    return (f"committed offsets of all {units} partitions stood still from {s.at(s.span.start)} "
            f"while producers wrote {format_rate(s.produce_during)} (the data does not say "
            "whether members were still there)")


def _stalled(s: OnsetSignals) -> str | None:
    block = s.block
    if not s.member_stalls:
        return None
    growth = np.clip(s.unit_growth, 0.0, None)
    units = sorted({u for m in s.member_stalls for u in m.units})
    if growth.sum() > 0 and growth[units].sum() < 0.5 * growth.sum():
        return None
    owners = sorted({m.member for m in s.member_stalls})
    first = min(m.first for m in s.member_stalls)
    longest = max(block.t[m.last] - block.t[m.first] for m in s.member_stalls)
    names = ", ".join(str(block.units[u]) for u in units)
    return (f"member(s) {', '.join(owners)} kept partition(s) {names} but committed nothing on "
            f"any of them from {s.at(first)} for {format_duration(longest)} while "
            f"{format_rate(s.produce_during)} arrived")


def _broker(s: OnsetSignals) -> str | None:
    b = s.broker
    if b is None:
        return None
    return (f"{b.entity} {b.name} rose to {b.top_ms:.0f} ms from its usual {b.usual_ms:.0f} ms "
            f"({b.ratio:.1f}x) at {format_time(b.first_high)}, while consumption fell from "
            f"{format_rate(s.consume_before)} to {format_rate(s.consume_during)} with producers "
            f"at {format_rate(s.produce_during)}")


def _slowdown(s: OnsetSignals) -> str | None:
    if not s.consume_down > RISE_FRACTION * s.consume_before:
        return None
    members = "" if not s.block.owners_known else (
        f"; {s.members_before:.0f} member(s) before, {s.members_during:.0f} during")
    return (f"consume rate fell from {format_rate(s.consume_before)} to "
            f"{format_rate(s.consume_during)} at {s.at(s.span.start)} while producers held "
            f"{format_rate(s.produce_during)}{members}; no broker latency change")


Rule = Callable[[OnsetSignals], "str | None"]
#: The rules for a consumer-side onset, in order.
CONSUMER_RULES: tuple[tuple[str, Rule], ...] = (
    ("rebalance_churn", _churn),
    ("consumer_stopped", _stopped),
    ("consumer_stalled", _stalled),
    ("partition_skew", _skew),
    ("broker_slow", _broker),
    ("consumer_slowdown", _slowdown),
)
#: The rules when producers wrote more (surge side), in order.
PRODUCER_RULES: tuple[tuple[str, Rule], ...] = (
    ("partition_skew", _skew),
    ("producer_surge", _surge),
)

#: What to do, per cause (``{group}``, ``{topic}`` filled in by the caller).
RECOMMENDATIONS: dict[str, str] = {
    "producer_surge": (
        "Producers outran the consumers; if bursts like this recur, size the group for the peak "
        "rate (more consumers, up to the partition count), otherwise nothing to change."
    ),
    "consumer_slowdown": (
        "Find what slowed the consumers at the onset (deploy, downstream latency, GC, a config "
        "change); scaling out drains the backlog sooner."
    ),
    "consumer_stopped": (
        "No consumer is reading: start the group's consumers (check the deploy, crash loops, "
        "credentials); the backlog only grows until then."
    ),
    "consumer_stalled": (
        "Look at the stalled member and its partitions: it is in the group but makes no "
        "progress (stuck processing, a poison message, a deadlock); restart it or skip the record."
    ),
    "partition_skew": (
        "More consumers will not help: one partition takes more than one consumer can read. "
        "Re-key the hot key or add partitions."
    ),
    "rebalance_churn": (
        "Stop the churn: check max.poll.interval.ms and session.timeout.ms against processing "
        "time, deploy loops and crashing members; use static membership or cooperative rebalancing."
    ),
    "broker_slow": (
        "Brokers first: the broker's latency rose before the consumers fell behind (check disk "
        "fsync latency and IO saturation); do not scale the consumers for this."
    ),
    "offset_rewind": (
        "Offsets were moved back: expect the replayed messages to be processed again (make sure "
        "downstream is idempotent); if it was not intended, find who reset them."
    ),
    "none": (
        "The group was short of capacity with no change the data shows: compare its consume "
        "rate with the produce rate (capacity_plan) and scale out, up to the partition count."
    ),
}


def judge(s: OnsetSignals, later: list[str]) -> tuple[str, tuple[str, ...], str]:
    """Return ``(cause, ranked causes, evidence)`` for one episode.

    ``later`` are causes seen after the onset (from the episode's events), ranked after
    the ones that hold at the onset.
    """
    held: list[tuple[str, str]] = []
    evidence = _rewind(s)
    if evidence:
        held.append(("offset_rewind", evidence))
    surge_side = s.produce_up > max(s.consume_down, RISE_FRACTION * s.produce_before)
    rules = PRODUCER_RULES if surge_side else CONSUMER_RULES
    for name, rule in rules:
        found = rule(s)
        if found and name not in dict(held):
            held.append((name, found))
    if len(held) > 1:
        # slower consumption is the symptom every consumer-side cause shares
        held = [item for item in held if item[0] != "consumer_slowdown"]
    if "partition_skew" in dict(held):
        # a slow broker delays every partition it leads; a backlog in a few partitions is not
        # its doing (a hot partition's traffic moves flush and fetch times by itself)
        held = [item for item in held if item[0] != "broker_slow"]
    if not held:
        held.append(("none", f"neither rate changed at the onset: consumers read "
                             f"{format_rate(s.consume_during)} while producers wrote "
                             f"{format_rate(s.produce_during)} (before: "
                             f"{format_rate(s.consume_before)} and "
                             f"{format_rate(s.produce_before)}), so the group was short of "
                             "capacity already; no change of members or brokers shows"))
    ranked = [name for name, _ in held]
    ranked += [name for name in later if name not in ranked]
    return held[0][0], tuple(ranked), held[0][1]
