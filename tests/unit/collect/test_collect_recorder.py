"""The recording loop with a scripted snapshot source (the Kafka side is in integration)."""

import io
import time

import pandas as pd
import pytest

from kbp_notebook.collect._progress import make_progress
from kbp_notebook.collect._recorder import run_recording
from kbp_notebook.collect.storage import DatasetAppender, read_dataset
from kbp_notebook.errors import KbpConnectionError


def lag_row(committed):
    return pd.DataFrame(
        {
            "time": [pd.Timestamp.now(tz="UTC")],
            "cluster": ["c"],
            "group": ["g"],
            "topic": ["t"],
            "partition": [0],
            "committed_offset": [committed],
            "log_end_offset": [committed + 3],
            "lag": [3],
        }
    )


class Script:
    """Answers per call: an int -> a row with that committed offset, 'down' -> unreachable."""

    def __init__(self, plan, delay_s=0.0):
        self.plan = list(plan)
        self.calls = []
        self.delay_s = delay_s

    def __call__(self):
        if len(self.calls) == len(self.plan):
            raise KeyboardInterrupt  # plan done: stop like Ctrl-C
        self.calls.append(time.monotonic())
        step = self.plan[len(self.calls) - 1]
        time.sleep(self.delay_s)
        if step == "down":
            raise KbpConnectionError("Cannot reach Kafka at 127.0.0.1:1 (refused)", address="x")
        problems = [("collector_error", "2 partition(s) have no leader")] if step == 7 else []
        return lag_row(step), problems


def record(tmp_path, script, *, every_s, total, max_backoff_s=60.0, stream=None):
    appender = DatasetAppender(tmp_path / "rec")
    stats = run_recording(
        script,
        appender,
        every_s=every_s,
        total=total,
        max_backoff_s=max_backoff_s,
        display=make_progress(stream is not None, total, stream=stream),
        source="Kafka at 127.0.0.1:1",
    )
    return stats, read_dataset(tmp_path / "rec")


