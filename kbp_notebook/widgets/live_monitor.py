"""LiveMonitor: poll a live cluster's lag every few seconds into a live figure."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from kbp_notebook import analysis, viz
from kbp_notebook.collect._recorder import Recorder, events_frame
from kbp_notebook.collect.replay import ReplayCollector
from kbp_notebook.errors import KbpError
from kbp_notebook.frames import Dataset, empty_lag_frame
from kbp_notebook.units import format_count, format_duration, format_time
from kbp_notebook.widgets._base import Explorer, message

__all__ = ["LiveMonitor", "ReplayCollector"]  # ReplayCollector lives in collect.replay


class LiveMonitor(Explorer):
    """Watch consumer lag live: trend and ETA to drain, start/stop, optional recording.

    A background thread runs the recording loop that ``LagCollector.record``
    uses (``collect._recorder.Recorder``): every ``every_s`` seconds, on a
    fixed grid that does not drift, a read-only ``LagCollector.snapshot()``
    (it never joins a group or commits); the monitor keeps the last
    ``window_s`` seconds and redraws: lag per group/topic with the
    ``lag_trend`` line and the ``time_to_drain`` ETA in the readout. With
    ``record_to`` every snapshot is also appended to a Dataset folder
    (crash-safe parts). When the cluster cannot be reached the readout says
    "cluster unreachable since …", a ``collector_error`` event is kept in
    :meth:`dataset` (and the recording), and polling continues every interval.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,...]``; or pass ``collector`` instead.
    every_s
        Poll interval in seconds.
    groups
        Group ids to watch (default: every group).
    cluster
        Name written into the frames.
    record_to
        Dataset folder to append snapshots to, or None.
    window_s
        History kept for the figure and the trend (seconds).
    collector
        A ready ``LagCollector`` (or anything with ``.snapshot(groups)``).
    **kafka_config
        Client settings for the ``LagCollector`` (secrets are never shown).
    """

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        *,
        every_s: float = 5.0,
        groups: Iterable[str] | None = None,
        cluster: str = "default",
        record_to: str | Path | None = None,
        window_s: float = 1800.0,
        collector: Any = None,
        **kafka_config: Any,
    ) -> None:
        if collector is None and not bootstrap_servers:
            raise TypeError("LiveMonitor needs bootstrap_servers or collector.")
        self.bootstrap_servers = bootstrap_servers
        self.groups = list(groups) if groups is not None else None
        self.cluster_name = cluster
        self.window_s = float(window_s)
        self._kafka_config = dict(kafka_config)
        self._collector = collector
        self._appender: Any = None
        self.record_to = Path(record_to) if record_to is not None else None
        self.history = empty_lag_frame()
        self.unreachable_since: pd.Timestamp | None = None
        self.last_error: str | None = None
        self.polls = 0
        self.trend: Any = None
        self.forecast: Any = None
        self.events = events_frame([])
        self._stop = threading.Event()
        # The same loop as LagCollector.record: grid schedule, error events, stop event.
        # While unreachable it retries every interval (max_backoff_s = every_s).
        self._recorder = Recorder(self._take, self, every_s=float(every_s),
                                  max_backoff_s=float(every_s), source="the cluster")
        self._thread: threading.Thread | None = None
        self.start_button = widgets.Button(description="▶ start",
                                           button_style="success")
        self.stop_button = widgets.Button(description="■ stop", disabled=True)
        self.every = widgets.BoundedFloatText(value=float(every_s), min=1, max=3600, step=1,
                                              description="every (s)",
                                              layout=widgets.Layout(width="160px"))
        self.record = widgets.Checkbox(value=self.record_to is not None, indent=False,
                                       description=f"record to {self.record_to}"
                                       if self.record_to else "record (set record_to)",
                                       disabled=self.record_to is None)
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        super().__init__([self.start_button, self.stop_button, self.every, self.record])
        self.readout.value = message("Not started: press start (or call .poll_once()).")
        self.figure = viz.plot_lag(self.history, title="Live consumer lag")
        self.view.show(self.figure)

    # -- polling -------------------------------------------------------------------

    def _get_collector(self) -> Any:
        if self._collector is None:
            from kbp_notebook.collect.kafka_lag import LagCollector

            self._collector = LagCollector(str(self.bootstrap_servers), cluster=self.cluster_name,
                                           **self._kafka_config)
        return self._collector

    def _take(self) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
        collector = self._get_collector()
        snapshot = collector.snapshot(self.groups)
        return snapshot, list(getattr(collector, "last_problems", []) or [])

    def append(
        self, *, lag: pd.DataFrame | None = None, events: pd.DataFrame | None = None
    ) -> None:
        """Take one interval from the recording loop (the loop's sink; not for callers).

        A snapshot extends the history (and the recording, when on) and redraws;
        a ``collector_error`` event without a snapshot marks the cluster
        unreachable. Events go into :meth:`dataset` and the recording.
        """
        now = pd.Timestamp.now(tz="UTC")
        folder = self.record_to if self.record.value else None
        if events is not None and len(events):
            self.events = pd.concat([self.events, events], ignore_index=True)
        if folder is not None and (
            (lag is not None and len(lag)) or (events is not None and len(events))
        ):
            if self._appender is None:
                from kbp_notebook.collect.storage import DatasetAppender

                self._appender = DatasetAppender(
                    folder, meta={"cluster": self.cluster_name, "source": "LiveMonitor"})
            self._appender.append(lag=lag, events=events)
        self.polls += 1
        if lag is None:
            if self.unreachable_since is None:
                self.unreachable_since = now
            error = self._recorder.last_error
            self.last_error = str(error) if error is not None else None
            self.readout.value = message(
                f"cluster unreachable since {self.unreachable_since:%Y-%m-%d %H:%M:%S} UTC "
                f"({format_duration((now - self.unreachable_since).total_seconds())}); still "
                f"trying every {self._recorder.every_s:g} s. Last error: {self.last_error}",
                tone="error",
            )
            return
        self.unreachable_since = None
        self.last_error = None
        history = pd.concat([self.history, lag], ignore_index=True) if len(self.history) \
            else lag
        cutoff = history["time"].max() - pd.Timedelta(seconds=self.window_s)
        self.history = history[history["time"] >= cutoff].reset_index(drop=True)
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - keep the monitor alive, say what broke
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.readout.value = message(f"monitor error: {self.last_error}", tone="error")

    def poll_once(self) -> bool:
        """Take one snapshot now and redraw; return False when the cluster was unreachable."""
        return self._recorder.tick()

    def _build_figure(self) -> tuple[go.Figure, str]:
        history = self.history
        snapshots = history["time"].nunique() if len(history) else 0
        self.trend = None
        self.forecast = None
        text = f"{snapshots} snapshot(s)"
        if snapshots >= 3:
            try:
                self.trend = analysis.lag_trend(history)
            except KbpError as exc:
                text += f"; no trend yet ({exc})"
            try:
                self.forecast = analysis.time_to_drain(history)
            except KbpError as exc:
                text += f"; no ETA yet ({exc})"
        else:
            text += "; trend and ETA after 3 snapshots"
        if len(history):
            latest = history[history["time"] == history["time"].max()]
            text = (f"{format_count(latest['lag'].sum())} messages behind at "
                    f"{format_time(history['time'].max())}; " + text)
        title = "Live consumer lag"
        if self.forecast is not None and len(self.forecast.table):
            worst = self.forecast.table.sort_values("eta_s", ascending=False).iloc[0]
            label = f"{worst['group']}/{worst['topic']}"
            if bool(worst.get("drains", True)):
                eta = f"{label} drains in {format_duration(float(worst['eta_s']))}"
                text += f"; slowest: {eta}"
                title += f" (slowest: {eta})"
            else:
                text += f"; {label} does NOT drain at current rates"
                title += f" ({label} does not drain at current rates)"
        figure = viz.plot_lag(history, trend=self.trend, title=title)
        return figure, message(text)

    # -- start / stop -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the polling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start polling in a background thread (no-op when already running)."""
        if self.running:
            return
        self._stop.clear()
        self._recorder.every_s = self._recorder.max_backoff_s = float(self.every.value)
        self._thread = threading.Thread(target=self._loop, name="kbp-live-monitor", daemon=True)
        self.start_button.disabled = True
        self.stop_button.disabled = False
        self._thread.start()

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """Stop polling and wait for the thread to finish its current poll."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        self._thread = None
        self.start_button.disabled = False
        self.stop_button.disabled = True

    def close_collector(self) -> None:
        """Stop and close the connections this monitor opened."""
        self.stop()
        close: Callable[[], None] | None = getattr(self._collector, "close", None)
        if close is not None:
            close()

    def _loop(self) -> None:
        try:
            self._recorder.run(stop=self._stop)
        except Exception as exc:  # noqa: BLE001 - a thread has nobody to raise to: say it
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.readout.value = message(
                f"monitor error (stopped; press start to retry): {self.last_error}", tone="error"
            )

    def dataset(self) -> Dataset:
        """Return the history kept in memory as a Dataset."""
        return Dataset(lag=self.history, events=self.events,
                       meta={"cluster": self.cluster_name, "source": "LiveMonitor"})
