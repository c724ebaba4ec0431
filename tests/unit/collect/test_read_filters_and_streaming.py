"""read_dataset filters pushed into Parquet, and analyses run a chunk of groups at a time.

The CI-sized form of the 86-million-row benchmark (``benchmarks/bench_long_recording.py``):
a synthetic recording of 24 groups x 10 partitions x 600 snapshots written as
many parts, analysed whole and in chunks; the chunked results must equal the
whole ones key for key, and the chunked run must hold a fraction of the memory.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

import kbp_notebook as kbp
from kbp_notebook.collect.storage import DatasetAppender, lag_key_counts
from kbp_notebook.collect.streaming import chunk_groups
from kbp_notebook.errors import KbpDataError, KbpInputError
from scenarios.synthetic_recording import SyntheticRecording, write_synthetic_recording

GROUPS, PARTITIONS, SNAPSHOTS = 24, 10, 600


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> SyntheticRecording:
    path = tmp_path_factory.mktemp("long") / "rec"
    return write_synthetic_recording(
        path,
        groups=GROUPS,
        partitions_per_group=PARTITIONS,
        snapshots=SNAPSHOTS,
        snapshots_per_part=25,
        episode_every=6,
        episode_s=600,
    )


@pytest.fixture(scope="module")
def whole(recording: SyntheticRecording) -> kbp.Dataset:
    return kbp.read_dataset(recording.path)


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def test_filters_equal_filtering_after_reading(
    recording: SyntheticRecording, whole: kbp.Dataset
) -> None:
    lag = whole.lag
    assert len(lag) == recording.rows == GROUPS * PARTITIONS * SNAPSHOTS
    start = recording.start + pd.Timedelta("10min")
    end = start + pd.Timedelta("7min")
    groups = ["svc-0003", "svc-0017"]
    part = kbp.read_dataset(recording.path, groups=groups, start=start, end=end)
    expected = lag[lag["group"].isin(groups) & (lag["time"] >= start) & (lag["time"] <= end)]
    keys = ["group", "topic", "partition", "time"]
    pd.testing.assert_frame_equal(_sorted(part.lag, keys), _sorted(expected, keys))
    by_topic = kbp.read_dataset(recording.path, topics="events.svc-0005", columns=[])
    assert set(by_topic.lag["group"]) == {"svc-0005"}
    assert list(by_topic.lag.columns) == list(kbp.frames.LAG_COLUMNS)
    assert len(by_topic.lag) == PARTITIONS * SNAPSHOTS
    naive = kbp.read_dataset(recording.path, groups=groups, start=start.tz_localize(None))
    assert naive.lag["time"].min() == start


def test_filters_read_parts_whose_columns_differ(tmp_path: Path, whole: kbp.Dataset) -> None:
    """A resumed recording whose older parts lack the owner columns still reads filtered."""
    lag = whole.lag[whole.lag["group"].isin(["svc-0001", "svc-0002"])]
    middle = lag["time"].min() + (lag["time"].max() - lag["time"].min()) / 2
    first, second = lag[lag["time"] < middle], lag[lag["time"] >= middle]
    appender = DatasetAppender(tmp_path / "mixed")
    appender.append(lag=first.drop(columns=["consumer_id", "host", "client_id"]))
    appender.append(lag=second)
    read = kbp.read_dataset(tmp_path / "mixed", groups="svc-0002")
    assert len(read.lag) == int((lag["group"] == "svc-0002").sum())
    assert read.lag["consumer_id"].isna().any() and read.lag["consumer_id"].notna().any()


def test_bad_filters_say_what_to_pass(recording: SyntheticRecording) -> None:
    with pytest.raises(KbpInputError, match="groups is empty"):
        kbp.read_dataset(recording.path, groups=[])
    with pytest.raises(KbpInputError, match="not LAG columns"):
        kbp.read_dataset(recording.path, columns=["lagg"])
    with pytest.raises(KbpInputError, match="not a time"):
        kbp.read_dataset(recording.path, start="yesterday-ish")


def test_key_counts_and_chunks(recording: SyntheticRecording, whole: kbp.Dataset) -> None:
    counts = lag_key_counts(recording.path)
    expected = whole.lag["group"].value_counts().sort_index()
    assert counts.to_dict() == expected.to_dict()
    chunks = chunk_groups(counts, max_rows=3 * PARTITIONS * SNAPSHOTS)
    assert [len(c) for c in chunks] == [3] * (GROUPS // 3)
    assert [g for c in chunks for g in c] == sorted(recording.groups)
    # A group bigger than the budget is a chunk of its own, never split.
    assert chunk_groups(pd.Series({"a": 10, "b": 500, "c": 10}), max_rows=100) == [
        ["a"],
        ["b"],
        ["c"],
    ]


@pytest.mark.parametrize(
    ("analysis", "frames"),
    [
        (kbp.lag_trend, ("table", "segments")),
        (kbp.time_to_drain, ("table", "partitions")),
        (kbp.incidents, ("table", "baselines", "lag")),
    ],
)
def test_chunked_analysis_equals_whole(
    recording: SyntheticRecording, whole: kbp.Dataset, analysis, frames
) -> None:
    seen: list[int] = []
    chunked = kbp.analyse_recording(
        recording.path,
        analysis,
        max_rows=4 * PARTITIONS * SNAPSHOTS,
        progress=lambda i, n, groups: seen.append(n),
    )
    assert seen == [GROUPS // 4] * (GROUPS // 4)
    once = analysis(whole.lag)
    assert type(chunked) is type(once)
    for name in frames:
        left, right = getattr(chunked, name), getattr(once, name)
        keys = [c for c in ("group", "topic", "partition", "start", "time") if c in right.columns]
        pd.testing.assert_frame_equal(_sorted(left, keys), _sorted(right, keys))
    if analysis is kbp.incidents:
        assert len(once.table) > 0
        assert chunked.verdict == once.verdict
        assert chunked.as_of == once.as_of
        keys = ["time", "kind", "group", "topic", "partition"]
        pd.testing.assert_frame_equal(_sorted(chunked.events, keys), _sorted(once.events, keys))


def test_chunked_trend_finds_the_episodes(recording: SyntheticRecording) -> None:
    """Filters and chunks together: the episode groups grow, and only they, in their window."""
    start = recording.start + pd.Timedelta(seconds=recording.episode_start_s)
    trend = kbp.analyse_recording(
        recording.path,
        kbp.lag_trend,
        max_rows=50_000,
        start=start,
        end=start + pd.Timedelta("8min"),
        columns=[],
    )
    growing = set(trend.table.loc[trend.table["status"] == "growing", "group"])
    assert growing == set(recording.episode_groups)


def test_chunked_run_holds_a_fraction_of_the_memory(recording: SyntheticRecording) -> None:
    def peak(run) -> int:  # type: ignore[no-untyped-def]
        tracemalloc.start()
        try:
            run()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def whole_run() -> None:
        kbp.lag_trend(kbp.read_dataset(recording.path).lag)

    def chunked_run() -> None:
        kbp.analyse_recording(recording.path, kbp.lag_trend, max_rows=2 * PARTITIONS * SNAPSHOTS)

    whole_peak, chunked_peak = peak(whole_run), peak(chunked_run)
    assert chunked_peak < whole_peak / 4, (whole_peak, chunked_peak)


def test_empty_selection_is_a_data_error(recording: SyntheticRecording) -> None:
    with pytest.raises(KbpDataError, match="no LAG rows for these filters"):
        kbp.analyse_recording(recording.path, kbp.lag_trend, groups=["nobody"])


def test_dataset_analyses_get_each_chunk_with_all_metrics_and_events() -> None:
    """Functions of a Dataset (incidents, diagnose) see every metric and event in each chunk."""
    path = kbp.sample_path("stuck-consumer")
    whole = kbp.read_dataset(path)
    seen: list[kbp.Dataset] = []

    def capture(data: kbp.Dataset) -> pd.DataFrame:
        seen.append(data)
        return data.lag.groupby("group", as_index=False)["lag"].max()

    table = kbp.analyse_recording(path, capture, max_rows=1)
    assert len(seen) == whole.lag["group"].nunique() == len(table) == 2
    for data in seen:
        assert len(set(data.lag["group"])) == 1
        pd.testing.assert_frame_equal(data.metrics, whole.metrics)
        pd.testing.assert_frame_equal(data.events, whole.events)
        assert data.meta == whole.meta
