"""Lag-in-seconds accuracy: ``kbp.time_lag`` and kafka-lag-exporter's method against the truth.

A real workload on the sandbox (one broker, no Prometheus needed):

* a producer writes its send time (ns since the epoch) at the start of every
  message value, at a base rate with a **spike** (10x for 15 s), after an
  early burst (4x for the first 10 s, before the recording starts: the
  incident began before anyone was watching);
* a slow consumer group (one member, per-record processing time, commit per
  batch) falls behind from before the recording starts (so the first
  committed offsets are older than the recorded history -- where the
  exporter extrapolates and ``time_lag`` gives a lower bound), builds a
  backlog through the spike, then speeds up and drains it;
* every 5 s, ``LagCollector.snapshot`` (the LAG frame), and the **truth**: a
  separate consumer with no group id (assign + seek, never commits) reads
  the record AT each committed offset; true lag in seconds = snapshot time
  minus that record's send time (0 when the group is caught up).

Compared at the same moments:

* ours: ``kbp.time_lag`` on the 5 s snapshots (our collector's default
  cadence) and on the 30 s subsample (the exporter's cadence);
* kafka-lag-exporter's documented method: a 60-point lookup table of
  (latest offset, poll time) from 30 s polls, interpolated, extrapolated
  outside the table (``baselines.LagExporterTable``). Polls start at an
  arbitrary phase; running the six phases 0, 5, ..., 25 s gives a figure at
  every snapshot.

Run: ``python -m benchmarks.time_lag_accuracy`` (about 5 minutes).
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import pandas as pd

from benchmarks.baselines import EXPORTER_POLL_INTERVAL_S, exporter_time_lag

TOPIC = "timelag-bench"
GROUP = "timelag-bench-slow"
PARTITIONS = 3
SNAPSHOT_EVERY_S = 5.0
WITHIN = 0.2
#: Headline rows: true lag at least this many seconds (two snapshot intervals);
#: below it every method's error is dominated by when the snapshot happened.
MIN_TRUTH_S = 10.0

# Workload timeline (seconds since the producer started).
PLAN = {
    "base_rate_per_s": 150.0,
    "early_burst_rate_per_s": 600.0,  # before the recording starts (0-10 s)
    "early_burst_to_s": 10.0,
    "spike_rate_per_s": 1500.0,
    "spike_from_s": 100.0,
    "spike_to_s": 115.0,
    "slow_delay_s": 0.008,  # ~125 msg/s capacity: lag grows
    "fast_delay_s": 0.002,  # ~500 msg/s: drains
    "speed_up_at_s": 190.0,
    "recording_from_s": 25.0,
    "end_s": 300.0,
}


class SendTimeProducer:
    """Produce round-robin over partitions at a scheduled rate.

    Every value starts with its send time (ns since the epoch).
    """

    def __init__(self, bootstrap: str, plan: dict[str, float]) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
        self.plan = plan
        self.sent = 0
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rate_at(self, elapsed_s: float) -> float:
        """Target rate at ``elapsed_s`` seconds since the start."""
        plan = self.plan
        if plan["spike_from_s"] <= elapsed_s < plan["spike_to_s"]:
            return plan["spike_rate_per_s"]
        if elapsed_s < plan["early_burst_to_s"]:
            return plan["early_burst_rate_per_s"]
        return plan["base_rate_per_s"]

    def owed(self, elapsed_s: float) -> float:
        """Messages owed by ``elapsed_s`` (integral of the rate)."""
        plan = self.plan
        base = plan["base_rate_per_s"] * elapsed_s
        overlap = max(0.0, min(elapsed_s, plan["spike_to_s"]) - plan["spike_from_s"])
        early = min(elapsed_s, plan["early_burst_to_s"])
        return (
            base
            + (plan["spike_rate_per_s"] - plan["base_rate_per_s"]) * overlap
            + (plan["early_burst_rate_per_s"] - plan["base_rate_per_s"]) * early
        )

    def start(self) -> SendTimeProducer:
        """Start producing from a background thread."""
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        padding = b"x" * 100
        while not self._stop.is_set():
            due = int(self.owed(time.monotonic() - self.started)) - self.sent
            for _ in range(max(0, min(due, 2000))):
                value = b"%d|" % time.time_ns() + padding
                self.producer.send(TOPIC, value=value, partition=self.sent % PARTITIONS)
                self.sent += 1
            self._stop.wait(0.005)

    def stop(self) -> None:
        """Stop and close."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.producer.flush(timeout=10)
        self.producer.close(timeout=5)


