"""Long run at scale: a recording of >= 5,000 partitions for minutes; memory, drift, bytes.

Starts its own one-broker sandbox (small segments), creates ``topics`` x
``partitions`` partitions, and ``groups`` consumer groups, each committed on a
slice of the topics (every partition is watched by one group), with a
producer writing to a sample of partitions during the run. Then it records
with ``LagCollector.record`` in this process and measures, in the same run:

* peak RSS of this process, and RSS growth between the end of the first
  quarter (warm: imports, connections and first parts done) and the end;
* schedule drift: each snapshot's offset from its grid slot
  ``start + k * every`` (the recorder is drift-free by construction: a late
  snapshot skips the ticks it missed), fitted as a slope in seconds per hour,
  plus the largest lateness and how many ticks were skipped;
* bytes on disk per sample (one row = one group/partition at one time) and
  per snapshot, and the mean time one snapshot of all partitions takes.

Run: ``python -m benchmarks.long_run [--topics 10] [--partitions 500] [--groups 5]
[--every 5s] [--duration 180s]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class LongRunFigures:
    """What a long run measured."""

    partitions: int
    groups: int
    snapshots: int
    rows: int
    every_s: float
    duration_s: float
    peak_rss_mb: float
    rss_warm_mb: float
    rss_end_mb: float
    drift_s_per_hour: float
    max_lateness_s: float
    skipped_ticks: int
    bytes_per_sample: float
    bytes_per_snapshot: float
    mean_snapshot_s: float
    complete_snapshots: int

    def lines(self) -> list[str]:
        return [
            f"partitions watched        {self.partitions:,} in {self.groups} groups",
            f"snapshots / rows          {self.snapshots} / {self.rows:,}"
            f" ({self.complete_snapshots} complete)",
            f"every / duration          {self.every_s:g} s / {self.duration_s:g} s",
            f"peak RSS                  {self.peak_rss_mb:.0f} MB",
            f"RSS early -> late         {self.rss_warm_mb:.0f} MB -> {self.rss_end_mb:.0f} MB "
            f"({self.rss_end_mb - self.rss_warm_mb:+.0f} MB; max over 0-25 % and 60-90 % of "
            f"the schedule, before the final read-back)",
            f"schedule drift            {self.drift_s_per_hour:+.3f} s per hour "
            f"(max lateness {self.max_lateness_s:.2f} s, {self.skipped_ticks} ticks skipped)",
            f"bytes per sample          {self.bytes_per_sample:.2f} B "
            f"({self.bytes_per_snapshot / 1024:.0f} KiB per snapshot)",
            f"mean snapshot time        {self.mean_snapshot_s:.2f} s",
        ]


def setup_cluster(
    bootstrap: str, topics: int, partitions: int, groups: int, *, prefix: str = "long-run"
) -> list[str]:
    """Create the topics and groups (commits without joining); return the group ids."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.structs import OffsetAndMetadata

    names = [f"{prefix}-t{i}" for i in range(topics)]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=120_000)
    admin.create_topics([NewTopic(n, partitions, 1) for n in names], timeout_ms=120_000)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        described = admin.describe_topics(names)
        led = sum(1 for t in described for p in t["partitions"] if p["leader_id"] >= 0)
        if led == topics * partitions:
            break
        time.sleep(1)
    admin.close()
    group_ids = [f"{prefix}-g{g}" for g in range(groups)]
    for g, group in enumerate(group_ids):
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                 enable_auto_commit=False)  # fmt: skip
        mine = [TopicPartition(n, p) for n in names[g::groups] for p in range(partitions)]
        for start in range(0, len(mine), 250):
            chunk = mine[start : start + 250]
            consumer.commit({tp: OffsetAndMetadata(0, "", -1) for tp in chunk}, timeout_ms=120_000)
        consumer.close(autocommit=False)
    return group_ids


