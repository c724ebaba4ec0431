"""The recording loop: a drift-free schedule, one crash-safe part per interval, retries.

Kept apart from Kafka so the schedule, the error events and the backoff can be
exercised with any snapshot function.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from kbp_notebook.collect._progress import Progress
from kbp_notebook.collect.storage import DatasetAppender
from kbp_notebook.errors import KbpError

__all__ = ["RecordingStats", "events_frame", "run_recording"]

Snapshot = Callable[[], tuple[pd.DataFrame, list[tuple[str, str]]]]

# The recorder's clock (module attributes so tests can run the schedule on a fake clock).
_monotonic = _time.monotonic
_sleep = _time.sleep


def events_frame(rows: list[tuple[pd.Timestamp, str, str]]) -> pd.DataFrame:
    """Build an events frame (``time``, ``kind``, ``text``) from tuples."""
    return pd.DataFrame(
        {
            "time": pd.Series([r[0] for r in rows], dtype="datetime64[ns, UTC]"),
            "kind": pd.Series([r[1] for r in rows], dtype="string"),
            "text": pd.Series([r[2] for r in rows], dtype="string"),
        }
    )


@dataclass
class RecordingStats:
    """What one recording session did."""

    snapshots: int = 0
    rows: int = 0
    failures: int = 0


def _sleep_until(due_monotonic: float) -> None:
    # Short naps keep Ctrl-C (KeyboardInterrupt) responsive.
    while True:
        remaining = due_monotonic - _monotonic()
        if remaining <= 0:
            return
        _sleep(min(remaining, 0.25))


def run_recording(
    take: Snapshot,
    appender: DatasetAppender,
    *,
    every_s: float,
    total: int | None,
    max_backoff_s: float,
    display: Progress,
    source: str,
) -> RecordingStats:
    """Take ``total`` snapshots (or until interrupted) on the grid ``start + k * every_s``.

    Parameters
    ----------
    take
        Returns a LAG frame and ``(kind, text)`` problems; raises ``KbpError``
        when the source cannot be read.
    appender
        Where each interval goes, as its own part.
    every_s, total
        Interval and number of grid ticks (``None``: until KeyboardInterrupt).
    max_backoff_s
        Cap of the exponential backoff after consecutive failures.
    display
        Progress display.
    source
        Names the source in the "recovered" event.

    Returns
    -------
    RecordingStats
        Snapshots written, rows written, failed attempts.
    """
    stats = RecordingStats()
    failures = 0
    total_lag: int | None = None
    start = _monotonic()
    tick = 0
    previous_problems: list[tuple[str, str]] = []
    try:
        while total is None or tick < total:
            _sleep_until(start + tick * every_s)
            try:
                frame, problems = take()
            except KbpError as exc:
                failures += 1
                stats.failures += 1
                now = pd.Timestamp.now(tz="UTC")
                text = str(exc) if failures == 1 else f"{exc} (attempt {failures})"
                appender.append(events=events_frame([(now, "collector_error", text)]))
                display.update(
                    done=stats.snapshots, rows=stats.rows, total_lag=total_lag, status="unreachable"
                )
                backoff_s = min(every_s * 2 ** (failures - 1), max(max_backoff_s, every_s))
                next_due = _monotonic() + backoff_s
                # Stay on the grid: the first tick at or after the backoff.
                tick = max(tick + 1, math.ceil((next_due - start) / every_s - 1e-9))
                continue
            when = frame["time"].iloc[0] if len(frame) else pd.Timestamp.now(tz="UTC")
            problems = list(dict.fromkeys(problems))
            # A lasting partial outage is one event, not one per interval.
            events = (
                [(when, kind, text) for kind, text in problems]
                if problems != previous_problems
                else []
            )
            if previous_problems and not problems and not failures:
                events.append(
                    (when, "collector_recovered", f"{source}: every partition read again.")
                )
            previous_problems = problems
            if failures:
                events.append(
                    (
                        pd.Timestamp.now(tz="UTC"),
                        "collector_recovered",
                        f"{source} answered again after {failures} failed attempt(s).",
                    )
                )
                failures = 0
            appender.append(lag=frame, events=events_frame(events) if events else None)
            stats.snapshots += 1
            stats.rows += len(frame)
            total_lag = int(frame["lag"].sum()) if len(frame) else 0
            display.update(
                done=stats.snapshots,
                rows=stats.rows,
                total_lag=total_lag,
                status="partial" if any(e[1] == "collector_error" for e in events) else "",
            )
            # Late (a slow snapshot)? Skip the ticks already missed rather than bunching up.
            elapsed_ticks = math.floor((_monotonic() - start) / every_s)
            tick = max(tick + 1, elapsed_ticks + 1)
    except KeyboardInterrupt:
        pass
    return stats
