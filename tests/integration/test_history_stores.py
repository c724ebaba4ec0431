"""PrometheusSource against real Prometheus and real VictoriaMetrics, fed by remote write.

Both stores are Debian's packages on loopback (``kbp_notebook.history_sandbox``).
One recording (20 groups x 10 partitions x 120 snapshots at 5 s, ending now)
is pushed into each with ``RemoteWriter`` under the metric names of
kafka_exporter, kafka-lag-exporter and kminion. Then, for every naming and
both stores: the totals summed by the server (``sum by``) equal the recorded
totals and each other, the per-partition pull gives back the recorded rows,
the pushdown moves at least 10x fewer bytes, ``top_k`` reads only the worst
keys, and a server whose sample limit is far below one raw pull still
answers it, split in time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pandas as pd
import pytest

import kbp_notebook as kbp
from kbp_notebook.collect.remote_write import LAG_EXPORTER_SCHEMES, RemoteWriter
from kbp_notebook.errors import KbpInputError
from kbp_notebook.history_sandbox import HistoryStore
from scenarios.synthetic_recording import SyntheticRecording, write_synthetic_recording

pytestmark = pytest.mark.integration

STEP = "5s"
SNAPSHOTS = 120
#: Samples one query may load. Prometheus counts the samples a query holds: 20,000 is
#: below one raw pull of a metric (200 series x 120 points), so the pull must be split
#: in time. VictoriaMetrics counts every sample of the storage blocks a query touches
#: (here one block per series holds the whole range), which no time split gets under:
#: it gets room for one metric's blocks.
SAMPLE_LIMIT = {"prometheus": 20_000, "victoria-metrics": 100_000}
KINDS = ("prometheus", "victoria-metrics")
SCHEMES = tuple(LAG_EXPORTER_SCHEMES)


@pytest.fixture(scope="module")
def recording() -> Iterator[tuple[SyntheticRecording, pd.DataFrame]]:
    # Recent times: a fresh Prometheus head accepts samples up to an hour old.
    end = pd.Timestamp.now(tz="UTC").floor(STEP)
    start = end - pd.Timedelta(seconds=5 * (SNAPSHOTS - 1))
    with tempfile.TemporaryDirectory() as folder:
        rec = write_synthetic_recording(
            f"{folder}/rec",
            groups=20,
            partitions_per_group=10,
            snapshots=SNAPSHOTS,
            start=str(start),
            episode_every=5,
            episode_s=200,
        )
        yield rec, kbp.read_dataset(rec.path).lag


@pytest.fixture(scope="module", params=KINDS)
def store(request, recording) -> Iterator[HistoryStore]:
    _, lag = recording
    with HistoryStore(request.param, max_samples=SAMPLE_LIMIT[request.param]) as running:
        for scheme in SCHEMES:
            writer = RemoteWriter(running.write_url, scheme=scheme)
            sent = writer.write_lag(lag)
            # One log-end sample per partition and time, a lag (and a committed offset,
            # except kminion) per row.
            per_row = 2 if LAG_EXPORTER_SCHEMES[scheme].committed is None else 3
            assert sent == per_row * len(lag)
        running.flush()
        yield running


def _window(rec: SyntheticRecording) -> tuple[pd.Timestamp, pd.Timestamp]:
    return rec.start, rec.start + pd.Timedelta(seconds=rec.every_s * (rec.snapshots - 1))


def _totals_by_key(lag: pd.DataFrame) -> pd.Series:
    return lag.groupby(["group", "topic", "time"])["lag"].sum().astype("int64").sort_index()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_pushed_down_totals_equal_the_recording(store, recording, scheme) -> None:
    rec, lag = recording
    source = kbp.PrometheusSource(
        store.query_url, cluster="synthetic", max_samples=SAMPLE_LIMIT[store.kind]
    )
    start, end = _window(rec)
    totals = source.lag_totals(start, end, STEP, scheme=scheme)
    assert len(totals) == 20 * SNAPSHOTS
    got = totals.set_index(["group", "topic", "time"])["lag"].astype("int64").sort_index()
    pd.testing.assert_series_equal(got, _totals_by_key(lag), check_names=False)
    by_group = source.lag_totals(start, end, STEP, by="group", scheme=scheme)
    assert list(by_group.columns) == ["time", "cluster", "group", "lag"]
    assert int(by_group["lag"].sum()) == int(lag["lag"].sum())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_partition_pull_gives_back_the_rows_and_pushdown_moves_10x_fewer_bytes(
    store, recording, scheme
) -> None:
    rec, lag = recording
    source = kbp.PrometheusSource(
        store.query_url, cluster="synthetic", max_samples=SAMPLE_LIMIT[store.kind]
    )
    start, end = _window(rec)
    source.bytes_received = source.requests = 0
    totals = source.lag_totals(start, end, STEP, scheme=scheme)
    pushdown_bytes = source.bytes_received
    source.bytes_received = source.requests = 0
    raw = source.lag(start, end, STEP, scheme=scheme)
    raw_bytes, raw_requests = source.bytes_received, source.requests
    columns = ["time", "group", "topic", "partition", "committed_offset", "log_end_offset", "lag"]
    keys = ["group", "topic", "partition", "time"]
    expected = lag[columns].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(raw[columns].sort_values(keys).reset_index(drop=True), expected)
    assert len(totals) == 20 * SNAPSHOTS
    assert raw_bytes >= 10 * pushdown_bytes, (raw_bytes, pushdown_bytes)
    if store.kind == "prometheus":
        # The server refuses a whole metric in one query: the pull was split in time.
        assert raw_requests >= 1 + 2 * 3


def test_top_k_reads_only_the_worst_keys(store, recording) -> None:
    rec, lag = recording
    source = kbp.PrometheusSource(
        store.query_url, cluster="synthetic", max_samples=SAMPLE_LIMIT[store.kind]
    )
    start, end = _window(rec)
    worst = lag.groupby(["group", "topic", "time"])["lag"].sum().groupby(["group", "topic"]).max()
    expected = set(worst.nlargest(3).index)
    assert expected <= {(g, f"events.{g}") for g in rec.episode_groups}
    top = source.lag(start, end, STEP, top_k=3)
    assert set(zip(top["group"], top["topic"], strict=True)) == expected
    assert len(top) == 3 * 10 * SNAPSHOTS
    with pytest.raises(KbpInputError, match="top_k"):
        source.lag(start, end, STEP, top_k=0)


def test_stores_agree(recording) -> None:
    """The same exported data gives the same totals from Prometheus and VictoriaMetrics."""
    rec, lag = recording
    start, end = _window(rec)
    answers = []
    for kind in KINDS:
        with HistoryStore(kind) as running:
            RemoteWriter(running.write_url, scheme="kafka-lag-exporter").write_lag(lag)
            running.flush()
            source = kbp.PrometheusSource(running.query_url, cluster="synthetic")
            answers.append(source.lag_totals(start, end, STEP, by="group"))
    pd.testing.assert_frame_equal(answers[0], answers[1])
    assert len(answers[0]) == 20 * SNAPSHOTS
