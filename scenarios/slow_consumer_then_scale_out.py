"""slow-consumer-then-scale-out: a consumer slows down, lag grows, more consumers drain it.

Timeline (long form; ``--short`` scales the phases down):

1. healthy — one producer at a steady rate into a 6-partition topic; one
   consumer of the group whose per-record processing time leaves headroom;
2. ``slowdown_start`` — the processing time per record rises (a slow
   downstream call), so the group consumes slower than the produce rate and
   lag grows linearly;
3. ``consumers_added`` — five more members join (six: one per partition),
   the group rebalances and the backlog drains;
4. ``lag_baseline_reached`` — the group's total lag is back at its healthy
   level (written when observed, from the scenario's own LAG snapshots).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios._recording import Recording, observe
from scenarios._workload import ConsumerGroupDriver, RateProducer, create_topic, stop_all

NAME = "slow-consumer-then-scale-out"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 6
RATE_PER_S = 300.0
HEALTHY_DELAY_S = 0.0015
SLOW_DELAY_S = 0.006
ADDED_CONSUMERS = 5
PHASES_S = {
    "long": {"healthy": 60, "growth": 120, "drain_max": 150, "tail": 30},
    "short": {"healthy": 12, "growth": 22, "drain_max": 45, "tail": 3},
}


def run(sandbox: Any, out: Path, *, short: bool = False, suffix: str = "") -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    phases = PHASES_S["short" if short else "long"]
    topic = f"orders{suffix}"
    group = f"orders-enricher{suffix}"
    bootstrap = sandbox.bootstrap_servers
    create_topic(bootstrap, topic, partitions=PARTITIONS)

    consumers = ConsumerGroupDriver(bootstrap, topic, group, delay_s=HEALTHY_DELAY_S)
    producer = RateProducer(
        bootstrap, topic, rate_per_s=RATE_PER_S, client_id=f"orders-producer{suffix}"
    )
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
            "produce_rate_per_s": RATE_PER_S,
            "processing_s_per_record": {"healthy": HEALTHY_DELAY_S, "slow": SLOW_DELAY_S},
            "consumers": {"before": 1, "after": 1 + ADDED_CONSUMERS},
            "phases_s": phases,
        },
    )
    try:
        consumers.add(1)
        consumers.wait_assigned()
        recording.start()
        producer.start()
        recording.events.mark(
            "steady_start", f"producer at {RATE_PER_S:.0f} msg/s; 1 consumer in {group}"
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=200)

        consumers.set_delay(SLOW_DELAY_S)
        recording.events.mark(
            "slowdown_start",
            f"processing time per record {HEALTHY_DELAY_S * 1e3:.1f} ms -> "
            f"{SLOW_DELAY_S * 1e3:.1f} ms: capacity ~{1 / SLOW_DELAY_S:.0f} msg/s "
            f"< produce rate {RATE_PER_S:.0f} msg/s",
        )
        observe(recording, group, phases["growth"] * 0.6)
        recording.capture("lag-growing", group=group)
        observe(recording, group, phases["growth"] * 0.4)

        consumers.add(ADDED_CONSUMERS)
        recording.events.mark(
            "consumers_added",
            f"{ADDED_CONSUMERS} consumers joined {group}: {len(consumers.workers)} members for "
            f"{PARTITIONS} partitions, same per-record time",
        )
        consumers.wait_assigned(timeout_s=30)
        recording.capture("scaled-out", group=group)
        recording.drain_to_baseline(group, ceiling, phases, capture="drained")
        recording.meta["messages_produced"] = producer.sent
        recording.stop_sampling()
    finally:
        recording.stop_sampling()
        stop_all([producer, consumers])
    return recording.finish()
