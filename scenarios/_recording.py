"""Record a running scenario with the project's own collectors into a Dataset folder.

A ``Recording`` samples, from one background thread:

* the LAG frame with ``LagCollector.snapshot`` every ``lag_every_s``;
* producer and consumer client metrics with ``client_metrics`` every
  ``client_every_s`` (plus ``record_age_at_commit_s``: the age of the last
  record each consumer committed, from the send time the producer wrote into
  the message — the ground truth for time lag);
* log directory usage with ``log_dir_usage`` every ``logdir_every_s``.

It also takes real ``kafka-consumer-groups --describe`` captures on request
(saved under ``captures/``), keeps the scenario's ground-truth ``EventLog``,
and at the end asks the sandbox's Prometheus for the broker metrics of the
whole time range (``PrometheusSource.broker_metrics``) before writing the
Dataset with ``write_dataset``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from kbp_notebook.collect import (
    LagCollector,
    PrometheusSource,
    client_metrics,
    log_dir_usage,
    write_dataset,
)
from kbp_notebook.frames import Dataset
from scenarios._variant import Variant
from scenarios._workload import ConsumerGroupDriver, EventLog, RateProducer, stop_all, utc_now
from scenarios.expectations import ground_truth

log = logging.getLogger("scenarios")

CLUSTER = "sandbox"
CAUGHT_UP_S = 3.0  # a group within 3 s of its topic's production has caught up


class Recording:
    """Sample a scenario while it runs and write it as a Dataset folder.

    Parameters
    ----------
    sandbox
        The running ``Sandbox``.
    out
        Dataset folder to write (replaced if it exists).
    groups
        Consumer groups to record.
    producers, consumer_groups
        The workload, sampled for client metrics (lists may grow while recording).
    lag_every_s, client_every_s, logdir_every_s
        Sampling periods.
    meta
        Facts about the scenario for ``meta.json``.
    """

    def __init__(
        self,
        sandbox: Any,
        out: Path,
        *,
        groups: list[str],
        producers: list[RateProducer],
        consumer_groups: list[ConsumerGroupDriver],
        lag_every_s: float = 1.5,
        client_every_s: float = 5.0,
        logdir_every_s: float = 10.0,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.out = Path(out)
        self.groups = list(groups)
        self.producers = producers
        self.consumer_groups = consumer_groups
        self.lag_every_s = lag_every_s
        self.client_every_s = client_every_s
        self.logdir_every_s = logdir_every_s
        self.meta = dict(meta or {})
        self.events = EventLog()
        self.collector = LagCollector(sandbox.bootstrap_servers, cluster=CLUSTER)
        self._lag: list[pd.DataFrame] = []
        self._metrics: list[pd.DataFrame] = []
        self._captures: list[dict[str, Any]] = []
        self._capture_threads: list[threading.Thread] = []
        self._latest: pd.DataFrame | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, name="recorder", daemon=True)
        self.started: pd.Timestamp | None = None
        self.ended: pd.Timestamp | None = None
        self.sample_errors = 0
        self._load: list[float] = []
        self._uptime: list[str] = []

    # ------------------------------------------------------------------ sampling

    def settle(
        self, produce_rates: Mapping[str, float], *, min_s: float, timeout_s: float = 180.0
    ) -> bool:
        """Before recording: wait until every group has caught up with its topic.

        Sleeps ``min_s``, then snapshots (not recorded) until each group's total
        lag is within ``CAUGHT_UP_S`` seconds of its topic's production
        (``produce_rates``, msg/s per group) at three snapshots in a row.
        Clients that have just started on a busy machine catch up for a while;
        that start-up is not part of the incident. Returns False on timeout (the
        scenario goes on and its checks judge what was recorded).
        """
        caught_up = {group: CAUGHT_UP_S * rate for group, rate in produce_rates.items()}
        in_a_row = 0

        def three_in_a_row() -> bool:
            nonlocal in_a_row
            frame = self.collector.snapshot(groups=list(caught_up))
            settled = all(
                (total := group_total(frame, group)) is not None and total <= limit
                for group, limit in caught_up.items()
            )
            in_a_row = in_a_row + 1 if settled else 0
            return in_a_row >= 3

        time.sleep(min_s)
        if self.wait_until(three_in_a_row, timeout_s=timeout_s, poll_s=self.lag_every_s):
            return True
        log.warning("groups still catching up after %.0f s: %s", timeout_s, caught_up)
        return False

    def start(self) -> Recording:
        """Start sampling; the recording's time range begins now."""
        if self.out.exists():
            import shutil

            shutil.rmtree(self.out)
        (self.out / "captures").mkdir(parents=True)
        self._uptime.append(machine_uptime())
        self.started = utc_now()
        self._thread.start()
        return self

    def _sample_loop(self) -> None:
        next_lag = next_client = next_logdir = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_lag:
                next_lag += self.lag_every_s
                self._guard(self._sample_lag)
            if now >= next_client:
                next_client += self.client_every_s
                self._guard(self._sample_clients)
            if now >= next_logdir:
                next_logdir += self.logdir_every_s
                self._guard(self._sample_logdir)
            wake = min(next_lag, next_client, next_logdir)
            self._stop.wait(max(0.0, wake - time.monotonic()))

    def _guard(self, sample: Callable[[], None]) -> None:
        try:
            sample()
        except Exception:  # noqa: BLE001 - a missed sample must not end the recording
            self.sample_errors += 1
            log.exception("sampling failed")

    def _sample_lag(self) -> None:
        frame = self.collector.snapshot(groups=self.groups)
        with self._lock:
            self._lag.append(frame)
            self._latest = frame

    def _sample_clients(self) -> None:
        self._load.append(os.getloadavg()[0])
        frames = []
        now = utc_now()
        ages = []
        for producer in list(self.producers):
            frames.append(client_metrics(producer.producer, cluster=CLUSTER))
        for driver in list(self.consumer_groups):
            for worker in list(driver.workers):
                frames.append(client_metrics(worker.consumer, cluster=CLUSTER))
                if worker.last_record_age_s is not None:
                    ages.append((f"consumer:{worker.client_id}", worker.last_record_age_s))
        if ages:
            frames.append(
                pd.DataFrame(
                    {
                        "time": [now] * len(ages),
                        "cluster": CLUSTER,
                        "entity": [entity for entity, _ in ages],
                        "metric": "record_age_at_commit_s",
                        "value": [age for _, age in ages],
                    }
                )
            )
        frames = [frame for frame in frames if len(frame)]
        if frames:
            with self._lock:
                self._metrics.extend(frames)

    def _sample_logdir(self) -> None:
        frame = log_dir_usage(self.sandbox.bootstrap_servers, cluster=CLUSTER)
        with self._lock:
            self._metrics.append(frame)

    # ------------------------------------------------------------------ queries

    def latest_lag(self) -> pd.DataFrame | None:
        """Return the most recent LAG snapshot, or None before the first."""
        with self._lock:
            return self._latest

    def total_lag(self, group: str, *, partitions: list[int] | None = None) -> int | None:
        """Return the summed lag of ``group`` in the latest snapshot (None if unknown)."""
        frame = self.latest_lag()
        return None if frame is None else group_total(frame, group, partitions=partitions)

    def wait_until(
        self, predicate: Callable[[], bool], *, timeout_s: float, poll_s: float = 0.5
    ) -> bool:
        """Wait until ``predicate()`` is true (checked every ``poll_s``) or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(poll_s)
        return predicate()

    def wait_for_baseline(
        self, group: str, *, at_most: int, timeout_s: float, consecutive: int = 3
    ) -> pd.Timestamp | None:
        """Wait until ``group``'s total lag stays ≤ ``at_most`` for ``consecutive`` snapshots.

        Returns the time of the first of those snapshots (the moment lag was
        back at its baseline), or None on timeout.
        """
        deadline = time.monotonic() + timeout_s
        called = utc_now()
        run_start: pd.Timestamp | None = None
        run = 0
        seen: pd.Timestamp | None = None
        while time.monotonic() < deadline:
            frame = self.latest_lag()
            if frame is not None and len(frame):
                when = pd.Timestamp(frame["time"].iloc[0])
                # Only snapshots taken after the call: the event that preceded it comes first.
                if when != seen and when >= called:
                    seen = when
                    total = self.total_lag(group)
                    if total is not None and total <= at_most:
                        run += 1
                        run_start = run_start or when
                        if run >= consecutive:
                            return run_start
                    else:
                        run, run_start = 0, None
            time.sleep(0.25)
        return None

    def start_steady(
        self, consumers: ConsumerGroupDriver, members: int, producer: RateProducer, text: str
    ) -> None:
        """Start ``members`` consumers, wait for their partitions, then record and produce.

        The recording starts once the group is assigned (its start-up is not part of the
        incident), the producer right after, and ``steady_start`` is marked with ``text``.
        """
        consumers.add(members)
        consumers.wait_assigned()
        self.start()
        producer.start()
        self.events.mark("steady_start", text)

    def observe_capturing(
        self, group: str, label: str, before_s: float, after_s: float
    ) -> list[int]:
        """Observe ``group`` for ``before_s``, take a capture ``label``, observe ``after_s``.

        Returns ``group``'s total lag at each new snapshot of both stretches.
        """
        totals = observe(self, group, before_s)
        self.capture(label, group=group)
        return totals + observe(self, group, after_s)

    def observe_healthy(self, group: str, seconds: float, *, floor: int) -> int:
        """Observe the healthy phase (a capture half way) and return its baseline ceiling."""
        healthy = self.observe_capturing(group, "healthy", seconds * 0.5, seconds * 0.5)
        return baseline_ceiling(healthy, floor=floor)

    def drain_to_baseline(
        self, group: str, ceiling: int, phases: Mapping[str, float], *, capture: str | None
    ) -> None:
        """Wait for ``group``'s lag to be back at ``ceiling``, mark when, observe the tail.

        Waits at most ``phases["drain_max"]`` seconds and writes
        ``lag_baseline_reached`` (or ``drain_timeout``); then, after
        ``phases["tail"]`` seconds, an optional capture labelled ``capture``.
        """
        reached = self.wait_for_baseline(group, at_most=ceiling, timeout_s=phases["drain_max"])
        if reached is not None:
            self.events.mark(
                "lag_baseline_reached",
                f"total lag of {group} back at or below {ceiling}",
                time=reached,
            )
        else:
            self.events.mark("drain_timeout", f"lag of {group} still above {ceiling}")
        observe(self, group, phases["tail"])
        if capture is not None:
            self.capture(capture, group=group)
        self.meta["baseline_ceiling_lag"] = ceiling

    def machine_load(self) -> dict[str, Any]:
        """How busy the machine was while recording (other work shares its cores)."""
        load = sorted(self._load)
        return {
            "cores": os.cpu_count(),
            "uptime_at_start": self._uptime[0] if self._uptime else None,
            "uptime_at_end": self._uptime[-1] if len(self._uptime) > 1 else None,
            "load1_median": load[len(load) // 2] if load else None,
            "load1_max": load[-1] if load else None,
            "load1_every_s": self.client_every_s,
        }

    # ------------------------------------------------------------------ captures

    def capture(self, label: str, *, group: str) -> threading.Thread:
        """Run ``kafka-consumer-groups --describe --group`` now, in the background.

        The tool's stdout is saved verbatim as ``captures/<time>_<label>.txt``;
        its stderr notices (such as "has no active members") go to
        ``captures/index.csv`` with the start and end times.
        """

        def run() -> None:
            started = utc_now()
            result = self.sandbox.consumer_groups("--describe", "--group", group)
            ended = utc_now()
            name = f"{started:%Y%m%dT%H%M%S}Z_{label}.txt"
            (self.out / "captures" / name).write_text(result.stdout, encoding="utf-8")
            with self._lock:
                self._captures.append(
                    {
                        "file": name,
                        "label": label,
                        "group": group,
                        "started": started.isoformat(),
                        "ended": ended.isoformat(),
                        "returncode": result.returncode,
                        "stderr": " ".join(result.stderr.split())[:500],
                    }
                )

        thread = threading.Thread(target=run, name=f"capture-{label}", daemon=True)
        thread.start()
        self._capture_threads.append(thread)
        return thread

    # ------------------------------------------------------------------ finish

    def stop_sampling(self) -> None:
        """End the recorded time range (idempotent); call before stopping the workload."""
        if self.ended is not None:
            return
        # Captures first, so the LAG snapshots bracket every capture's moment.
        for thread in self._capture_threads:
            thread.join(timeout=120)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        if self.started is not None:
            # One last snapshot, so the LAG snapshots also bracket every event marked so far.
            self._guard(self._sample_lag)
        self.ended = utc_now()
        self._uptime.append(machine_uptime())

    def close(self, *workload: Any) -> None:
        """End the recorded time range, then stop ``workload`` (a scenario's way out, always)."""
        self.stop_sampling()
        stop_all(workload)

    def finish(self, *, prometheus_step: str = "2s", rate_window: str = "20s") -> Path:
        """Stop sampling, fetch broker metrics for the whole range, write the Dataset."""
        self.stop_sampling()
        ended = self.ended
        assert self.started is not None and ended is not None, "finish() before start()"
        # Let Prometheus (scraping every second) store the last seconds before asking.
        time.sleep(3)
        broker = PrometheusSource(self.sandbox.prometheus_url).broker_metrics(
            self.started,
            ended,
            prometheus_step,
            rate_window=rate_window,
            request_handler_pools=self.sandbox.request_handler_pools,
        )
        with self._lock:
            lag = pd.concat(self._lag, ignore_index=True)
            metrics = pd.concat([*self._metrics, broker], ignore_index=True)
            captures = sorted(self._captures, key=lambda row: row["started"])
        events = self.events.frame()
        meta = {
            **self.meta,
            "recorded_from": self.started.isoformat(),
            "recorded_to": ended.isoformat(),
            "duration_s": round((ended - self.started).total_seconds(), 1),
            "cluster": CLUSTER,
            "lag_every_s": self.lag_every_s,
            "client_metrics_every_s": self.client_every_s,
            "log_dir_every_s": self.logdir_every_s,
            "prometheus_step": prometheus_step,
            "prometheus_rate_window": rate_window,
            "request_handler_pools": self.sandbox.request_handler_pools,
            "groups": self.groups,
            "captures": [row["file"] for row in captures],
            "sample_errors": self.sample_errors,
            "machine_load": self.machine_load(),
        }
        meta.update(ground_truth(str(meta.get("scenario")), meta, events))
        dataset = Dataset(lag=lag, metrics=metrics, events=events, meta=meta)
        write_dataset(dataset, self.out, overwrite=True)
        if captures:
            with open(self.out / "captures" / "index.csv", "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(captures[0]))
                writer.writeheader()
                writer.writerows(captures)
        self.collector.close()
        log.info(
            "wrote %s: %d lag rows, %d metric rows, %d events, %d captures",
            self.out,
            len(dataset.lag),
            len(dataset.metrics),
            len(dataset.events),
            len(captures),
        )
        return self.out


def scenario_meta(
    *,
    name: str,
    short: bool,
    variant: Variant,
    phases: Mapping[str, float],
    topic: str,
    group: str,
    **facts: Any,
) -> dict[str, Any]:
    """Return a scenario's ``meta.json`` facts, in the order every scenario writes them.

    ``scenario`` (``name``), ``short``, ``topic`` and ``group`` (the incident's),
    the scenario's own ``facts`` (rates, sizes, settings, in the order given),
    ``phases_s`` and ``variant`` (the seed and the settings drawn).
    """
    return {"scenario": name, "short": short, "topic": topic, "group": group, **facts,
            "phases_s": phases, "variant": variant.meta()}  # fmt: skip


def scenario_recording(
    sandbox: Any,
    out: Path,
    *,
    producers: list[RateProducer],
    consumer_groups: list[ConsumerGroupDriver],
    groups: list[str] | None = None,
    lag_every_s: float | None = None,
    **meta: Any,
) -> Recording:
    """Return the ``Recording`` of a scenario, with the ``meta.json`` of :func:`scenario_meta`.

    Parameters
    ----------
    sandbox, out, producers, consumer_groups
        As for ``Recording``.
    groups
        The groups to record; default ``[group]`` (the incident's group).
    lag_every_s
        Seconds between LAG snapshots; default ``Recording``'s.
    **meta
        ``name``, ``short``, ``variant``, ``phases``, ``topic``, ``group`` and the
        scenario's own facts, for :func:`scenario_meta`.
    """
    facts = scenario_meta(**meta)
    options = {} if lag_every_s is None else {"lag_every_s": lag_every_s}
    return Recording(
        sandbox, out, groups=[facts["group"]] if groups is None else groups, producers=producers,
        consumer_groups=consumer_groups, meta=facts, **options,
    )  # fmt: skip


def machine_uptime() -> str:
    """Return ``uptime``'s line (load averages over 1, 5 and 15 minutes), or '' without it."""
    try:
        result = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip()


def describe_meta(**facts: Any) -> dict[str, Any]:
    """Return ``facts`` made JSON-safe (for ``meta.json``)."""
    return json.loads(json.dumps(facts, default=str))


MAX_OVERTIME_S = 60.0


def group_total(
    frame: pd.DataFrame, group: str, *, partitions: list[int] | None = None
) -> int | None:
    """Return the summed lag of ``group`` in one LAG snapshot (None if unknown)."""
    rows = frame[frame["group"] == group]
    if partitions is not None:
        rows = rows[rows["partition"].isin(partitions)]
    if rows.empty or rows["lag"].isna().all():
        return None
    return int(rows["lag"].sum())


def observe(recording: Recording, group: str, seconds: float) -> list[int]:
    """Sleep ``seconds`` while collecting ``group``'s total lag at each new snapshot."""
    return observe_groups(recording, [group], seconds)[group]


def observe_groups(
    recording: Recording, groups: list[str], seconds: float, *, min_snapshots: int = 3
) -> dict[str, list[int]]:
    """Like :func:`observe`, for several groups at once (each group's totals per snapshot).

    Goes on past ``seconds`` until ``min_snapshots`` snapshots were seen
    (at most ``MAX_OVERTIME_S`` longer): on a starved machine snapshots come
    late, and a phase needs a few of them to show its slope.
    """
    totals: dict[str, list[int]] = {group: [] for group in groups}
    seen: pd.Timestamp | None = None
    snapshots = 0
    start = time.monotonic()
    deadline, last_call = start + seconds, start + seconds + MAX_OVERTIME_S

    def going_on() -> bool:
        now = time.monotonic()
        return now < deadline or (snapshots < min_snapshots and now < last_call)

    while going_on():
        frame = recording.latest_lag()
        if frame is not None and len(frame):
            when = pd.Timestamp(frame["time"].iloc[0])
            if when != seen:
                seen = when
                snapshots += 1
                for group in groups:
                    total = recording.total_lag(group)
                    if total is not None:
                        totals[group].append(total)
        left = deadline - time.monotonic()
        time.sleep(min(0.25, left) if left > 0 else 0.25)
    return totals


def baseline_ceiling(totals: list[int], *, floor: int) -> int:
    """Return the lag level that counts as "back at baseline" after an incident.

    Twice the 90th percentile of the healthy phase's total lag, and never
    below ``floor`` (a healthy consumer committing per batch always shows
    some in-flight lag).
    """
    if not totals:
        return floor
    ordered = sorted(totals)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return max(floor, 2 * p90)
