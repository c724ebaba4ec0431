"""producer-burst: the produce rate jumps for a while, lag builds, then drains on its own.

Timeline (long form; ``--short`` scales the phases down):

1. healthy — a producer at a base rate into a 6-partition topic; two
   consumers whose combined capacity is about 2.5x the base rate (headroom);
2. ``burst_start`` — the produce rate jumps above the group's capacity (a
   batch job, a retry storm); lag builds;
3. ``burst_end`` — the rate returns to the base; the same two consumers use
   their headroom to drain the backlog;
4. ``lag_baseline_reached`` — the group's total lag is back at its healthy level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios._recording import Recording, observe
from scenarios._workload import ConsumerGroupDriver, RateProducer, create_topic, stop_all

NAME = "producer-burst"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 6
BASE_RATE_PER_S = 200.0
BURST_RATE_PER_S = 900.0
CONSUMERS = 2
DELAY_S = 0.004
PHASES_S = {
    "long": {"healthy": 60, "burst": 60, "drain_max": 180, "tail": 30},
    "short": {"healthy": 12, "burst": 16, "drain_max": 45, "tail": 3},
}


def run(sandbox: Any, out: Path, *, short: bool = False, suffix: str = "") -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    phases = PHASES_S["short" if short else "long"]
    topic = f"clickstream{suffix}"
    group = f"sessionizer{suffix}"
    bootstrap = sandbox.bootstrap_servers
    create_topic(bootstrap, topic, partitions=PARTITIONS)

    consumers = ConsumerGroupDriver(bootstrap, topic, group, delay_s=DELAY_S)
    producer = RateProducer(
        bootstrap, topic, rate_per_s=BASE_RATE_PER_S, client_id=f"clickstream-producer{suffix}"
    )
    capacity = CONSUMERS / DELAY_S
    recording = Recording(
        sandbox,
        out,
        groups=[group],
        producers=[producer],
        consumer_groups=[consumers],
        meta={
            "scenario": NAME,
            "short": short,
            "topic": topic,
            "group": group,
            "partitions": PARTITIONS,
            "produce_rate_per_s": {"base": BASE_RATE_PER_S, "burst": BURST_RATE_PER_S},
            "processing_s_per_record": DELAY_S,
            "consumers": CONSUMERS,
            "group_capacity_per_s_nominal": capacity,
            "phases_s": phases,
        },
    )
    try:
        consumers.add(CONSUMERS)
        consumers.wait_assigned()
        recording.start()
        producer.start()
        recording.events.mark(
            "steady_start",
            f"producer at {BASE_RATE_PER_S:.0f} msg/s; {CONSUMERS} consumers, "
            f"nominal capacity ~{capacity:.0f} msg/s",
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=200)

        producer.set_rate(BURST_RATE_PER_S)
        recording.events.mark(
            "burst_start",
            f"produce rate {BASE_RATE_PER_S:.0f} -> {BURST_RATE_PER_S:.0f} msg/s "
            f"(above the group's ~{capacity:.0f} msg/s)",
        )
        observe(recording, group, phases["burst"] * 0.7)
        recording.capture("burst", group=group)
        observe(recording, group, phases["burst"] * 0.3)

        producer.set_rate(BASE_RATE_PER_S)
        recording.events.mark(
            "burst_end", f"produce rate back to {BASE_RATE_PER_S:.0f} msg/s; same consumers"
        )
        observe(recording, group, min(10.0, phases["drain_max"] / 4))
        recording.capture("draining", group=group)
        recording.drain_to_baseline(group, ceiling, phases, capture=None)
        recording.meta["messages_produced"] = producer.sent
        recording.stop_sampling()
    finally:
        recording.stop_sampling()
        stop_all([producer, consumers])
    return recording.finish()
