"""Snapshot of 1,000 groups over 20,000 partitions, requests per snapshot, and kbp collect memory.

Starts its own sandbox (three brokers, no Prometheus), makes ``--groups`` groups
that each committed once on their own topic of ``--partitions-per-group``
partitions (``scenarios.many_groups``; 1,000 x 20 = 20,000 partitions), then:

* times ``LagCollector.snapshot()`` (warm client) for the first 100 groups by
  name, for all groups by name, and for every group listed, and prints the
  Kafka requests each sent (they must not grow with the groups);
* times the official ``kafka-consumer-groups --describe --all-groups`` (from
  the jars, a JVM per run) on the same cluster, as the reference;
* with ``--collect-for 1h``, runs ``kbp collect --every 30s`` on every group as
  a separate process for that long (``--collect-end-by`` caps it at a UTC
  time) and samples its VmRSS every minute (memory must stay flat).

Groups commit offset 0 on empty partitions by default (``--records 0``): lag
values do not change what a snapshot costs, and producing to 20,000 partitions
one by one is what made the last attempt miss its deadline.

Run: ``python benchmarks/bench_scale.py [--groups 1000] [--partitions-per-group 20]
[--collect-for 1h] [--brokers 3]``; ``--groups 100`` is a few-minute check.
A broker keeps one file open per partition: 20,000 partitions on one broker
pass this machine's hard limit of 20,000 open files, so the default is three
brokers (about 6,700 each).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
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


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def _snapshot_times(collector: LagCollector, groups: list[str] | None, repeat: int) -> list[float]:
    collector.snapshot(groups)  # warm: coordinators cached
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        collector.snapshot(groups)
        seconds.append(time.perf_counter() - t0)
    return seconds


def _spread(seconds: list[float]) -> str:
    return (
        f"median {statistics.median(seconds):.2f} s (min {min(seconds):.2f}, "
        f"max {max(seconds):.2f}, {len(seconds)} runs)"
    )


def _official_tool_times(sb: Sandbox, repeat: int) -> tuple[list[float], int]:
    """Wall time of ``kafka-consumer-groups --describe --all-groups`` (JVM start included)."""
    seconds = []
    rows = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = sb.consumer_groups("--describe", "--all-groups", timeout_s=900)
        seconds.append(time.perf_counter() - t0)
        rows = sum(
            1
            for line in proc.stdout.splitlines()
            if line.strip() and not line.startswith("GROUP") and len(line.split()) >= 6
        )
    return seconds, rows


def _slope_mib_per_h(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time."""
    t = [s / 3600 for s, _ in samples]
    r = [rss for _, rss in samples]
    t_mean, r_mean = statistics.fmean(t), statistics.fmean(r)
    den = sum((x - t_mean) ** 2 for x in t)
    return sum((x - t_mean) * (y - r_mean) for x, y in zip(t, r, strict=True)) / den


def _collect(sb: Sandbox, args: argparse.Namespace) -> None:
    duration_s = parse_duration_s(args.collect_for, name="--collect-for")
    if args.collect_end_by:
        end_by = dt.datetime.fromisoformat(args.collect_end_by).replace(tzinfo=dt.UTC)
        left = (end_by - dt.datetime.now(dt.UTC)).total_seconds()
        duration_s = max(60.0, min(duration_s, left))
    out = Path(tempfile.mkdtemp(prefix="kbp-bench-scale-")) / "rec"
    log = out.parent / "collect.stderr"
    cmd = [
        sys.executable, "-W", "ignore", "-m", "kbp_notebook.cli", "collect",
        "--bootstrap-server", sb.bootstrap_servers, "--every", args.every,
        "--duration", f"{duration_s:.0f}s", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    print(
        f"\nkbp collect --every {args.every} for {duration_s:.0f} s into {out} "
        f"(started {dt.datetime.now(dt.UTC):%H:%M:%S} UTC); VmRSS (MiB) every "
        f"{args.sample_every:g} s:",
        flush=True,
    )
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stderr=err, text=True)
        print(f"  collector pid {proc.pid}", flush=True)
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        while proc.poll() is None:
            time.sleep(args.sample_every)
            if proc.poll() is None:
                elapsed = time.monotonic() - started
                samples.append((elapsed, _rss_mib(proc.pid)))
                print(f"  {elapsed / 60:5.1f} min  {samples[-1][1]:7.1f}  ({_load()})", flush=True)
    print(
        f"  exit code {proc.returncode}; stderr tail: "
        + " | ".join(log.read_text().splitlines()[-3:])
    )
    snapshots = sum(1 for _ in out.rglob("*.parquet"))
    print(f"  parquet parts written: {snapshots}")
    if len(samples) >= 4:
        rss = [r for _, r in samples]
        tenth = max(1, len(samples) // 10)
        warm = samples[tenth:]
        print(
            f"  RSS first {rss[0]:.1f} MiB, last {rss[-1]:.1f} MiB, peak {max(rss):.1f} MiB; "
            f"median of 2nd tenth {statistics.median(rss[tenth : 2 * tenth]):.1f}, of last "
            f"tenth {statistics.median(rss[-tenth:]):.1f}; slope after the first tenth "
            f"{_slope_mib_per_h(warm):+.1f} MiB/h (whole run {_slope_mib_per_h(samples):+.1f})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--partitions-per-group", type=int, default=20)
    parser.add_argument(
        "--records",
        type=int,
        default=0,
        help="records per partition (default 0: groups commit offset 0; a snapshot costs "
        "the same whatever the lag)",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--tool-repeat", type=int, default=3, help="runs of kafka-consumer-groups (0: skip)"
    )
    parser.add_argument("--collect-for", default=None, help="e.g. 1h: also run kbp collect")
    parser.add_argument(
        "--collect-end-by", default=None, help="UTC time (ISO) the collect run must end by"
    )
    parser.add_argument("--every", default="30s", help="kbp collect's interval")
    parser.add_argument("--sample-every", type=float, default=60.0, help="RSS sampling, s")
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
        f"({args.partitions_per_group} per group, one topic per group, {args.records} records "
        f"each), {args.brokers} broker(s); {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{_load()}",
        flush=True,
    )
    t0 = time.perf_counter()
    with Sandbox(
        brokers=args.brokers,
        prometheus=False,
        broker_config={"log.index.size.max.bytes": 65536, "log.segment.bytes": 1 << 20},
        start_timeout_s=300,
    ) as sb:
        print(f"sandbox up: {time.perf_counter() - t0:.0f} s", flush=True)
        layout = make_many_groups(
            sb.bootstrap_servers,
            groups=args.groups,
            partitions_per_topic=args.partitions_per_group,
            records=args.records,
        )
        print(
            f"setup (sandbox, topics, one commit per group): {time.perf_counter() - t0:.0f} s "
            f"({_load()})",
            flush=True,
        )
        with LagCollector(sb.bootstrap_servers) as collector:
            rows = len(collector.snapshot())
            print(f"rows per snapshot of every group: {rows} (expected {layout.rows})")
            print("\nsnapshot (warm client) and requests sent:", flush=True)
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
                    f"  {label:<34} {_spread(seconds)}  {sum(requests.values())} requests "
                    f"({detail})  [{_load()}]",
                    flush=True,
                )
        if args.tool_repeat:
            seconds, tool_rows = _official_tool_times(sb, args.tool_repeat)
            print(
                f"  kafka-consumer-groups --describe --all-groups (official tool, a JVM each "
                f"run): {_spread(seconds)}, {tool_rows} rows  [{_load()}]",
                flush=True,
            )
        if args.collect_for:
            _collect(sb, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
