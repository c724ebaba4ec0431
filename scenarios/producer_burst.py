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

from scenarios._recording import observe, scenario_recording
from scenarios._variant import Variant
from scenarios._workload import ConsumerGroupDriver, RateProducer, create_topic

NAME = "producer-burst"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 6
BASE_RATE_PER_S = 320.0
BURST_RATE_PER_S = 880.0
CONSUMERS = 2
DELAY_S = 0.004
PHASES_S = {
    "long": {"healthy": 60, "burst": 100, "drain_max": 420, "tail": 30},
    "short": {"healthy": 12, "burst": 16, "drain_max": 90, "tail": 3},
}


def run(
    sandbox: Any, out: Path, *, short: bool = False, suffix: str = "", seed: int | None = None
) -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    variant = Variant(seed, NAME)
    phases = variant.phases(PHASES_S["short" if short else "long"])
    partitions = variant.choice("partitions", PARTITIONS, [4, 6, 8, 12])
    members = variant.integer("consumers", CONSUMERS, 2, 4)
    base_rate = variant.scale("base_rate_per_s", BASE_RATE_PER_S, 0.7, 1.3)
    # capacity and burst as multiples of the base rate (defaults: 1.56x and 2.75x)
    headroom = variant.scale("headroom", CONSUMERS / DELAY_S / BASE_RATE_PER_S, 0.9, 1.2)
    burst = variant.scale("burst_factor", BURST_RATE_PER_S / BASE_RATE_PER_S, 1.0, 1.2)
    burst_rate = base_rate * burst
    delay_s = members / (base_rate * headroom)
    topic = f"clickstream{suffix}"
    group = f"sessionizer{suffix}"
    bootstrap = sandbox.bootstrap_servers
    create_topic(bootstrap, topic, partitions=partitions)

    consumers = ConsumerGroupDriver(bootstrap, topic, group, delay_s=delay_s)
    producer = RateProducer(
        bootstrap, topic, rate_per_s=base_rate, client_id=f"clickstream-producer{suffix}"
    )
    capacity = members / delay_s
    recording = scenario_recording(
        sandbox, out, name=NAME, short=short, variant=variant, phases=phases,
        topic=topic, group=group,
        producers=[producer],
        consumer_groups=[consumers],
        partitions=partitions,
        produce_rate_per_s={"base": base_rate, "burst": burst_rate},
        processing_s_per_record=delay_s,
        consumers=members,
        group_capacity_per_s_nominal=capacity,
    )
    try:
        recording.start_steady(
            consumers, members, producer,
            f"producer at {base_rate:.0f} msg/s; {members} consumers, "
            f"nominal capacity ~{capacity:.0f} msg/s",
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=200)

        producer.set_rate(burst_rate)
        recording.events.mark(
            "burst_start",
            f"produce rate {base_rate:.0f} -> {burst_rate:.0f} msg/s "
            f"(above the group's ~{capacity:.0f} msg/s)",
        )
        recording.observe_capturing(
            group, "burst", phases["burst"] * 0.7, phases["burst"] * 0.3
        )

        producer.set_rate(base_rate)
        recording.events.mark(
            "burst_end", f"produce rate back to {base_rate:.0f} msg/s; same consumers"
        )
        observe(recording, group, min(10.0, phases["drain_max"] / 4))
        recording.capture("draining", group=group)
        recording.drain_to_baseline(group, ceiling, phases, capture=None)
        recording.meta["messages_produced"] = producer.sent
    finally:
        recording.close(producer, consumers)
    return recording.finish()
