"""multi-group-cluster: three brokers, two big topics, three groups with different fates.

On a three-broker cluster (replication factor 3):

* ``orders`` (24 partitions) is read by ``order-audit`` (the control group:
  healthy throughout, plenty of headroom) and ``order-fulfilment`` (five
  members, so 5/5/5/5/4 partitions each);
* ``inventory-events`` (32 partitions) is read by ``inventory-sync`` (four
  members, eight partitions each).

Timeline (long form, 16-21 minutes as fast as it drains; ``--short`` scales it down):

1. healthy — everything keeps up;
2. ``slowdown_start`` — a deploy of ``order-fulfilment`` doubles its processing
   time per record (a new downstream call): it consumes slower than ``orders``
   is produced and its lag grows on every partition;
3. ``skew_start`` — one SKU's key gets hot on ``inventory-events``: the default
   partitioner sends it all to one partition, whose member cannot keep up;
4. ``slowdown_end`` — the fulfilment deploy is rolled back; it drains for
   minutes (``slowdown_drained`` when back at its baseline), the members with
   four partitions finishing before those with five;
5. ``skew_end`` — the hot key cools down; the hot partition drains for
   minutes (``skew_drained``).

``order-audit`` reads the same topic from the same brokers throughout and
keeps up: the problems are the consumers', not the cluster's.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from scenarios._recording import baseline_ceiling, observe_groups, scenario_recording
from scenarios._variant import Variant
from scenarios._workload import (
    ConsumerGroupDriver,
    RateProducer,
    create_topic,
    partition_for_key,
    skewed_keys,
    spread_keys,
)

NAME = "multi-group-cluster"
SANDBOX: dict[str, Any] = {"brokers": 3}

ORDERS_PARTITIONS = 24
INVENTORY_PARTITIONS = 32
ORDERS_RATE_PER_S = 200.0
INVENTORY_RATE_PER_S = 160.0
FULFILMENT_CONSUMERS = 5
FULFILMENT_HEADROOM = 1.4
SLOWDOWN_FACTOR = 2.1  # processing time per record after the bad deploy
AUDIT_CONSUMERS = 2
AUDIT_HEADROOM = 3.0
INVENTORY_CONSUMERS = 4
INVENTORY_HEADROOM = 1.8  # per member, over its even share of the produce rate
HOT_KEY = b"sku-000731"
HOT_SHARE = 0.6
PHASES_S = {
    "long": {
        "warmup": 90, "healthy": 180, "slow_alone": 180, "both": 120, "skew_alone": 120,
        "drain_max": 900, "tail": 60,
    },
    "short": {
        "warmup": 10, "healthy": 15, "slow_alone": 15, "both": 10, "skew_alone": 10,
        "drain_max": 180, "tail": 3,
    },
}  # fmt: skip
LAG_EVERY_S = {"long": 3.0, "short": 1.5}


def run(
    sandbox: Any, out: Path, *, short: bool = False, suffix: str = "", seed: int | None = None
) -> Path:
    """Run the scenario on ``sandbox`` and write the recording to ``out``."""
    form = "short" if short else "long"
    variant = Variant(seed, NAME)
    phases = variant.phases(PHASES_S[form], low=0.8, high=1.2)
    orders_partitions = variant.choice("orders_partitions", ORDERS_PARTITIONS, [24, 30, 36])
    inventory_partitions = variant.choice(
        "inventory_partitions", INVENTORY_PARTITIONS, [24, 32, 48]
    )
    fulfilment_members = variant.integer("fulfilment_consumers", FULFILMENT_CONSUMERS, 4, 7)
    inventory_members = variant.integer("inventory_consumers", INVENTORY_CONSUMERS, 3, 6)
    orders_rate = variant.scale("orders_rate_per_s", ORDERS_RATE_PER_S, 0.8, 1.2)
    inventory_rate = variant.scale("inventory_rate_per_s", INVENTORY_RATE_PER_S, 0.8, 1.2)
    slowdown = variant.scale("slowdown_factor", SLOWDOWN_FACTOR, 0.9, 1.15)
    hot_share = variant.scale("hot_key_share", HOT_SHARE, 0.9, 1.2)
    fulfilment_delay = fulfilment_members / (orders_rate * FULFILMENT_HEADROOM)
    audit_delay = AUDIT_CONSUMERS / (orders_rate * AUDIT_HEADROOM)
    inventory_delay = inventory_members / (inventory_rate * INVENTORY_HEADROOM)
    orders, inventory = f"orders{suffix}", f"inventory-events{suffix}"
    fulfilment, audit, sync = (
        f"order-fulfilment{suffix}", f"order-audit{suffix}", f"inventory-sync{suffix}",
    )  # fmt: skip
    hot_partition = partition_for_key(HOT_KEY, inventory_partitions)
    bootstrap = sandbox.bootstrap_servers
    replicas = min(3, len(sandbox.broker_ids))  # 3 on the scenario's own cluster
    create_topic(bootstrap, orders, partitions=orders_partitions, replication_factor=replicas)
    create_topic(bootstrap, inventory, partitions=inventory_partitions, replication_factor=replicas)

    fulfilment_group = ConsumerGroupDriver(bootstrap, orders, fulfilment, delay_s=fulfilment_delay)
    audit_group = ConsumerGroupDriver(bootstrap, orders, audit, delay_s=audit_delay)
    sync_group = ConsumerGroupDriver(bootstrap, inventory, sync, delay_s=inventory_delay)
    skewed, spread = skewed_keys(HOT_KEY, hot_share), spread_keys()
    state = {"skewed": False}

    def inventory_keys(sequence: int) -> bytes | None:
        return skewed(sequence) if state["skewed"] else spread(sequence)

    orders_producer = RateProducer(
        bootstrap, orders, rate_per_s=orders_rate, client_id=f"checkout-producer{suffix}"
    )
    inventory_producer = RateProducer(
        bootstrap,
        inventory,
        rate_per_s=inventory_rate,
        keys=inventory_keys,
        client_id=f"warehouse-producer{suffix}",
    )
    groups = [fulfilment, sync, audit]
    recording = scenario_recording(
        sandbox, out, name=NAME, short=short, variant=variant, phases=phases,
        topic=orders, group=fulfilment,
        groups=groups,
        producers=[orders_producer, inventory_producer],
        consumer_groups=[fulfilment_group, audit_group, sync_group],
        lag_every_s=LAG_EVERY_S[form],
        skewed_topic=inventory,
        skewed_group=sync,
        control_group=audit,
        partitions={orders: orders_partitions, inventory: inventory_partitions},
        replication_factor=replicas,
        produce_rate_per_s={orders: orders_rate, inventory: inventory_rate},
        processing_s_per_record={
            fulfilment: {"healthy": fulfilment_delay, "slow": fulfilment_delay * slowdown},
            audit: audit_delay,
            sync: inventory_delay,
        },
        consumers={
            fulfilment: fulfilment_members,
            audit: AUDIT_CONSUMERS,
            sync: inventory_members,
        },  # fmt: skip
        hot_key=HOT_KEY.decode(),
        hot_key_share=hot_share,
        hot_partition=hot_partition,
    )
    drained: list[threading.Thread] = []

    def watch(group: str, ceiling: int, kind: str) -> None:
        def wait() -> None:
            reached = recording.wait_for_baseline(
                group, at_most=ceiling, timeout_s=phases["drain_max"]
            )
            if reached is None:
                recording.events.mark(f"{kind}_timeout", f"lag of {group} still above {ceiling}")
            else:
                recording.events.mark(
                    kind, f"total lag of {group} back at or below {ceiling}", time=reached
                )

        thread = threading.Thread(target=wait, name=f"watch-{group}", daemon=True)
        thread.start()
        drained.append(thread)

    try:
        fulfilment_group.add(fulfilment_members)
        audit_group.add(AUDIT_CONSUMERS)
        sync_group.add(inventory_members)
        for driver in (fulfilment_group, audit_group, sync_group):
            driver.wait_assigned(timeout_s=60)
        orders_producer.start()
        inventory_producer.start()
        # Not recorded: eleven consumers and two producers starting on a busy machine lag for
        # a minute or more before they settle; the recorded healthy phase is the settled state.
        recording.settle(
            {fulfilment: orders_rate, audit: orders_rate, sync: inventory_rate},
            min_s=phases["warmup"],
        )
        recording.start()
        recording.events.mark(
            "steady_start",
            f"{orders} at {orders_rate:.0f} msg/s ({fulfilment}: {fulfilment_members} members, "
            f"{audit}: {AUDIT_CONSUMERS}); {inventory} at {inventory_rate:.0f} msg/s "
            f"({sync}: {inventory_members} members); 3 brokers",
        )
        # The ceilings come from the healthy phase's last two thirds: eleven clients that have
        # just started on a busy machine can still be catching up at its start.
        observe_groups(recording, groups, phases["healthy"] / 3)
        recording.capture("healthy", group=fulfilment)
        healthy = observe_groups(recording, groups, phases["healthy"] * 2 / 3)
        ceilings = {group: baseline_ceiling(healthy[group], floor=300) for group in groups}
        recording.meta["baseline_ceiling_lag_by_group"] = ceilings
        recording.meta["baseline_ceiling_lag"] = ceilings[fulfilment]

        fulfilment_group.set_delay(fulfilment_delay * slowdown)
        recording.events.mark(
            "slowdown_start",
            f"deploy of {fulfilment}: processing time per record "
            f"{fulfilment_delay * 1e3:.1f} -> {fulfilment_delay * slowdown * 1e3:.1f} ms "
            f"(capacity ~{fulfilment_members / (fulfilment_delay * slowdown):.0f} msg/s < "
            f"{orders_rate:.0f} msg/s)",
        )
        observe_groups(recording, groups, phases["slow_alone"])
        recording.capture("slow", group=fulfilment)

        state["skewed"] = True
        recording.events.mark(
            "skew_start",
            f"{hot_share:.0%} of {inventory} now keyed {HOT_KEY.decode()!r} -> partition "
            f"{hot_partition} gets ~{inventory_rate * hot_share:.0f} msg/s; its member of {sync} "
            f"handles ~{1 / inventory_delay:.0f} msg/s",
        )
        observe_groups(recording, groups, phases["both"])
        recording.capture("skewed", group=sync)

        fulfilment_group.set_delay(fulfilment_delay)
        recording.events.mark(
            "slowdown_end",
            f"{fulfilment} deploy rolled back: {fulfilment_delay * 1e3:.1f} ms per record again "
            f"(capacity ~{fulfilment_members / fulfilment_delay:.0f} msg/s)",
        )
        watch(fulfilment, ceilings[fulfilment], "slowdown_drained")
        observe_groups(recording, groups, phases["skew_alone"])
        recording.capture("draining", group=fulfilment)

        state["skewed"] = False
        recording.events.mark("skew_end", f"keys of {inventory} spread evenly again")
        watch(sync, ceilings[sync], "skew_drained")
        for thread in drained:
            thread.join()
        observe_groups(recording, groups, phases["tail"])
        recording.capture("recovered", group=sync)
        recording.meta["messages_produced"] = orders_producer.sent + inventory_producer.sent
    finally:
        recording.close(
            orders_producer, inventory_producer, fulfilment_group, audit_group, sync_group
        )
    return recording.finish()
