"""healthy-baseline: nothing goes wrong for ten minutes (the control every analysis must pass).

Two groups on two topics:

* ``search-indexer`` reads ``product-updates`` with two members that fetch and
  commit large batches: its lag is the ordinary sawtooth of batch commits;
* ``email-sender`` (the control group) reads ``notifications``, whose
  produce rate drifts up and down by about a quarter over a few minutes (a
  daily pattern, sped up), with one member that keeps up throughout.

Timeline: ``steady_start``, then ten minutes (long form) of nothing, then
``steady_end``. No episode, no cause: ``incidents`` must find nothing.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

from scenarios._recording import baseline_ceiling, observe, scenario_recording
from scenarios._variant import Variant
from scenarios._workload import ConsumerGroupDriver, RateProducer, create_topic

NAME = "healthy-baseline"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 8
CONTROL_PARTITIONS = 4
RATE_PER_S = 300.0
CONTROL_RATE_PER_S = 80.0
DRIFT = 0.25  # the control topic's produce rate swings by this share
DRIFT_PERIOD_S = 180.0
CONSUMERS = 2
HEADROOM = 3.0
MAX_POLL_RECORDS = 500
PHASES_S = {"long": {"steady": 600}, "short": {"steady": 33}}
LAG_EVERY_S = {"long": 3.0, "short": 1.5}


class RateDrift:
    """Move a producer's rate along a sine wave around ``base`` until stopped."""

    def __init__(self, producer: RateProducer, base: float, share: float, period_s: float) -> None:
        self.producer, self.base, self.share, self.period_s = producer, base, share, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rate-drift", daemon=True)

    def start(self) -> RateDrift:
        self._thread.start()
        return self

    def _run(self) -> None:
        elapsed = 0.0
        while not self._stop.wait(2.0):
            elapsed += 2.0
            wave = math.sin(2 * math.pi * elapsed / self.period_s)
            self.producer.set_rate(self.base * (1 + self.share * wave))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run(
    sandbox: Any, out: Path, *, short: bool = False, suffix: str = "", seed: int | None = None
) -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    form = "short" if short else "long"
    variant = Variant(seed, NAME)
    phases = variant.phases(PHASES_S[form], low=0.7, high=1.0)
    partitions = variant.choice("partitions", PARTITIONS, [6, 8, 12, 16])
    control_partitions = variant.choice("control_partitions", CONTROL_PARTITIONS, [2, 3, 4, 6])
    members = variant.integer("consumers", CONSUMERS, 1, 4)
    rate = variant.scale("produce_rate_per_s", RATE_PER_S, 0.6, 1.4)
    control_rate = variant.scale("control_produce_rate_per_s", CONTROL_RATE_PER_S, 0.6, 1.5)
    headroom = variant.scale("headroom", HEADROOM, 0.7, 1.3)
    max_poll = variant.choice("max_poll_records", MAX_POLL_RECORDS, [200, 500, 1000])
    delay_s = members / (rate * headroom)
    control_delay_s = 1 / (control_rate * (1 + DRIFT) * headroom)
    topic, control_topic = f"product-updates{suffix}", f"notifications{suffix}"
    group, control = f"search-indexer{suffix}", f"email-sender{suffix}"
    bootstrap = sandbox.bootstrap_servers
    create_topic(bootstrap, topic, partitions=partitions)
    create_topic(bootstrap, control_topic, partitions=control_partitions)

    indexers = ConsumerGroupDriver(
        bootstrap, topic, group, delay_s=delay_s, max_poll_records=max_poll
    )
    senders = ConsumerGroupDriver(bootstrap, control_topic, control, delay_s=control_delay_s)
    producer = RateProducer(
        bootstrap, topic, rate_per_s=rate, client_id=f"catalog-producer{suffix}"
    )
    control_producer = RateProducer(
        bootstrap, control_topic, rate_per_s=control_rate, client_id=f"notify-producer{suffix}"
    )
    drift = RateDrift(control_producer, control_rate, DRIFT, DRIFT_PERIOD_S)
    recording = scenario_recording(
        sandbox, out, name=NAME, short=short, variant=variant, phases=phases,
        topic=topic, group=group,
        groups=[group, control],
        producers=[producer, control_producer],
        consumer_groups=[indexers, senders],
        lag_every_s=LAG_EVERY_S[form],
        control_topic=control_topic,
        control_group=control,
        partitions={topic: partitions, control_topic: control_partitions},
        produce_rate_per_s={
            topic: rate,
            control_topic: f"{control_rate:.0f} +/- {DRIFT:.0%} over {DRIFT_PERIOD_S:.0f} s",
        },
        processing_s_per_record={group: delay_s, control: control_delay_s},
        consumers={group: members, control: 1},
        max_poll_records={group: max_poll, control: 100},
    )
    try:
        indexers.add(members)
        senders.add(1)
        indexers.wait_assigned()
        senders.wait_assigned()
        recording.start()
        producer.start()
        control_producer.start()
        drift.start()
        recording.events.mark(
            "steady_start",
            f"{topic} at {rate:.0f} msg/s read by {members} members of {group} (batches of "
            f"{max_poll}); {control_topic} at {control_rate:.0f} msg/s +/- {DRIFT:.0%} read by "
            f"one member of {control}; both with ~{headroom:.1f}x headroom",
        )
        totals = observe(recording, group, phases["steady"] * 0.3)
        recording.capture("steady", group=group)
        totals += observe(recording, group, phases["steady"] * 0.4)
        recording.capture("steady-control", group=control)
        totals += observe(recording, group, phases["steady"] * 0.3)
        recording.capture("steady-end", group=group)
        recording.events.mark(
            "steady_end", f"{phases['steady'] / 60:.0f} quiet minutes later: nothing happened"
        )
        recording.meta["baseline_ceiling_lag"] = baseline_ceiling(totals, floor=200)
        recording.meta["messages_produced"] = producer.sent + control_producer.sent
    finally:
        recording.close(drift, producer, control_producer, indexers, senders)
    return recording.finish()