class FakeClock:
    """Monotonic time that only moves when the recorder sleeps or a snapshot takes time."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += max(seconds, 0.0)


@pytest.mark.parametrize(
    ("durations", "expected_slots"),
    [
        ([0.05] * 6, [0, 1, 2, 3, 4, 5]),  # snapshot time does not accumulate
        ([0.05, 0.45, 0.05, 0.05], [0, 1, 3, 4]),  # a slow one skips the missed tick
    ],
)
def test_schedule_is_a_fixed_grid(tmp_path, monkeypatch, durations, expected_slots):
    import kbp_notebook.collect._recorder as recorder

    clock = FakeClock()
    monkeypatch.setattr(recorder, "_monotonic", clock.monotonic)
    monkeypatch.setattr(recorder, "_sleep", clock.sleep)
    start = clock.now
    calls = []

    def take():
        if len(calls) == len(durations):
            raise KeyboardInterrupt
        calls.append(clock.now - start)
        clock.now += durations[len(calls) - 1]
        return lag_row(len(calls)), []

    stats, _ = record(tmp_path, take, every_s=0.3, total=None)
    assert stats.snapshots == len(durations)
    assert calls == pytest.approx([slot * 0.3 for slot in expected_slots])


def test_unreachable_intervals_become_events_not_rows_and_backoff_grows(tmp_path):
    script = Script([1, 2, "down", "down", "down", 6, 7, 8])
    stats, ds = record(tmp_path, script, every_s=0.25, total=None, max_backoff_s=1.0)
    events = ds.events
    errors = events[events["kind"] == "collector_error"]
    assert stats.failures == 3
    assert len(errors) == 4  # three failures + the partial-snapshot problem
    assert errors["text"].iloc[:3].str.contains("Cannot reach Kafka at 127.0.0.1:1").all()
    assert "no leader" in errors["text"].iloc[3]
    assert "(attempt 2)" in errors["text"].iloc[1]
    # recovered from the outage, then from the partial snapshot (step 7) at step 8
    assert (events["kind"] == "collector_recovered").sum() == 2
    # no invented rows: every row comes from a successful call
    assert set(ds.lag["committed_offset"]) <= {1, 2, 6, 7, 8}
    gaps = [b - a for a, b in zip(script.calls[2:5], script.calls[3:6], strict=True)]
    assert gaps[0] < gaps[1] < gaps[2]  # 0.25, 0.5, 1.0 s on the 0.25 s grid
    assert gaps[2] >= 0.99  # the third retry waited the capped backoff


def test_ctrl_c_ends_the_recording_cleanly(tmp_path):
    def take():
        if take.n == 3:
            raise KeyboardInterrupt
        take.n += 1
        return lag_row(take.n), []

    take.n = 0
    stats, ds = record(tmp_path, take, every_s=0.01, total=None)
    assert stats.snapshots == 3 and ds.lag["time"].nunique() == 3


def test_progress_lines_follow_the_intervals(tmp_path):
    stream = io.StringIO()
    record(tmp_path, Script([5, 6, 7]), every_s=0.2, total=None, stream=stream)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "kbp collect: 1 intervals, 1 rows, total lag 3",
        "kbp collect: 2 intervals, 2 rows, total lag 3",
        "kbp collect: 3 intervals, 3 rows, total lag 3 (partial)",
    ]


@pytest.mark.parametrize("n", [1, 3])
def test_resuming_adds_to_an_existing_folder(tmp_path, n):
    record(tmp_path, Script([1, 2, 3][:n]), every_s=0.2, total=None)
    _, ds = record(tmp_path, Script([4, 5, 6][:n]), every_s=0.2, total=None)
    assert ds.lag["time"].nunique() == 2 * n


def test_a_lasting_partial_problem_is_one_event(tmp_path):
    _, ds = record(tmp_path, Script([7, 7, 7, 7, 1]), every_s=0.2, total=None)
    kinds = list(ds.events["kind"])
    assert kinds == ["collector_error", "collector_recovered"]
    assert ds.lag["time"].nunique() == 5


def test_stop_event_ends_the_loop_between_ticks_on_the_grid(tmp_path):
    import threading

    from kbp_notebook.collect._recorder import Recorder

    stop = threading.Event()
    calls = []

    def take():
        if len(calls) == 6:
            raise KeyboardInterrupt  # the stop was ignored: end the loop, the asserts fail
        calls.append(time.monotonic())
        if len(calls) == 3:
            stop.set()  # as the monitor's stop button does, from another thread
        return lag_row(len(calls)), []

    appender = DatasetAppender(tmp_path / "rec")
    recorder = Recorder(take, appender, every_s=0.2, max_backoff_s=0.2, source="test")
    started = time.monotonic()
    stats = recorder.run(stop=stop)
    assert stats.snapshots == 3 and len(calls) == 3
    assert time.monotonic() - started < 2.0  # ended at the stop, not at a total
    # on the grid start + k * every_s, not drifting by the snapshot time
    offsets = [c - calls[0] for c in calls]
    assert offsets[2] == pytest.approx(0.4, abs=0.15)
    assert read_dataset(tmp_path / "rec").lag["committed_offset"].tolist() == [1, 2, 3]


def test_one_tick_writes_the_error_event_and_remembers_the_error(tmp_path):
    from kbp_notebook.collect._recorder import Recorder

    appender = DatasetAppender(tmp_path / "rec")
    script = Script(["down", 5])
    recorder = Recorder(script, appender, every_s=1, max_backoff_s=1, source="Kafka at x")
    assert recorder.tick() is False
    assert isinstance(recorder.last_error, KbpConnectionError) and recorder.failures == 1
    assert recorder.tick() is True
    assert recorder.last_error is None and recorder.failures == 0
    events = read_dataset(tmp_path / "rec").events
    assert events["kind"].tolist() == ["collector_error", "collector_recovered"]