def produce(
    bootstrap: str, topics: int, partitions: int, stop: threading.Event, prefix: str = "long-run"
) -> None:
    """Write to a random sample of partitions until ``stop`` (lag moves on some of them)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    rng = random.Random(7)
    while not stop.is_set():
        for _ in range(200):
            producer.send(f"{prefix}-t{rng.randrange(topics)}", value=b"x" * 64,
                          partition=rng.randrange(partitions))  # fmt: skip
        stop.wait(0.5)
    producer.flush(timeout=30)
    producer.close()


def long_run(
    bootstrap: str,
    group_ids: list[str],
    out: Path,
    *,
    every_s: float,
    duration_s: float,
    expected_rows: int,
) -> LongRunFigures:
    """Record, sampling RSS every 0.5 s; return the figures."""
    from kbp_notebook.collect.kafka_lag import LagCollector
    from kbp_notebook.collect.storage import read_dataset

    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample_rss() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), rss_bytes()))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    with LagCollector(bootstrap, cluster="long-run", request_timeout_ms=60_000) as collector:
        durations = []
        for _ in range(3):
            tick = time.monotonic()
            collector.snapshot(group_ids)
            durations.append(time.monotonic() - tick)
        record_started = time.monotonic()
        # record() reads the whole folder back at the end: RSS after the last tick is that
        # read-back, not the recorder, so "late" is taken over 60-90 % of the schedule.
        collector.record(out, every=every_s, duration=duration_s, groups=group_ids,
                         progress=False)  # fmt: skip
    stop.set()
    sampler.join()
    dataset = read_dataset(out)
    lag = dataset.lag
    times = np.sort(lag["time"].unique())
    t = (pd.Series(times) - times[0]).dt.total_seconds().to_numpy()
    slots = np.round(t / every_s)
    lateness = t - slots * every_s
    drift = float(np.polyfit(t, lateness, 1)[0] * 3600) if len(t) > 2 else float("nan")
    counts = lag.groupby("time").size()
    bytes_on_disk = sum(p.stat().st_size for p in (out / "lag").glob("part-*.parquet"))
    rss = np.array([r for _, r in samples], dtype=float)
    at = np.array([m for m, _ in samples]) - record_started
    warm_mask = at <= duration_s / 4
    end_mask = (at >= 0.6 * duration_s) & (at <= 0.9 * duration_s)
    warm = rss[warm_mask].max() if warm_mask.any() else rss[0]
    end = rss[end_mask].max() if end_mask.any() else rss[-1]
    return LongRunFigures(
        partitions=int(lag.drop_duplicates(["topic", "partition"]).shape[0]),
        groups=len(group_ids),
        snapshots=len(times),
        rows=len(lag),
        every_s=every_s,
        duration_s=duration_s,
        peak_rss_mb=float(rss.max()) / 2**20,
        rss_warm_mb=float(warm) / 2**20,
        rss_end_mb=float(end) / 2**20,
        drift_s_per_hour=drift,
        max_lateness_s=float(lateness.max()),
        skipped_ticks=int(slots[-1] + 1 - len(slots)),
        bytes_per_sample=bytes_on_disk / max(len(lag), 1),
        bytes_per_snapshot=bytes_on_disk / max(len(times), 1),
        mean_snapshot_s=float(np.mean(durations)),
        complete_snapshots=int((counts == expected_rows).sum()),
    )


def main() -> int:
    from kbp_notebook.sandbox import Sandbox
    from kbp_notebook.units import parse_duration_s

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=500)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--every", default="5s")
    parser.add_argument("--duration", default="180s")
    args = parser.parse_args()
    every_s = parse_duration_s(args.every, name="--every")
    duration_s = parse_duration_s(args.duration, name="--duration")
    total = args.topics * args.partitions
    print(f"# long_run: {args.topics} topics x {args.partitions} partitions = {total:,}, "
          f"{args.groups} groups, every {every_s:g} s for {duration_s:g} s")  # fmt: skip
    config = {"log.segment.bytes": 1_048_576, "log.index.size.max.bytes": 65_536,
              "num.partitions": 1}  # fmt: skip
    with Sandbox(brokers=1, prometheus=False, broker_config=config) as sb:
        t0 = time.monotonic()
        group_ids = setup_cluster(sb.bootstrap_servers, args.topics, args.partitions, args.groups)
        print(f"setup (topics + commits)  {time.monotonic() - t0:.0f} s")
        stop = threading.Event()
        writer = threading.Thread(
            target=produce, args=(sb.bootstrap_servers, args.topics, args.partitions, stop),
            daemon=True,
        )
        writer.start()
        with tempfile.TemporaryDirectory() as tmp:
            figures = long_run(
                sb.bootstrap_servers, group_ids, Path(tmp) / "rec",
                every_s=every_s, duration_s=duration_s, expected_rows=total,
            )  # fmt: skip
        stop.set()
        writer.join(timeout=60)
    for line in figures.lines():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
