"""rebalance-churn: members keep leaving and joining; every rebalance pauses the group.

Timeline (long form; ``--short`` scales the phases down):

1. healthy — a producer at a steady rate; the group's members keep up with a
   modest headroom (about a third over the produce rate);
2. ``churn_start`` — a deploy loop restarts members one at a time: a member
   leaves (``member_left``), a new one joins a few seconds later
   (``member_joined``); now and then a member's handler hangs
   (``member_hung``): it stops polling, keeps heartbeating, and the group
   expels it once ``max.poll.interval.ms`` passes, then a replacement joins.
   Every join and leave is a rebalance during which nobody consumes, and
   commits that race a rebalance fail (records processed twice), so lag
   builds although no consumer got slower and the producer did not speed up;
3. ``churn_end`` — the membership settles;
4. ``lag_baseline_reached`` — the same capacity has drained the backlog.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from scenarios._recording import Recording, observe, scenario_recording
from scenarios._variant import Variant
from scenarios._workload import ConsumerGroupDriver, RateProducer, create_topic

NAME = "rebalance-churn"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 8
CONSUMERS = 4
RATE_PER_S = 300.0
HEADROOM = 1.3  # nominal group capacity over the produce rate
MAX_POLL_RECORDS = 200  # a member finishes its batch (~2 s) before it rejoins a rebalance
MAX_POLL_INTERVAL_MS = 12_000  # a hung member is expelled after this long without a poll
HEARTBEAT_INTERVAL_MS = 3_000  # kafka-python's default: members hear of a rebalance this late
CHURN_PAUSE_S = (3.0, 7.0)  # between two restarts of the deploy loop
HANG_SHARE = 0.3  # share of the restarts that are a hung member's expulsion instead
PHASES_S = {
    "long": {"healthy": 60, "churn": 210, "drain_max": 480, "tail": 30},
    "short": {"healthy": 12, "churn": 40, "drain_max": 90, "tail": 3},
}


def _churn(
    recording: Recording,
    consumers: ConsumerGroupDriver,
    seconds: float,
    rng: random.Random,
) -> int:
    """Restart members one at a time for ``seconds``; return how many restarts happened."""
    group = consumers.group
    deadline = time.monotonic() + seconds
    restarts = 0
    while time.monotonic() < deadline:
        victim = rng.choice(consumers.workers)
        if rng.random() < HANG_SHARE:
            victim.hang()
            recording.events.mark(
                "member_hung",
                f"{victim.client_id} stops polling (handler stuck); expelled after "
                f"max.poll.interval.ms={MAX_POLL_INTERVAL_MS} ms",
            )
            time.sleep(MAX_POLL_INTERVAL_MS / 1000 + 2.0)
            consumers.remove(victim)
        else:
            consumers.remove(victim)
            recording.events.mark("member_left", f"{victim.client_id} restarts: leaves {group}")
            time.sleep(rng.uniform(2.0, 4.0))
        (joined,) = consumers.add(1)
        recording.events.mark("member_joined", f"{joined.client_id} joins {group}")
        restarts += 1
        time.sleep(min(rng.uniform(*CHURN_PAUSE_S), max(0.0, deadline - time.monotonic())))
    return restarts


def run(
    sandbox: Any, out: Path, *, short: bool = False, suffix: str = "", seed: int | None = None
) -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    variant = Variant(seed, NAME)
    phases = variant.phases(PHASES_S["short" if short else "long"])
    partitions = variant.choice("partitions", PARTITIONS, [6, 8, 12])
    members = variant.integer("consumers", CONSUMERS, 3, 5)
    rate = variant.scale("produce_rate_per_s", RATE_PER_S, 0.7, 1.3)
    headroom = variant.scale("headroom", HEADROOM, 0.93, 1.07)
    delay_s = members / (rate * headroom)
    topic = f"user-profile-updates{suffix}"
    group = f"profile-cache-warmer{suffix}"
    bootstrap = sandbox.bootstrap_servers
    create_topic(bootstrap, topic, partitions=partitions)

    consumers = ConsumerGroupDriver(
        bootstrap,
        topic,
        group,
        delay_s=delay_s,
        max_poll_records=MAX_POLL_RECORDS,
        consumer_config={
            "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
            "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        },
    )
    producer = RateProducer(
        bootstrap, topic, rate_per_s=rate, client_id=f"profile-producer{suffix}"
    )
    recording = scenario_recording(
        sandbox, out, name=NAME, short=short, variant=variant, phases=phases,
        topic=topic, group=group,
        producers=[producer],
        consumer_groups=[consumers],
        partitions=partitions,
        produce_rate_per_s=rate,
        processing_s_per_record=delay_s,
        consumers=members,
        group_capacity_per_s_nominal=members / delay_s,
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        max_poll_records=MAX_POLL_RECORDS,
    )
    try:
        recording.start_steady(
            consumers, members, producer,
            f"producer at {rate:.0f} msg/s; {members} consumers, nominal capacity "
            f"~{members / delay_s:.0f} msg/s",
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=200)

        recording.events.mark(
            "churn_start",
            f"deploy loop: members of {group} restart one at a time every "
            f"{CHURN_PAUSE_S[0]:.0f}-{CHURN_PAUSE_S[1]:.0f} s; some hang and are expelled",
        )
        restarts = _churn(
            recording, consumers, phases["churn"] * 0.5, random.Random(f"churn:{seed}")
        )
        recording.capture("churning", group=group)
        restarts += _churn(
            recording, consumers, phases["churn"] * 0.5, random.Random(f"churn2:{seed}")
        )
        recording.events.mark(
            "churn_end", f"membership settles: {len(consumers.workers)} members after {restarts} "
            "restarts",
        )  # fmt: skip
        recording.meta["restarts"] = restarts
        consumers.wait_assigned(timeout_s=30)
        observe(recording, group, 10)
        recording.drain_to_baseline(group, ceiling, phases, capture="drained")
        recording.meta["messages_produced"] = producer.sent
    finally:
        recording.close(producer, consumers)
    return recording.finish()
