"""Snapshot speed and request count: kbp vs the official kafka-consumer-groups tool.

Starts its own one-broker sandbox, creates 50 consumer groups each committed on
64 partitions (4 topics x 16), then measures in the same run:

* ``kbp collect`` as a whole process (one interval: start Python, connect,
  snapshot, write a Dataset part),
* ``LagCollector.snapshot()`` in-process (connected, warm) and cold (connect +
  first snapshot),
* ``kafka-consumer-groups --describe --all-groups`` as a whole process (JVM),

and prints the ratios against the official tool. It also counts the requests
one snapshot sends by wrapping the admin client's send path, for 5, 10, 25 and
50 groups, to show the count does not grow with the number of groups.

Run: ``python -m benchmarks.bench_snapshot [--groups 50] [--partitions 64] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

from kbp_notebook import LagCollector  # noqa: E402
from kbp_notebook.sandbox import Sandbox  # noqa: E402


def setup(bootstrap: str, groups: int, partitions: int) -> list[str]:
    topics = {f"bench-t{i}": partitions // 4 for i in range(4)}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, n, 1) for name, n in topics.items()])
    deadline = time.monotonic() + 60
    while not set(topics) <= set(admin.list_topics()) and time.monotonic() < deadline:
        time.sleep(0.2)
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for name, n in topics.items():
        for partition in range(n):
            for _ in range(20):
                producer.send(name, b"x", partition=partition)
    producer.flush()
    producer.close()
    group_ids = [f"bench-group-{g:02d}" for g in range(groups)]
    for index, group in enumerate(group_ids):
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
        consumer.commit(
            {
                TopicPartition(name, p): OffsetAndMetadata((index + p) % 20, "", -1)
                for name, n in topics.items()
                for p in range(n)
            }
        )
        consumer.close()
    return group_ids


def timed(fn, repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return seconds


def count_requests(collector: LagCollector, groups: list[str] | None) -> collections.Counter:
    admin = collector._admin_client()
    manager = admin._manager
    original = manager.send
    counts: collections.Counter = collections.Counter()

    def counting(request, *args, **kwargs):
        counts[type(request).__name__.removesuffix("Request")] += 1
        return original(request, *args, **kwargs)

    manager.send = counting
    try:
        collector.snapshot(groups)
    finally:
        manager.send = original
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"# bench_snapshot: {args.groups} groups x {args.partitions} partitions, 1 broker")
    with Sandbox(brokers=1, prometheus=False) as sb:
        bootstrap = sb.bootstrap_servers
        group_ids = setup(bootstrap, args.groups, args.partitions)

        with LagCollector(bootstrap) as collector:
            rows = len(collector.snapshot())
            expected = args.groups * args.partitions
            print(f"rows per snapshot: {rows} (expected {expected})")
            collector.snapshot()  # warm
            warm = timed(collector.snapshot, args.repeat * 4)

            print("\nrequests sent by one snapshot (warm client, coordinators cached):")
            totals = {}
            for n in (5, 10, 25, args.groups):
                counts = count_requests(collector, group_ids[:n])
                totals[n] = sum(counts.values())
                detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                print(f"  {n:>3} groups (named): {totals[n]:>2} requests  ({detail})")
            all_counts = count_requests(collector, None)
            detail = ", ".join(f"{k} {v}" for k, v in sorted(all_counts.items()))
            print(f"  all groups (listed): {sum(all_counts.values()):>2} requests  ({detail})")
            grows = totals[args.groups] > totals[5]
            print(f"  request count grows with groups: {'YES' if grows else 'no'}")

        def cold() -> None:
            with LagCollector(bootstrap) as fresh:
                fresh.snapshot()

        cold_s = timed(cold, args.repeat)

        tmp = Path(tempfile.mkdtemp(prefix="kbp-bench-"))
        runs = iter(range(10_000))

        def kbp_process() -> None:
            out = tmp / f"run-{next(runs)}"
            subprocess.run(
                [sys.executable, "-W", "ignore", "-m", "kbp_notebook.cli", "collect",
                 "--bootstrap-server", bootstrap, "--every", "1s", "--duration", "1s",
                 "--out", str(out), "--no-progress"],
                check=True, capture_output=True,
            )  # fmt: skip

        process_s = timed(kbp_process, args.repeat)

        def tool() -> None:
            result = sb.consumer_groups("--describe", "--all-groups")
            if result.returncode != 0 or "bench-group-00" not in result.stdout:
                raise RuntimeError(f"official tool failed: {result.stderr[-500:]}")

        tool_s = timed(tool, args.repeat)

    med = statistics.median
    print("\nmedian wall time (s):")
    print(f"  kafka-consumer-groups --describe --all-groups (process): {med(tool_s):8.3f}")
    print(f"  kbp collect, one interval (process):                      {med(process_s):8.3f}")
    print(f"  LagCollector connect + snapshot (in-process, cold):       {med(cold_s):8.3f}")
    print(f"  LagCollector.snapshot() (in-process, warm):               {med(warm):8.3f}")
    print("\nratios (official tool time / kbp time; >1 means kbp is faster):")
    print(f"  kbp process vs tool process: {med(tool_s) / med(process_s):6.1f}x")
    print(f"  kbp in-process cold vs tool: {med(tool_s) / med(cold_s):6.1f}x")
    print(f"  kbp in-process warm vs tool: {med(tool_s) / med(warm):6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
