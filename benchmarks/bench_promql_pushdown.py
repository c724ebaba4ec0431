"""PromQL pushdown vs pulling every partition, on real Prometheus and VictoriaMetrics.

Pushes a synthetic recording (``--groups`` x ``--partitions-per-group``
partitions, ``--snapshots`` at 5 s, ending now) into each store with
``RemoteWriter`` (kafka_exporter names), then times and counts the bytes of

* ``lag_totals(by=("group", "topic"))`` -- the server sums (``sum by``);
* ``lag(top_k=5)`` -- totals first, then the partitions of the 5 worst keys;
* ``lag()`` -- every partition's committed and log-end offsets,

and checks that the pushed-down totals equal the totals of the raw pull.

Run: ``python -m benchmarks.bench_promql_pushdown [--groups 100] [--partitions-per-group 50]
[--snapshots 120]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import pandas as pd

import kbp_notebook as kbp
from kbp_notebook.collect.remote_write import RemoteWriter
from kbp_notebook.history_sandbox import HistoryStore
from scenarios.synthetic_recording import write_synthetic_recording


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--partitions-per-group", type=int, default=50)
    parser.add_argument("--snapshots", type=int, default=120)
    args = parser.parse_args()

    end = pd.Timestamp.now(tz="UTC").floor("5s")
    start = end - pd.Timedelta(seconds=5 * (args.snapshots - 1))
    partitions = args.groups * args.partitions_per_group
    print(
        f"# bench_promql_pushdown: {args.groups} groups, {partitions} partitions, "
        f"{args.snapshots} snapshots at 5 s (kafka_exporter names)"
    )
    with tempfile.TemporaryDirectory() as folder:
        write_synthetic_recording(
            f"{folder}/rec",
            groups=args.groups,
            partitions_per_group=args.partitions_per_group,
            snapshots=args.snapshots,
            start=str(start),
            snapshots_per_part=args.snapshots,
        )
        lag = kbp.read_dataset(f"{folder}/rec").lag
    for kind in ("prometheus", "victoria-metrics"):
        with HistoryStore(kind) as store:
            writer = RemoteWriter(store.write_url)
            t0 = time.perf_counter()
            writer.write_lag(lag)
            store.flush()
            took = time.perf_counter() - t0
            print(
                f"\n{kind}: remote write {writer.samples_sent:,} samples, "
                f"{writer.bytes_sent / 2**20:.1f} MiB snappy, {took:.1f} s"
            )
            source = kbp.PrometheusSource(store.query_url, cluster="synthetic", timeout_s=120)
            figures = {}
            for label, options in (
                ("lag_totals (sum by)", None),
                ("lag(top_k=5)", {"top_k": 5}),
                ("lag() every partition", {}),
            ):
                source.bytes_received = source.requests = 0
                t0 = time.perf_counter()
                frame = (
                    source.lag_totals(start, end, "5s")
                    if options is None
                    else source.lag(start, end, "5s", **options)
                )
                seconds = time.perf_counter() - t0
                figures[label] = (frame, source.bytes_received, seconds)
                print(
                    f"  {label:<24} {len(frame):>9,} rows {source.bytes_received / 2**20:8.2f} MiB "
                    f"{source.requests:>3} requests {seconds:6.2f} s"
                )
            totals, pushed, pushed_s = figures["lag_totals (sum by)"]
            raw, pulled, pulled_s = figures["lag() every partition"]
            raw_totals = raw.groupby(["group", "topic", "time"])["lag"].sum().sort_index()
            got = totals.set_index(["group", "topic", "time"])["lag"].sort_index()
            same = len(got) == len(raw_totals) and bool((got == raw_totals).all())
            print(
                f"  pushdown vs raw: {pulled / pushed:.0f}x fewer bytes, "
                f"{pulled_s / pushed_s:.0f}x less time; totals equal: {same}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
