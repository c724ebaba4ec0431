"""Events the data itself tells: joins, leaves, rebalances, stopped commits, rewinds, rate changes.

Everything here reads one key's :class:`~kbp_notebook.analysis._keyed.KeyBlock`
(or the METRICS frame for brokers) and returns plain records; the incident
model turns them into the ``.events`` frame and reads them for causes.

* membership: a consumer id that starts (stops) owning partitions joined
  (left); any change of the partition -> owner map is a rebalance.
* commits stopped / resumed: a partition's committed offset stands still for
  at least the catch-up window while messages arrive.
* offset rewind: a committed offset moves backwards.
* rate changes: the produce or consume rate of the key steps to a new level
  (binary segmentation of binned rates; a step must be at least
  ``RATE_STEP_FRACTION`` of the larger level and stand out of the bins' noise).
* broker latency: a broker latency signal at least ``LATENCY_RATIO`` times its
  own usual level (25th percentile) and ``LATENCY_MIN_RISE_MS`` above it, for at
  least ``LATENCY_MIN_S``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kbp_notebook.analysis._keyed import KeyBlock
from kbp_notebook.analysis._series import quiet
from kbp_notebook.units import format_count, format_duration, format_rate

__all__ = [
    "BROKER_LATENCY_METRICS",
    "LATENCY_MIN_RISE_MS",
    "LATENCY_MIN_S",
    "LATENCY_RATIO",
    "RATE_STEP_FRACTION",
    "DerivedEvent",
    "broker_latency",
    "broker_latency_events",
    "commit_runs",
    "KeyFacts",
    "key_events",
    "key_facts",
    "member_stalls",
    "membership_changes",
    "rate_steps",
    "rewinds",
]

#: A rate step smaller than this share of the larger level is noise.
RATE_STEP_FRACTION = 0.25
#: A broker latency at least this many times its usual level is an excursion ...
LATENCY_RATIO = 2.0
#: ... if it is also this many ms above it (a client notices tens of ms, not 3 -> 7 ms) ...
LATENCY_MIN_RISE_MS = 20.0
#: ... and lasts this long (seconds), like a consumer that is behind.
LATENCY_MIN_S = 30.0
#: Broker latency signals (canonical METRICS names) and their plain names. Not the
#: consumer fetch time: a fetch waits on the broker up to ``fetch.max.wait.ms`` (500 ms by
#: default) for data, so it rises when a consumer has caught up or its partitions get less
#: traffic, not when the broker is slow (its p99 sits at that ceiling).
BROKER_LATENCY_METRICS: dict[str, str] = {
    "log_flush_time_ms_p99": "log flush p99",
    "log_flush_time_ms_mean": "log flush mean",
    "produce_total_time_ms_p99": "produce request p99",
    "produce_request_queue_time_ms_p99": "produce queue time p99",
}


@dataclass(frozen=True)
class DerivedEvent:
    """One derived event (``partition`` None for the whole key)."""

    time: pd.Timestamp
    kind: str
    text: str
    partition: object = None


@dataclass(frozen=True)
class MembershipChange:
    """A change of who owns the key's partitions between two snapshots."""

    index: int
    joined: tuple[str, ...]
    left: tuple[str, ...]
    moved: int
    members_after: int


def membership_changes(block: KeyBlock) -> list[MembershipChange]:
    """Return every snapshot at which the partition -> owner map changed."""
    if not block.owners_known or block.owner.shape[1] < 2:
        return []
    present = ~np.isnan(block.log_end)
    both = present[:, 1:] & present[:, :-1]
    differs = (block.owner[:, 1:] != block.owner[:, :-1]) & both
    columns = np.flatnonzero(differs.any(axis=0)) + 1
    members_now = block.members()
    out = []
    for column in columns.tolist():
        before = set(block.owner[:, column - 1][block.owner[:, column - 1] >= 0].tolist())
        after = set(block.owner[:, column][block.owner[:, column] >= 0].tolist())
        out.append(
            MembershipChange(
                index=column,
                joined=tuple(sorted(block.owner_names[c] for c in after - before)),
                left=tuple(sorted(block.owner_names[c] for c in before - after)),
                moved=int(differs[:, column - 1].sum()),
                members_after=int(members_now[column]),
            )
        )
    return out