class SlowConsumer:
    """One group member: poll, sleep ``delay_s`` per record, commit synchronously."""

    def __init__(self, bootstrap: str, delay_s: float) -> None:
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(
            TOPIC,
            bootstrap_servers=bootstrap,
            group_id=GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=50,
        )
        self.delay_s = delay_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SlowConsumer:
        """Start consuming."""
        self._thread.start()
        return self

    def _run(self) -> None:
        from kafka.errors import KafkaError

        while not self._stop.is_set():
            try:
                batch = self.consumer.poll(timeout_ms=500)
                records = sum(len(part) for part in batch.values())
                if records and self.delay_s > 0:
                    self._stop.wait(self.delay_s * records)
                if records:
                    self.consumer.commit()
            except KafkaError:
                continue

    def stop(self) -> None:
        """Leave the group."""
        self._stop.set()
        self._thread.join(timeout=15)
        self.consumer.close(autocommit=False)


class TruthReader:
    """Read the record at a given offset without a group: assign + seek, never commits."""

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.tps = {p: TopicPartition(TOPIC, p) for p in range(PARTITIONS)}
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, max_poll_records=5
        )
        self.consumer.assign(list(self.tps.values()))

    def sent_ns(self, offsets: dict[int, int]) -> dict[int, int]:
        """Return the send time written in the record at each partition's offset."""
        wanted = dict(offsets)
        for partition, offset in wanted.items():
            self.consumer.seek(self.tps[partition], offset)
        self.consumer.pause(*[tp for p, tp in self.tps.items() if p not in wanted])
        self.consumer.resume(*[self.tps[p] for p in wanted])
        found: dict[int, int] = {}
        deadline = time.monotonic() + 10
        while len(found) < len(wanted) and time.monotonic() < deadline:
            batch = self.consumer.poll(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset == wanted.get(tp.partition) and tp.partition not in found:
                        found[tp.partition] = int(record.value.split(b"|", 1)[0])
                if tp.partition in found:
                    self.consumer.pause(tp)
        return found

    def close(self) -> None:
        """Close the reader."""
        self.consumer.close(autocommit=False)


def record_workload(
    plan: dict[str, float] = PLAN,
    *,
    producer_class: type[SendTimeProducer] | None = None,
    time_lag: bool = False,
) -> pd.DataFrame:
    """Run the workload on a fresh sandbox; return the LAG frame plus ``true_time_lag_s``.

    ``producer_class`` replaces the producer (another rate schedule);
    ``time_lag=True`` also reads record timestamps in every snapshot.
    """
    from kafka.admin import KafkaAdminClient, NewTopic

    from kbp_notebook.collect import LagCollector
    from kbp_notebook.sandbox import Sandbox

    with Sandbox(brokers=1, prometheus=False) as sandbox:
        bootstrap = sandbox.bootstrap_servers
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        admin.close()
        consumer = SlowConsumer(bootstrap, plan["slow_delay_s"]).start()
        producer = (producer_class or SendTimeProducer)(bootstrap, plan).start()
        collector = LagCollector(bootstrap, cluster="bench")
        reader = TruthReader(bootstrap)
        frames = []
        try:
            time.sleep(plan["recording_from_s"])
            next_at = time.monotonic()
            while time.monotonic() - producer.started < plan["end_s"]:
                elapsed = time.monotonic() - producer.started
                if elapsed >= plan["speed_up_at_s"]:
                    consumer.delay_s = plan["fast_delay_s"]
                snap = collector.snapshot(groups=[GROUP], time_lag=time_lag)
                snap = snap[snap["topic"] == TOPIC].reset_index(drop=True)
                behind = {
                    int(row.partition): int(row.committed_offset)
                    for row in snap.itertuples()
                    if pd.notna(row.committed_offset) and row.committed_offset < row.log_end_offset
                }
                sent = reader.sent_ns(behind) if behind else {}
                now_ns = pd.Timestamp(snap["time"].iloc[0]).value if len(snap) else 0
                truth = []
                for row in snap.itertuples():
                    if pd.isna(row.committed_offset):
                        truth.append(np.nan)
                    elif int(row.partition) in behind:
                        got = sent.get(int(row.partition))
                        truth.append(np.nan if got is None else (now_ns - got) / 1e9)
                    else:
                        truth.append(0.0)
                snap["true_time_lag_s"] = truth
                snap["elapsed_s"] = elapsed
                frames.append(snap)
                next_at += SNAPSHOT_EVERY_S
                time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            reader.close()
            collector.close()
            producer.stop()
            consumer.stop()
    frame = pd.concat(frames, ignore_index=True)
    # The spike's messages were sent from producer start + spike_from_s; remember the wall times.
    frame.attrs["producer_started"] = producer.started
    return frame


def evaluate(frame: pd.DataFrame, plan: dict[str, float] = PLAN) -> pd.DataFrame:
    """Add every method's figure to the recorded frame (one row per snapshot and partition)."""
    import kbp_notebook as kbp

    lag_columns = [
        "time", "cluster", "group", "topic", "partition",
        "committed_offset", "log_end_offset", "lag",
    ]  # fmt: skip
    frame = frame.sort_values(["partition", "time"], kind="stable").reset_index(drop=True)
    ours = kbp.time_lag(frame[lag_columns]).table
    key = ["time", "partition"]
    merged = frame.merge(
        ours[[*key, "time_lag_s", "time_lag_is_lower_bound"]].rename(
            columns={"time_lag_s": "ours_5s", "time_lag_is_lower_bound": "ours_5s_bound"}
        ),
        on=key,
    )
    poll_every = int(round(EXPORTER_POLL_INTERVAL_S / SNAPSHOT_EVERY_S))
    merged["exporter"] = np.nan
    merged["ours_30s"] = np.nan
    merged["ours_30s_bound"] = False
    for partition, rows in merged.groupby("partition", sort=True):
        index = rows.index.to_numpy()
        t_s = (rows["time"] - rows["time"].iloc[0]).dt.total_seconds().to_numpy()
        committed = rows["committed_offset"].astype("Float64").to_numpy(np.float64, na_value=np.nan)
        log_end = rows["log_end_offset"].astype("Float64").to_numpy(np.float64, na_value=np.nan)
        for phase in range(poll_every):
            exp = exporter_time_lag(t_s, committed, log_end, poll_every=poll_every, phase=phase)
            polled = np.arange(phase, len(index), poll_every)
            merged.loc[index[polled], "exporter"] = exp[polled]
            sub = rows.iloc[polled][lag_columns]
            ours30 = kbp.time_lag(sub).table
            merged.loc[index[polled], "ours_30s"] = ours30["time_lag_s"].to_numpy()
            merged.loc[index[polled], "ours_30s_bound"] = ours30[
                "time_lag_is_lower_bound"
            ].to_numpy()
        del partition
    # Moments whose committed record was sent within a poll interval of the spike.
    sent_at = merged["elapsed_s"] - merged["true_time_lag_s"]
    # elapsed_s is producer-relative at snapshot time, so producer-relative send time is:
    merged["sent_rel_s"] = sent_at
    lo = plan["spike_from_s"] - EXPORTER_POLL_INTERVAL_S
    hi = plan["spike_to_s"] + EXPORTER_POLL_INTERVAL_S
    merged["spike"] = (
        (merged["sent_rel_s"] >= lo)
        & (merged["sent_rel_s"] <= hi)
        & (merged["true_time_lag_s"] > 0)
    )
    return merged


def score(frame: pd.DataFrame, method: str, *, bound: str | None = None) -> dict[str, float]:
    """Accuracy of one method's column against ``true_time_lag_s``.

    Rows where the method reports a lower bound (``bound`` column True) are
    not counted as figures; they are checked to be valid bounds instead.
    """
    rows = frame[frame["true_time_lag_s"].notna() & frame[method].notna()]
    is_bound = rows[bound].astype(bool) if bound else pd.Series(False, index=rows.index)
    figures = rows[~is_bound]
    truth = figures["true_time_lag_s"].to_numpy()
    value = figures[method].to_numpy()
    error = np.abs(value - truth)
    big = truth >= MIN_TRUTH_S
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = error / truth
    bounds = rows[is_bound]
    return {
        "moments": float(len(rows)),
        "figures": float(len(figures)),
        "lower_bounds": float(len(bounds)),
        "valid_bounds": float((bounds[method] <= bounds["true_time_lag_s"] + 1.0).mean())
        if len(bounds)
        else float("nan"),
        "median_abs_error_s": float(np.median(error)) if len(error) else float("nan"),
        "max_abs_error_s": float(np.max(error)) if len(error) else float("nan"),
        "figures_big": float(big.sum()),
        "share_over_20pct_big": float(np.mean(relative[big] > WITHIN))
        if big.any()
        else float("nan"),
        "max_rel_error_big": float(np.max(relative[big])) if big.any() else float("nan"),
        "median_rel_error_big": float(np.median(relative[big])) if big.any() else float("nan"),
    }


def _pct(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.0%}"


def _num(value: float, digits: int) -> str:
    return "–" if np.isnan(value) else f"{value:.{digits}f}"


def report(merged: pd.DataFrame) -> tuple[list[str], dict[str, float]]:
    """Markdown lines and headline figures."""
    methods = [
        ("ours, 5 s snapshots", "ours_5s", "ours_5s_bound"),
        ("ours, 30 s snapshots", "ours_30s", "ours_30s_bound"),
        ("kafka-lag-exporter method, 30 s polls", "exporter", None),
    ]
    lines = [
        "## 2. Lag-in-seconds accuracy (real workload on the sandbox, truth read from the records)",
        "",
    ]
    truth = merged["true_time_lag_s"]
    lines.append(
        f"{merged['time'].nunique()} snapshots × {PARTITIONS} partitions; true lag in seconds "
        f"from {truth.min():.1f} to {truth.max():.1f} s. Produce spike: "
        f"{PLAN['spike_rate_per_s']:.0f} msg/s for "
        f"{PLAN['spike_to_s'] - PLAN['spike_from_s']:.0f} s "
        f"over a base of {PLAN['base_rate_per_s']:.0f} msg/s; the group fell behind before the "
        "recording started. Headline rows: true lag ≥ "
        f"{MIN_TRUTH_S:.0f} s (below that every method's error is dominated by snapshot timing). "
        "A 'lower bound' is ours saying 'at least N s' (committed offset older than the history)."
    )
    lines.append("")
    lines.append(
        "| method | rows | figures | lower bounds (valid) | median abs error (s) | "
        "max abs error (s) | "
        "figures ≥10 s | >20% off (≥10 s) | max rel. error (≥10 s) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    figures: dict[str, float] = {}
    subsets = (
        ("all moments", merged),
        ("spike moments (committed record sent within 30 s of the spike)", merged[merged["spike"]]),
        ("committed offset older than the recorded history", merged[merged["ours_5s_bound"]]),
    )
    for subset_label, subset in subsets:
        lines.append(f"| *{subset_label}* | | | | | | | | |")
        for label, column, bound in methods:
            s = score(subset, column, bound=bound)
            valid = "" if np.isnan(s["valid_bounds"]) else f" ({s['valid_bounds']:.0%})"
            lines.append(
                f"| {label} | {s['moments']:.0f} | {s['figures']:.0f} | "
                f"{s['lower_bounds']:.0f}{valid} | "
                f"{_num(s['median_abs_error_s'], 2)} | {_num(s['max_abs_error_s'], 1)} | "
                f"{s['figures_big']:.0f} | {_pct(s['share_over_20pct_big'])} | "
                f"{_pct(s['max_rel_error_big'])} |"
            )
            tag = f"{subset_label.split()[0]}_{column}"
            figures[f"{tag}_share_over_20pct"] = s["share_over_20pct_big"]
            figures[f"{tag}_max_rel_error"] = s["max_rel_error_big"]
            figures[f"{tag}_median_abs_error_s"] = s["median_abs_error_s"]
    ours = figures["all_ours_5s_max_rel_error"]
    exporter = figures["all_exporter_max_rel_error"]
    met = ours <= WITHIN and exporter > ours
    lines.append("")
    lines.append(
        f"Target (ours never > 20% off where it reports a figure, exporter worse): "
        f"{'met' if met else 'MISSED'} — ours max relative error {ours:.0%} (5 s), "
        f"{figures['all_ours_30s_max_rel_error']:.0%} (30 s); exporter {exporter:.0%}."
    )
    small = merged[(merged["true_time_lag_s"] < MIN_TRUTH_S) & merged["ours_5s"].notna()]
    if len(small):
        err = (small["ours_5s"] - small["true_time_lag_s"]).abs()
        exp_err = (small["exporter"] - small["true_time_lag_s"]).abs()
        lines.append(
            f"Below {MIN_TRUTH_S:.0f} s true lag ({len(small)} rows): ours median abs error "
            f"{err.median():.2f} s (max {err.max():.1f} s), exporter {_num(exp_err.median(), 2)} s "
            f"(max {_num(exp_err.max(), 1)} s)."
        )
    return lines, figures


def run(*, csv: str | None = None) -> dict:
    """Record, evaluate, report: ``{"markdown": str, "figures": dict}``."""
    started = time.perf_counter()
    frame = record_workload()
    merged = evaluate(frame)
    if csv:
        merged.to_csv(csv, index=False)
    lines, figures = report(merged)
    lines.append("")
    lines.append(f"(workload and evaluation took {time.perf_counter() - started:.0f} s)")
    return {"markdown": "\n".join(lines), "figures": figures, "rows": merged}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: print the section as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="write the per-moment rows here")
    args = parser.parse_args(argv)
    print(run(csv=args.csv)["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
