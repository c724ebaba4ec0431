"""stuck-consumer: a member that stalls (STALL), then leaves (STOP), then offsets rewound (REWIND).

Two groups read the same 3-partition topic: ``ledger-writer`` (the one that
gets stuck) and ``audit-archiver`` (a healthy control group that keeps up
throughout, so a reader can tell a consumer problem from a cluster problem).

Timeline of ``ledger-writer`` (long form; ``--short`` scales the phases down):

1. healthy — one member keeps up with a steady producer;
2. ``stall_start`` — the member wedges (a poison record, a deadlock in the
   handler): it stays in the group and keeps heartbeating, and it re-commits
   the same offsets every 5 s, but it makes no progress. Committed offsets
   stand still, ``consumer_id`` stays set, lag grows;
3. ``member_left`` — the member is shut down and leaves the group; the group
   is empty (``consumer_id`` is NA), committed offsets still stand still,
   lag keeps growing;
4. ``offsets_reset`` — an operator rewinds the group with the official tool
   (``kafka-consumer-groups --reset-offsets --shift-by -N --execute``): the
   committed offsets move backwards, lag jumps up;
5. ``consumer_rejoined`` — a fresh member joins, reprocesses from the
   rewound offsets and drains the backlog;
6. ``lag_baseline_reached`` — the group's total lag is back at its healthy level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios._recording import observe, scenario_recording
from scenarios._variant import Variant
from scenarios._workload import ConsumerGroupDriver, RateProducer, create_topic

NAME = "stuck-consumer"
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 3
RATE_PER_S = 150.0
DELAY_S = 0.001
PHASES_S = {
    "long": {"healthy": 45, "stall": 60, "stopped": 50, "drain_max": 120, "tail": 25},
    "short": {"healthy": 10, "stall": 13, "stopped": 11, "drain_max": 90, "tail": 3},
}
SHIFT_BY = {"long": 3000, "short": 1000}


def run(
    sandbox: Any, out: Path, *, short: bool = False, suffix: str = "", seed: int | None = None
) -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    form = "short" if short else "long"
    variant = Variant(seed, NAME)
    phases = variant.phases(PHASES_S[form])
    partitions = variant.choice("partitions", PARTITIONS, [3, 4, 6])
    rate = variant.scale("produce_rate_per_s", RATE_PER_S, 0.7, 1.4)
    shift_by = int(variant.scale("shift_by", SHIFT_BY[form], 0.7, 1.3))
    topic = f"ledger-entries{suffix}"
    group = f"ledger-writer{suffix}"
    control = f"audit-archiver{suffix}"
    bootstrap = sandbox.bootstrap_servers
    create_topic(bootstrap, topic, partitions=partitions)

    stuck = ConsumerGroupDriver(bootstrap, topic, group, delay_s=DELAY_S)
    healthy_group = ConsumerGroupDriver(bootstrap, topic, control, delay_s=DELAY_S)
    producer = RateProducer(bootstrap, topic, rate_per_s=rate, client_id=f"ledger-producer{suffix}")
    recording = scenario_recording(
        sandbox, out, name=NAME, short=short, variant=variant, phases=phases,
        topic=topic, group=group,
        groups=[group, control],
        producers=[producer],
        consumer_groups=[stuck, healthy_group],
        control_group=control,
        partitions=partitions,
        produce_rate_per_s=rate,
        processing_s_per_record=DELAY_S,
        reset_shift_by=-shift_by,
    )
    try:
        stuck.add(1)
        healthy_group.add(1)
        stuck.wait_assigned()
        healthy_group.wait_assigned()
        recording.start()
        producer.start()
        recording.events.mark(
            "steady_start",
            f"producer at {rate:.0f} msg/s; one member in {group} and one in {control}",
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=150)

        member = stuck.workers[0]
        member.stall()
        recording.events.mark(
            "stall_start",
            f"{member.client_id} stops making progress but stays a member, heartbeating and "
            f"re-committing the same offsets every 5 s",
        )
        recording.observe_capturing(
            group, "stalled", phases["stall"] * 0.6, phases["stall"] * 0.4
        )

        stuck.remove(member)
        recording.events.mark(
            "member_left", f"{member.client_id} shut down and left {group}; the group is empty"
        )
        recording.observe_capturing(
            group, "stopped", phases["stopped"] * 0.5, phases["stopped"] * 0.5
        )

        result = sandbox.consumer_groups(
            "--reset-offsets", "--group", group, "--topic", topic,
            "--shift-by", str(-shift_by), "--execute",
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"kafka-consumer-groups --reset-offsets failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        recording.events.mark(
            "offsets_reset",
            f"kafka-consumer-groups --reset-offsets --group {group} --topic {topic} "
            f"--shift-by -{shift_by} --execute",
        )
        (recording.out / "captures" / "reset-offsets-output.txt").write_text(
            result.stdout, encoding="utf-8"
        )
        observe(recording, group, 6)
        recording.capture("rewound", group=group)
        observe(recording, group, 4)

        stuck.add(1)
        recording.events.mark(
            "consumer_rejoined", f"{stuck.workers[0].client_id} joined {group} and resumes"
        )
        recording.drain_to_baseline(group, ceiling, phases, capture="recovered")
        recording.meta["messages_produced"] = producer.sent
    finally:
        recording.close(producer, stuck, healthy_group)
    return recording.finish()
