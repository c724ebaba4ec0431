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

from scenarios._recording import scenario_recording
from scenarios._variant import Variant
from scenarios._workload import (
    ConsumerGroupDriver,
    RateProducer,
    create_topic,
    partition_for_key,
    skewed_keys,
    spread_keys,
)

NAME = "skewed-partition"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 6
CONSUMERS = 3
RATE_PER_S = 300.0
HOT_SHARE = 0.8
HOT_KEY = b"tenant-0042"
# One consumer's capacity as a share of the hot key's traffic: it cannot keep up with the
# hot partition, and drains it at a few dozen messages a second once the key cools down.
MEMBER_CAPACITY_SHARE = 0.73
DELAY_S = 1 / (MEMBER_CAPACITY_SHARE * HOT_SHARE * RATE_PER_S)  # 5.7 ms
PHASES_S = {
    "long": {"healthy": 45, "skew": 200, "drain_max": 420, "tail": 30},
    "short": {"healthy": 10, "skew": 22, "drain_max": 90, "tail": 3},
}


def run(
    sandbox: Any, out: Path, *, short: bool = False, suffix: str = "", seed: int | None = None
) -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    variant = Variant(seed, NAME)
    phases = variant.phases(PHASES_S["short" if short else "long"])
    partitions = variant.choice("partitions", PARTITIONS, [6, 8, 12])
    members = variant.integer("consumers", CONSUMERS, 3, 4)
    rate = variant.scale("produce_rate_per_s", RATE_PER_S, 0.8, 1.2)
    hot_share = variant.scale("hot_key_share", HOT_SHARE, 0.88, 1.12)
    delay_s = 1 / (variant.scale("member_capacity_share", MEMBER_CAPACITY_SHARE, 0.95, 1.05)
                   * hot_share * rate)  # fmt: skip
    topic = f"tenant-events{suffix}"
    group = f"billing-aggregator{suffix}"
    bootstrap = sandbox.bootstrap_servers
    hot_partition = partition_for_key(HOT_KEY, partitions)
    create_topic(bootstrap, topic, partitions=partitions)

    consumers = ConsumerGroupDriver(bootstrap, topic, group, delay_s=delay_s)
    skewed = skewed_keys(HOT_KEY, hot_share)
    spread = spread_keys()
    state = {"skewed": False}

    def keys(sequence: int) -> bytes | None:
        return skewed(sequence) if state["skewed"] else spread(sequence)

    producer = RateProducer(
        bootstrap, topic, rate_per_s=rate, keys=keys, client_id=f"tenant-producer{suffix}"
    )
    recording = scenario_recording(
        sandbox, out, name=NAME, short=short, variant=variant, phases=phases,
        topic=topic, group=group,
        producers=[producer],
        consumer_groups=[consumers],
        partitions=partitions,
        produce_rate_per_s=rate,
        hot_key=HOT_KEY.decode(),
        hot_key_share=hot_share,
        hot_partition=hot_partition,
        processing_s_per_record=delay_s,
        consumers=members,
        per_consumer_capacity_per_s_nominal=1 / delay_s,
    )
    try:
        recording.start_steady(
            consumers, members, producer,
            f"producer at {rate:.0f} msg/s over 1000 keys; {members} consumers",
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=200)

        state["skewed"] = True
        recording.events.mark(
            "skew_start",
            f"{hot_share:.0%} of messages now keyed {HOT_KEY.decode()!r} -> partition "
            f"{hot_partition} gets ~{rate * hot_share:.0f} msg/s, more than one consumer's "
            f"~{1 / delay_s:.0f} msg/s",
        )
        recording.observe_capturing(
            group, "skewed", phases["skew"] * 0.6, phases["skew"] * 0.4
        )

        state["skewed"] = False
        recording.events.mark("skew_end", "keys spread evenly over partitions again")
        recording.drain_to_baseline(group, ceiling, phases, capture="drained")
        recording.meta["messages_produced"] = producer.sent
    finally:
        recording.close(producer, consumers)
    return recording.finish()
