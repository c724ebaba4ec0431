"""The drain-time and lag-in-seconds methods people use today, as reference for our own.

Each baseline is written the way its tool documents it, applied to the same
data our functions see, so the benchmark compares methods and not inputs.

Drain time (seconds from "now" until the lag reaches zero):

* :func:`naive_eta` -- ``lag / (rate of lag decrease over the last interval)``:
  what a person does with two readings of ``kafka-consumer-groups``.
* :func:`predict_linear_eta` -- PromQL ``predict_linear(total_lag[5m], t)``
  solved for the zero crossing: an ordinary least-squares line through the
  last five minutes of total lag, evaluated at "now" and extrapolated.
* :func:`burrow_status` -- Burrow's consumer status (OK/WARN/ERR/...) via
  ``kbp.lag_status``; it gives no ETA at all, only a word.

Lag in seconds:

* :class:`LagExporterTable` -- kafka-lag-exporter's documented method: every
  poll (30 s by default) appends the partition's (latest offset, poll time)
  to a lookup table of at most 60 points; the time of the committed offset is
  linearly interpolated between the two table points around it, or
  extrapolated along the line through the oldest and newest points when the
  committed offset is older than the whole table. Lag in seconds is the poll
  time minus that moment (0 when the group is caught up).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: PromQL range of the ``predict_linear`` baseline.
PREDICT_LINEAR_WINDOW_S = 300.0
#: kafka-lag-exporter defaults (``poll-interval`` and ``lookup-table-size``).
EXPORTER_POLL_INTERVAL_S = 30.0
EXPORTER_TABLE_SIZE = 60


def naive_eta(t_s: np.ndarray, total_lag: np.ndarray) -> float:
    """Return ``lag / (decrease of lag per second over the last interval)``.

    Parameters
    ----------
    t_s
        Snapshot times in seconds, increasing.
    total_lag
        Total lag (messages) at those times.

    Returns
    -------
    float
        Seconds from the last snapshot until zero lag; 0 if already zero,
        ``inf`` when the lag did not decrease over the last interval (the
        method gives no ETA then), NaN with fewer than two snapshots.
    """
    t_s = np.asarray(t_s, dtype=np.float64)
    lag = np.asarray(total_lag, dtype=np.float64)
    if len(lag) == 0:
        return float("nan")
    if lag[-1] <= 0:
        return 0.0
    if len(lag) < 2 or not t_s[-1] > t_s[-2]:
        return float("nan")
    rate = (lag[-2] - lag[-1]) / (t_s[-1] - t_s[-2])
    return float(lag[-1] / rate) if rate > 0 else float("inf")


def predict_linear_eta(
    t_s: np.ndarray, total_lag: np.ndarray, *, window_s: float = PREDICT_LINEAR_WINDOW_S
) -> float:
    """Return when PromQL's ``predict_linear(lag[window])`` line reaches zero.

    Prometheus fits ``lag = a + b (t - now)`` by ordinary least squares over
    the samples in the range and predicts ``a + b x`` at ``now + x``; solved
    for zero, ``x = -a / b`` when ``b < 0``.

    Parameters
    ----------
    t_s
        Snapshot times in seconds, increasing; the last one is "now".
    total_lag
        Total lag at those times.
    window_s
        Range of the selector (``[5m]`` = 300 s).

    Returns
    -------
    float
        Seconds from now until the line crosses zero (0 if it already has),
        ``inf`` when the line does not go down, NaN with fewer than two
        samples in the range.
    """
    t_s = np.asarray(t_s, dtype=np.float64)
    lag = np.asarray(total_lag, dtype=np.float64)
    if len(lag) == 0:
        return float("nan")
    now = t_s[-1]
    inside = t_s >= now - window_s
    x = t_s[inside] - now
    y = lag[inside]
    if len(y) < 2 or np.ptp(x) == 0:
        return float("nan")
    x_mean, y_mean = x.mean(), y.mean()
    slope = float(np.sum((x - x_mean) * (y - y_mean)) / np.sum((x - x_mean) ** 2))
    intercept = y_mean - slope * x_mean  # fitted value at now
    if intercept <= 0:
        return 0.0
    if slope >= 0:
        return float("inf")
    return float(-intercept / slope)


def burrow_status(lag: pd.DataFrame, *, window: int = 10) -> pd.DataFrame:
    """Return Burrow's group status for a LAG frame, via ``kbp.lag_status``.

    Parameters
    ----------
    lag
        LAG frame up to "now".
    window
        Burrow's ``intervals`` (commits per window; 10 is Burrow's default).

    Returns
    -------
    pandas.DataFrame
        ``group`` and ``status`` (OK, WARN, ERR, STOP, STALL, REWIND).
    """
    from kbp_notebook.analysis import lag_status

    result = lag_status(lag, window=window, timeline=False)
    return result.groups[["group", "status"]]


@dataclass
class LagExporterTable:
    """kafka-lag-exporter's per-partition lookup table of (latest offset, poll time).

    Parameters
    ----------
    size
        Most points kept (the exporter's ``lookup-table-size``, 60).
    """

    size: int = EXPORTER_TABLE_SIZE
    points: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, log_end_offset: float, time_s: float) -> None:
        """Append one poll's (latest offset, time), dropping the oldest beyond ``size``.

        A poll that finds the same latest offset as the previous one adds
        nothing (the table keeps when the offset was first seen); with a
        producer that never pauses, as in our benchmark, this never happens.
        """
        if self.points and self.points[-1][0] == log_end_offset:
            return
        self.points.append((float(log_end_offset), float(time_s)))
        while len(self.points) > self.size:
            self.points.popleft()

    def lookup_time(self, offset: float) -> float:
        """Return the estimated time at which the log end offset reached ``offset``.

        Interpolated between the table points around ``offset``; extrapolated
        along the line through the oldest and newest points when ``offset``
        is older than the table (or newer than its last point). NaN with
        fewer than two points.
        """
        if len(self.points) < 2:
            return float("nan")
        offsets = np.array([p[0] for p in self.points])
        times = np.array([p[1] for p in self.points])
        if offsets[0] <= offset <= offsets[-1]:
            return float(np.interp(offset, offsets, times))
        span = offsets[-1] - offsets[0]
        if span <= 0:
            return float("nan")
        slope = (times[-1] - times[0]) / span
        return float(times[0] + (offset - offsets[0]) * slope)

    def time_lag_s(self, committed_offset: float, log_end_offset: float, now_s: float) -> float:
        """Return the exporter's lag in seconds for one poll (0 when caught up)."""
        if committed_offset >= log_end_offset:
            return 0.0
        written = self.lookup_time(committed_offset)
        return float(max(now_s - written, 0.0)) if np.isfinite(written) else float("nan")


def exporter_time_lag(
    t_s: np.ndarray,
    committed: np.ndarray,
    log_end: np.ndarray,
    *,
    poll_every: int,
    phase: int = 0,
    size: int = EXPORTER_TABLE_SIZE,
) -> np.ndarray:
    """Run the exporter over one partition's snapshots, polling every ``poll_every``-th.

    Parameters
    ----------
    t_s, committed, log_end
        One partition's snapshots (seconds, offsets), in time order.
    poll_every
        The exporter sees every ``poll_every``-th snapshot (e.g. 6 for 30 s
        polls over 5 s snapshots).
    phase
        Index of the first snapshot it sees (exporters start at an arbitrary
        moment; several phases give a figure at every snapshot).
    size
        Lookup table size.

    Returns
    -------
    numpy.ndarray
        Lag in seconds at the polled snapshots, NaN elsewhere.
    """
    out = np.full(len(t_s), np.nan)
    table = LagExporterTable(size=size)
    for i in range(phase, len(t_s), poll_every):
        table.add(log_end[i], t_s[i])
        out[i] = table.time_lag_s(committed[i], log_end[i], t_s[i])
    return out
