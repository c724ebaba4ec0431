"""Snapshot of 1,000 groups over 20,000 partitions, requests per snapshot, and kbp collect memory.

Starts its own sandbox (three brokers, no Prometheus), makes ``--groups`` groups
that each committed once on their own topic of ``--partitions-per-group``
partitions (``scenarios.many_groups``; 1,000 x 20 = 20,000 partitions), then:

* times ``LagCollector.snapshot()`` (warm client) for the first 100 groups by
  name, for all groups by name, and for every group listed, and prints the
  Kafka requests each sent (they must not grow with the groups);
* with ``--collect-for 1h``, runs ``kbp collect --every 5s`` on every group as
  a separate process for that long and samples its RSS every 30 s (memory must
  stay flat).

Run: ``python benchmarks/bench_scale.py [--groups 1000] [--partitions-per-group 20]
[--collect-for 1h] [--brokers 3]``. A broker keeps one file open per
partition: 20,000 partitions on one broker pass this machine's hard limit of
20,000 open files, so the default is three brokers (about 6,700 each).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)

from kbp_notebook import LagCollector  # noqa: E402
from kbp_notebook.sandbox import Sandbox  # noqa: E402
from kbp_notebook.units import parse_duration_s  # noqa: E402
from scenarios.many_groups import make_many_groups  # noqa: E402


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _snapshot_times(collector: LagCollector, groups: list[str] | None, repeat: int) -> list[float]:
    collector.snapshot(groups)  # warm: coordinators cached
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        collector.snapshot(groups)
        seconds.append(time.perf_counter() - t0)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--partitions-per-group", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--collect-for", default=None, help="e.g. 1h: also run kbp collect")
    parser.add_argument("--every", default="5s")
    parser.add_argument(
        "--brokers",
        type=int,
        default=3,
        help="3 (default): 20,000 partitions need more open files than one process may have "
        "here (hard limit 20,000)",
    )
    args = parser.parse_args()

    partitions = args.groups * args.partitions_per_group
    # A broker keeps one file open per partition; brokers inherit our limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"# bench_scale: {args.groups} groups, {partitions} partitions "
        f"({args.partitions_per_group} per group, one topic per group), {args.brokers} broker(s)"
    )
    t0 = time.perf_counter()
    with Sandbox(
        brokers=args.brokers,
        prometheus=False,
        broker_config={"log.index.size.max.bytes": 65536, "log.segment.bytes": 1 << 20},
        start_timeout_s=300,
    ) as sb:
        layout = make_many_groups(
            sb.bootstrap_servers,
            groups=args.groups,
            partitions_per_topic=args.partitions_per_group,
        )
        print(f"setup (topics, records, one commit per group): {time.perf_counter() - t0:.0f} s")
        with LagCollector(sb.bootstrap_servers) as collector:
            rows = len(collector.snapshot())
            print(f"rows per snapshot of every group: {rows} (expected {layout.rows})")
            print("\nsnapshot (warm client), median of repeats, and requests sent:")
            cases = [
                ("first 100 groups by name", list(layout.group_ids[:100])),
                (f"all {args.groups} groups by name", list(layout.group_ids)),
                ("every group listed (groups=None)", None),
            ]
            for label, groups in cases:
                seconds = _snapshot_times(collector, groups, args.repeat)
                requests = collector.last_requests
                detail = ", ".join(f"{k} {v}" for k, v in requests.items())
                print(
                    f"  {label:<34} {statistics.median(seconds):6.2f} s "
                    f"(max {max(seconds):.2f})  {sum(requests.values())} requests ({detail})"
                )
        if args.collect_for:
            duration_s = parse_duration_s(args.collect_for, name="--collect-for")
            out = Path(tempfile.mkdtemp(prefix="kbp-bench-scale-")) / "rec"
            cmd = [
                sys.executable, "-W", "ignore", "-m", "kbp_notebook.cli", "collect",
                "--bootstrap-server", sb.bootstrap_servers, "--every", args.every,
                "--duration", f"{duration_s}s", "--out", str(out), "--no-progress",
            ]  # fmt: skip
            print(f"\nkbp collect --every {args.every} for {duration_s:.0f} s; RSS (MiB):")
            proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
            samples: list[tuple[float, float]] = []
            started = time.monotonic()
            while proc.poll() is None:
                time.sleep(30)
                if proc.poll() is None:
                    elapsed = time.monotonic() - started
                    samples.append((elapsed, _rss_mib(proc.pid)))
                    print(f"  {elapsed / 60:5.1f} min  {samples[-1][1]:7.1f}", flush=True)
            _, err = proc.communicate()
            print("  " + err.strip().splitlines()[-1] if err.strip() else "")
            if len(samples) >= 4:
                tenth = max(1, len(samples) // 10)
                first = statistics.median(r for _, r in samples[tenth : 2 * tenth])
                last = statistics.median(r for _, r in samples[-tenth:])
                print(
                    f"  RSS median, 2nd tenth of the run: {first:.1f} MiB; last tenth: "
                    f"{last:.1f} MiB; growth {last - first:+.1f} MiB; peak "
                    f"{max(r for _, r in samples):.1f} MiB"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