@dataclass(frozen=True)
class CommitRun:
    """A span in which one unit's committed offset stood still while messages arrived."""

    unit: int
    first: int
    last: int
    resumed: bool
    arrived: float


def _true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, first and last column of every run of True in each row of a 2-D mask."""
    rows, width = mask.shape
    padded = np.zeros((rows, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded.ravel())
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    row = starts // (width + 2)
    return row, starts % (width + 2), ends % (width + 2) - 1


def commit_runs(block: KeyBlock, window_s: float) -> list[CommitRun]:
    """Return the spans (>= ``window_s``) of standing committed offsets per unit."""
    committed, t = block.committed, block.t
    if committed.shape[1] < 2:
        return []
    valid = ~np.isnan(committed)
    still = np.zeros(committed.shape, dtype=bool)
    still[:, 1:] = (committed[:, 1:] == committed[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    unit, a, b = _true_runs(still)
    first = np.maximum(a - 1, 0)
    long_enough = t[b] - t[first] >= window_s
    arrived_all = np.cumsum(block.produced(), axis=1)
    arrived = arrived_all[unit, b] - np.where(a > 0, arrived_all[unit, np.maximum(a - 1, 0)], 0.0)
    keep = long_enough & (arrived > 0)
    width = committed.shape[1]
    return [
        CommitRun(unit=int(u), first=int(f), last=int(e), resumed=bool(e + 1 < width),
                  arrived=float(n))
        for u, f, e, n in zip(unit[keep], first[keep], b[keep], arrived[keep], strict=True)
    ]


@dataclass(frozen=True)
class MemberStall:
    """A member that owned partitions but committed nothing on any of them for a while."""

    member: str
    units: tuple[int, ...]
    first: int
    last: int


def member_stalls(block: KeyBlock, window_s: float) -> list[MemberStall]:
    """Members whose partitions *all* stood still for at least ``window_s`` while messages came.

    One slow member that commits its partitions in turn is not stalled: only a member that
    makes no progress on any partition it owns is (a stuck poll loop, a poison message).
    """
    if not block.owners_known:
        return []
    commits, produced = block.forward_commits(), block.produced()
    t, out = block.t, []
    for code in np.unique(block.owner[block.owner >= 0]).tolist():
        owns = block.owner == code
        progress = np.where(owns, commits, 0.0).sum(axis=0)
        arriving = np.where(owns, produced, 0.0).sum(axis=0)
        present = owns.any(axis=0)
        still = present & (progress == 0)
        edges = np.diff(np.r_[0, still.astype(np.int8), 0])
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True):
            first = max(int(a) - 1, 0)
            if t[b] - t[first] >= window_s and arriving[a : b + 1].sum() > 0:
                units = tuple(np.flatnonzero(owns[:, a : b + 1].any(axis=1)).tolist())
                out.append(MemberStall(block.owner_names[code], units, first, int(b)))
    return out


@dataclass(frozen=True)
class Rewind:
    """Committed offsets moved back at one snapshot."""

    index: int
    units: tuple[int, ...]
    messages: float


def rewinds(block: KeyBlock) -> list[Rewind]:
    """Return the snapshots at which committed offsets moved backwards."""
    step = np.diff(block.committed, axis=1)
    back = np.where(np.isnan(step), 0.0, np.minimum(step, 0.0))
    out = []
    for column in np.flatnonzero((back < 0).any(axis=0)).tolist():
        units = tuple(np.flatnonzero(back[:, column] < 0).tolist())
        out.append(Rewind(index=column + 1, units=units, messages=float(-back[:, column].sum())))
    return out


@dataclass(frozen=True)
class RateStep:
    """The key's rate moved from one level to another at ``time_s``."""

    time_s: float
    before: float
    after: float


