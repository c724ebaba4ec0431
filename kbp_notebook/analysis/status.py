"""Burrow-style consumer status per partition and per group.

We re-implement, in our own vectorised code, the rules LinkedIn's Burrow
documents in "Consumer Lag Evaluation Rules" (and its evaluator as of 1.9:
the stop check before the lag-was-zero shortcut, the recent-broker-offset
grace, ``allowed-lag``, rewind recovery). For each partition, over a window
of the last ``window`` commits:

* **OK** -- the current lag is at most ``allowed_lag``; or the lag was at most
  ``allowed_lag`` at some commit in the window; or none of the rules below
  fires.
* **STOP** -- the time since the last commit is longer than the window spans
  (last commit minus first commit), and the consumer did not catch up in
  the recent log-end-offset history (the last ``window`` snapshots).
* **STALL** -- as STOP, but the partition has an owner (``consumer_id``):
  someone holds it and is not moving.
* **REWIND** -- the committed offset went backwards within the window and is
  still behind the highest offset committed in the window (a rewind that
  has recovered is not reported).
* **WARN** -- offsets advance but the lag never decreases from one commit to
  the next across the window (at least two commits).

A group's status is the worst of its partitions, with STOP, STALL and REWIND
reported as **ERR** (as Burrow does). ``complete`` is how full a partition's
window is (commits seen / ``window``); a group's is the share of its
partitions with a full window. ``totallag`` sums current lags; ``maxlag_*``
names the partition with the largest current lag.

Where we differ from Burrow, and why
------------------------------------
* **Commits are inferred from snapshots.** Burrow reads every commit from
  ``__consumer_offsets`` with its timestamp. A LAG frame only has periodic
  snapshots, so a *commit* here is a change of the committed offset, dated
  at the snapshot where it was first seen (up to one snapshot interval
  late). Commits that did not move the offset are invisible.
* **STALL therefore needs ownership.** Burrow's STALL is "commits keep
  arriving with the same offset", which snapshots cannot see. We call an
  offset that stands still past the window STALL when the partition has an
  owner in ``consumer_id`` at the evaluation time, and STOP when it has none
  or when ownership is unknown (no ``consumer_id`` column) -- Burrow would
  also see "no commits" there.
* **"Now" is the last snapshot**, not the wall clock, so a status computed
  from a recording is reproducible and a post-mortem reads the same twice.
* The first snapshot of a partition counts as a commit (we do not know when
  that offset was committed), which makes a never-moving offset STOP/STALL
  as soon as one more snapshot arrives.
* Partitions that never had a committed offset are left out, as Burrow
  leaves out partitions a group never committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from kbp_notebook.analysis._result import Result
from kbp_notebook.analysis._series import (
    Panel,
    build_panel,
    ffill_index,
    int_column,
    normalise_by,
    owner_flag,
    prepare_lag,
    quiet,
    split_rows,
    sub_panel,
    to_timestamps,
)
from kbp_notebook.errors import KbpDataError, KbpInputError

__all__ = ["LagStatus", "lag_status", "status_timeline"]

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
        Long frame ``time``, key columns, ``status`` evaluated at up to
        ``timeline_points`` snapshot times, or None when not computed.
    window
        Commits per window.
    allowed_lag
        Lag treated as caught up.
    """

    partitions: pd.DataFrame = None  # type: ignore[assignment]
    groups: pd.DataFrame = None  # type: ignore[assignment]
    timeline: pd.DataFrame | None = None
    window: int = 10
    allowed_lag: int = 0

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


