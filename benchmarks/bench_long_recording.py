"""Incidents + trend + drain over a day of 5-second snapshots of 5,000 partitions (86M rows).

Writes a synthetic recording (``scenarios.synthetic_recording``: 50 groups x
100 partitions x 17,280 snapshots, every 10th group has a consumer slowdown)
to a folder under /tmp unless it exists, then runs each analysis through
``kbp.analyse_recording`` (a chunk of whole groups at a time, filters pushed
into Parquet) in a fresh child process per analysis, and reports wall time
and the child's peak RSS (``ru_maxrss``). The target is a peak under 3 GB.

Run: ``python benchmarks/bench_long_recording.py [--out /tmp/kbp-86m] [--groups 50]
[--partitions-per-group 100] [--snapshots 17280] [--max-rows 5000000]``.
Delete the folder afterwards (about 2 GB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
import kbp_notebook as kbp
path, name, max_rows, columns = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
analysis = getattr(kbp, name)
chunks = []
t0 = time.perf_counter()
result = kbp.analyse_recording(path, analysis, max_rows=max_rows, columns=columns,
                               progress=lambda i, n, g: chunks.append(n))
seconds = time.perf_counter() - t0
table = getattr(result, "episodes", None)
if table is None:
    table = result.table
print(json.dumps({
    "analysis": name, "seconds": seconds, "chunks": chunks[0] if chunks else 0,
    "rows_out": int(len(table)),
    "groups_out": sorted(map(str, table["group"].unique())) if "group" in table else [],
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/kbp-bench-86m")
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--partitions-per-group", type=int, default=100)
    parser.add_argument("--snapshots", type=int, default=17_280)
    parser.add_argument("--snapshots-per-part", type=int, default=60)
    parser.add_argument("--max-rows", type=int, default=5_000_000)
    parser.add_argument("--columns", default=None, help='JSON list, e.g. "[]" (default: all)')
    parser.add_argument(
        "--analyses", default="lag_trend,time_to_drain,incidents", help="comma-separated"
    )
    args = parser.parse_args()

    out = Path(args.out)
    rows = args.groups * args.partitions_per_group * args.snapshots
    if not (out / "meta.json").exists():
        from scenarios.synthetic_recording import write_synthetic_recording

        t0 = time.perf_counter()
        rec = write_synthetic_recording(
            out,
            groups=args.groups,
            partitions_per_group=args.partitions_per_group,
            snapshots=args.snapshots,
            snapshots_per_part=args.snapshots_per_part,
        )
        took = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"wrote {rec.rows:,} rows in {took:.0f} s (writer peak RSS {peak:.0f} MiB)")
    size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    parts = len(list((out / "lag").glob("part-*.parquet")))
    print(
        f"# bench_long_recording: {rows:,} rows ({args.groups} groups x "
        f"{args.partitions_per_group} partitions x {args.snapshots} snapshots), "
        f"{parts} parts, {size / 2**30:.2f} GiB on disk; max_rows {args.max_rows:,}, "
        f"columns {args.columns or 'all'}"
    )
    columns = args.columns if args.columns is not None else "null"
    for name in args.analyses.split(","):
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(out), name, str(args.max_rows), columns],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"  {name}: FAILED\n{proc.stderr[-3000:]}")
            continue
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"  {name:<14} {figures['seconds']:7.0f} s  peak RSS "
            f"{figures['peak_rss_mib'] / 1024:5.2f} GiB  ({figures['chunks']} chunks, "
            f"{figures['rows_out']} result rows)"
            + (
                f"; groups of the episodes: {', '.join(figures['groups_out'])}"
                if name == "incidents"
                else ""
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
