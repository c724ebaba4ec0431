"""Seeded scenario variants: the defaults without a seed, reproducible draws in range with one."""

from __future__ import annotations

import pytest

from scenarios import MODULES, scenario
from scenarios._variant import Variant


def test_without_a_seed_the_defaults_come_back() -> None:
    variant = Variant(None, "x")
    assert variant.scale("rate", 300.0, 0.5, 2.0) == 300.0
    assert variant.integer("members", 3, 1, 9) == 3
    assert variant.choice("partitions", 6, [4, 8]) == 6
    assert variant.phases({"healthy": 60, "drain_max": 100}) == {"healthy": 60, "drain_max": 100}
    assert variant.meta() == {
        "seed": None,
        "drawn": {
            "rate": 300.0,
            "members": 3,
            "partitions": 6,
            "phases_s": {"healthy": 60, "drain_max": 100},
        },
    }


def test_a_seed_draws_reproducibly_within_the_ranges() -> None:
    def draw(seed: int, name: str = "x") -> dict[str, object]:
        variant = Variant(seed, name)
        variant.scale("rate", 300.0, 0.7, 1.4)
        variant.integer("members", 3, 2, 5)
        variant.choice("partitions", 6, [4, 8, 12])
        variant.phases({"healthy": 60.0, "growth": 120.0, "drain_max": 100.0})
        return variant.meta()["drawn"]

    assert draw(5) == draw(5)
    assert draw(5) != draw(6) and draw(5) != draw(5, "y")
    for seed in range(50):
        drawn = draw(seed)
        assert 210.0 <= drawn["rate"] <= 420.0
        assert 2 <= drawn["members"] <= 5 and drawn["partitions"] in (4, 8, 12)
        phases = drawn["phases_s"]
        assert 0.6 * 60 <= phases["healthy"] <= 1.25 * 60
        assert phases["drain_max"] == 125.0  # the time-out grows with the longest phase


@pytest.mark.parametrize("name", list(MODULES))
def test_every_scenario_takes_a_seed(name: str) -> None:
    import inspect

    assert "seed" in inspect.signature(scenario(name).run).parameters


def test_scenario_meta_puts_the_shared_facts_around_the_scenarios_own() -> None:
    from scenarios._recording import scenario_meta

    variant = Variant(None, "x")
    phases = variant.phases({"healthy": 60, "drain_max": 100})
    meta = scenario_meta(name="x", short=True, variant=variant, phases=phases, topic="t",
                         group="g", partitions=6, produce_rate_per_s=300.0)
    assert list(meta) == ["scenario", "short", "topic", "group", "partitions",
                          "produce_rate_per_s", "phases_s", "variant"]
    assert meta["scenario"] == "x" and meta["short"] is True and meta["partitions"] == 6
    assert meta["phases_s"] == {"healthy": 60, "drain_max": 100}
    assert meta["variant"] == {"seed": None, "drawn": {"phases_s": phases}}
