"""Read-only guarantee: recording and live monitoring never change what they watch.

A real consumer group (two members, manual commits, a producer feeding it)
keeps its own log of the truth: every offset it committed, every rebalance
callback, every generation it saw. Across a full recording and a LiveMonitor
session:

* membership and generation are unchanged (no rebalance: we never joined);
* every committed offset we report is one the consumers committed, and the
  group's final committed offsets are exactly the consumers' last commits;
* no topic and no group appeared on the cluster because of us.
"""

from __future__ import annotations

import time

import pytest

from kbp_notebook.collect.kafka_lag import LagCollector
from kbp_notebook.collect.storage import read_dataset
from tests.helpers.reliability import (
    GroupWorkload,
    create_topic,
    list_topics_and_groups,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _members(bootstrap: str, group: str) -> set[tuple[str, str]]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        description = admin.describe_groups([group])
        described = description[group] if isinstance(description, dict) else description[0]
        return {
            (str(m.get("member_id")), str(m.get("client_id"))) for m in described.get("members", [])
        }
    finally:
        admin.close()


def _final_committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        raw = admin.list_group_offsets({group: None})[group]
        return {(tp.topic, tp.partition): int(o.offset) for tp, o in raw.items() if o.offset >= 0}
    finally:
        admin.close()


def test_recording_and_live_monitor_leave_the_group_untouched(sandbox, tmp_path) -> None:
    from kbp_notebook.widgets.live_monitor import LiveMonitor

    bootstrap = sandbox.bootstrap_servers
    topic, group = unique("rel-ro-topic"), unique("rel-ro-group")
    create_topic(bootstrap, topic, 4)
    workload = GroupWorkload(bootstrap, topic, group, consumers=2, produce_per_s=300).start()
    try:
        topics_before, groups_before = list_topics_and_groups(bootstrap)
        members_before = _members(bootstrap, group)
        _, callbacks_before, _ = workload.snapshot_of_truth()
        generations_before = {k: set(v) for k, v in workload.generations.items()}
        assert len(members_before) == 2

        # 1. a full recording of every group, then of ours by name
        with LagCollector(bootstrap, cluster="ro") as collector:
            recorded = collector.record(tmp_path / "all", every="1s", duration="8s", progress=False)
            named = collector.record(
                tmp_path / "named", every="0.5s", duration="4s", groups=[group], progress=False
            )
        # 2. a live monitor session (background polling thread, its own collector)
        monitor = LiveMonitor(bootstrap, every_s=1.0, groups=[group], record_to=tmp_path / "live")
        monitor.start()
        time.sleep(6)
        monitor.close_collector()
        assert monitor.polls >= 3 and monitor.unreachable_since is None, monitor.last_error

        time.sleep(2 * workload.commit_every_s + 0.5)  # a last commit round after our reads
        _, callbacks_after, _ = workload.snapshot_of_truth()
        members_after = _members(bootstrap, group)
        topics_after, groups_after = list_topics_and_groups(bootstrap)
    finally:
        workload.stop()
    assert not [e for e in workload.errors if "commit" in e], workload.errors

    # membership and generation: no rebalance happened while we watched
    assert members_after == members_before
    assert callbacks_after == callbacks_before, workload.assignments[callbacks_before:]
    for client_id, seen in workload.generations.items():
        assert seen == generations_before[client_id], (client_id, seen)
    assert not any("kbp" in client for _, client in members_after)

    # committed offsets: everything we saw was committed by the consumers themselves
    truth = workload.committed_offsets()
    live = read_dataset(tmp_path / "live").lag
    for frame, what in (
        (recorded.lag, "record(all)"),
        (named.lag, "record(named)"),
        (live, "live"),
    ):
        ours = frame[frame["group"] == group]
        assert ours["time"].nunique() >= 3, what
        for row in ours.itertuples():
            if row.committed_offset is not None and row.committed_offset == row.committed_offset:
                key = (row.topic, row.partition)
                assert int(row.committed_offset) in truth[key], (what, key, row.committed_offset)
    final = _final_committed(bootstrap, group)
    assert final == workload.last_commits()

    # nothing created: no topic, no group (ours was made by the workload before "before")
    assert topics_after == topics_before
    assert groups_after == groups_before
