from __future__ import annotations

import numpy as np
import pandas as pd

import kbp_notebook as kbp
from kbp_notebook import viz
from tests.helpers.synthetic_dataset import START


def _stalled_frame():
    """Group "busy" keeps up; group "stuck" stops moving partition 1 with lag piling up."""
    t = np.arange(40) * 10.0
    rows = []
    for group in ("busy", "stuck"):
        for partition in (0, 1):
            log_end = (1_000 + 50 * t).astype(np.int64)
            committed = log_end - 5
            if group == "stuck" and partition == 1:
                committed = np.where(t < 100, log_end - 5, log_end[10] - 5)
            rows.append(pd.DataFrame({
                "time": START + pd.to_timedelta(t, unit="s"), "cluster": "c", "group": group,
                "topic": "t", "partition": np.int32(partition),
                "committed_offset": committed, "log_end_offset": log_end,
                "lag": log_end - committed, "consumer_id": "member-1",
            }))
    return pd.concat(rows, ignore_index=True)


def test_status_grid_colours_each_partition_by_burrow_status():
    status = kbp.lag_status(_stalled_frame())
    fig = viz.plot_lag_status(status)
    parts = status.partitions
    drawn = {}
    for trace in fig.data:
        assert trace.marker.color == viz.BURROW_COLOURS[trace.name]
        for x, y in zip(trace.x, trace.y, strict=True):
            drawn[(y.split(" / ")[0], int(x))] = trace.name
    assert len(drawn) == len(parts)
    for row in parts.itertuples(index=False):
        assert drawn[(row.group, int(row.partition))] == row.status
    stuck = parts[(parts["group"] == "stuck") & (parts["partition"] == 1)]["status"].iloc[0]
    assert stuck != "OK"
    group_status = status.groups.set_index("group")["status"]
    labels = {y for trace in fig.data for y in trace.y}
    assert any(label.startswith("stuck") and f"[{group_status['stuck']}]" in label
               for label in labels)


def test_status_timeline_one_cell_per_time_and_group():
    history = pd.DataFrame({
        "time": [START, START, START + pd.Timedelta(minutes=1), START + pd.Timedelta(minutes=1)],
        "group": ["a", "b", "a", "b"], "status": ["OK", "OK", "WARN", "STALL"],
    })
    fig = viz.plot_status_timeline(history)
    by_status = {trace.name: list(trace.y) for trace in fig.data}
    assert by_status == {"OK": ["a", "b"], "WARN": ["a"], "STALL": ["b"]}
    assert fig.data[0].marker.color == viz.BURROW_COLOURS["OK"]
    via_result = viz.plot_lag_status(None, history=history)
    assert [t.name for t in via_result.data] == [t.name for t in fig.data]


def test_status_over_time_of_a_build_up_stays_warn_up_to_the_peak():
    ds = kbp.load_sample("producer-burst")
    status = kbp.lag_status(ds.lag, timeline=True, timeline_points=120)
    fig = viz.plot_lag_status(status, over_time=True)
    cells = sorted(
        (pd.Timestamp(x), trace.name) for trace in fig.data for x in trace.x
    )
    assert {name for _, name in cells} == {"OK", "WARN"}  # never ERR while draining
    totals = status.group_timeline.set_index("time")["totallag"]
    peak = totals.idxmax().tz_localize(None)
    first_warn = next(when for when, name in cells if name == "WARN")
    between = [name for when, name in cells if first_warn <= when <= peak]
    assert between and set(between) == {"WARN"}
    assert all("lag " in text for trace in fig.data for text in trace.customdata)
    # a partition timeline is rolled up to the same group cells
    rolled = viz.plot_status_timeline(status.timeline)
    assert sorted((pd.Timestamp(x), t.name) for t in rolled.data for x in t.x) == cells


def test_status_over_time_tells_a_stall_a_stop_and_a_rewind_apart():
    ds = kbp.load_sample("stuck-consumer")
    status = kbp.lag_status(ds.lag, timeline=True, timeline_points=120)
    fig = viz.plot_status_timeline(status.group_timeline)
    rows = {trace.name: set(trace.y) for trace in fig.data}
    assert {"STALL", "STOP", "REWIND"} <= set(rows)
    assert all(rows[name] == {"ledger-writer"} for name in ("STALL", "STOP", "REWIND"))
    assert "audit-archiver" in rows["OK"] and "audit-archiver" not in rows.get("WARN", set())
