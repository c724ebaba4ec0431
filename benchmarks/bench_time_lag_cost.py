"""What ``LagCollector.snapshot(time_lag=True)`` costs on 1,000 lagging partitions.

A fresh one-broker sandbox, one topic of 1,000 partitions with 20 records of
~200 bytes each (the producer's default batching), one group committed at
offset 5 on every partition (so all 1,000 lag). Side by side, warm client:

* ``snapshot()`` -- offsets only;
* ``snapshot(time_lag=True)`` with the default 16 MiB cap, and with a 2 MiB
  cap (2 KiB a partition: smaller than each partition's ~4.5 KiB batch, so
  the broker sends those partitions nothing and they are asked again with
  what is left);

each timed 7 times (median), with the requests counted at the client and the
record bytes received. Run: ``python -m benchmarks.bench_time_lag_cost``
(about 2 minutes).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter

PARTITIONS = 1000
RECORDS = 20
COMMITTED = 5
REPEATS = 7
PAYLOAD = b"x" * 200


def count_requests(collector, call):
    """Run ``call()`` with the collector's sends counted by request type."""
    manager = collector._admin_client()._manager
    original = manager.send
    sent: Counter[str] = Counter()

    def counting(request, *args, **kwargs):
        sent[type(request).__name__.split("_v")[0].removesuffix("Request")] += 1
        return original(request, *args, **kwargs)

    manager.send = counting
    try:
        result = call()
    finally:
        manager.send = original
    return result, sent


def main() -> int:
    """Print the cost table."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.structs import OffsetAndMetadata

    from kbp_notebook import LagCollector
    from kbp_notebook.sandbox import Sandbox

    with Sandbox(brokers=1, prometheus=False) as sandbox:
        bootstrap = sandbox.bootstrap_servers
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("cost", PARTITIONS, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
        for p in range(PARTITIONS):  # one batch of RECORDS records per partition
            for _ in range(RECORDS):
                producer.send("cost", PAYLOAD, partition=p)
        producer.flush()
        producer.close()
        member = KafkaConsumer(bootstrap_servers=bootstrap, group_id="cost-group")
        member.commit(
            {
                TopicPartition("cost", p): OffsetAndMetadata(COMMITTED, "", -1)
                for p in range(PARTITIONS)
            }
        )
        member.close()

        rows = []
        with LagCollector(bootstrap) as collector:
            collector.snapshot(["cost-group"], time_lag=True)  # warm
            small_cap = {"time_lag": True, "time_lag_max_bytes": 2 << 20}
            for label, options in (
                ("snapshot() (offsets only)", {}),
                ("snapshot(time_lag=True), 16 MiB cap (default)", {"time_lag": True}),
                ("snapshot(time_lag=True), 2 MiB cap", small_cap),
            ):
                times = []
                for _ in range(REPEATS):
                    started = time.perf_counter()
                    frame, sent = count_requests(
                        collector, lambda o=options: collector.snapshot(["cost-group"], **o)
                    )
                    times.append(time.perf_counter() - started)
                cost = collector.last_time_lag_cost if options else None
                read = frame["time_lag_source"].notna() if options else None
                notes = (
                    frame.loc[read, "time_lag_note"].fillna("exact").value_counts().to_dict()
                    if options
                    else {}
                )
                if options and (~read).any():
                    notes["not read (NA, history fills in)"] = int((~read).sum())
                rows.append((label, statistics.median(times), sent, cost, len(frame), notes, frame))

    print(f"# bench_time_lag_cost: {PARTITIONS} lagging partitions (1 topic, 1 broker), "
          f"one batch of {RECORDS} x {len(PAYLOAD)} B records each, committed at offset "
          f"{COMMITTED}")  # fmt: skip
    print()
    print("| call | median wall time (s) | requests | record bytes fetched | partitions read | "
          "how the timestamp was read |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    base = rows[0][1]
    for label, seconds, sent, cost, _count, notes, _ in rows:
        requests = ", ".join(f"{name} {n}" for name, n in sorted(sent.items()))
        fetched = f"{cost.bytes:,} ({cost.bytes / PARTITIONS:.0f} B/partition)" if cost else "–"
        read = f"{cost.answered}/{cost.partitions}" if cost else "–"
        how = ", ".join(f"{k} {v}" for k, v in notes.items()) if notes else "–"
        print(f"| {label} | {seconds:.3f} ({seconds / base:.1f}x offsets only) | "
              f"{sum(sent.values())}: {requests} | {fetched} | {read} | {how} |")  # fmt: skip

    def written(frame):  # the record time each snapshot implies
        return frame["time"].astype("int64") / 1e9 - frame["time_lag_s"]

    difference = (written(rows[2][6]) - written(rows[1][6])).abs()
    print()
    print(f"rows per snapshot: {rows[0][4]}. 2 MiB cap vs default, record times where both "
          f"read: median difference {difference.median():.3f} s, "
          f"max {difference.max():.3f} s.")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
