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


@pytest.mark.parametrize("name", list(MODULES))
def test_short_scenario_shows_its_effect(name: str, sandbox: Sandbox, tmp_path: Path) -> None:
    module = scenario(name)
    folder = module.run(sandbox, tmp_path / name, short=True, suffix=f"-{uuid.uuid4().hex[:6]}")

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
