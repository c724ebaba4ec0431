"""What the numbers of a LAG frame mean: lag totals per key and time, partition owners.

The one owner of two rules every layer needs (analysis, viz, widgets):

* **Total lag per key and snapshot.** Partition rows are summed to one value
  per key and snapshot time. A snapshot where fewer partitions reported than
  the key's usual number (the most rows it has at any snapshot) gets no total
  (NaN), and so does one where fewer partitions had a lag value than usual
  (NA lag = no commit yet) or none had: a missing partition never looks like a
  fall in lag. :func:`snapshot_totals` is that rule on arrays, for any summed
  column; :func:`lag_totals` applies it to a frame's ``lag``, and
  ``analysis._series.build_panel`` to its offsets (dropping the incomplete
  snapshots instead of keeping them as NaN).
* **Owner ids.** ``consumer_id`` with empty and ``-`` (what
  ``kafka-consumer-groups`` prints) meaning "no owner" (NA).

Layer: ground floor beside :mod:`kbp_notebook.frames`; imports only pandas/numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SnapshotTotals", "lag_totals", "owner_ids", "snapshot_totals"]


@dataclass(frozen=True)
class SnapshotTotals:
    """Columns summed per (key, snapshot time), one entry per pair, sorted by key then time.

    Attributes
    ----------
    key
        Key id of each pair.
    time
        Snapshot time of each pair (the values given, unique per key).
    complete
        True where as many partition rows reported as the key's most at any snapshot.
    sums
        Column name -> sum over the pair's rows; NaN where the snapshot is not
        complete, where fewer rows had a value than at the key's complete
        snapshots, or where none had.
    """

    key: np.ndarray
    time: np.ndarray
    complete: np.ndarray
    sums: dict[str, np.ndarray]


def snapshot_totals(
    key_id: np.ndarray, time: np.ndarray, columns: Mapping[str, np.ndarray], n_keys: int
) -> SnapshotTotals:
    """Sum each column per key and snapshot time, NaN where the snapshot is incomplete.

    Parameters
    ----------
    key_id
        Key of each row, ``0 .. n_keys - 1``.
    time
        Snapshot time of each row (any sortable values: seconds, nanoseconds).
    columns
        Column name -> float values per row (NaN = no value).
    n_keys
        Number of keys.

    Returns
    -------
    SnapshotTotals

    Examples
    --------
    >>> totals = snapshot_totals(np.array([0, 0, 0]), np.array([0.0, 0.0, 60.0]),
    ...                          {"lag": np.array([5.0, 7.0, 4.0])}, 1)
    >>> totals.sums["lag"].tolist(), totals.complete.tolist()  # one partition missing at 60 s
    ([12.0, nan], [True, False])
    """
    times, time_id = np.unique(time, return_inverse=True)
    pair = key_id.astype(np.int64) * len(times) + time_id
    pairs, pair_id = np.unique(pair, return_inverse=True)
    pair_key = pairs // len(times)
    rows = np.bincount(pair_id, minlength=len(pairs))
    full_rows = np.zeros(n_keys, dtype=np.int64)
    np.maximum.at(full_rows, pair_key, rows)
    complete = rows >= full_rows[pair_key]
    sums: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        present = ~np.isnan(values)
        weights = np.where(present, values, 0.0)
        # float even without rows (bincount of nothing is int)
        total = np.bincount(pair_id, weights=weights, minlength=len(pairs)).astype(np.float64)
        count = np.bincount(pair_id, weights=present.astype(np.float64), minlength=len(pairs))
        full = np.zeros(n_keys)
        np.maximum.at(full, pair_key[complete], count[complete])
        total[(count < full[pair_key]) | (count == 0) | ~complete] = np.nan
        sums[name] = total
    return SnapshotTotals(pair_key, times[pairs % len(times)], complete, sums)


def lag_totals(lag: pd.DataFrame, *, by: Sequence[str] = ("group", "topic")) -> pd.DataFrame:
    """Total lag per key and snapshot time, NaN where a snapshot is incomplete.

    Parameters
    ----------
    lag
        LAG frame (validated or at least with ``time``, ``lag`` and the ``by``
        columns). Each row is one partition at one snapshot.
    by
        Key columns; ``()`` sums everything per snapshot time.

    Returns
    -------
    pandas.DataFrame
        Columns ``[*by, "time", "lag"]`` sorted by key and time, ``lag`` as
        float64: the sum over the key's partitions, NaN where fewer partitions
        reported (or had a lag value) than the key's usual number, or none had
        a value.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:00", "2024-01-01 00:01"], utc=True)
    >>> frame = pd.DataFrame({"group": "g", "topic": "t", "partition": [0, 1, 0],
    ...                       "time": t, "lag": [5, 7, 4]})
    >>> lag_totals(frame)["lag"].tolist()  # partition 1 missing at 00:01: no total
    [12.0, nan]
    """
    keys = list(by)
    if keys:
        key_id = lag.groupby(keys, sort=True, observed=True).ngroup().to_numpy(np.int64)
    else:
        key_id = np.zeros(len(lag), dtype=np.int64)
    time_id, times = pd.factorize(lag["time"], sort=True)
    rows = np.flatnonzero((key_id >= 0) & (time_id >= 0))  # an NA key or time: no snapshot
    key_id, time_id = key_id[rows], time_id[rows]
    values = lag["lag"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)[rows]
    totals = snapshot_totals(key_id, time_id, {"lag": values}, int(key_id.max(initial=-1)) + 1)
    first = rows[np.unique(key_id, return_index=True)[1]]
    out: pd.DataFrame = lag[keys].iloc[first[totals.key]].reset_index(drop=True)
    out["time"] = times.take(totals.time)
    out["lag"] = totals.sums["lag"]
    return out


def owner_ids(frame: pd.DataFrame) -> pd.Series | None:
    """Each row's ``consumer_id``, stripped; NA where the partition has no owner.

    Empty and ``-`` (what ``kafka-consumer-groups`` prints) mean no owner.
    None when the frame has no ``consumer_id`` column.
    """
    if "consumer_id" not in frame.columns:
        return None
    ids = frame["consumer_id"].astype("string").fillna("").str.strip()
    return ids.where(~ids.isin(["", "-"]))
