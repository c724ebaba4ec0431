"""What the numbers of a LAG frame mean: lag totals per key and time, partition owners.

The one owner of two rules every layer needs (analysis, viz, widgets):

* **Total lag per key and snapshot.** Partition rows are summed to one value
  per key and snapshot time. A snapshot where fewer partitions reported than
  the key's usual number (the most rows it has at any snapshot) gets no total
  (NaN), and so does one where fewer partitions had a lag value than usual
  (NA lag = no commit yet) or none had: a missing partition never looks like a
  fall in lag. ``analysis._series.build_panel`` applies the same rule to its
  arrays (it drops the incomplete snapshots instead of keeping them as NaN).
* **Owner ids.** ``consumer_id`` with empty and ``-`` (what
  ``kafka-consumer-groups`` prints) meaning "no owner" (NA).

Layer: ground floor beside :mod:`kbp_notebook.frames`; imports only pandas/numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["lag_totals", "owner_ids"]


def lag_totals(lag: pd.DataFrame, *, by: Sequence[str] = ("group", "topic")) -> pd.DataFrame:
    """Total lag per key and snapshot time, NaN where a snapshot is incomplete.

    Parameters
    ----------
    lag
        LAG frame (validated or at least with ``time``, ``lag`` and the ``by``
        columns). Each row is one partition at one snapshot.
    by
        Key columns; ``()`` sums everything per snapshot time.

    Returns
    -------
    pandas.DataFrame
        Columns ``[*by, "time", "lag"]`` sorted by key and time, ``lag`` as
        float64: the sum over the key's partitions, NaN where fewer partitions
        reported (or had a lag value) than the key's usual number, or none had
        a value.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:00", "2024-01-01 00:01"], utc=True)
    >>> frame = pd.DataFrame({"group": "g", "topic": "t", "partition": [0, 1, 0],
    ...                       "time": t, "lag": [5, 7, 4]})
    >>> lag_totals(frame)["lag"].tolist()  # partition 1 missing at 00:01: no total
    [12.0, nan]
    """
    keys = list(by)
    values = lag["lag"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    present = ~np.isnan(values)
    frame = lag[[*keys, "time"]].assign(lag=np.where(present, values, 0.0), _present=present)
    grouped = frame.groupby([*keys, "time"], sort=True, observed=True)
    out = grouped.agg(
        lag=("lag", "sum"), _rows=("_present", "size"), _present=("_present", "sum")
    ).reset_index()
    if keys:
        per_key = out.groupby(keys, sort=False, observed=True)
        full_rows = per_key["_rows"].transform("max")
        complete = out["_rows"] >= full_rows
        full_present = out["_present"].where(complete).groupby(
            [out[k] for k in keys], sort=False, observed=True
        ).transform("max")
    else:
        complete = out["_rows"] >= out["_rows"].max()
        full_present = pd.Series(out["_present"].where(complete).max(), index=out.index)
    known = complete & (out["_present"] >= full_present) & (out["_present"] > 0)
    totals = out["lag"].astype(np.float64).where(known.to_numpy(dtype=bool))
    return out[[*keys, "time"]].assign(lag=totals.to_numpy(dtype=np.float64))


def owner_ids(frame: pd.DataFrame) -> pd.Series | None:
    """Each row's ``consumer_id``, stripped; NA where the partition has no owner.

    Empty and ``-`` (what ``kafka-consumer-groups`` prints) mean no owner.
    None when the frame has no ``consumer_id`` column.
    """
    if "consumer_id" not in frame.columns:
        return None
    ids = frame["consumer_id"].astype("string").fillna("").str.strip()
    return ids.where(~ids.isin(["", "-"]))
