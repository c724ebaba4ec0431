"""Seeded variants of a scenario: the same incident with other rates, sizes and timings.

Without a seed a scenario runs with the settings its sample was recorded with.
With ``--seed N`` (``python -m scenarios.record_all --seed N``) each setting a
scenario draws through ``Variant`` is picked at random within a range a Kafka
engineer would call ordinary for that setting (a produce rate 0.7-1.4x the
default, 4-12 partitions, one more or one fewer consumer, phases 0.6-1.25x as
long), reproducibly from the seed. A scenario keeps its mechanism under any
draw: rates that must outrun a capacity are drawn as a ratio of it. The
settings drawn go into ``meta.json`` (``variant``), so a held-out recording
says what it is.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

_T = TypeVar("_T")


class Variant:
    """Draw a scenario's settings: the defaults without a seed, varied ones with a seed.

    Parameters
    ----------
    seed
        None for the defaults (the shipped sample), an integer for a variant.
    name
        The scenario's name, mixed into the seed so that one seed gives
        unrelated draws for different scenarios.
    """

    def __init__(self, seed: int | None, name: str = "") -> None:
        self.seed = seed
        self._rng = random.Random(f"{name}:{seed}")
        self.drawn: dict[str, Any] = {}

    @property
    def varied(self) -> bool:
        """True when the settings are drawn (a seed was given)."""
        return self.seed is not None

    def _keep(self, name: str, value: _T) -> _T:
        self.drawn[name] = value
        return value

    def scale(self, name: str, default: float, low: float, high: float) -> float:
        """Return ``default`` times a factor drawn in ``[low, high]`` (the default unseeded)."""
        if not self.varied:
            return self._keep(name, default)
        return self._keep(name, round(default * self._rng.uniform(low, high), 6))

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """Return an integer drawn in ``[low, high]`` (``default`` unseeded)."""
        if not self.varied:
            return self._keep(name, default)
        return self._keep(name, self._rng.randint(low, high))

    def choice(self, name: str, default: _T, options: Sequence[_T]) -> _T:
        """Return one of ``options`` (``default`` unseeded)."""
        if not self.varied:
            return self._keep(name, default)
        return self._keep(name, self._rng.choice(list(options)))

    def phases(
        self, phases: Mapping[str, float], *, low: float = 0.6, high: float = 1.25
    ) -> dict[str, float]:
        """Return the phase lengths, each scaled by its own factor in ``[low, high]``.

        ``drain_max`` (a time-out, not a phase) is scaled by the largest factor
        drawn, so a longer incident never runs out of time to drain.
        """
        if not self.varied:
            return self._keep("phases_s", dict(phases))
        out = {
            key: round(value * self._rng.uniform(low, high), 1)
            for key, value in phases.items()
            if key != "drain_max"
        }
        if "drain_max" in phases:
            out["drain_max"] = round(phases["drain_max"] * high, 1)
        return self._keep("phases_s", out)

    def meta(self) -> dict[str, Any]:
        """The seed and every setting drawn, for ``meta.json``."""
        return {"seed": self.seed, "drawn": dict(self.drawn)}
