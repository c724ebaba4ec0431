"""LagCollector on many groups (CI size: 100 groups over 2,000 partitions) on a real broker.

Its own one-broker sandbox (no Prometheus), so the 100 groups do not show up in
other tests' "all groups" snapshots. The groups commit once through the admin
API (``scenarios.many_groups``); every row's lag is known in advance. The full
size (1,000 groups over 20,000 partitions) is ``benchmarks/bench_scale.py``.
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from collections.abc import Iterator

import pandas as pd
import pytest
from kafka import KafkaConsumer

import kbp_notebook as kbp
from kbp_notebook import LagCollector
from kbp_notebook.collect import _recorder
from kbp_notebook.collect.cli import collect_main
from kbp_notebook.errors import KbpInputError
from kbp_notebook.history_sandbox import HistoryStore
from kbp_notebook.sandbox import Sandbox
from scenarios.many_groups import ManyGroups, make_many_groups
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUPS = 100
PARTITIONS_PER_TOPIC = 20


@pytest.fixture(scope="module")
def scale() -> Iterator[tuple[Sandbox, ManyGroups]]:
    sb = Sandbox(
        brokers=1, prometheus=False, broker_config={"log.index.size.max.bytes": 65536}
    ).start()
    try:
        layout = make_many_groups(
            sb.bootstrap_servers, groups=GROUPS, partitions_per_topic=PARTITIONS_PER_TOPIC
        )
        yield sb, layout
    finally:
        sb.stop()


def test_snapshot_of_every_group_is_exact(scale: tuple[Sandbox, ManyGroups]) -> None:
    sb, layout = scale
    with LagCollector(sb.bootstrap_servers, cluster="scale") as collector:
        frame = collector.snapshot()
    assert len(frame) == layout.rows == GROUPS * PARTITIONS_PER_TOPIC
    assert frame["group"].nunique() == GROUPS
    index = frame["group"].str.slice(-5).astype(int)
    expected = [
        layout.expected_lag(i, p)
        for i, p in zip(index.tolist(), frame["partition"].tolist(), strict=True)
    ]
    assert frame["lag"].tolist() == expected
    assert (frame["topic"] == [layout.topic_of(i) for i in index]).all()


def test_requests_per_snapshot_do_not_grow_with_groups(scale: tuple[Sandbox, ManyGroups]) -> None:
    sb, layout = scale
    counts = {}
    with LagCollector(sb.bootstrap_servers) as collector:
        collector.snapshot(list(layout.group_ids))  # finds and caches the coordinators
        for n in (10, 50, GROUPS):
            frame = collector.snapshot(list(layout.group_ids[:n]))
            assert len(frame) == n * PARTITIONS_PER_TOPIC
            counts[n] = collector.last_requests
        collector.snapshot()
        listed = collector.last_requests
    # One OffsetFetch and one DescribeGroups for all groups (one coordinator), one
    # ListOffsets per leader and offset kind (log end, log start): the same at 10 and 100.
    assert counts[10] == counts[50] == counts[GROUPS]
    assert counts[GROUPS]["OffsetFetch"] == 1
    assert counts[GROUPS]["DescribeGroups"] == 1
    assert counts[GROUPS]["ListOffsets"] == 2
    assert sum(counts[GROUPS].values()) <= 8
    # Listing every group adds one ListGroups per broker, nothing per group.
    assert listed == {**counts[GROUPS], "ListGroups": 1}


def test_pattern_cap_and_skip_empty(scale: tuple[Sandbox, ManyGroups]) -> None:
    sb, layout = scale
    bootstrap = sb.bootstrap_servers
    with LagCollector(bootstrap, group_pattern=r"-0000\d$") as collector:
        assert sorted(collector.snapshot()["group"].unique()) == list(layout.group_ids[:10])
        assert collector.last_problems == []
    with LagCollector(bootstrap, group_pattern=r"^scale-group-000", max_groups=7) as collector:
        frame = collector.snapshot()
        assert sorted(frame["group"].unique()) == list(layout.group_ids[:7])
        notices = [text for kind, text in collector.last_problems if kind == "collector_notice"]
        assert len(notices) == 1 and "100 groups match" in notices[0]
        assert "'scale-group-00007'" in notices[0]
    with pytest.raises(KbpInputError, match="group_pattern"):
        LagCollector(bootstrap, group_pattern="(unclosed")

    # One group with a live member; every other group is Empty.
    live_group = "scale-live-member"
    consumer = KafkaConsumer(
        layout.topics[0],
        bootstrap_servers=bootstrap,
        group_id=live_group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            consumer.poll(timeout_ms=100)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        with LagCollector(bootstrap, skip_empty_groups=True) as collector:
            deadline = time.monotonic() + 60
            groups: list[str] = []
            while time.monotonic() < deadline:
                groups = sorted(collector.snapshot()["group"].unique())
                if groups == [live_group]:
                    break
                time.sleep(0.5)
            assert groups == [live_group]
        with LagCollector(bootstrap) as collector:
            assert collector.snapshot()["group"].nunique() == GROUPS + 1
    finally:
        stop.set()
        thread.join(10)
        consumer.close()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_recording_memory_is_flat(
    scale: tuple[Sandbox, ManyGroups], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RSS over snapshots 50-60 of a 5 s schedule is within 6 MiB of snapshots 15-25.

    Keeping one snapshot's frame (2,000 rows) per interval would add about 12 MiB
    over those 35 snapshots.
    """
    sb, layout = scale
    rss: list[int] = []
    # The schedule runs on a clock that only sleeping moves, so no tick is skipped
    # however slow a snapshot is on a loaded machine: 60 snapshots back to back.
    clock = [0.0]

    def fake_sleep(seconds: float) -> None:
        clock[0] += seconds

    monkeypatch.setattr(_recorder, "_monotonic", lambda: clock[0])
    monkeypatch.setattr(_recorder, "_sleep", fake_sleep)
    with LagCollector(sb.bootstrap_servers) as collector:
        original = collector.snapshot

        def measured(groups=None, **options):  # type: ignore[no-untyped-def]
            frame = original(groups, **options)
            gc.collect()
            rss.append(_rss_bytes())
            return frame

        collector.snapshot = measured  # type: ignore[method-assign]
        collector.record(
            tmp_path / "rec", every="5s", duration=60 * 5, progress=False, read_back=False
        )
        stats = collector.last_recording
    assert stats is not None and stats.snapshots == len(rss) == 60
    assert stats.rows == 60 * layout.rows
    early = statistics.median(rss[15:25])
    late = statistics.median(rss[50:60])
    assert late - early < 6 * 2**20, f"RSS grew {(late - early) / 2**20:.1f} MiB"


