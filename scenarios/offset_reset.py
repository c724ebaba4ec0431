"""offset-reset: an operator rewinds a group's offsets; it replays the backlog (REWIND).

The topic already holds history (written before the recording starts), so a
reset has something to replay.

Timeline (long form; ``--short`` scales the phases down):

1. healthy — a producer at a steady rate; the group keeps up with headroom;
2. ``members_stopped`` — the operator stops every member (a reset needs an
   empty group);
3. ``offsets_reset`` — ``kafka-consumer-groups --reset-offsets --shift-by -N
   --execute`` moves every partition's committed offset back by N: lag jumps
   by N per partition, the produce rate does not change;
4. ``members_restarted`` — the same number of members start again and replay
   the backlog at the group's capacity;
5. ``lag_baseline_reached`` — the group's total lag is back at its healthy level.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from scenarios._recording import observe, scenario_recording
from scenarios._variant import Variant
from scenarios._workload import (
    ConsumerGroupDriver,
    RateProducer,
    create_topic,
    prefill,
)

NAME = "offset-reset"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 6
CONSUMERS = 3
RATE_PER_S = 300.0
HEADROOM = 1.5  # nominal group capacity over the produce rate
SHIFT_BY = {"long": 5000, "short": 600}
PHASES_S = {
    "long": {"healthy": 75, "drain_max": 480, "tail": 30},
    "short": {"healthy": 12, "drain_max": 90, "tail": 3},
}


def _reset(sandbox: Any, group: str, topic: str, shift_by: int) -> str:
    """Run the official tool's reset; retry while the group is still emptying."""
    args = (
        "--reset-offsets", "--group", group, "--topic", topic,
        "--shift-by", str(-shift_by), "--execute",
    )  # fmt: skip
    for attempt in range(5):
        result = sandbox.consumer_groups(*args)
        if result.returncode == 0 and "inactive" not in result.stdout + result.stderr:
            return str(result.stdout)
        time.sleep(1.0 + attempt)
    raise RuntimeError(
        f"kafka-consumer-groups --reset-offsets failed ({result.returncode}): "
        f"{result.stderr.strip() or result.stdout.strip()}"
    )


def run(
    sandbox: Any, out: Path, *, short: bool = False, suffix: str = "", seed: int | None = None
) -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    form = "short" if short else "long"
    variant = Variant(seed, NAME)
    phases = variant.phases(PHASES_S[form])
    partitions = variant.choice("partitions", PARTITIONS, [4, 6, 8])
    members = variant.integer("consumers", CONSUMERS, 2, 4)
    rate = variant.scale("produce_rate_per_s", RATE_PER_S, 0.7, 1.3)
    headroom = variant.scale("headroom", HEADROOM, 0.9, 1.2)
    shift_by = int(variant.scale("shift_by", SHIFT_BY[form], 0.6, 1.4))
    delay_s = members / (rate * headroom)
    topic = f"invoices{suffix}"
    group = f"invoice-exporter{suffix}"
    bootstrap = sandbox.bootstrap_servers
    create_topic(bootstrap, topic, partitions=partitions)
    history = prefill(bootstrap, topic, partitions=partitions, per_partition=int(shift_by * 1.5))

    config = {"auto_offset_reset": "latest"}  # start at the end of the history
    consumers = ConsumerGroupDriver(
        bootstrap, topic, group, delay_s=delay_s, consumer_config=config
    )
    producer = RateProducer(
        bootstrap, topic, rate_per_s=rate, client_id=f"invoice-producer{suffix}"
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
        history_messages=history,
        reset_shift_by=-shift_by,
    )
    try:
        recording.start_steady(
            consumers, members, producer,
            f"producer at {rate:.0f} msg/s; {members} consumers, nominal capacity "
            f"~{members / delay_s:.0f} msg/s; the topic holds {history} older messages",
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=200)

        recording.events.mark(
            "members_stopped", f"operator stops all {members} members of {group} to reset it"
        )
        consumers.stop()
        output = _reset(sandbox, group, topic, shift_by)
        recording.events.mark(
            "offsets_reset",
            f"kafka-consumer-groups --reset-offsets --group {group} --topic {topic} "
            f"--shift-by -{shift_by} --execute: {shift_by * partitions} messages to replay",
        )
        (recording.out / "captures" / "reset-offsets-output.txt").write_text(
            output, encoding="utf-8"
        )
        recording.capture("rewound", group=group)
        consumers.add(members)
        recording.events.mark(
            "members_restarted", f"{members} members start again and replay from the reset offsets"
        )
        consumers.wait_assigned(timeout_s=30)
        observe(recording, group, min(20.0, phases["drain_max"] / 4))
        recording.capture("replaying", group=group)
        recording.drain_to_baseline(group, ceiling, phases, capture="recovered")
        recording.meta["messages_produced"] = producer.sent
    finally:
        recording.close(producer, consumers)
    return recording.finish()
