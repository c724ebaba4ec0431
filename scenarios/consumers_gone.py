"""consumers-gone: every member of a group shuts down while the producer goes on (STOP).

Timeline (long form; ``--short`` scales the phases down):

1. healthy — a producer at a steady rate into the topic; the group's members
   keep up with plenty of headroom;
2. ``consumers_stopped`` — every member shuts down within a few seconds (a
   deployment scaled to zero, a crash loop after a bad config push) and leaves
   the group: the group is empty, its committed offsets stand still, the
   producer goes on and lag grows at the produce rate;
3. the recording ends with the group still empty: the lag never drains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios._recording import scenario_recording
from scenarios._variant import Variant
from scenarios._workload import ConsumerGroupDriver, RateProducer, create_topic

NAME = "consumers-gone"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 6
CONSUMERS = 3
RATE_PER_S = 250.0
HEADROOM = 3.0  # nominal group capacity over the produce rate
PHASES_S = {
    "long": {"healthy": 75, "gone": 165},
    "short": {"healthy": 12, "gone": 20},
}


def run(
    sandbox: Any, out: Path, *, short: bool = False, suffix: str = "", seed: int | None = None
) -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    variant = Variant(seed, NAME)
    phases = variant.phases(PHASES_S["short" if short else "long"])
    partitions = variant.choice("partitions", PARTITIONS, [4, 6, 8, 12])
    members = variant.integer("consumers", CONSUMERS, 1, min(4, partitions))
    rate = variant.scale("produce_rate_per_s", RATE_PER_S, 0.7, 1.4)
    headroom = variant.scale("headroom", HEADROOM, 0.7, 1.3)
    delay_s = members / (rate * headroom)
    topic = f"shipment-events{suffix}"
    group = f"shipment-tracker{suffix}"
    bootstrap = sandbox.bootstrap_servers
    create_topic(bootstrap, topic, partitions=partitions)

    consumers = ConsumerGroupDriver(bootstrap, topic, group, delay_s=delay_s)
    producer = RateProducer(
        bootstrap, topic, rate_per_s=rate, client_id=f"shipment-producer{suffix}"
    )
    recording = scenario_recording(
        sandbox, out, name=NAME, short=short, variant=variant, phases=phases,
        topic=topic, group=group,
        producers=[producer],
        consumer_groups=[consumers],
        partitions=partitions,
        produce_rate_per_s=rate,
        processing_s_per_record=delay_s,
        consumers={"before": members, "after": 0},
    )
    try:
        recording.start_steady(
            consumers, members, producer,
            f"producer at {rate:.0f} msg/s; {members} consumers in {group}, nominal capacity "
            f"~{members / delay_s:.0f} msg/s",
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=150)
        recording.meta["baseline_ceiling_lag"] = ceiling

        recording.events.mark(
            "consumers_stopped",
            f"all {members} members of {group} shut down and leave the group "
            f"(deployment scaled to zero); the producer goes on at {rate:.0f} msg/s",
        )
        consumers.stop()
        recording.events.mark("group_empty", f"{group} has no members left")
        recording.observe_capturing(
            group, "gone", phases["gone"] * 0.5, phases["gone"] * 0.5
        )
        recording.capture("still-gone", group=group)
        recording.meta["messages_produced"] = producer.sent
    finally:
        recording.close(producer, consumers)
    return recording.finish()
