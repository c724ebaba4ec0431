"""The one recording loop: a drift-free schedule, error events, retries, a stop event.

Used by ``LagCollector.record`` (and so ``kbp collect``) and by the live
monitor. Kept apart from Kafka so the schedule, the error events and the
backoff can be exercised with any snapshot function.
"""

from __future__ import annotations

import math
import threading
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from kbp_notebook.collect._progress import Progress, _Silent
from kbp_notebook.errors import KbpError

__all__ = ["Recorder", "RecordingStats", "Sink", "events_frame", "run_recording"]

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


class Sink(Protocol):
    """Where the loop writes each snapshot and its events (``DatasetAppender`` is one)."""

    def append(
        self, *, lag: pd.DataFrame | None = None, events: pd.DataFrame | None = None
    ) -> None:
        """Take one interval's LAG rows and/or events."""


def _sleep_until(due_monotonic: float, stop: threading.Event | None) -> bool:
    """Wait until ``due_monotonic``; return False at once when ``stop`` is set."""
    # Short naps keep Ctrl-C (KeyboardInterrupt) and the stop event responsive.
    while True:
        if stop is not None and stop.is_set():
            return False
        remaining = due_monotonic - _monotonic()
        if remaining <= 0:
            return True
        if stop is not None:
            stop.wait(min(remaining, 0.25))
        else:
            _sleep(min(remaining, 0.25))


class Recorder:
    """The one recording loop: ``LagCollector.record``, ``kbp collect`` and ``LiveMonitor``.

    Snapshots are due on a fixed grid ``start + k * every_s`` (no drift: a
    slow snapshot skips the ticks it missed rather than bunching up). A
    snapshot that fails with a ``KbpError`` becomes a ``collector_error``
    event and the next try waits an exponential backoff (capped at
    ``max_backoff_s``, and still on the grid); the first success after
    failures writes ``collector_recovered``. Partial problems the snapshot
    reports are events too, once per outage rather than once per interval.

    Parameters
    ----------
    take
        Returns a LAG frame and ``(kind, text)`` problems; raises ``KbpError``
        when the source cannot be read.
    sink
        Where each interval goes (rows and events).
    every_s
        Interval of the grid.
    max_backoff_s
        Cap of the exponential backoff after consecutive failures (at least
        ``every_s``; equal to it: retry every interval).
    display
        Progress display.
    source
        Names the source in the "recovered" events.

    Attributes
    ----------
    stats
        Snapshots written, rows written, failed attempts.
    failures
        Consecutive failed attempts so far (0 when the last one worked).
    last_error
        The error of the last attempt, or None when it worked.
    """

    def __init__(
        self,
        take: Snapshot,
        sink: Sink,
        *,
        every_s: float,
        max_backoff_s: float,
        display: Progress | None = None,
        source: str,
    ) -> None:
        self.take = take
        self.sink = sink
        self.every_s = float(every_s)
        self.max_backoff_s = float(max_backoff_s)
        self.display: Progress = display if display is not None else _Silent()
        self.source = source
        self.stats = RecordingStats()
        self.failures = 0
        self.last_error: KbpError | None = None
        self._total_lag: int | None = None
        self._previous_problems: list[tuple[str, str]] = []

    def tick(self) -> bool:
        """Take one snapshot now and write it (or the error); return whether it worked."""
        try:
            frame, problems = self.take()
        except KbpError as exc:
            self._failed(exc)
            return False
        self.last_error = None
        self._write(frame, problems)
        return True

    def _failed(self, exc: KbpError) -> None:
        self.failures += 1
        self.stats.failures += 1
        self.last_error = exc
        now = pd.Timestamp.now(tz="UTC")
        text = str(exc) if self.failures == 1 else f"{exc} (attempt {self.failures})"
        self.sink.append(events=events_frame([(now, "collector_error", text)]))
        self.display.update(
            done=self.stats.snapshots,
            rows=self.stats.rows,
            total_lag=self._total_lag,
            status="unreachable",
        )

    def _write(self, frame: pd.DataFrame, problems: list[tuple[str, str]]) -> None:
        when = frame["time"].iloc[0] if len(frame) else pd.Timestamp.now(tz="UTC")
        problems = list(dict.fromkeys(problems))
        # A lasting partial outage is one event, not one per interval.
        events = (
            [(when, kind, text) for kind, text in problems]
            if problems != self._previous_problems
            else []
        )
        if self._previous_problems and not problems and not self.failures:
            events.append(
                (when, "collector_recovered", f"{self.source}: every partition read again.")
            )
        self._previous_problems = problems
        if self.failures:
            events.append(
                (
                    pd.Timestamp.now(tz="UTC"),
                    "collector_recovered",
                    f"{self.source} answered again after {self.failures} failed attempt(s).",
                )
            )
            self.failures = 0
        self.sink.append(lag=frame, events=events_frame(events) if events else None)
        self.stats.snapshots += 1
        self.stats.rows += len(frame)
        self._total_lag = int(frame["lag"].sum()) if len(frame) else 0
        self.display.update(
            done=self.stats.snapshots,
            rows=self.stats.rows,
            total_lag=self._total_lag,
            status="partial" if any(e[1] == "collector_error" for e in events) else "",
        )

    def _backoff_s(self) -> float:
        every_s = self.every_s
        doubled = every_s * float(2 ** (self.failures - 1))
        return min(doubled, max(self.max_backoff_s, every_s))

    def run(
        self, *, total: int | None = None, stop: threading.Event | None = None
    ) -> RecordingStats:
        """Tick on the grid until ``total`` ticks passed, ``stop`` is set, or Ctrl-C.

        Parameters
        ----------
        total
            Number of grid ticks (``None``: until stopped or interrupted).
        stop
            Set it (from another thread) to end the loop within ~0.25 s.

        Returns
        -------
        RecordingStats
            The counts of this recorder so far.
        """
        start = _monotonic()
        tick = 0
        try:
            while total is None or tick < total:
                if not _sleep_until(start + tick * self.every_s, stop):
                    break
                if self.tick():
                    # Late (a slow snapshot)? Skip the ticks already missed.
                    elapsed_ticks = math.floor((_monotonic() - start) / self.every_s)
                    tick = max(tick + 1, elapsed_ticks + 1)
                else:
                    next_due = _monotonic() + self._backoff_s()
                    # Stay on the grid: the first tick at or after the backoff.
                    tick = max(tick + 1, math.ceil((next_due - start) / self.every_s - 1e-9))
        except KeyboardInterrupt:
            pass
        return self.stats


def run_recording(
    take: Snapshot,
    appender: Sink,
    *,
    every_s: float,
    total: int | None,
    max_backoff_s: float,
    display: Progress,
    source: str,
) -> RecordingStats:
    """Take ``total`` snapshots (or until interrupted) on the grid ``start + k * every_s``.

    A :class:`Recorder` run once; see it for the parameters.

    Returns
    -------
    RecordingStats
        Snapshots written, rows written, failed attempts.
    """
    recorder = Recorder(
        take,
        appender,
        every_s=every_s,
        max_backoff_s=max_backoff_s,
        display=display,
        source=source,
    )
    return recorder.run(total=total)
