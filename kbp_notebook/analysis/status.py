"""Burrow-style consumer status per partition and per group.

Burrow's rules
--------------
LinkedIn's Burrow documents its status rules in the wiki page "Consumer Lag
Evaluation Rules" (and its evaluator, ``core/internal/evaluator``). Over a
window of the last 10 commits of each partition:

1. if the lag was zero at any commit of the window, the partition is OK;
2. if the committed offset went backwards in the window: REWIND (newer
   evaluators: only while it is still behind the highest offset committed);
3. if the time since the last commit is longer than the window spans
   (last minus first commit), the consumer stopped committing: STOP (not
   when a recent log-end offset shows it caught up: its broker offset history);
4. if commits keep arriving with the same offset while there is lag: STALL;
5. if offsets advance but the lag never decreases from one commit to the
   next across the window: WARN (the consumer is slow);
6. else OK. Its ``allowed-lag`` option treats a small lag as zero. The
   group status is the worst partition, STOP/STALL/REWIND reported as ERR.

What we do
----------
Each rule, per partition, over its last ``window`` commits:

* **OK** -- the current lag is at most what counts as caught up: the larger
  of ``allowed_lag`` and the partition's **in-flight lag** (its produce
  rate over the window times the mean time between its commits: what a
  healthy consumer leaves behind between two commits); or the lag was that
  small at some commit of the window; or nothing below fires.
* **STOP** / **STALL** -- silent for longer than the window spans, not
  recently caught up, and not *busy elsewhere* (below). STALL when the
  partition has an owner (``consumer_id``), STOP when it has none or
  ownership is unknown.
* **REWIND** -- the committed offset went backwards within the window and is
  still behind the highest offset committed in the window.
* **WARN** -- offsets advance and the lag at the last commit of the window
  exceeds the lag at its first commit by more than the in-flight lag.

A **group** is ERR when a partition is STOP, STALL or REWIND; WARN when the
group as a whole falls behind: Burrow's rules 1 and 3 applied to its *total*
lag (summed over its partitions at each snapshot) over the group's window (from
the median start of its partitions' windows to now), as if the group were one
partition. The total never came down to caught up (the partitions' caught-up
lags together) at any snapshot of the window, or some partition did not at any
commit of its own window (Burrow's group is its worst partition); the total's
least-squares trend over the window rises; and it is not draining now (over the
last ``window`` snapshots, fallen by more than the partitions' in-flight lags
together, or trending down by more than twice the trend's standard error); else OK.
``partitions.group_falling_behind`` says which groups do. ``complete`` is how
full a partition's window is (commits seen / ``window``); a group's is the share
of its partitions with a full window. ``totallag`` sums current lags;
``maxlag_*`` names the partition with the largest current lag.

Where we differ from Burrow, and why
------------------------------------
* **Commits are inferred from snapshots.** Burrow reads every commit from
  ``__consumer_offsets`` with its timestamp. A LAG frame only has periodic
  snapshots, so a *commit* here is a change of the committed offset, dated
  at the snapshot where it was first seen (up to one snapshot interval
  late). Commits that did not move the offset are invisible, so Burrow's
  rule 4 (same offset committed again and again) cannot be seen: an offset
  standing still past the window is STALL when the partition has an owner
  at the evaluation time, STOP when it has none or ownership is unknown.
* **Busy elsewhere is not stopped.** A consumer with a backlog on several
  partitions fetches them a batch at a time, so one partition's offset can
  stand still for 20-60 s while its member drains the others (seen on every
  bundled sample's drain). Since our window of inferred commits can span a
  few seconds, Burrow's rule 3 would call that STOP/STALL and the group ERR
  ("look for a poison message") while it drains normally. A partition is
  not STOP/STALL while its owner committed progress on its other partitions
  since this one's last commit and was behind on one of them within this
  partition's window span; a member caught up elsewhere that leaves a lagging
  partition standing is stalled on it. Without ``consumer_id`` Burrow's rule
  applies as is.
* **"Equal counts as never decreasing" is gone.** Burrow's rule 5 calls a
  caught-up consumer WARN when its lag is a small constant at every commit
  (lag 4 at every snapshot with commits every 5 s: offsets advance, the lag
  never decreases) -- its best-known false alarm. Here the in-flight lag
  counts as caught up, and WARN needs the lag to have *grown* across the
  window by more than the in-flight lag.
* **One lower commit does not make a build-up OK.** Rule 5 also turns OK as
  soon as one commit's lag is lower than the previous one's, which commit
  timing noise and per-partition fetching do all the time during a
  build-up: the peak of a 19,000-message build-up showed green OK. WARN
  compares the window's last lag with its first instead, and the group's
  WARN follows its total lag, which does not flicker with one partition.
* **A group drains OK.** Burrow's group is its worst partition, so one
  partition whose commits rose while its member worked elsewhere turns a
  group that drains fast into WARN. Our group WARN needs the group's total
  lag to grow; partition statuses still show such a partition.
* **A build-up read in turns is WARN.** Per partition, a few slowed members
  reading 24 partitions in turns, or members restarted every few seconds,
  catch each partition up at some commit of its window, so Burrow's rule 1
  calls every partition (and his group, the worst of them) OK at points of a
  build-up whose total keeps growing. The group rule reads the total instead:
  any point of the window where the *group* was caught up keeps it OK, none
  makes it WARN while the total rises. The trend is fitted over the window
  rather than read from its two ends, so that commit timing (which moves the
  total by up to the in-flight lags together) does not flicker a build-up
  back to OK, and it turns OK when draining is clear: the total fell by more
  than that, or trends down beyond the scatter of its last ``window``
  snapshots. The price: a group stays WARN for a few snapshots after its peak.
* **"Now" is the last snapshot**, not the wall clock, so a status computed
  from a recording is reproducible and a post-mortem reads the same twice
  (``as_of``).
* The first snapshot of a partition counts as a commit (we do not know when
  that offset was committed), which makes a never-moving offset STOP/STALL
  as soon as one more snapshot arrives.
* Partitions that never had a committed offset are left out, as Burrow
  leaves out partitions a group never committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
import pandas as pd

from kbp_notebook.analysis._result import Result
from kbp_notebook.analysis._series import (
    Panel,
    build_panel,
    concat_rows,
    ffill_index,
    int_column,
    key_codes,
    normalise_by,
    owner_ids,
    prepare_lag,
    quiet,
    split_rows,
    sub_panel,
    to_timestamps,
)
from kbp_notebook.errors import KbpDataError, KbpInputError

__all__ = ["LagStatus", "group_timeline", "lag_status", "status_timeline"]

#: Partition statuses by severity (Burrow's order); groups use OK, WARN, ERR.
STATUSES: tuple[str, ...] = ("OK", "WARN", "ERR", "STOP", "STALL", "REWIND")
_OK, _WARN, _ERR, _STOP, _STALL, _REWIND = range(6)

#: Timelines are computed by default only up to this many partitions x times.
TIMELINE_BUDGET = 2_000_000


@dataclass(frozen=True, repr=False)
class LagStatus(Result):
    """Burrow-style status per group (``table``/``groups``) and per partition.

    Attributes
    ----------
    table
        Same as ``groups``.
    partitions
        One row per (cluster, group, topic, partition): ``status``,
        ``complete``, ``current_lag``, ``owned`` (bool, NA if unknown), window
        start/end ``*_offset``, ``*_time`` and ``*_lag``.
    groups
        One row per (cluster, group): ``status`` (OK/WARN/ERR), ``complete``,
        ``totallag``, ``maxlag_topic``, ``maxlag_partition``, ``maxlag``,
        ``partition_count``, ``bad_partitions``.
    timeline
        Long frame ``time``, key columns, ``status``, ``current_lag``,
        ``group_falling_behind`` evaluated at up to ``timeline_points``
        snapshot times, or None when not computed.
    group_timeline
        The same rolled up to groups: ``time``, ``cluster``, ``group``,
        ``group_status`` (OK/WARN/ERR as in ``groups``), ``status`` (the
        same, naming the worst partition's STOP/STALL/REWIND where ERR) and
        ``totallag``; None when not computed.
    window
        Commits per window.
    allowed_lag
        Lag treated as caught up.
    as_of
        Time of the last snapshot (UTC): "now" for these statuses.
    """

    partitions: pd.DataFrame = None  # type: ignore[assignment]
    groups: pd.DataFrame = None  # type: ignore[assignment]
    timeline: pd.DataFrame | None = None
    group_timeline: pd.DataFrame | None = None
    window: int = 10
    allowed_lag: int = 0
    as_of: pd.Timestamp = None  # type: ignore[assignment]

    plot_builder: ClassVar[str] = "plot_lag_status"
    title: ClassVar[str] = "Consumer status (Burrow rules)"

    def summary_lines(self) -> list[str]:
        """Count group and partition statuses."""
        groups = self.groups["status"].value_counts()
        parts = self.partitions["status"].value_counts()
        return [
            "groups: " + ", ".join(f"{int(v)} {k}" for k, v in groups.items()),
            "partitions: " + ", ".join(f"{int(v)} {k}" for k, v in parts.items()),
        ]


def _take(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[row, index]`` with NaN where index < 0."""
    out = np.take_along_axis(array, np.clip(index, 0, None), axis=1).astype(np.float64)
    out[index < 0] = np.nan
    return out


@dataclass(frozen=True)
class PartitionFacts:
    """What :func:`_measure` finds per partition over its window (``(K,)`` arrays).

    Attributes
    ----------
    none
        No commit event at or before the evaluation snapshot.
    complete
        Share of the window's commits seen (1 = a full window).
    current_lag
        Lag at the evaluation snapshot (log end minus the last committed offset).
    start_time_s, start_offset, start_lag, end_time_s, end_offset, end_lag
        The window's first and last commit event (seconds from the panel's ``t0``).
    owner_now, owned
        The member owning the partition (NaN where none) and 1/0 whether one does
        (NaN where ownership is not recorded).
    in_flight_lag, caught
        Lag a healthy consumer leaves between two commits, and the lag that counts
        as caught up (the larger of it and ``allowed_lag``).
    behind, stopped, recent_zero, rewind, ever_caught_up, warn
        The inputs of Burrow's rules (see :func:`_decide`).
    last_behind_s, now_s
        Last time the partition was behind, and the evaluation time.
    """

    none: np.ndarray
    complete: np.ndarray
    current_lag: np.ndarray
    start_time_s: np.ndarray
    start_offset: np.ndarray
    start_lag: np.ndarray
    end_time_s: np.ndarray
    end_offset: np.ndarray
    end_lag: np.ndarray
    owner_now: np.ndarray
    owned: np.ndarray
    in_flight_lag: np.ndarray
    caught: np.ndarray
    behind: np.ndarray
    stopped: np.ndarray
    recent_zero: np.ndarray
    rewind: np.ndarray
    ever_caught_up: np.ndarray
    last_behind_s: np.ndarray
    now_s: np.ndarray
    warn: np.ndarray


@dataclass(frozen=True)
class Evaluation:
    """The rules applied to every partition, from :func:`evaluate` (``(K,)`` arrays).

    ``status`` holds codes into :data:`STATUSES` (-1 where no commit),
    ``busy_elsewhere`` whether the owner works through a backlog on other
    partitions, ``group_behind`` whether the partition's group as a whole falls
    behind; ``facts`` what the rules were applied to.
    """

    facts: PartitionFacts
    status: np.ndarray
    busy_elsewhere: np.ndarray
    group_behind: np.ndarray


class _CommitWindow(NamedTuple):
    """Each partition's commit events up to its evaluation snapshot, and its window of them."""

    inside: np.ndarray  # (K, T) samples at or before the evaluation snapshot
    committed: np.ndarray  # (K, T)
    leo: np.ndarray  # (K, T)
    event: np.ndarray  # (K, T) the committed offset moved (or was first seen)
    previous_offset: np.ndarray  # (K, T) the committed offset at the commit before
    last_commit: np.ndarray  # (K, T) column of the latest commit at or before
    in_window: np.ndarray  # (K, T) the newest ``window`` events
    rank: np.ndarray  # (K, T) 1 = newest event
    n_window: np.ndarray
    start_index: np.ndarray  # -1 where none
    end_index: np.ndarray


def _commit_window(panel: Panel, upto: np.ndarray, window: int) -> _CommitWindow:
    """Find the commit events and the newest ``window`` of them at or before ``upto``."""
    t = panel.time_s
    k, width = t.shape
    column = np.arange(width)[None, :]
    inside = (column <= upto[:, None]) & ~np.isnan(t)
    committed = np.where(inside, panel["committed_offset"], np.nan)
    leo = np.where(inside, panel["log_end_offset"], np.nan)
    has_commit = ~np.isnan(committed)
    last_commit = ffill_index(has_commit)
    previous = np.concatenate([np.full((k, 1), -1), last_commit[:, :-1]], axis=1)
    previous_offset = _take(committed, previous)
    event = has_commit & ((previous < 0) | (committed != previous_offset))
    # rank 1 = newest commit event at or before the evaluation snapshot
    rank = np.cumsum(event[:, ::-1], axis=1)[:, ::-1]
    in_window = event & (rank <= window)
    n_window = np.minimum(event.sum(axis=1), window)
    start_index = np.argmax(in_window & (rank == n_window[:, None]), axis=1)
    end_index = np.argmax(in_window & (rank == 1), axis=1)
    none = n_window == 0
    return _CommitWindow(
        inside, committed, leo, event, previous_offset, last_commit, in_window, rank, n_window,
        np.where(none, -1, start_index), np.where(none, -1, end_index),
    )


def _at(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[row, index[row]]`` per row, NaN where the index is negative."""
    return _take(array, index[:, None])[:, 0]


def _owner_now(
    panel: Panel, cw: _CommitWindow, here: np.ndarray, last_progress: np.ndarray
) -> np.ndarray:
    """Each partition's owner at the evaluation snapshot; records members' latest progress.

    ``last_progress`` (one slot per member) is raised in place to the time of
    each member's newest commit event. NaN owners where ownership is not recorded.
    """
    if "owner" not in panel.arrays:
        return np.full(panel.size, np.nan)
    owner, t = panel["owner"], panel.time_s
    who = np.where(cw.event & cw.inside & ~np.isnan(owner), owner, -1).astype(np.int64)
    np.maximum.at(last_progress, who[who >= 0], t[who >= 0])
    return _at(owner, here)


def _measure(
    panel: Panel,
    *,
    window: int,
    allowed_lag: float,
    upto: np.ndarray,
    last_progress: np.ndarray,
) -> PartitionFacts:
    """Per-partition facts over each window; adds each member's latest progress time.

    ``last_progress`` (one slot per member, see :func:`_owner_codes`) is updated in place
    with the time of the newest commit event of each member, so that chunks of partitions
    can be measured one after the other.
    """
    t = panel.time_s
    cw = _commit_window(panel, upto, window)
    committed, leo, in_window, n_window = cw.committed, cw.leo, cw.in_window, cw.n_window
    none = n_window == 0
    here = np.where(upto >= 0, upto, -1)
    now = _at(t, here)
    lag_at = leo - committed
    start_t, end_t = _at(t, cw.start_index), _at(t, cw.end_index)
    end_offset = _at(committed, cw.end_index)
    start_lag, end_lag = _at(lag_at, cw.start_index), _at(lag_at, cw.end_index)
    at_last = np.take_along_axis(cw.last_commit, np.clip(upto, 0, None)[:, None], axis=1)[:, 0]
    current_lag = _at(leo, here) - _at(committed, np.where(upto >= 0, at_last, -1))
    owner_now = _owner_now(panel, cw, here, last_progress)
    # In-flight lag: what a healthy consumer leaves between two commits at this produce rate.
    with np.errstate(invalid="ignore", divide="ignore"):
        produce_rate = (_at(leo, here) - _at(leo, cw.start_index)) / (now - start_t)
        interval = np.where(n_window >= 2, (end_t - start_t) / (n_window - 1), np.nan)
    in_flight = np.clip(np.nan_to_num(produce_rate * interval), 0.0, None)
    caught = np.maximum(float(allowed_lag), in_flight)
    recent = cw.inside & (np.arange(t.shape[1])[None, :] > (upto - window)[:, None])
    pair = in_window & (cw.rank < n_window[:, None])
    max_offset = np.nanmax(np.where(in_window, committed, -np.inf), axis=1)
    return PartitionFacts(
        none=none,
        complete=n_window / float(window),
        current_lag=current_lag,
        start_time_s=start_t,
        start_offset=_at(committed, cw.start_index),
        start_lag=start_lag,
        end_time_s=end_t,
        end_offset=end_offset,
        end_lag=end_lag,
        owner_now=owner_now,
        owned=(np.where(np.isnan(owner_now), 0.0, 1.0) if "owner" in panel.arrays
               else owner_now),
        in_flight_lag=in_flight,
        caught=caught,
        behind=(current_lag > caught) & ~none,
        # Burrow's STOP test: silent for longer than the window spans ...
        stopped=(now - end_t) > (end_t - start_t),
        # ... unless the consumer caught up in the recent log-end history
        recent_zero=np.asarray((recent & (leo <= end_offset[:, None])).any(axis=1)),
        rewind=(pair & (committed < cw.previous_offset)).any(axis=1) & (end_offset < max_offset),
        ever_caught_up=(in_window & (lag_at <= caught[:, None])).any(axis=1),
        last_behind_s=np.max(
            np.where(lag_at > caught[:, None], t, -np.inf), axis=1, initial=-np.inf
        ),
        now_s=now,
        # falling behind: the lag grew across the window by more than the in-flight lag
        warn=(n_window >= 2) & (end_lag - start_lag > in_flight),
    )


def _busy_elsewhere(facts: PartitionFacts, last_progress: np.ndarray) -> np.ndarray:
    """Tell per partition whether its owner works through a backlog on other partitions.

    A consumer with a backlog on several partitions fetches them in turn, so one of them
    can stand still for longer than its window spans while the member is busy elsewhere.
    True where the owner committed progress on other partitions since this one's last
    commit and was behind on one of them within the last window span (this partition's);
    a member that has been caught up on its other partitions for longer than that and
    still leaves this one standing is stuck on it.
    """
    owner_now = facts.owner_now
    known = ~np.isnan(owner_now)
    if len(last_progress) == 0 or not known.any():
        return np.zeros(len(owner_now), dtype=bool)
    member = np.where(known, owner_now, -1).astype(np.int64)
    # the latest and second-latest time each member was behind on one of its partitions,
    # so that each partition can look at the member's *other* partitions
    behind_t = np.where(known, facts.last_behind_s, -np.inf)
    order = np.lexsort((-behind_t, member))
    ranked = member[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = ranked[1:] != ranked[:-1]
    second = np.zeros(len(order), dtype=bool)
    second[1:] = ~first[1:] & first[:-1]
    top = np.full(len(last_progress), -np.inf)
    runner_up = np.full(len(last_progress), -np.inf)
    ok = ranked >= 0
    top[ranked[first & ok]] = behind_t[order[first & ok]]
    runner_up[ranked[second & ok]] = behind_t[order[second & ok]]
    mine = np.clip(member, 0, None)
    others_behind_t = np.where(behind_t >= top[mine], runner_up[mine], top[mine])
    span = facts.end_time_s - facts.start_time_s
    recently_busy = others_behind_t >= facts.now_s - span
    return np.asarray(known & (last_progress[mine] > facts.end_time_s) & recently_busy)


def _decide(facts: PartitionFacts, busy: np.ndarray) -> np.ndarray:
    """Apply the rules in Burrow's order to measured facts: status codes, -1 = no commit."""
    status = np.full(len(busy), _OK, dtype=np.int64)
    undecided = facts.behind.copy()
    stop_now = undecided & facts.stopped & ~facts.recent_zero & ~busy
    status[stop_now & (facts.owned == 1)] = _STALL
    status[stop_now & (facts.owned != 1)] = _STOP
    undecided &= ~stop_now
    status[undecided & facts.rewind] = _REWIND
    undecided &= ~facts.rewind & ~facts.ever_caught_up
    status[undecided & facts.warn] = _WARN
    status[facts.none] = -1
    return status


def _recent_lags(panel: Panel, upto: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Each partition's lag and time at its last ``depth`` snapshots up to ``upto``.

    Column ``j`` of the ``(K, depth)`` arrays is the ``j``-th snapshot back from the
    evaluation snapshot (0 = it); NaN where the partition has no such snapshot, and lag
    NaN before its first commit. One snapshot covers all partitions of a group, so
    column ``j`` of a group's partitions is the same snapshot.
    """
    column = upto[:, None] - np.arange(depth)[None, :]
    valid = column >= 0
    index = np.where(valid, column, -1)
    committed = panel["committed_offset"]
    last = ffill_index(~np.isnan(committed))
    commit_index = np.take_along_axis(last, np.clip(index, 0, None), axis=1)
    lag = _take(panel["log_end_offset"], index) - _take(
        committed, np.where(valid, commit_index, -1)
    )
    return lag, _take(panel.time_s, index)


def _parts(panel: Panel, chunk: int) -> list[tuple[slice, Panel]]:
    """Slices of at most ``chunk`` partitions with their sub-panels (the panel itself if one)."""
    if panel.size <= chunk:
        return [(slice(0, panel.size), panel)]
    return [(rows, sub_panel(panel, rows)) for rows in split_rows(panel.size, chunk)]


def group_index(panel: Panel) -> np.ndarray:
    """Each partition row's group number (cluster and group) in a per-partition panel."""
    return np.asarray(
        np.unique(key_codes(panel.keys, ["cluster", "group"]), return_inverse=True)[1]
    ).reshape(-1)


def _group_falling_behind(
    panel: Panel,
    facts: PartitionFacts,
    upto: np.ndarray,
    *,
    window: int,
    chunk: int,
    group: np.ndarray,
) -> np.ndarray:
    """Per partition: whether its group as a whole falls behind.

    Burrow's rules 1 and 3 applied to the group's *total* lag, summed over its
    partitions at each snapshot of the group's window (from the median start of its
    partitions' windows to now), as if the group were one partition:

    * the total is above caught up (the partitions' caught-up lags together) now and
      never came down to it at any snapshot of the window, or a partition is behind
      and was at every commit of its own window (rule 1, for the group as a whole and
      for its worst partition, as Burrow's group is);
    * the total rose over the window (least-squares slope above zero: rule 3,
      offsets move and the lag does not decrease; the fit keeps commit timing from
      flickering a build-up back to OK, as one lower commit does in Burrow's literal
      rule);
    * it is not draining now: over the last ``window`` snapshots it did not fall by
      more than the partitions' in-flight lags together (what commit timing alone
      moves it by), nor does its trend there fall by more than twice its standard
      error (a fall that the scatter of the points does not explain), so that a
      window reaching back across a peak does not call a group that drains now
      "falling behind" (Burrow's rule 5: lag decreasing is OK).

    Per partition, a consumer reading 24 partitions in turns, or restarted every few
    seconds, catches each one up at some commit of its window, so no partition is
    behind at every commit while the total keeps growing: the total tells the build-up.
    """
    groups = int(group.max(initial=-1)) + 1
    use = ~facts.none
    rows = np.flatnonzero(use)
    order = rows[np.lexsort((facts.start_time_s[rows], group[rows]))]
    count = np.bincount(group[rows], minlength=groups)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    since = np.full(groups, np.nan)
    if len(order):
        middle = order[np.clip(first + (count - 1) // 2, 0, len(order) - 1)]
        since = np.where(count > 0, facts.start_time_s[middle], np.nan)
    start = np.where(use, since[group], np.inf)
    t = panel.time_s
    span = ((t >= start[:, None]) & (np.arange(t.shape[1])[None, :] <= upto[:, None])).sum(axis=1)
    depth = max(int(span.max(initial=0)), window + 1)
    totals = np.zeros((groups, depth))
    seconds = np.zeros((groups, depth))
    counted = np.zeros((groups, depth))
    for part_rows, part in _parts(panel, chunk):
        lag, when = _recent_lags(part, upto[part_rows], depth)
        seen = use[part_rows][:, None] & ~np.isnan(when)
        np.add.at(totals, group[part_rows], np.where(seen, np.nan_to_num(lag), 0.0))
        np.add.at(seconds, group[part_rows], np.where(seen, when, 0.0))
        np.add.at(counted, group[part_rows], seen.astype(np.float64))
    # a snapshot of the group: every partition in use has one (the same poll)
    full = (counted == count[:, None]) & (count[:, None] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        seconds = seconds / counted
    in_window = full & (seconds >= since[:, None])
    caught = np.bincount(group[use], weights=facts.caught[use], minlength=groups)
    never_caught_up = ((totals > caught[:, None]) | ~in_window).all(axis=1) & in_window.any(axis=1)
    # ... or, as Burrow's group (its worst partition) says, a partition never caught up
    # at a commit of its own window
    never_caught_up |= np.bincount(
        group[use], weights=(facts.behind & ~facts.ever_caught_up)[use], minlength=groups
    ) > 0
    # draining now: over the last `window` snapshots the total fell by more than the
    # partitions' in-flight lags together (what commit timing alone can move it by), or
    # its trend falls by more than twice its standard error (beyond the points' scatter)
    margin = np.bincount(group[use], weights=facts.in_flight_lag[use], minlength=groups)
    recent = full & (np.arange(depth)[None, :] <= window)
    back = np.where(recent, np.arange(depth), -1).max(axis=1)
    earlier = np.take_along_axis(totals, np.clip(back, 0, None)[:, None], axis=1)[:, 0]
    slope, error = _trend(seconds, totals, recent)
    draining = (totals[:, 0] < earlier - margin) | (slope < -2.0 * error)
    rising = (_trend(seconds, totals, in_window)[0] > 0) & ~draining
    behind_now = totals[:, 0] > caught
    return np.asarray((never_caught_up & rising & behind_now)[group] & use)


def _trend(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope of ``y`` over ``x`` per row, using the points in ``mask``.

    Returns the slope (NaN where a row has fewer than two distinct ``x`` in the mask)
    and its standard error (NaN with fewer than three points).
    """
    n = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_mean = np.where(mask, x, 0.0).sum(axis=1) / n
        y_mean = np.where(mask, y, 0.0).sum(axis=1) / n
        dx = np.where(mask, x - x_mean[:, None], 0.0)
        dy = np.where(mask, y - y_mean[:, None], 0.0)
        spread = (dx * dx).sum(axis=1)
        slope = np.where(spread > 0, (dx * dy).sum(axis=1) / spread, np.nan)
        residual = np.where(mask, dy - slope[:, None] * dx, 0.0)
        error = np.sqrt((residual * residual).sum(axis=1) / (n - 2) / spread)
    return np.asarray(slope), np.asarray(np.where(n > 2, error, np.nan))


def evaluate(
    panel: Panel,
    *,
    window: int,
    allowed_lag: float,
    upto: np.ndarray | None = None,
    chunk: int = 8192,
    group: np.ndarray | None = None,
) -> Evaluation:
    """Apply the rules to every partition of a per-partition panel.

    Parameters
    ----------
    panel
        Per-partition panel with ``committed_offset``, ``log_end_offset``
        and optionally ``owner`` (member codes, NaN where no owner).
    window
        Commits per window.
    allowed_lag
        Lag that counts as caught up.
    upto
        ``(K,)`` index of the evaluation snapshot per row (default: last);
        later samples are ignored, -1 means nothing to evaluate.
    chunk
        Partitions measured at a time (bounds the ``(chunk, T)`` temporaries);
        members and groups are judged across all of them.
    group
        :func:`group_index` of the panel, when the caller has it already.

    Returns
    -------
    Evaluation
        ``status`` (int codes into :data:`STATUSES`, -1 where no commit),
        ``group_behind`` (the group's total lag falls behind across its window),
        ``busy_elsewhere`` and the measured ``facts`` (``complete``,
        ``current_lag``, ``start_*``/``end_*`` arrays, ``owned``, ``in_flight_lag``).
    """
    if upto is None:
        upto = panel.n - 1
    members = int(np.nanmax(panel["owner"], initial=-1)) + 1 if "owner" in panel.arrays else 0
    last_progress = np.full(members, -np.inf)
    parts = [
        _measure(
            part,
            window=window,
            allowed_lag=allowed_lag,
            upto=upto[rows],
            last_progress=last_progress,
        )
        for rows, part in _parts(panel, chunk)
    ]
    facts = concat_rows(parts)
    busy = _busy_elsewhere(facts, last_progress)
    return Evaluation(
        facts=facts,
        status=_decide(facts, busy),
        busy_elsewhere=busy,
        group_behind=_group_falling_behind(
            panel,
            facts,
            upto,
            window=window,
            chunk=chunk,
            group=group_index(panel) if group is None else group,
        ),
    )


def _owner_codes(frame: pd.DataFrame) -> np.ndarray | None:
    """Per row, a number for the member owning the partition (NaN where none).

    Members are told apart within their cluster and group. None when ownership is unknown
    (no ``consumer_id`` column, or all NA).
    """
    ids = owner_ids(frame)
    if ids is None or frame["consumer_id"].isna().all():
        return None
    code = key_codes(
        frame[["cluster", "group"]].assign(_member=ids), ["cluster", "group", "_member"]
    )
    present = ids.notna().to_numpy()
    dense = np.full(len(frame), np.nan)
    dense[present] = np.unique(code[present], return_inverse=True)[1]
    return dense


def _panel(lag: pd.DataFrame) -> Panel:
    frame = prepare_lag(lag)
    owner = _owner_codes(frame)
    extra = None if owner is None else {"owner": owner}
    return build_panel(
        frame,
        by=normalise_by(("group", "topic", "partition")),
        columns=("committed_offset", "log_end_offset"),
        extra=extra,
    )


def _partition_table(panel: Panel, result: Evaluation) -> pd.DataFrame:
    """One row per partition with a commit: its status and the facts behind it."""
    keep = result.status >= 0
    facts = result.facts
    table = panel.keys.loc[keep].reset_index(drop=True)
    codes = result.status[keep]
    table["status"] = pd.array(np.asarray(STATUSES, dtype=object)[codes], dtype="string")
    table["complete"] = facts.complete[keep]
    table["current_lag"] = int_column(facts.current_lag[keep]).array
    owned = facts.owned[keep]
    table["owned"] = pd.Series(owned == 1, dtype="boolean").mask(np.isnan(owned)).array
    sides = {
        "start": (facts.start_offset, facts.start_time_s, facts.start_lag),
        "end": (facts.end_offset, facts.end_time_s, facts.end_lag),
    }
    for side, (offset, time_s, side_lag) in sides.items():
        table[f"{side}_offset"] = int_column(offset[keep]).array
        table[f"{side}_time"] = to_timestamps(panel.t0, time_s[keep])
        table[f"{side}_lag"] = int_column(side_lag[keep]).array
    table["in_flight_lag"] = facts.in_flight_lag[keep]
    table["busy_elsewhere"] = result.busy_elsewhere[keep]
    table["group_falling_behind"] = result.group_behind[keep]
    return table


def _group_severity(status: pd.Series, group_behind: np.ndarray) -> np.ndarray:
    """Return what each partition contributes to its group's status (the worst counts).

    ERR for STOP, STALL and REWIND; WARN where the group as a whole falls behind;
    else OK.
    """
    severity = status.map({s: i for i, s in enumerate(STATUSES)}).astype("int64").to_numpy()
    return np.where(severity >= _ERR, _ERR, np.where(group_behind, _WARN, _OK))


def _group_table(partitions: pd.DataFrame) -> pd.DataFrame:
    rolled = _group_severity(
        partitions["status"], partitions["group_falling_behind"].to_numpy(dtype=bool)
    )
    work = partitions.assign(
        _severity=rolled,
        _full=(partitions["complete"] >= 1.0).astype(np.float64),
        _lag=partitions["current_lag"].astype("Float64").fillna(0.0).astype(np.float64),
        _bad=(rolled > _OK).astype(np.int64),
    )
    keys = ["cluster", "group"]
    grouped = work.groupby(keys, sort=True, observed=True)
    out = grouped.agg(
        _severity=("_severity", "max"),
        complete=("_full", "mean"),
        totallag=("_lag", "sum"),
        partition_count=("partition", "size"),
        bad_partitions=("_bad", "sum"),
    ).reset_index()
    top = work.sort_values([*keys, "_lag"], ascending=[True, True, False], kind="stable")
    top = top.drop_duplicates(keys, keep="first").set_index(keys)
    index = pd.MultiIndex.from_frame(out[keys])
    out["status"] = pd.array(np.asarray(STATUSES, dtype=object)[out["_severity"]], dtype="string")
    out["totallag"] = out["totallag"].round().astype("Int64")
    out["maxlag_topic"] = top.loc[index, "topic"].to_numpy()
    out["maxlag_partition"] = top.loc[index, "partition"].to_numpy().astype(np.int32)
    out["maxlag"] = int_column(top.loc[index, "_lag"].to_numpy()).array
    out["maxlag_topic"] = out["maxlag_topic"].astype("string")
    columns = [
        *keys,
        "status",
        "complete",
        "totallag",
        "maxlag_topic",
        "maxlag_partition",
        "maxlag",
        "partition_count",
        "bad_partitions",
    ]
    return out[columns]


def _timeline(
    panel: Panel, *, window: int, allowed_lag: float, points: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Partition and group statuses at up to ``points`` snapshot times."""
    times = np.unique(panel.time_s[~np.isnan(panel.time_s)])
    if len(times) > points:
        times = times[np.unique(np.linspace(0, len(times) - 1, points).round().astype(int))]
    group = group_index(panel)
    parts: dict[str, list[np.ndarray]] = {
        name: [] for name in ("row", "time", "status", "lag", "behind")
    }
    # One vectorised evaluation per time point (bounded by ``points``), never per partition.
    for moment in times:
        upto = (panel.time_s <= moment).sum(axis=1) - 1
        result = evaluate(panel, window=window, allowed_lag=allowed_lag, upto=upto, group=group)
        keep = np.flatnonzero(result.status >= 0)
        parts["row"].append(keep)
        parts["time"].append(np.full(len(keep), moment))
        parts["status"].append(result.status[keep])
        parts["lag"].append(result.facts.current_lag[keep])
        parts["behind"].append(result.group_behind[keep])
    columns = {name: np.concatenate(values) for name, values in parts.items()}
    out = panel.keys.iloc[columns["row"]].reset_index(drop=True)
    out.insert(0, "time", to_timestamps(panel.t0, columns["time"]))
    out["status"] = pd.array(np.asarray(STATUSES, dtype=object)[columns["status"]], dtype="string")
    out["current_lag"] = columns["lag"]
    out["group_falling_behind"] = columns["behind"].astype(bool)
    return out, group_timeline(out)


def group_timeline(timeline: pd.DataFrame) -> pd.DataFrame:
    """Roll a partition timeline (``LagStatus.timeline``) up to groups.

    ``group_status`` is the group's OK/WARN/ERR; ``status`` says the same but names the
    worst partition's error (STOP, STALL or REWIND) where the group is in ERR, so that a
    timeline shows a stall turning into a stop and then a rewind.
    """
    severity = timeline["status"].map({s: i for i, s in enumerate(STATUSES)}).astype("int64")
    work = timeline.assign(
        _rolled=_group_severity(
            timeline["status"], timeline["group_falling_behind"].to_numpy(dtype=bool)
        ),
        _error=np.where(severity.to_numpy() >= _ERR, severity.to_numpy(), -1),
        # Burrow's totallag at each evaluation time: every evaluated partition's current lag
        # (as of its own last commit), unknown = 0 -- a status report's figure, not the
        # snapshot total of kbp_notebook.lagdata.lag_totals (NaN where a partition is missing)
        _lag=timeline["current_lag"].astype(np.float64).fillna(0.0),
    )
    keys = ["time", "cluster", "group"]
    out = (
        work.groupby(keys, sort=True, observed=True)
        .agg(_rolled=("_rolled", "max"), _error=("_error", "max"), totallag=("_lag", "sum"))
        .reset_index()
    )
    names = np.asarray(STATUSES, dtype=object)
    group_status = names[out["_rolled"].to_numpy()]
    detail = np.where(out["_error"] >= 0, names[out["_error"].clip(lower=0)], group_status)
    out["group_status"] = pd.array(group_status, dtype="string")
    out["status"] = pd.array(detail, dtype="string")
    out["totallag"] = int_column(out["totallag"].to_numpy()).array
    return out[[*keys, "status", "group_status", "totallag"]]


def status_timeline(
    lag: pd.DataFrame, *, window: int = 10, allowed_lag: int = 0, points: int = 60
) -> pd.DataFrame:
    """Partition status as it would have been reported at up to ``points`` snapshot times.

    Parameters
    ----------
    lag
        LAG frame.
    window, allowed_lag
        As in :func:`lag_status`.
    points
        Evaluation times, spread evenly over the snapshot times.

    Returns
    -------
    pandas.DataFrame
        ``time``, ``cluster``, ``group``, ``topic``, ``partition``, ``status``,
        ``current_lag``.
    """
    _check(window, allowed_lag)
    panel = _panel(lag)
    with quiet():
        return _timeline(panel, window=window, allowed_lag=allowed_lag, points=points)[0]


def _check(window: int, allowed_lag: int) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise KbpInputError(
            f"window={window!r} must be a whole number of commits, at least 2 (Burrow uses 10)."
        )
    if allowed_lag < 0:
        raise KbpInputError(f"allowed_lag={allowed_lag!r} must be 0 or more messages.")


def lag_status(
    lag: pd.DataFrame,
    *,
    window: int = 10,
    allowed_lag: int = 0,
    timeline: bool | str = "auto",
    timeline_points: int = 60,
) -> LagStatus:
    """Evaluate Burrow-style consumer status rules per partition and per group.

    Parameters
    ----------
    lag
        LAG frame; ``consumer_id`` (optional) tells owned from unowned partitions
        and which partitions one member works on.
    window
        Number of commits (changes of committed offset) per evaluation window.
    allowed_lag
        Lag (messages) still counted as caught up, e.g. 1 for transactional
        producers whose commit markers leave a lag of one. A partition's
        in-flight lag (produce rate x time between commits) counts as caught
        up too.
    timeline
        Also evaluate the rules at ``timeline_points`` earlier snapshot times
        (``LagStatus.timeline``); ``"auto"`` does so for small frames only.
    timeline_points
        Number of evaluation times in the timeline.

    Returns
    -------
    LagStatus
        ``.partitions``, ``.groups`` (also ``.table``), ``.timeline`` and
        ``.group_timeline`` (status over time), ``.as_of``. The rules, and
        where and why they differ from Burrow's, are in this module's
        docstring.

    Raises
    ------
    KbpInputError
        Bad frame, window or allowed_lag.
    KbpDataError
        No partition has a committed offset.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> status = kbp.lag_status(kbp.load_sample("producer-burst").lag)  # doctest: +SKIP
    >>> status.groups[["group", "status", "totallag"]]  # doctest: +SKIP
    """
    _check(window, allowed_lag)
    panel = _panel(lag)
    with quiet():
        result = evaluate(panel, window=window, allowed_lag=allowed_lag)
    partitions = _partition_table(panel, result)
    if len(partitions) == 0:
        raise KbpDataError(
            "lag_status: no partition has a committed offset (column 'committed_offset' is "
            "all NA); the groups have never committed. Record while the consumers run."
        )
    groups = _group_table(partitions)
    if timeline == "auto":
        timeline = panel.size * min(timeline_points, panel.time_s.shape[1]) <= TIMELINE_BUDGET
    series: tuple[pd.DataFrame | None, pd.DataFrame | None] = (None, None)
    if timeline:
        with quiet():
            series = _timeline(
                panel, window=window, allowed_lag=allowed_lag, points=timeline_points
            )
    return LagStatus(
        table=groups,
        partitions=partitions,
        groups=groups,
        timeline=series[0],
        group_timeline=series[1],
        as_of=to_timestamps(panel.t0, np.array([np.nanmax(panel.time_s)]))[0],
        window=int(window),
        allowed_lag=int(allowed_lag),
    )