def _binned_rates(t: np.ndarray, increments: np.ndarray, width_s: float) -> tuple[np.ndarray, ...]:
    edges = np.arange(t[0], t[-1] + width_s, width_s)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 1)
    totals = np.bincount(which, weights=increments, minlength=len(edges))
    counts = np.bincount(which, minlength=len(edges))
    keep = counts > 0
    spans = np.diff(np.r_[edges, edges[-1] + width_s])
    return edges[keep], totals[keep] / spans[keep]


def rate_steps(t: np.ndarray, increments: np.ndarray, step_s: float) -> list[RateStep]:
    """Binary segmentation of a binned rate into levels; return the accepted steps."""
    if len(t) < 8 or not np.isfinite(step_s):
        return []
    width = max(15.0, 3.0 * step_s)
    starts, rates = _binned_rates(t, increments, width)
    if len(rates) < 4:
        return []
    # the first bin is partial (no increment before the first snapshot)
    starts, rates = starts[1:], rates[1:]
    with quiet():
        noise = float(np.nanmedian(np.abs(np.diff(rates)))) / 0.6745 / np.sqrt(2.0)
    found: list[RateStep] = []

    def split(lo: int, hi: int) -> None:
        values = rates[lo:hi]
        size = len(values)
        if size < 4:
            return
        # every cut at once: means left and right from cumulative sums
        cuts = np.arange(2, size - 1)
        sums = np.cumsum(values)
        left = sums[cuts - 1] / cuts
        right = (sums[-1] - sums[cuts - 1]) / (size - cuts)
        diff = np.abs(right - left)
        scale = np.maximum(np.maximum(left, right), 1e-9)
        score = diff / max(noise, 1e-9) * np.sqrt(cuts * (size - cuts) / size)
        score[diff < RATE_STEP_FRACTION * scale] = 0.0
        best = int(np.argmax(score))
        if score[best] < 4.0:
            return
        cut = lo + int(cuts[best])
        found.append(
            RateStep(
                time_s=float(starts[cut]),
                before=float(np.median(rates[lo:cut])),
                after=float(np.median(rates[cut:hi])),
            )
        )
        split(lo, cut)
        split(cut, hi)

    split(0, len(rates))
    return sorted(found, key=lambda step: step.time_s)


def _unit_names(block: KeyBlock, units: tuple[int, ...] | list[int]) -> str:
    names = [str(block.units[u]) for u in units]
    if len(names) > 6:
        return ", ".join(names[:6]) + f" and {len(names) - 6} more"
    return ", ".join(names)


@dataclass(frozen=True)
class KeyFacts:
    """What one key's data says happened, computed once and read by events and causes."""

    changes: list[MembershipChange]
    runs: list[CommitRun]
    stalls: list[MemberStall]
    rewinds: list[Rewind]


def key_facts(block: KeyBlock, window_s: float) -> KeyFacts:
    """Membership changes, standing commits, stalled members and rewinds of one key."""
    return KeyFacts(
        changes=membership_changes(block),
        runs=commit_runs(block, window_s),
        stalls=member_stalls(block, window_s),
        rewinds=rewinds(block),
    )


def key_events(block: KeyBlock, facts: KeyFacts) -> list[DerivedEvent]:
    """All derived events of one key, oldest first."""
    times, out = block.times, []
    for change in facts.changes:
        when = times[change.index]
        for member in change.joined:
            out.append(DerivedEvent(when, "member_joined", f"consumer {member} joined"))
        for member in change.left:
            out.append(DerivedEvent(when, "member_left", f"consumer {member} left"))
        out.append(
            DerivedEvent(
                when,
                "rebalance",
                f"{change.moved} partition(s) changed owner; {change.members_after} member(s) "
                "after",
            )
        )
    out.extend(_commit_events(block, facts.runs))
    for rewind in facts.rewinds:
        out.append(
            DerivedEvent(
                times[rewind.index],
                "offset_rewind",
                f"committed offsets moved back by {format_count(rewind.messages)} messages on "
                f"partition(s) {_unit_names(block, rewind.units)}",
            )
        )
    for what, increments in (
        ("produce", block.produced().sum(axis=0)),
        ("consume", block.forward_commits().sum(axis=0)),
    ):
        for step in rate_steps(block.t, increments, block.step_s):
            verb = "rose" if step.after > step.before else "fell"
            out.append(
                DerivedEvent(
                    block.times[0] + pd.Timedelta(seconds=step.time_s - block.t[0]),
                    f"{what}_rate_change",
                    f"{what} rate {verb} from {format_rate(step.before)} to "
                    f"{format_rate(step.after)}",
                )
            )
    return sorted(out, key=lambda event: event.time)