def evaluate(
    panel: Panel,
    *,
    window: int,
    allowed_lag: float,
    upto: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Apply the rules to every partition of a per-partition panel.

    Parameters
    ----------
    panel
        Per-partition panel with ``committed_offset``, ``log_end_offset``
        and optionally ``owned``.
    window
        Commits per window.
    allowed_lag
        Lag that counts as caught up.
    upto
        ``(K,)`` index of the evaluation snapshot per row (default: last);
        later samples are ignored, -1 means nothing to evaluate.

    Returns
    -------
    dict
        ``status`` (int codes into :data:`STATUSES`, -1 where no commit),
        ``complete``, ``current_lag``, ``start_*``/``end_*`` arrays, ``owned``.
    """
    t = panel.time_s
    k, width = t.shape
    if upto is None:
        upto = panel.n - 1
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
    events = event.sum(axis=1)
    n_window = np.minimum(events, window)
    first_rank = n_window
    start_index = np.argmax(in_window & (rank == first_rank[:, None]), axis=1)
    end_index = np.argmax(in_window & (rank == 1), axis=1)
    none = n_window == 0
    start_index = np.where(none, -1, start_index)
    end_index = np.where(none, -1, end_index)

    def at(array: np.ndarray, index: np.ndarray) -> np.ndarray:
        return _take(array, index[:, None])[:, 0]

    now = at(t, np.where(upto >= 0, upto, -1))
    lag_at = leo - committed
    start_t, end_t = at(t, start_index), at(t, end_index)
    start_offset, end_offset = at(committed, start_index), at(committed, end_index)
    start_lag, end_lag = at(lag_at, start_index), at(lag_at, end_index)
    at_last = np.take_along_axis(last_commit, np.clip(upto, 0, None)[:, None], axis=1)[:, 0]
    at_last = np.where(upto >= 0, at_last, -1)
    current_commit = at(committed, at_last)
    current_lag = at(leo, np.where(upto >= 0, upto, -1)) - current_commit
    owned_known = "owned" in panel.arrays
    owned = at(panel["owned"], np.where(upto >= 0, upto, -1)) if owned_known else np.full(k, np.nan)

    caught_up_now = current_lag <= allowed_lag
    stopped = (now - end_t) > (end_t - start_t)
    recent = inside & (column > (upto - window)[:, None])
    recent_zero = (recent & (leo <= end_offset[:, None])).any(axis=1)
    # lag and offset at the previous commit event, for each event in the window
    prev_event = np.concatenate([np.full((k, 1), -1), ffill_index(event)[:, :-1]], axis=1)
    prev_event_lag = _take(lag_at, prev_event)
    pair = in_window & (rank < first_rank[:, None]) & (prev_event >= 0)
    went_back = (pair & (committed < previous_offset)).any(axis=1)
    max_offset = np.nanmax(np.where(in_window, committed, -np.inf), axis=1)
    rewind = went_back & (end_offset < max_offset)
    ever_caught_up = (in_window & (lag_at <= allowed_lag)).any(axis=1)
    lag_decreased = (pair & (lag_at < prev_event_lag)).any(axis=1)
    warn = (n_window >= 2) & ~lag_decreased

    status = np.full(k, _OK, dtype=np.int64)
    undecided = ~caught_up_now & ~none
    stop_now = undecided & stopped & ~recent_zero
    status[stop_now & (owned == 1)] = _STALL
    status[stop_now & (owned != 1)] = _STOP
    undecided &= ~stop_now
    status[undecided & rewind] = _REWIND
    undecided &= ~rewind
    undecided &= ~ever_caught_up
    status[undecided & warn] = _WARN
    status[none] = -1
    return {
        "status": status,
        "complete": n_window / float(window),
        "current_lag": current_lag,
        "start_time_s": start_t,
        "start_offset": start_offset,
        "start_lag": start_lag,
        "end_time_s": end_t,
        "end_offset": end_offset,
        "end_lag": end_lag,
        "owned": owned,
        "owned_known": np.full(k, owned_known),
    }


def _panel(lag: pd.DataFrame) -> Panel:
    frame = prepare_lag(lag)
    owned = owner_flag(frame)
    extra = None if owned is None else {"owned": owned}
    return build_panel(
        frame,
        by=normalise_by(("group", "topic", "partition")),
        columns=("committed_offset", "log_end_offset"),
        extra=extra,
    )


def _partition_table(panel: Panel, result: dict[str, np.ndarray]) -> pd.DataFrame:
    keep = result["status"] >= 0
    table = panel.keys.loc[keep].reset_index(drop=True)
    codes = result["status"][keep]
    table["status"] = pd.array(np.asarray(STATUSES, dtype=object)[codes], dtype="string")
    table["complete"] = result["complete"][keep]
    table["current_lag"] = int_column(result["current_lag"][keep]).array
    owned = result["owned"][keep]
    table["owned"] = pd.Series(owned == 1, dtype="boolean").mask(np.isnan(owned)).array
    for side in ("start", "end"):
        table[f"{side}_offset"] = int_column(result[f"{side}_offset"][keep]).array
        table[f"{side}_time"] = to_timestamps(panel.t0, result[f"{side}_time_s"][keep])
        table[f"{side}_lag"] = int_column(result[f"{side}_lag"][keep]).array
    return table


def _group_table(partitions: pd.DataFrame) -> pd.DataFrame:
    severity = partitions["status"].map({s: i for i, s in enumerate(STATUSES)}).astype("int64")
    rolled = np.minimum(severity.to_numpy(), _ERR)
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


def _timeline(panel: Panel, *, window: int, allowed_lag: float, points: int) -> pd.DataFrame:
    times = np.unique(panel.time_s[~np.isnan(panel.time_s)])
    if len(times) > points:
        times = times[np.unique(np.linspace(0, len(times) - 1, points).round().astype(int))]
    frames = []
    # One vectorised evaluation per time point (bounded by ``points``), never per partition.
    for moment in times:
        upto = (panel.time_s <= moment).sum(axis=1) - 1
        result = evaluate(panel, window=window, allowed_lag=allowed_lag, upto=upto)
        keep = result["status"] >= 0
        frame = panel.keys.loc[keep].reset_index(drop=True)
        frame.insert(0, "time", to_timestamps(panel.t0, np.full(int(keep.sum()), moment)))
        frame["status"] = np.asarray(STATUSES, dtype=object)[result["status"][keep]]
        frame["current_lag"] = result["current_lag"][keep]
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["status"] = out["status"].astype("string")
    return out


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
        return _timeline(panel, window=window, allowed_lag=allowed_lag, points=points)


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
    """Evaluate Burrow's consumer status rules per partition and per group.

    Parameters
    ----------
    lag
        LAG frame; ``consumer_id`` (optional) tells owned from unowned partitions.
    window
        Number of commits (changes of committed offset) per evaluation window.
    allowed_lag
        Lag (messages) still counted as caught up, e.g. 1 for transactional
        producers whose commit markers leave a lag of one.
    timeline
        Also evaluate the rules at ``timeline_points`` earlier snapshot times
        (``LagStatus.timeline``); ``"auto"`` does so for small frames only.
    timeline_points
        Number of evaluation times in the timeline.

    Returns
    -------
    LagStatus
        ``.partitions``, ``.groups`` (also ``.table``), ``.timeline``.

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
        chunks = [
            evaluate(sub_panel(panel, rows), window=window, allowed_lag=allowed_lag)
            for rows in split_rows(panel.size)
        ]
        result = {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}
    partitions = _partition_table(panel, result)
    if len(partitions) == 0:
        raise KbpDataError(
            "lag_status: no partition has a committed offset (column 'committed_offset' is "
            "all NA); the groups have never committed. Record while the consumers run."
        )
    groups = _group_table(partitions)
    if timeline == "auto":
        timeline = panel.size * min(timeline_points, panel.time_s.shape[1]) <= TIMELINE_BUDGET
    with quiet():
        series = (
            _timeline(panel, window=window, allowed_lag=allowed_lag, points=timeline_points)
            if timeline
            else None
        )
    return LagStatus(
        table=groups,
        partitions=partitions,
        groups=groups,
        timeline=series,
        window=int(window),
        allowed_lag=int(allowed_lag),
    )
