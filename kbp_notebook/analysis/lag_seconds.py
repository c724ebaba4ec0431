"""Lag in seconds: how long ago the next message to consume was written.

**From the records** (exact): where the collector read the timestamp of the
record at the committed offset (``LagCollector.snapshot(time_lag=True)``
writes ``time_lag_s`` with ``time_lag_source == "record"``), that figure is
used as it is: it needs no history, so a single snapshot answers.

**From the offset history** (everywhere else: saved ``kafka-consumer-groups``
output, Prometheus series, recordings without record times). For a snapshot
with committed offset ``c`` the next message to consume is offset ``c``; it
was appended when the partition's log end offset first exceeded ``c``. We
find that moment in the partition's own log-end-offset history and
interpolate linearly between the two snapshots around it (the log end
offset reaching ``c + 1``). ``time_lag_s`` is the snapshot time minus that
moment; 0 when the consumer is caught up.

When ``c`` is older than the first snapshot of the history, the moment is
unknown: we give the span of the history as a **lower bound** and set
``time_lag_is_lower_bound``. We never extrapolate a rate backwards -- that is
how exporters produce wild lag-in-seconds figures during produce spikes.

The log end offset history is made non-decreasing (running maximum) per
partition, so a topic that was truncated or recreated cannot make the
lookup run backwards. All partitions are searched with one
``np.searchsorted`` over the concatenated histories, each partition shifted
into its own disjoint offset range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from kbp_notebook.analysis._result import Result
from kbp_notebook.analysis._series import key_codes, prepare_lag, quiet

__all__ = ["TimeLag", "time_lag"]


@dataclass(frozen=True, repr=False)
class TimeLag(Result):
    """LAG frame with ``time_lag_s`` and ``time_lag_is_lower_bound``.

    Attributes
    ----------
    table
        The validated LAG frame plus ``time_lag_s`` (float seconds, NaN where
        there is no committed offset) and ``time_lag_is_lower_bound`` (bool).
    """

    plot_builder: ClassVar[str] = "plot_time_lag"
    title: ClassVar[str] = "Lag in seconds"

    def latest(self) -> pd.DataFrame:
        """Return the last snapshot of every (cluster, group, topic, partition)."""
        keys = ["cluster", "group", "topic", "partition"]
        return self.table.drop_duplicates(keys, keep="last").reset_index(drop=True)

    def summary_lines(self) -> list[str]:
        """Worst current time lag."""
        latest = self.latest()
        if latest["time_lag_s"].notna().any():
            row = latest.iloc[int(np.nanargmax(latest["time_lag_s"].to_numpy()))]
            bound = " (at least: older than the history)" if row["time_lag_is_lower_bound"] else ""
            if row.get("time_lag_source") == "record":
                bound = " (read from the record's timestamp)"
            return [
                f"largest current lag: {row['time_lag_s']:.1f} s{bound} "
                f"(group {row['group']}, topic {row['topic']}, partition {row['partition']})"
            ]
        return ["no committed offsets"]


def time_lag_arrays(
    partition_id: np.ndarray,
    seconds: np.ndarray,
    committed: np.ndarray,
    log_end: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised core: rows sorted by (partition_id, time).

    Parameters
    ----------
    partition_id
        Contiguous non-decreasing series id per row.
    seconds
        Snapshot time (float seconds).
    committed
        Committed offset (float, NaN where none).
    log_end
        Log end offset (int64, no missing values).

    Returns
    -------
    tuple of numpy.ndarray
        ``time_lag_s`` (NaN where no commit) and ``is_lower_bound``.
    """
    rows = len(partition_id)
    if rows == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    start = np.flatnonzero(np.r_[True, partition_id[1:] != partition_id[:-1]])
    sizes = np.diff(np.r_[start, rows])
    block = np.repeat(np.arange(len(start)), sizes)
    base = np.minimum.reduceat(log_end, start)
    span = np.maximum.reduceat(log_end, start) - base + 2
    shift = np.r_[0, np.cumsum(span)[:-1]]
    shifted = np.maximum.accumulate(log_end - base[block] + shift[block])
    first_time = seconds[start][block]
    has_commit = ~np.isnan(committed)
    c = np.where(has_commit, committed, 0.0).astype(np.int64)
    behind = has_commit & (c < log_end)
    older = behind & (c < base[block])
    query = c - base[block] + shift[block]
    k = np.searchsorted(shifted, query, side="right")
    k = np.clip(k, 0, rows - 1)
    older |= behind & (k <= start[block])
    interpolate = behind & ~older
    prev = np.clip(k - 1, 0, rows - 1)
    step = (shifted[k] - shifted[prev]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip((query + 1 - shifted[prev]) / step, 0.0, 1.0)
    written = seconds[prev] + frac * (seconds[k] - seconds[prev])
    out = np.where(has_commit, 0.0, np.nan)
    out = np.where(interpolate, seconds - written, out)
    out = np.where(older, seconds - first_time, out)
    return np.maximum(out, 0.0), older


def time_lag(lag: pd.DataFrame) -> TimeLag:
    """Add ``time_lag_s``: seconds the committed offset is behind the head of the log.

    Parameters
    ----------
    lag
        LAG frame; the history of ``log_end_offset`` per partition is what
        the figure is interpolated from, so more snapshots give better
        answers.

    Returns
    -------
    TimeLag
        ``.table`` = the validated LAG frame plus ``time_lag_s``,
        ``time_lag_is_lower_bound`` and ``time_lag_source``: ``record``
        where the collector read the record's timestamp (kept as it is),
        ``interpolated`` from the log-end-offset history, ``lower_bound``
        where the committed offset is older than the history; NA where there
        is no committed offset.

    Raises
    ------
    KbpInputError
        The frame does not fit the LAG schema.
    KbpDataError
        The frame is empty.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> seconds = kbp.time_lag(kbp.load_sample("producer-burst").lag)  # doctest: +SKIP
    >>> seconds.latest()[["group", "partition", "time_lag_s"]]  # doctest: +SKIP
    """
    frame = prepare_lag(lag)
    keys = ["cluster", "group", "topic", "partition"]
    code = key_codes(frame, keys)
    change = np.r_[True, code[1:] != code[:-1]]
    partition_id = np.cumsum(change) - 1
    seconds = (frame["time"] - frame["time"].iloc[0]).dt.total_seconds().to_numpy(np.float64)
    log_end = frame["log_end_offset"]
    if log_end.isna().any():
        log_end = log_end.groupby(partition_id).ffill().groupby(partition_id).bfill()
    log_end_values = log_end.fillna(0).to_numpy(dtype=np.int64)
    committed = frame["committed_offset"].astype("Float64").to_numpy(np.float64, na_value=np.nan)
    with quiet():
        seconds_behind, lower = time_lag_arrays(partition_id, seconds, committed, log_end_values)
    source = np.where(lower, "lower_bound", "interpolated").astype(object)
    if "time_lag_source" in frame.columns and "time_lag_s" in frame.columns:
        read = frame["time_lag_s"].astype("Float64").to_numpy(np.float64, na_value=np.nan)
        from_record = (frame["time_lag_source"] == "record").fillna(False).to_numpy(bool)
        from_record &= ~np.isnan(read)
        seconds_behind = np.where(from_record, read, seconds_behind)
        lower = lower & ~from_record
        source[from_record] = "record"
    source[np.isnan(seconds_behind)] = None
    table = frame.copy()
    table["time_lag_s"] = seconds_behind
    table["time_lag_is_lower_bound"] = lower
    table["time_lag_source"] = pd.Series(source, index=table.index, dtype="string")
    return TimeLag(table=table)