def _commit_events(block: KeyBlock, runs: list[CommitRun]) -> list[DerivedEvent]:
    """Commit stops per unit, folded into one key-wide event where all units stop together."""
    out: list[DerivedEvent] = []
    by_first: dict[int, list[CommitRun]] = {}
    for run in runs:
        by_first.setdefault(run.first, []).append(run)
    n_units = block.committed.shape[0]
    for first, group in sorted(by_first.items()):
        last = max(run.last for run in group)
        span = format_duration(block.t[last] - block.t[first])
        partition = None if len(group) == n_units else group[0].unit
        where = ("all partitions" if partition is None
                 else f"partition(s) {_unit_names(block, [run.unit for run in group])}")
        label = None if partition is None else block.units[group[0].unit]
        if partition is not None and len(group) > 1:
            label = None
        out.append(
            DerivedEvent(block.times[first], "commits_stopped",
                         f"committed offsets of {where} stood still for {span} while messages "
                         "arrived", label)
        )
        if all(run.resumed for run in group):
            out.append(
                DerivedEvent(block.times[min(last + 1, len(block.t) - 1)], "commits_resumed",
                             f"commits resumed on {where}", label)
            )
    return out


def broker_latency(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Broker latency signals, long: ``time``, ``entity``, ``metric``, ``value`` (brokers only)."""
    if metrics is None or len(metrics) == 0:
        return pd.DataFrame(columns=["time", "entity", "metric", "value"])
    keep = metrics["metric"].isin(list(BROKER_LATENCY_METRICS)) & metrics["entity"].astype(
        "string"
    ).str.startswith("broker")
    return metrics.loc[keep, ["time", "entity", "metric", "value"]].reset_index(drop=True)


def broker_latency_events(latency: pd.DataFrame) -> list[tuple[DerivedEvent, str]]:
    """Excursions of each broker latency signal above ``LATENCY_RATIO`` x its usual level."""
    out: list[tuple[DerivedEvent, str]] = []
    for (entity, metric), series in latency.groupby(["entity", "metric"], sort=True):
        values = series["value"].to_numpy(dtype=np.float64)
        if len(values) < 6:
            continue
        with quiet():
            usual = float(np.nanquantile(values, 0.25))
            smooth = pd.Series(values).rolling(3, center=True, min_periods=1).median().to_numpy()
        if not usual > 0:
            continue
        high = (smooth >= LATENCY_RATIO * usual) & (smooth >= usual + LATENCY_MIN_RISE_MS)
        edges = np.diff(np.r_[0, high.astype(np.int8), 0])
        times = series["time"].to_numpy()
        name = BROKER_LATENCY_METRICS[str(metric)]
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True):
            if a < 3:
                continue  # high from the first samples on: no "before" to call it a change
            until = times[min(int(b) + 1, len(values) - 1)]
            if (pd.Timestamp(until) - pd.Timestamp(times[a])).total_seconds() < LATENCY_MIN_S:
                continue
            peak = float(np.nanmax(values[a : b + 1]))
            out.append((
                DerivedEvent(pd.Timestamp(times[a]), "broker_latency_high",
                             f"{entity} {name} {peak:.0f} ms, {peak / usual:.1f}x its usual "
                             f"{usual:.0f} ms"), str(entity)))
            if b + 1 < len(values):
                out.append((
                    DerivedEvent(pd.Timestamp(times[b + 1]), "broker_latency_normal",
                                 f"{entity} {name} back near its usual {usual:.0f} ms"),
                    str(entity)))
    return out
