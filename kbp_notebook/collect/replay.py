"""ReplayCollector: a recorded Dataset served one snapshot at a time, as a stand-in cluster."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from kbp_notebook.frames import Dataset

__all__ = ["ReplayCollector"]


class ReplayCollector:
    """Replay a recorded Dataset one snapshot per ``snapshot()`` call (a stand-in cluster).

    Lets the live monitor notebook run on a bundled sample; once the
    recording is exhausted, further calls return no rows.
    """

    def __init__(self, dataset: Dataset) -> None:
        self._lag = dataset.lag
        self._times = list(pd.Series(dataset.lag["time"].unique()).sort_values())
        self._next = 0

    def snapshot(self, groups: Iterable[str] | str | None = None) -> pd.DataFrame:
        """Return the next recorded snapshot (optionally only some groups)."""
        if self._next >= len(self._times):
            return self._lag.iloc[0:0]
        at = self._times[self._next]
        self._next += 1
        rows = self._lag[self._lag["time"] == at]
        if groups is not None:
            wanted = [groups] if isinstance(groups, str) else list(groups)
            rows = rows[rows["group"].isin(wanted)]
        out: pd.DataFrame = rows.reset_index(drop=True)
        return out
