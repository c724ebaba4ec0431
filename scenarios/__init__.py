"""Reproducible backpressure incidents on the sandbox Kafka, recorded as sample data.

Each scenario module drives the real sandbox cluster with real kafka-python
producers and consumers, records it with the project's own collectors and
writes a Dataset folder (see ``scenarios.record_all``)::

    python -m scenarios.record_all            # the long recordings -> sample_data/
    python -m scenarios.record_all --short    # the quick CI form
    python -m scenarios.record_all --only producer-burst --out /tmp/samples

Every module has ``NAME`` (the sample's name), ``SANDBOX`` (the ``Sandbox``
options it records with) and ``run(sandbox, out, *, short=False, suffix="", seed=None)``
(``seed``: a variant with other rates, sizes and timings, see ``scenarios._variant``).
"""

from __future__ import annotations

from types import ModuleType

MODULES: dict[str, str] = {
    "slow-consumer-then-scale-out": "scenarios.slow_consumer_then_scale_out",
    "producer-burst": "scenarios.producer_burst",
    "broker-flush-pressure": "scenarios.broker_flush_pressure",
    "skewed-partition": "scenarios.skewed_partition",
    "stuck-consumer": "scenarios.stuck_consumer",
    "consumers-gone": "scenarios.consumers_gone",
    "rebalance-churn": "scenarios.rebalance_churn",
    "offset-reset": "scenarios.offset_reset",
    "healthy-baseline": "scenarios.healthy_baseline",
    "multi-group-cluster": "scenarios.multi_group_cluster",
}

__all__ = ["MODULES", "scenario"]


def scenario(name: str) -> ModuleType:
    """Return the module of the scenario called ``name`` (hyphenated, as in ``sample_data/``)."""
    import importlib

    if name not in MODULES:
        raise KeyError(f"no scenario {name!r}; known: {', '.join(MODULES)}")
    return importlib.import_module(MODULES[name])
