"""broker-flush-pressure: slow fsyncs on the broker's disk make produce, commits and lag suffer.

The broker flushes its logs after every message (``log.flush.interval.messages=1``,
applied to every broker as a dynamic setting for the run, so it also covers
``__consumer_offsets``: every offset commit is fsynced too) and runs two
request handler threads (``num.io.threads=2``, also dynamic). On a quiet
disk an fsync takes a few milliseconds and nothing shows. Then a disk-heavy
neighbour (``dd`` writers in a loop on the broker's data disk, some
streaming with direct I/O, some filling the page cache and fsyncing it;
bounded in time) competes for the disk: the broker's fsyncs wait for the
device and behind the neighbour's journal commits,
``LogFlushRateAndTimeMs`` p99 climbs, the request handlers spend their time
in fsync, produce and commit requests slow down, and the consumer group —
which commits synchronously after every small batch, as many services do —
falls behind. When the neighbour stops, the backlog drains.

Timeline (long form; ``--short`` scales the phases down):

1. healthy — flushing on every message, quiet disk;
2. ``flush_pressure_start`` — the neighbour starts writing;
3. ``flush_pressure_end`` — the neighbour stops and its files are deleted;
4. ``lag_baseline_reached`` — the group's total lag is back at its healthy level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios._recording import scenario_recording
from scenarios._variant import Variant
from scenarios._workload import (
    ConsumerGroupDriver,
    DiskNeighbour,
    RateProducer,
    alter_broker_config,
    create_topic,
)

NAME = "broker-flush-pressure"
# Dynamic per-broker settings for the run (removed again at the end): flush after every
# message, and two request handler threads (the sandbox starts with four), so a slow fsync
# holds up the other requests queued behind it.
BROKER_SETTINGS = {"log.flush.interval.messages": "1", "num.io.threads": "2"}
SANDBOX: dict[str, Any] = {"brokers": 1}

PARTITIONS = 4
RATE_PER_S = 200.0
LINGER_MS = 20
CONSUMERS = 2
DELAY_S = 0.001
MAX_POLL_RECORDS = 20
NEIGHBOUR_WRITERS = 4
NEIGHBOUR_DIRECT_WRITERS = 2
PHASES_S = {
    "long": {"warmup": 45, "healthy": 60, "pressure": 90, "drain_max": 150, "tail": 30},
    "short": {"warmup": 10, "healthy": 15, "pressure": 28, "drain_max": 90, "tail": 3},
}


def run(
    sandbox: Any, out: Path, *, short: bool = False, suffix: str = "", seed: int | None = None
) -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    variant = Variant(seed, NAME)
    phases = variant.phases(PHASES_S["short" if short else "long"], low=0.75, high=1.2)
    partitions = variant.choice("partitions", PARTITIONS, [3, 4, 6])
    rate = variant.scale("produce_rate_per_s", RATE_PER_S, 0.8, 1.2)
    writers = variant.integer("neighbour_writers", NEIGHBOUR_WRITERS, 4, 5)
    topic = f"payments{suffix}"
    group = f"fraud-scorer{suffix}"
    bootstrap = sandbox.bootstrap_servers
    create_topic(bootstrap, topic, partitions=partitions)

    consumers = ConsumerGroupDriver(
        bootstrap, topic, group, delay_s=DELAY_S, max_poll_records=MAX_POLL_RECORDS
    )
    producer = RateProducer(
        bootstrap,
        topic,
        rate_per_s=rate,
        client_id=f"payments-producer{suffix}",
        producer_config={"linger_ms": LINGER_MS},
    )
    neighbour = DiskNeighbour(
        Path(sandbox.workdir) / "disk-neighbour",
        writers=writers,
        direct_writers=NEIGHBOUR_DIRECT_WRITERS,
        file_mib=256,
        max_seconds=phases["pressure"] + 30,
    )
    recording = scenario_recording(
        sandbox, out, name=NAME, short=short, variant=variant, phases=phases,
        topic=topic, group=group,
        producers=[producer],
        consumer_groups=[consumers],
        partitions=partitions,
        produce_rate_per_s=rate,
        producer_linger_ms=LINGER_MS,
        processing_s_per_record=DELAY_S,
        max_poll_records=MAX_POLL_RECORDS,
        commit="synchronous, after every poll",
        consumers=CONSUMERS,
        dynamic_broker_config=BROKER_SETTINGS,
        disk_neighbour={
            "tool": "dd if=/dev/zero bs=4M, oflag=direct (streaming) or conv=fsync "
            "(page cache filled, then fsync); file deleted after each pass",
            "direct_writers": NEIGHBOUR_DIRECT_WRITERS,
            "writers": writers,
            "file_mib": neighbour.file_mib,
        },
    )
    try:
        alter_broker_config(bootstrap, sandbox.broker_ids, dict(BROKER_SETTINGS))
        consumers.add(CONSUMERS)
        consumers.wait_assigned()
        producer.start()
        # Not recorded: Kafka's flush-time histogram is a decaying reservoir that still
        # holds the broker's start-up and metadata-log flushes; let the steady per-message
        # flushes replace them so the recorded baseline is the steady state. The group must
        # also have caught up with the producer it has just met.
        recording.settle({group: rate}, min_s=phases["warmup"])
        recording.start()
        recording.events.mark(
            "steady_start",
            f"producer at {rate:.0f} msg/s; {CONSUMERS} consumers committing every "
            f"{MAX_POLL_RECORDS} records; broker flushes after every message",
        )
        ceiling = recording.observe_healthy(group, phases["healthy"], floor=300)

        neighbour.start()
        recording.events.mark(
            "flush_pressure_start",
            f"disk-heavy neighbour: {writers} dd writers in a loop on the broker's data "
            f"disk ({NEIGHBOUR_DIRECT_WRITERS} with direct I/O, the others filling the page "
            f"cache then fsyncing {neighbour.file_mib} MiB)",
        )
        recording.observe_capturing(
            group, "pressure", phases["pressure"] * 0.7, phases["pressure"] * 0.3
        )
        neighbour.stop()
        recording.events.mark(
            "flush_pressure_end",
            f"neighbour stopped after writing {neighbour.bytes_written / 2**20:.0f} MiB",
        )
        recording.drain_to_baseline(group, ceiling, phases, capture="recovered")
        recording.meta["messages_produced"] = producer.sent
        recording.meta["neighbour_mib_written"] = round(neighbour.bytes_written / 2**20)
    finally:
        recording.close(neighbour, producer, consumers)
        alter_broker_config(bootstrap, sandbox.broker_ids, dict.fromkeys(BROKER_SETTINGS))
    return recording.finish()
