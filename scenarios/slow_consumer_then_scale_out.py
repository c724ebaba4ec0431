"""slow-consumer-then-scale-out: a consumer slows down, lag grows, more consumers drain it.

Timeline (long form; ``--short`` scales the phases down):

1. healthy — one producer at a steady rate into a 6-partition topic; one
   consumer of the group whose per-record processing time leaves headroom;
2. ``slowdown_start`` — the processing time per record rises (a slow
   downstream call), so the group consumes slower than the produce rate and
   lag grows linearly;
3. ``consumers_added`` — three more members join (four for six partitions:
   two members own two partitions, two own one), the group rebalances and
   the backlog drains for minutes, the members with one partition finishing
   first;
4. ``lag_baseline_reached`` — the group's total lag is back at its healthy
   level (written when observed, from the scenario's own LAG snapshots).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios._recording import scenario_recording
from scenarios._variant import Variant
from scenarios._workload import ConsumerGroupDriver, RateProducer, create_topic

NAME = "slow-consumer-then-scale-out"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 6
RATE_PER_S = 300.0
HEALTHY_DELAY_S = 0.0015
SLOW_DELAY_S = 0.006
ADDED_CONSUMERS = 3
PHASES_S = {
    "long": {"healthy": 60, "growth": 270, "drain_max": 420, "tail": 30},
    "short": {"healthy": 12, "growth": 22, "drain_max": 90, "tail": 3},
}


def run(
    sandbox: Any, out: Path, *, short: bool = False, suffix: str = "", seed: int | None = None
) -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    variant = Variant(seed, NAME)
    phases = variant.phases(PHASES_S["short" if short else "long"])
    partitions = variant.choice("partitions", PARTITIONS, [6, 8, 12])
    rate = variant.scale("produce_rate_per_s", RATE_PER_S, 0.7, 1.3)
    # how busy one consumer is at the produce rate: 0.45 healthy, 1.8 slowed (defaults)
    healthy_busy = variant.scale("busy_share_healthy", HEALTHY_DELAY_S * RATE_PER_S, 0.8, 1.2)
    slow_busy = variant.scale("busy_share_slow", SLOW_DELAY_S * RATE_PER_S, 0.85, 1.25)
    healthy_delay, slow_delay = healthy_busy / rate, slow_busy / rate
    added = variant.integer("added_consumers", ADDED_CONSUMERS, 2, partitions - 1)
    topic = f"orders{suffix}"
    group = f"orders-enricher{suffix}"
    bootstrap = sandbox.bootstrap_servers
    create_topic(bootstrap, topic, partitions=partitions)

    consumers = ConsumerGroupDriver(bootstrap, topic, group, delay_s=healthy_delay)
    producer = RateProducer(bootstrap, topic, rate_per_s=rate, client_id=f"orders-producer{suffix}")
    recording = scenario_recording(
        sandbox, out, name=NAME, short=short, variant=variant, phases=phases,
        topic=topic, group=group,
        producers=[producer],
        consumer_groups=[consumers],
        partitions=partitions,
        produce_rate_per_s=rate,
        processing_s_per_record={"healthy": healthy_delay, "slow": slow_delay},
        consumers={"before": 1, "after": 1 + added},
    )
    try:
        recording.start_steady(
            consumers, 1, producer,
            f"producer at {rate:.0f} msg/s; 1 consumer in {group}"
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=200)

        consumers.set_delay(slow_delay)
        recording.events.mark(
            "slowdown_start",
            f"processing time per record {healthy_delay * 1e3:.1f} ms -> "
            f"{slow_delay * 1e3:.1f} ms: capacity ~{1 / slow_delay:.0f} msg/s "
            f"< produce rate {rate:.0f} msg/s",
        )
        recording.observe_capturing(
            group, "lag-growing", phases["growth"] * 0.6, phases["growth"] * 0.4
        )

        consumers.add(added)
        recording.events.mark(
            "consumers_added",
            f"{added} consumers joined {group}: {len(consumers.workers)} members for "
            f"{partitions} partitions, same per-record time",
        )
        consumers.wait_assigned(timeout_s=30)
        recording.capture("scaled-out", group=group)
        recording.drain_to_baseline(group, ceiling, phases, capture="drained")
        recording.meta["messages_produced"] = producer.sent
    finally:
        recording.close(producer, consumers)
    return recording.finish()
