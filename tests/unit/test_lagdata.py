"""Known answers for the owner of lag totals and owner ids (kbp_notebook.lagdata)."""

import numpy as np
import pandas as pd

from kbp_notebook.analysis import _series
from kbp_notebook.lagdata import lag_totals, owner_ids

T = pd.to_datetime(
    ["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:02"], utc=True
)


def _frame(rows):
    return pd.DataFrame(rows, columns=["group", "topic", "partition", "time", "lag"]).astype(
        {"lag": "Int64"}
    )


def test_missing_partition_gives_no_total_not_a_fall():
    frame = _frame(
        [
            ("g", "t", 0, T[0], 10), ("g", "t", 1, T[0], 20),
            ("g", "t", 0, T[1], 11),  # partition 1 did not report
            ("g", "t", 0, T[2], 12), ("g", "t", 1, T[2], 25),
        ]
    )
    out = lag_totals(frame)
    assert list(out.columns) == ["group", "topic", "time", "lag"]
    assert out["lag"].dtype == np.float64
    np.testing.assert_array_equal(out["lag"].to_numpy(), [30.0, np.nan, 37.0])


def test_na_lag_where_usually_known_gives_no_total_and_always_na_is_skipped():
    frame = _frame(
        [
            ("g", "t", 0, T[0], 10), ("g", "t", 1, T[0], 5), ("g", "t", 2, T[0], None),
            ("g", "t", 0, T[1], 10), ("g", "t", 1, T[1], None), ("g", "t", 2, T[1], None),
            ("g", "t", 0, T[2], None), ("g", "t", 1, T[2], None), ("g", "t", 2, T[2], None),
        ]
    )
    # partition 2 never committed (always NA): skipped; partition 1 lost its value at
    # T1: no total; nothing known at T2: no total.
    np.testing.assert_array_equal(lag_totals(frame)["lag"].to_numpy(), [15.0, np.nan, np.nan])


def test_several_keys_are_judged_against_their_own_usual_partition_count():
    frame = _frame(
        [
            ("a", "t", 0, T[0], 1), ("a", "t", 1, T[0], 2), ("a", "t", 2, T[0], 3),
            ("a", "t", 0, T[1], 4), ("a", "t", 1, T[1], 5), ("a", "t", 2, T[1], 6),
            ("b", "t", 0, T[0], 7),
            ("b", "t", 0, T[1], 8),
            ("b", "u", 0, T[0], 100), ("b", "u", 1, T[0], 100),
            ("b", "u", 0, T[1], 1),
        ]
    )
    out = lag_totals(frame)
    got = {(r.group, r.topic, r.time): r.lag for r in out.itertuples()}
    assert got[("a", "t", T[0])] == 6.0 and got[("a", "t", T[1])] == 15.0
    assert got[("b", "t", T[0])] == 7.0 and got[("b", "t", T[1])] == 8.0
    assert got[("b", "u", T[0])] == 200.0 and np.isnan(got[("b", "u", T[1])])
    by_group = lag_totals(frame, by=("group",))
    np.testing.assert_array_equal(by_group["lag"].to_numpy(), [6.0, 15.0, 207.0, np.nan])
    everything = lag_totals(frame, by=())
    assert list(everything.columns) == ["time", "lag"]
    np.testing.assert_array_equal(everything["lag"].to_numpy(), [213.0, np.nan])


def test_totals_agree_with_the_analysis_panel():
    frame = _frame(
        [
            ("g", "t", p, T[i], 10 * i + p)
            for i in range(3)
            for p in range(3)
            if not (i == 1 and p == 2)
        ]
    )
    frame = frame.assign(cluster="c", committed_offset=100, log_end_offset=100 + frame["lag"])
    lag = _series.prepare_lag(frame)
    panel = _series.build_panel(lag, by=_series.normalise_by(("group", "topic")))
    totals = lag_totals(lag)
    # the panel drops the incomplete snapshot; the totals keep it as NaN
    np.testing.assert_array_equal(panel["lag"][0][: panel.n[0]], totals["lag"].dropna())
    assert totals["lag"].isna().sum() == 1


def test_owner_ids_blank_and_dash_mean_no_owner():
    frame = pd.DataFrame({"consumer_id": ["c-1", "", " - ", None, " c-2 "]})
    ids = owner_ids(frame)
    assert ids is not None
    assert ids.isna().tolist() == [False, True, True, True, False]
    assert ids.dropna().tolist() == ["c-1", "c-2"]
    assert owner_ids(pd.DataFrame({"x": [1]})) is None
    assert _series.owner_ids is owner_ids
