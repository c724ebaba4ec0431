"""skewed-partition: one hot key makes one partition hold nearly all of the lag.

Timeline (long form; ``--short`` scales the phases down):

1. healthy — a producer at a steady rate, keys spread evenly over a
   6-partition topic; three consumers (two partitions each) with headroom;
2. ``skew_start`` — most messages now carry one hot key (a single big
   tenant), so the default partitioner (murmur2) sends them all to one
   partition; the consumer that owns it cannot keep up, that partition's lag
   grows while the others stay near zero;
3. ``skew_end`` — the hot key's traffic spreads out again; the backlog drains;
4. ``lag_baseline_reached`` — the group's total lag is back at its healthy level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios._recording import Recording, observe
from scenarios._workload import (
    ConsumerGroupDriver,
    RateProducer,
    create_topic,
    partition_for_key,
    skewed_keys,
    spread_keys,
    stop_all,
)

NAME = "skewed-partition"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 6
CONSUMERS = 3
RATE_PER_S = 300.0
HOT_SHARE = 0.8
HOT_KEY = b"tenant-0042"
DELAY_S = 0.005
PHASES_S = {
    "long": {"healthy": 45, "skew": 120, "drain_max": 150, "tail": 30},
    "short": {"healthy": 10, "skew": 22, "drain_max": 45, "tail": 3},
}


def run(sandbox: Any, out: Path, *, short: bool = False, suffix: str = "") -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    phases = PHASES_S["short" if short else "long"]
    topic = f"tenant-events{suffix}"
    group = f"billing-aggregator{suffix}"
    bootstrap = sandbox.bootstrap_servers
    hot_partition = partition_for_key(HOT_KEY, PARTITIONS)
    create_topic(bootstrap, topic, partitions=PARTITIONS)

    consumers = ConsumerGroupDriver(bootstrap, topic, group, delay_s=DELAY_S)
    skewed = skewed_keys(HOT_KEY, HOT_SHARE)
    spread = spread_keys()
    state = {"skewed": False}

    def keys(sequence: int) -> bytes | None:
        return skewed(sequence) if state["skewed"] else spread(sequence)

    producer = RateProducer(
        bootstrap, topic, rate_per_s=RATE_PER_S, keys=keys, client_id=f"tenant-producer{suffix}"
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
            "hot_key": HOT_KEY.decode(),
            "hot_key_share": HOT_SHARE,
            "hot_partition": hot_partition,
            "processing_s_per_record": DELAY_S,
            "consumers": CONSUMERS,
            "per_consumer_capacity_per_s_nominal": 1 / DELAY_S,
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
            f"producer at {RATE_PER_S:.0f} msg/s over 1000 keys; {CONSUMERS} consumers",
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=200)

        state["skewed"] = True
        recording.events.mark(
            "skew_start",
            f"{HOT_SHARE:.0%} of messages now keyed {HOT_KEY.decode()!r} -> partition "
            f"{hot_partition} gets ~{RATE_PER_S * HOT_SHARE:.0f} msg/s, more than one consumer's "
            f"~{1 / DELAY_S:.0f} msg/s",
        )
        observe(recording, group, phases["skew"] * 0.6)
        recording.capture("skewed", group=group)
        observe(recording, group, phases["skew"] * 0.4)

        state["skewed"] = False
        recording.events.mark("skew_end", "keys spread evenly over partitions again")
        recording.drain_to_baseline(group, ceiling, phases, capture="drained")
        recording.meta["messages_produced"] = producer.sent
        recording.stop_sampling()
    finally:
        recording.stop_sampling()
        stop_all([producer, consumers])
    return recording.finish()
