"""One key's data as aligned arrays: the input every incident rule reads.

:func:`key_blocks` groups a validated LAG frame once and yields, per key
(``cluster`` + ``by``), a :class:`KeyBlock`: the snapshot times, a
``(units, times)`` matrix per offset column (a unit is one partition, or one
topic-partition when the key leaves out ``topic``), who owned each unit at
each snapshot, and the key's totals. Totals follow the rule of
:func:`kbp_notebook.analysis._series.build_panel`: a snapshot where fewer
units reported than usual gets no total, so a missing partition never looks
like a fall in lag.

Also here: the rates every section quotes, from offset counters (never from
differences of lag): produce rate from log-end offsets, consume rate from the
committed offsets' forward moves (a rewind is not negative consumption).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kbp_notebook.analysis._series import owner_ids, run_starts

__all__ = ["KeyBlock", "key_blocks", "window_rate"]


@dataclass(frozen=True)
class KeyBlock:
    """The arrays of one key.

    Attributes
    ----------
    key
        Key column -> value (``cluster``, ``group``, ``topic`` ...).
    times
        ``(T,)`` snapshot times (UTC).
    t
        ``(T,)`` seconds since the first snapshot of the whole frame.
    units
        ``(U,)`` partition numbers (for a key without ``topic``: "topic:partition").
    committed, log_end, lag
        ``(U, T)`` float arrays, NaN where a unit has no value at a snapshot.
    owner
        ``(U, T)`` integer owner codes, -1 where the unit has no owner (or ownership is
        unknown); ``owner_names[code]`` is the consumer id.
    owners_known
        Whether the data says who owns partitions at all (a ``consumer_id`` column with
        at least one owner anywhere in the frame).
    total_lag, total_log_end, total_committed
        ``(T,)`` key totals, NaN at incomplete snapshots.
    """

    key: dict[str, object]
    times: pd.DatetimeIndex
    t: np.ndarray
    units: tuple[object, ...]
    committed: np.ndarray
    log_end: np.ndarray
    lag: np.ndarray
    owner: np.ndarray
    owner_names: tuple[str, ...]
    owners_known: bool
    total_lag: np.ndarray
    total_log_end: np.ndarray
    total_committed: np.ndarray

    @property
    def step_s(self) -> float:
        """Median seconds between snapshots."""
        if len(self.t) < 2:
            return float("nan")
        return float(np.median(np.diff(self.t)))

    def members(self) -> np.ndarray:
        """``(T,)`` number of distinct owners at each snapshot (0 when none)."""
        if self.owner.shape[0] == 0:
            return np.zeros(self.owner.shape[1], dtype=np.int64)
        ordered = np.sort(self.owner, axis=0)
        valid = ordered >= 0
        new = valid.copy()
        new[1:] &= ordered[1:] != ordered[:-1]
        return np.asarray(new.sum(axis=0), dtype=np.int64)

    def forward_commits(self) -> np.ndarray:
        """``(U, T)`` committed messages since the previous snapshot (rewinds count 0)."""
        step = np.diff(self.committed, axis=1, prepend=np.nan)
        return np.where(np.isnan(step), 0.0, np.maximum(step, 0.0))

    def produced(self) -> np.ndarray:
        """``(U, T)`` messages written since the previous snapshot."""
        step = np.diff(self.log_end, axis=1, prepend=np.nan)
        return np.where(np.isnan(step), 0.0, np.maximum(step, 0.0))


def window_rate(t: np.ndarray, increments: np.ndarray, start_s: float, end_s: float) -> float:
    """Messages per second over ``(start_s, end_s]`` from per-snapshot increments.

    ``increments`` is ``(T,)`` (or ``(U, T)``, summed over units): what happened
    between the previous snapshot and this one. NaN when the window holds fewer
    than two snapshots.
    """
    inside = (t > start_s) & (t <= end_s)
    first = int(np.searchsorted(t, start_s, side="left"))
    if inside.sum() < 1 or first >= len(t):
        return float("nan")
    t_from = t[max(first - 1, 0)] if t[first] > start_s else t[first]
    t_to = float(t[inside][-1])
    span = t_to - t_from
    if span <= 0:
        return float("nan")
    values = increments[..., inside]
    return float(np.nansum(values)) / float(span)


def _scatter(
    place: tuple[tuple[int, int], np.ndarray, np.ndarray], values: np.ndarray, fill: float = np.nan
) -> np.ndarray:
    shape, rows, columns = place
    out = np.full(shape, fill)
    out[rows, columns] = values
    return out


def _complete_total(matrix: np.ndarray) -> np.ndarray:
    present = ~np.isnan(matrix)
    count = present.sum(axis=0)
    full = count.max(initial=0)
    total = np.where(present, matrix, 0.0).sum(axis=0)
    total[(count < full) | (count == 0)] = np.nan
    return np.asarray(total, dtype=np.float64)


def key_blocks(frame: pd.DataFrame, by: tuple[str, ...]) -> Iterator[KeyBlock]:
    """Yield one :class:`KeyBlock` per key of a validated LAG frame.

    Parameters
    ----------
    frame
        Validated LAG frame (sorted by cluster, group, topic, partition, time).
    by
        Key columns from :func:`~kbp_notebook.analysis._series.normalise_by`.
    """
    t0 = frame["time"].min()
    seconds_all = (frame["time"] - t0).dt.total_seconds().to_numpy(dtype=np.float64)
    unit_cols = [c for c in ("topic", "partition") if c not in by]
    ids = owner_ids(frame)
    owners_known = ids is not None and bool(ids.notna().any())
    if ids is not None and owners_known:
        owner_codes, owner_names = pd.factorize(ids, use_na_sentinel=True)
        names = tuple(str(name) for name in owner_names)
    else:
        owner_codes = np.full(len(frame), -1, dtype=np.int64)
        names = ()
    columns = {
        name: frame[name].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        for name in ("committed_offset", "log_end_offset", "lag")
    }
    prefix = by == ("cluster", "group", "topic", "partition")[: len(by)]
    if prefix:
        order = np.arange(len(frame))
        starts = np.flatnonzero(run_starts(frame, by))
    else:
        from kbp_notebook.analysis._series import key_codes

        code = key_codes(frame, by)
        order = np.lexsort((seconds_all, code))
        sorted_code = code[order]
        starts = np.flatnonzero(np.r_[True, sorted_code[1:] != sorted_code[:-1]])
    bounds = np.r_[starts, len(frame)]
    unit_labels = (
        frame["partition"].astype("int64").to_numpy()
        if unit_cols == ["partition"]
        else (frame[unit_cols].astype(str).agg(":".join, axis=1).to_numpy() if unit_cols
              else np.zeros(len(frame), dtype=np.int64))
    )
    first_rows = order[bounds[:-1]]
    key_values = {name: frame[name].take(first_rows).to_numpy(dtype=object) for name in by}
    for index, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        rows = order[a:b]
        seconds = seconds_all[rows]
        times_u, time_idx = np.unique(seconds, return_inverse=True)
        units_u, unit_idx = np.unique(unit_labels[rows], return_inverse=True)
        shape = (len(units_u), len(times_u))

        place = (shape, unit_idx, time_idx)
        committed = _scatter(place, columns["committed_offset"][rows])
        log_end = _scatter(place, columns["log_end_offset"][rows])
        lag = _scatter(place, columns["lag"][rows])
        owner = _scatter(place, owner_codes[rows].astype(np.float64), -1.0).astype(np.int64)
        key = {name: values[index] for name, values in key_values.items()}
        yield KeyBlock(
            key=key,
            times=pd.DatetimeIndex(t0 + pd.to_timedelta(times_u, unit="s")),
            t=times_u,
            units=tuple(units_u.tolist()),
            committed=committed,
            log_end=log_end,
            lag=lag,
            owner=owner,
            owner_names=names,
            owners_known=owners_known,
            total_lag=_complete_total(lag),
            total_log_end=_complete_total(log_end),
            total_committed=_complete_total(committed),
        )
