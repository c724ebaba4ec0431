from __future__ import annotations

import socket
import time

import numpy as np

import kbp_notebook as kbp
from kbp_notebook.widgets import LiveMonitor
from kbp_notebook.widgets.live_monitor import ReplayCollector


def test_polls_accumulate_history_trend_and_eta(dataset):
    monitor = LiveMonitor(collector=ReplayCollector(dataset), every_s=1)
    assert "Not started" in monitor.readout.value
    for _ in range(2):
        assert monitor.poll_once()
    assert monitor.trend is None and "after 3 snapshots" in monitor.readout.value
    for _ in range(30):
        monitor.poll_once()
    assert monitor.history["time"].nunique() == 32
    assert monitor.trend is not None and monitor.forecast is not None
    lines = [t for t in monitor.figure.data if t.mode == "lines" and
             not (t.name or "").startswith("trend")]
    assert len(lines) == 2
    assert len(lines[0].x) == 32
    assert "messages behind" in monitor.readout.value
    # the ETA of the slowest group is in the readout and in the live figure's title
    worst = monitor.forecast.table.sort_values("eta_s", ascending=False).iloc[0]
    assert ("drains in" in monitor.figure.layout.title.text) == bool(worst["drains"])
    assert ("does not drain" in monitor.figure.layout.title.text) != bool(worst["drains"])


def test_window_keeps_only_recent_snapshots(dataset):
    monitor = LiveMonitor(collector=ReplayCollector(dataset), window_s=60)
    for _ in range(40):
        monitor.poll_once()
    span = monitor.history["time"].max() - monitor.history["time"].min()
    assert span.total_seconds() <= 60
    assert monitor.history["time"].nunique() == 13  # 5 s snapshots over 60 s, both ends


def test_records_snapshots_to_a_dataset_folder(dataset, tmp_path):
    folder = tmp_path / "recording"
    monitor = LiveMonitor(collector=ReplayCollector(dataset), record_to=folder)
    assert monitor.record.value is True
    for _ in range(5):
        monitor.poll_once()
    recorded = kbp.read_dataset(folder)
    assert recorded.lag["time"].nunique() == 5
    assert len(recorded.lag) == len(monitor.history)
    np.testing.assert_array_equal(recorded.lag["lag"].to_numpy(), monitor.history["lag"].to_numpy())


def test_start_and_stop_poll_in_the_background(dataset):
    monitor = LiveMonitor(collector=ReplayCollector(dataset), every_s=1)
    monitor.every.value = 1
    monitor.start()
    assert monitor.running and monitor.start_button.disabled and not monitor.stop_button.disabled
    deadline = time.monotonic() + 20
    while monitor.polls < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    monitor.stop()
    assert not monitor.running and not monitor.start_button.disabled
    polls = monitor.polls
    assert polls >= 2
    time.sleep(1.5)
    assert monitor.polls == polls  # stopped means stopped


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_cluster_is_reported_with_the_time_it_started():
    port = _closed_port()
    monitor = LiveMonitor(f"127.0.0.1:{port}", every_s=1, request_timeout_ms=2000)
    assert monitor.poll_once() is False
    first = monitor.unreachable_since
    assert first is not None
    assert "cluster unreachable since" in monitor.readout.value
    assert f"{first:%H:%M:%S}" in monitor.readout.value
    assert f"127.0.0.1:{port}" in monitor.last_error
    assert monitor.poll_once() is False
    assert monitor.unreachable_since == first  # since the first failure, not the latest


def test_replay_collector_lives_in_collect_and_the_old_name_still_works():
    from kbp_notebook.collect.replay import ReplayCollector as moved

    assert ReplayCollector is moved


def test_unreachable_polls_become_error_events_in_the_dataset_and_the_recording(dataset, tmp_path):
    from kbp_notebook.errors import KbpConnectionError

    class Flaky:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def snapshot(self, groups=None):
            self.calls += 1
            if self.calls == 2:
                raise KbpConnectionError("Cannot reach Kafka at 127.0.0.1:1", address="x")
            return self.inner.snapshot(groups)

    folder = tmp_path / "recording"
    replay = ReplayCollector(dataset)
    monitor = LiveMonitor(collector=Flaky(replay), record_to=folder, every_s=1)
    assert monitor.poll_once() and not monitor.poll_once() and monitor.poll_once()
    kinds = monitor.dataset().events["kind"].tolist()
    assert kinds == ["collector_error", "collector_recovered"]
    assert "127.0.0.1:1" in monitor.dataset().events["text"].iloc[0]
    recorded = kbp.read_dataset(folder)
    assert recorded.events["kind"].tolist() == kinds
    assert recorded.lag["time"].nunique() == 2
