"""Every scenario, in its short form, on the real sandbox: the effect must still show.

The short forms (30-60 s of workload each) run the same code as the shipped
long recordings, with the phases scaled down, on the session's shared
one-broker sandbox; the recording written by each is then held to the same
checks as the shipped samples (``scenarios.expectations``). A scenario that
no longer produces its incident fails here.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kbp_notebook.collect import read_dataset
from kbp_notebook.sandbox import Sandbox
from scenarios import MODULES, scenario
from scenarios.expectations import check

pytestmark = [pytest.mark.integration, pytest.mark.slow]


ONE_BROKER = [name for name in MODULES if scenario(name).SANDBOX.get("brokers", 1) == 1]
THREE_BROKERS = [name for name in MODULES if name not in ONE_BROKER]


@pytest.mark.parametrize("name", ONE_BROKER)
def test_short_scenario_shows_its_effect(name: str, sandbox: Sandbox, tmp_path: Path) -> None:
    _run_and_check(name, sandbox, tmp_path)


@pytest.mark.parametrize("name", THREE_BROKERS)
def test_short_three_broker_scenario_shows_its_effect(
    name: str, sandbox3: Sandbox, tmp_path: Path
) -> None:
    _run_and_check(name, sandbox3, tmp_path)


def test_a_seeded_variant_differs_and_still_shows_its_effect(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = _run_and_check("producer-burst", sandbox, tmp_path, seed=7)
    meta = read_dataset(folder).meta
    drawn = meta["variant"]["drawn"]
    assert meta["variant"]["seed"] == 7
    assert drawn["base_rate_per_s"] != 320.0 and drawn["phases_s"]["burst"] != 16
    assert meta["produce_rate_per_s"]["base"] == drawn["base_rate_per_s"]


def _run_and_check(name: str, sandbox: Sandbox, tmp_path: Path, seed: int | None = None) -> Path:
    module = scenario(name)
    suffix = f"-{uuid.uuid4().hex[:6]}"
    folder = module.run(sandbox, tmp_path / name, short=True, suffix=suffix, seed=seed)

    if name == "broker-flush-pressure":
        # The scenario sets dynamic per-broker settings for its run only; left behind,
        # every later test on the shared sandbox would fsync per message.
        assert _dynamic_broker_settings(sandbox) == {}

    ds = read_dataset(folder)
    check(ds, name)
    captures = sorted((folder / "captures").glob("*.txt"))
    assert len(captures) >= 3, f"only {len(captures)} kafka-consumer-groups captures"
    assert any(ds.meta["group"] in c.read_text() for c in captures)
    assert (folder / "captures" / "index.csv").exists()
    assert set(ds.meta["expected_causes"]) == set(ds.lag["group"])
    return folder


def _dynamic_broker_settings(sandbox: Sandbox) -> dict[str, object]:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    from scenarios.broker_flush_pressure import BROKER_SETTINGS

    admin = KafkaAdminClient(bootstrap_servers=sandbox.bootstrap_servers)
    try:
        resources = [
            ConfigResource(
                ConfigResourceType.BROKER, str(b), configs=dict.fromkeys(BROKER_SETTINGS)
            )
            for b in sandbox.broker_ids
        ]
        described = admin.describe_configs(resources, config_filter="all")
    finally:
        admin.close()
    return {
        f"{broker}:{key}": entry["value"]
        for broker, entries in described["broker"].items()
        for key, entry in entries.items()
        if entry["config_source"] == "DYNAMIC_BROKER_CONFIG"
    }