def _stored_totals(source: kbp.PrometheusSource, when: object) -> dict[str, int]:
    """Total lag per group the store holds at ``when``.

    VictoriaMetrics makes samples searchable about a second after a write, even
    after ``force_flush`` (longer on a loaded machine), so the tick is read again
    until it appears.
    """
    found: list[pd.DataFrame] = []

    def arrived() -> bool:
        found[:] = [source.lag_totals(when, when, "1s", by="group", scheme="kminion")]
        return bool(len(found[0]))

    wait_until(arrived, timeout_s=30.0, what=f"the store to show the tick at {when}")
    stored = found[0]
    return dict(zip(stored["group"], stored["lag"].astype(int), strict=True))


def test_kbp_collect_remote_writes_what_it_records(
    scale: tuple[Sandbox, ManyGroups], tmp_path
) -> None:
    """``kbp collect --remote-write`` into real VictoriaMetrics: the store holds the recording."""
    sb, layout = scale
    out = tmp_path / "rec"
    with HistoryStore("victoria-metrics") as store:
        code = collect_main(
            [
                "--bootstrap-server", sb.bootstrap_servers, "--cluster", "scale",
                r"--group-pattern=-000[0-4]\d$", "--max-groups", "40",
                "--every", "1s", "--duration", "3s", "--out", str(out), "--no-progress",
                "--remote-write", store.write_url, "--remote-write-names", "kminion",
            ]
        )  # fmt: skip
        assert code == 0
        store.flush()
        recorded = kbp.read_dataset(out)
        assert recorded.lag["group"].nunique() == 40
        # Three ticks; a loaded machine may skip late ones, never invent rows.
        assert 1 <= recorded.lag["time"].nunique() <= 3
        assert recorded.meta["group_selection"] == {
            "pattern": r"-000[0-4]\d$",
            "skip_empty": False,
            "max_groups": 40,
        }
        source = kbp.PrometheusSource(store.query_url, cluster="scale")
        times = sorted(recorded.lag["time"].unique())
        for when in times:
            expected = recorded.lag[recorded.lag["time"] == when].groupby("group")["lag"].sum()
            assert _stored_totals(source, when) == {g: int(v) for g, v in expected.items()}
    assert not [e for e in recorded.events["kind"] if e == "remote_write_error"]
