"""Long run, CI size: 1,000 partitions in 2 groups recorded for 30 s, memory stays flat.

The full-scale run (5,000 partitions for minutes, with drift and bytes per
sample) is ``benchmarks/long_run.py``; this test runs the same code smaller
so CI keeps the property: every snapshot is complete, and resident memory
after warm-up does not grow with the number of snapshots taken.
"""

from __future__ import annotations

import threading

import pytest

from benchmarks.long_run import long_run, produce, setup_cluster
from tests.helpers.reliability import FIGURES, unique

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS, PARTITIONS, GROUPS = 4, 250, 2


def test_recording_a_thousand_partitions_keeps_memory_flat(sandbox, tmp_path) -> None:
    prefix = unique("rel-long")
    bootstrap = sandbox.bootstrap_servers
    group_ids = setup_cluster(bootstrap, TOPICS, PARTITIONS, GROUPS, prefix=prefix)
    stop = threading.Event()
    writer = threading.Thread(
        target=produce, args=(bootstrap, TOPICS, PARTITIONS, stop, prefix), daemon=True
    )
    writer.start()
    try:
        figures = long_run(
            bootstrap, group_ids, tmp_path / "rec", every_s=1.0, duration_s=30.0,
            expected_rows=TOPICS * PARTITIONS,
        )  # fmt: skip
    finally:
        stop.set()
        writer.join(timeout=60)
    for line in figures.lines():
        FIGURES[f"long run (CI size): {line[:24].strip()}"] = line[24:].strip()
    assert figures.partitions == TOPICS * PARTITIONS
    assert figures.snapshots >= 10
    assert figures.complete_snapshots == figures.snapshots, "a snapshot missed partitions"
    # flat: no growth with the number of snapshots beyond allocator noise
    assert figures.rss_end_mb - figures.rss_warm_mb < 40, figures.lines()
    assert figures.bytes_per_sample < 64  # zstd parquet: a few bytes per row, not CSV-sized
