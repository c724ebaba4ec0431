"""Consumer status: Burrow's rules where they hold, our documented changes where they do not.

Rules (see kbp_notebook/analysis/status.py for how they relate to Burrow's wiki):
1. lag caught up (at most allowed_lag or the in-flight lag) now, or at some commit in the
   window -> OK;
2. no commit for longer than the window spans, not recently caught up, and the owner not
   busy with a backlog elsewhere -> STOP (STALL when the partition has an owner);
3. committed offset went backwards in the window and is still behind -> REWIND;
4. offsets advance and the lag grew across the window by more than the in-flight lag -> WARN;
5. group: ERR for a STOP/STALL/REWIND partition; WARN while its total lag, never caught up
   at a snapshot of the group's window, trends up over it and is not draining; else OK.
"""

import numpy as np
import pandas as pd
import pytest

from kbp_notebook.analysis import LagStatus, lag_status
from kbp_notebook.analysis.status import status_timeline
from kbp_notebook.datasets import make_lag
from kbp_notebook.errors import KbpDataError, KbpInputError


def statuses(lag: pd.DataFrame, **options) -> list[str]:
    return lag_status(lag, **options).partitions["status"].tolist()


def test_ok_when_consumer_keeps_up():
    lag = make_lag(n=60, produce_rate=100, consume_rate=200)
    result = lag_status(lag)
    assert statuses(lag) == ["OK"]
    assert result.groups["status"].tolist() == ["OK"]
    assert result.partitions["current_lag"].tolist() == [0]
    assert result.partitions["complete"].tolist() == [1.0]


def test_ok_when_lag_was_zero_at_a_commit_in_the_window():
    # consumer catches up in the window then falls behind: rule 1 keeps it OK
    lag = make_lag(n=60, step_s=5, produce_rate=[(0, 100), (270, 300)], consume_rate=200)
    assert statuses(lag) == ["OK"]


def test_warn_when_offsets_advance_but_lag_never_decreases():
    lag = make_lag(n=60, produce_rate=150, consume_rate=100, partitions=3)
    result = lag_status(lag)
    assert statuses(lag) == ["WARN"] * 3
    assert result.groups["status"].tolist() == ["WARN"]
    assert result.groups["totallag"].tolist() == [3 * 50 * 5 * 59]


def test_one_lower_commit_in_a_build_up_does_not_turn_it_ok():
    # Burrow's literal rule ("lag never decreases") calls this OK: a rebalance spike makes one
    # commit's lag higher than the next. The lag still grew across the window: WARN.
    lag = make_lag(n=60, produce_rate=150, consume_rate=100, spikes=[(280, 1000)])
    assert statuses(lag) == ["WARN"]  # and the dip recovered: not REWIND
    noisy = make_lag(n=60, produce_rate=150, consume_rate=100, noise=200, seed=3)
    statuses_over_time = lag_status(noisy, timeline=True).group_timeline["status"].tolist()
    # OK while the window still holds commits near zero lag (Burrow's first rule), then WARN
    # for as long as the lag grows: no flicker back to OK
    first_warn = statuses_over_time.index("WARN")
    assert first_warn <= 15  # within the first window of 10 commits (+ in-flight lag)
    assert set(statuses_over_time[first_warn:]) == {"WARN"}


def test_stop_when_commits_stop_without_owner_information():
    lag = make_lag(n=60, produce_rate=100, consume_rate=100, start_lag=500, stalls=[(150, 1e9)])
    result = lag_status(lag)
    assert statuses(lag) == ["STOP"]
    assert result.groups["status"].tolist() == ["ERR"]
    row = result.partitions.iloc[0]
    assert row["end_offset"] == row["start_offset"] + 9 * 500  # window of the last 10 commits
    assert row["end_time"] == lag["time"].min() + pd.Timedelta(seconds=145)


def test_stop_when_unowned_and_stall_when_owned():
    common = dict(n=60, produce_rate=100, consume_rate=100, start_lag=500, stalls=[(150, 1e9)])
    assert statuses(make_lag(owners="none", **common)) == ["STOP"]
    owned = lag_status(make_lag(owners=1, **common))
    assert owned.partitions["status"].tolist() == ["STALL"]
    assert owned.partitions["owned"].tolist() == [True]
    assert owned.groups["status"].tolist() == ["ERR"]


def test_not_stopped_while_window_still_spans_the_silence():
    # stalled for 20 s after a window spanning 45 s: not yet STOP
    lag = make_lag(n=60, produce_rate=100, consume_rate=110, start_lag=50_000, stalls=[(280, 1e9)])
    assert statuses(lag) == ["OK"]


def test_stop_not_reported_when_recently_caught_up():
    # idle partition: consumer caught up, a few messages arrive at the very end
    lag = make_lag(n=60, produce_rate=[(0, 0), (290, 100)], consume_rate=0, start_lag=0)
    assert statuses(lag) == ["OK"]


def test_rewind_when_offset_goes_back_and_stays_behind():
    lag = make_lag(
        n=60, produce_rate=100, consume_rate=105, start_lag=5000, rewinds=[(270, 10_000)]
    )
    result = lag_status(lag)
    assert statuses(lag) == ["REWIND"]
    assert result.groups["status"].tolist() == ["ERR"]


def test_rewind_that_recovered_is_not_reported():
    lag = make_lag(
        n=60, produce_rate=100, consume_rate=400, start_lag=50_000, rewinds=[(260, 1000)]
    )
    assert statuses(lag) != ["REWIND"]


def test_allowed_lag_treats_small_lag_as_caught_up():
    # transactional markers leave a constant lag of 1 with offsets standing still
    lag = make_lag(n=60, produce_rate=0, consume_rate=0, start_lag=1)
    assert statuses(lag) == ["STOP"]
    assert statuses(lag, allowed_lag=1) == ["OK"]


def test_group_rollup_worst_partition_and_maxlag():
    slow = make_lag(n=60, topics=("a",), partitions=2, produce_rate=150, consume_rate=100)
    dead = make_lag(
        n=60,
        topics=("b",),
        produce_rate=100,
        consume_rate=100,
        start_lag=90_000,
        stalls=[(100, 1e9)],
    )
    result = lag_status(pd.concat([slow, dead], ignore_index=True))
    group = result.groups.iloc[0]
    assert group["status"] == "ERR"
    assert group["maxlag_topic"] == "b"
    assert group["maxlag_partition"] == 0
    assert group["partition_count"] == 3
    assert group["bad_partitions"] == 3
    by_topic = {topic: set(rows["status"]) for topic, rows in result.partitions.groupby("topic")}
    assert by_topic == {"a": {"WARN"}, "b": {"STOP"}}
    assert result.table.equals(result.groups)


def test_complete_is_share_of_window_filled():
    lag = make_lag(n=4, produce_rate=150, consume_rate=100)
    result = lag_status(lag)
    assert result.partitions["complete"].tolist() == [0.4]
    assert result.groups["complete"].tolist() == [0.0]


def test_partitions_without_commits_are_left_out():
    lag = make_lag(n=20, partitions=2, produce_rate=150, consume_rate=100)
    never = lag["partition"] == 1
    lag.loc[never, "committed_offset"] = pd.NA
    lag.loc[never, "lag"] = pd.NA
    result = lag_status(lag)
    assert result.partitions["partition"].tolist() == [0]
    lag.loc[:, ["committed_offset", "lag"]] = pd.NA
    with pytest.raises(KbpDataError, match="never committed"):
        lag_status(lag)


def test_timeline_shows_status_changing():
    # caught up (OK) until the consumer stalls at 150 s, then STOP once the window is outlived
    lag = make_lag(n=60, produce_rate=100, consume_rate=150, stalls=[(150, 1e9)])
    result = lag_status(lag, timeline=True, timeline_points=60)
    timeline = result.timeline
    assert timeline is not None
    first = timeline.loc[timeline["time"] <= lag["time"].min() + pd.Timedelta(seconds=100)]
    assert set(first["status"]) == {"OK"}
    assert timeline["status"].iloc[-1] == "STOP"
    direct = status_timeline(lag, points=10)
    assert direct["status"].iloc[-1] == "STOP"
    assert len(direct) == 10


def test_vectorised_rules_match_a_direct_reading_of_the_rules():
    rng = np.random.default_rng(0)
    frames = []
    for topic in range(40):
        kwargs = dict(
            n=int(rng.integers(5, 40)),
            produce_rate=float(rng.choice([0, 50, 100, 150])),
            consume_rate=float(rng.choice([0, 50, 100, 200])),
            start_lag=float(rng.choice([0, 300, 5000])),
            stalls=[(float(rng.integers(0, 200)), 1e9)] if rng.random() < 0.3 else [],
            rewinds=[(float(rng.integers(0, 200)), 4000.0)] if rng.random() < 0.3 else [],
            noise=float(rng.choice([0, 30])),
            seed=topic,
        )
        frames.append(make_lag(topics=(f"t{topic}",), **kwargs))
    lag = pd.concat(frames, ignore_index=True)
    got = lag_status(lag, window=5).partitions.set_index("topic")["status"].to_dict()
    for topic, rows in lag.groupby("topic"):
        assert got[topic] == reference_status(rows, window=5), topic


def reference_status(rows: pd.DataFrame, *, window: int, allowed_lag: int = 0) -> str:
    """The rules read literally, one partition at a time (the slow, obvious way)."""
    seconds = (rows["time"] - rows["time"].min()).dt.total_seconds().tolist()
    committed = rows["committed_offset"].astype(int).tolist()
    log_end = rows["log_end_offset"].astype(int).tolist()
    commits = []  # (time, offset, lag, log end)
    for i, offset in enumerate(committed):
        if i == 0 or offset != committed[i - 1]:
            commits.append((seconds[i], offset, log_end[i] - offset, log_end[i]))
    win = commits[-window:]
    now = seconds[-1]
    first_t, last_t = win[0][0], win[-1][0]
    # in-flight lag: produce rate over the window x mean time between its commits
    in_flight = 0.0
    if len(win) >= 2 and now > first_t:
        rate = (log_end[-1] - win[0][3]) / (now - first_t)
        in_flight = max(rate * (last_t - first_t) / (len(win) - 1), 0.0)
    caught = max(allowed_lag, in_flight)
    current_lag = log_end[-1] - committed[-1]
    if current_lag <= caught:
        return "OK"
    recent = log_end[-window:]
    if now - last_t > last_t - first_t and not any(e <= win[-1][1] for e in recent):
        return "STOP"
    went_back = any(win[i][1] < win[i - 1][1] for i in range(1, len(win)))
    if went_back and win[-1][1] < max(c[1] for c in win):
        return "REWIND"
    if any(c[2] <= caught for c in win):
        return "OK"
    if len(win) >= 2 and win[-1][2] - win[0][2] > in_flight:
        return "WARN"
    return "OK"


def test_options_are_checked_and_result_shape():
    lag = make_lag(n=10)
    with pytest.raises(KbpInputError, match="window"):
        lag_status(lag, window=1)
    with pytest.raises(KbpInputError, match="allowed_lag"):
        lag_status(lag, allowed_lag=-1)
    result = lag_status(lag)
    assert isinstance(result, LagStatus)
    assert result.plot_builder == "plot_lag_status"
    assert {"group", "topic", "partition", "status", "complete", "current_lag"} <= set(
        result.partitions.columns
    )
    assert {"group", "status", "complete", "totallag", "maxlag_topic", "maxlag_partition"} <= set(
        result.groups.columns
    )
    assert "groups:" in repr(result)


def _frame(times_s, committed, log_end, *, partition=0, group="g", owner="member-1"):
    """One partition's LAG rows from explicit offsets."""
    frame = pd.DataFrame(
        {
            "time": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(times_s, unit="s"),
            "cluster": "test",
            "group": group,
            "topic": "t",
            "partition": np.int32(partition),
            "committed_offset": np.asarray(committed, dtype=np.int64),
            "log_end_offset": np.asarray(log_end, dtype=np.int64),
        }
    )
    frame["lag"] = frame["log_end_offset"] - frame["committed_offset"]
    if owner is not None:
        frame["consumer_id"] = owner
    for name in ("committed_offset", "log_end_offset", "lag"):
        frame[name] = frame[name].astype("Int64")
    for name in ("cluster", "group", "topic"):
        frame[name] = frame[name].astype("string")
    return frame


def test_caught_up_consumer_with_a_small_constant_lag_is_ok():
    # steady 20 msg/s, commits every 5 s, snapshots every 5 s: lag 4 at every snapshot.
    # Burrow's literal rule counts "equal" as "never decreasing" and says WARN.
    t = np.arange(60) * 5.0
    log_end = 1_000_000 + 20 * t
    result = lag_status(_frame(t, log_end - 4, log_end))
    assert result.partitions["status"].tolist() == ["OK"]
    assert result.groups["status"].tolist() == ["OK"]
    assert set(lag_status(_frame(t, log_end - 4, log_end), timeline=True).timeline["status"]) == {
        "OK"
    }
    # snapshots every second, commits every 5 s: the lag saws between 4 and 84 (in flight)
    t = np.arange(300) * 1.0
    log_end = 1_000_000 + 20 * t
    committed = log_end[(np.arange(300) // 5) * 5] - 4
    result = lag_status(_frame(t, committed, log_end))
    assert result.partitions["status"].tolist() == ["OK"]
    assert result.partitions["in_flight_lag"].iloc[0] == pytest.approx(100.0)


def _rotating_drain(seconds: int = 240):
    """One member drains a backlog of 30,000 on each of two partitions, 20 s on one then
    20 s on the other (a fetch at a time; the other one if the turn's is caught up), while
    the producer adds 50 msg/s to each; it consumes 400 msg/s."""
    t = np.arange(seconds) * 1.0
    log_end = 1_030_000 + 50 * t
    committed = np.full((2, seconds), 1_000_000.0)
    for i in range(1, seconds):
        turn = int(t[i] // 20) % 2
        if committed[turn, i - 1] >= log_end[i - 1]:
            turn = 1 - turn
        committed[:, i] = committed[:, i - 1]
        committed[turn, i] = min(committed[turn, i - 1] + 400.0, log_end[i])
    frames = [_frame(t, committed[p], log_end, partition=p) for p in (0, 1)]
    return pd.concat(frames, ignore_index=True)


def test_a_normally_draining_group_is_not_an_error():
    lag = _rotating_drain()
    result = lag_status(lag, timeline=True)
    # each partition stands still for 20 s while its member drains the other: not a stall
    assert not result.timeline["status"].isin(["STALL", "STOP", "REWIND"]).any()
    groups = result.group_timeline
    assert not groups["group_status"].eq("ERR").any()
    draining = groups[groups["totallag"].diff() < 0]
    assert draining["status"].eq("OK").mean() > 0.9
    assert result.partitions["busy_elsewhere"].any() or result.partitions["status"].eq("OK").all()


def test_a_partition_left_standing_by_a_caught_up_member_is_stalled():
    t = np.arange(120) * 1.0
    log_end = 1_000_000 + 50 * t
    fine = _frame(t, log_end - 3, log_end, partition=0)
    stuck_committed = np.where(t < 40, log_end - 3, log_end[40] - 3)
    stuck = _frame(t, stuck_committed, log_end, partition=1)
    result = lag_status(pd.concat([fine, stuck], ignore_index=True))
    assert result.partitions["status"].tolist() == ["OK", "STALL"]
    assert result.groups["status"].tolist() == ["ERR"]


def test_group_warns_only_while_its_total_lag_grows():
    # one partition's commits rise while the member works elsewhere, but the group drains
    lag = _rotating_drain()
    end = lag["time"].min() + pd.Timedelta(seconds=100)
    result = lag_status(lag[lag["time"] <= end])
    assert result.groups["status"].tolist() == ["OK"]
    assert not result.partitions["group_falling_behind"].any()
    growing = make_lag(n=60, partitions=3, produce_rate=150, consume_rate=100)
    result = lag_status(growing)
    assert result.groups["status"].tolist() == ["WARN"]
    assert result.partitions["group_falling_behind"].all()


def _compress(values):
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


#: Healthy groups: nothing goes wrong in them, so they are OK at every point of the timeline.
CONTROL_GROUPS = {("healthy-baseline", "email-sender"), ("healthy-baseline", "search-indexer"),
                  ("multi-group-cluster", "order-audit"), ("stuck-consumer", "audit-archiver")}
#: No build-up to judge: the lag jumps at once when the offsets are reset (REWIND, so ERR).
NO_BUILD_UP = {("offset-reset", "invoice-exporter")}


def test_samples_status_over_time():
    import kbp_notebook as kbp

    stuck = kbp.load_sample("stuck-consumer")
    timeline = lag_status(stuck.lag, timeline=True, timeline_points=120).group_timeline
    by_group = {g: part["status"].tolist() for g, part in timeline.groupby("group")}
    story = [s for s in _compress(by_group["ledger-writer"]) if s in ("STALL", "STOP", "REWIND")]
    assert story == ["STALL", "STOP", "REWIND"]
    events = stuck.events.set_index("kind")["time"]
    ledger = timeline[timeline["group"] == "ledger-writer"].set_index("time")["status"]
    assert (
        ledger[ledger.index > events["stall_start"] + pd.Timedelta(seconds=30)].iloc[0] == "STALL"
    )
    assert ledger[ledger.index > events["member_left"] + pd.Timedelta(seconds=10)].iloc[0] == "STOP"
    assert ledger[ledger.index > events["offsets_reset"]].iloc[0] == "REWIND"
    assert set(by_group["audit-archiver"]) == {"OK"}
    # consumers-gone never drains (STOP to the end); offset-reset rewinds (REWIND); in the
    # others nothing stops, stalls or rewinds: never ERR, even while draining
    never_drains = {"consumers-gone"}
    stopped_or_rewound = {"stuck-consumer", "offset-reset", "consumers-gone"}
    controls = set()
    for name in kbp.list_samples():
        ds = kbp.load_sample(name)
        result = lag_status(ds.lag, timeline=True, timeline_points=120)
        groups = result.group_timeline
        if name in never_drains:
            assert set(result.groups["status"]) == {"ERR"}, name
        else:
            assert set(result.groups["status"]) == {"OK"}, name  # they end drained
        if name not in stopped_or_rewound:
            assert not groups["group_status"].eq("ERR").any(), name
        for group, part in groups.groupby("group"):
            part = part.reset_index(drop=True)
            peak = int(part["totallag"].idxmax())
            if (name, group) in CONTROL_GROUPS:
                assert set(part["status"]) == {"OK"}, (name, group)  # at every point
                controls.add((name, group))
            if part["totallag"].iloc[peak] < 5_000:
                continue  # no build-up to judge
            if (name, group) in NO_BUILD_UP:
                continue
            # the build-up up to the last point before the peak (at the peak itself the
            # window may already hold the turn to draining, which Burrow calls OK)
            assert part["status"].iloc[peak - 1] != "OK", (name, group)
            # from the first warning to the peak the status never falls back to OK
            warned = part.index[part["status"] != "OK"]
            assert not part["status"].iloc[warned[0] : peak].eq("OK").any(), (name, group)
    assert controls == CONTROL_GROUPS


def _read_in_turns(seconds: int = 300, partitions: int = 24, take: float = 180.0):
    """One member reads 24 partitions in turns, one a second, taking ``take`` messages from
    each turn's partition and committing, while the producer adds 10 msg/s to each (240 per
    partition between two turns): each partition's lag at its commits grows by 60 a turn."""
    t = np.arange(seconds) * 1.0
    log_end = 1_000_000 + 10 * t
    committed = np.full((partitions, seconds), 1_000_000.0)
    for i in range(1, seconds):
        committed[:, i] = committed[:, i - 1]
        turn = i % partitions
        committed[turn, i] = min(committed[turn, i - 1] + take, log_end[i])
    frames = [_frame(t, committed[p], log_end, partition=p) for p in range(partitions)]
    return pd.concat(frames, ignore_index=True)


def test_a_build_up_read_in_turns_warns_although_each_partition_caught_up_in_its_window():
    lag = _read_in_turns()
    result = lag_status(lag)
    # Burrow's rule 1 per partition: each caught up (lag at most its in-flight 240) at some
    # commit of its window of 10, so every partition reads OK ...
    assert set(result.partitions["status"]) == {"OK"}
    # ... while the group's total never came down to caught up and keeps growing
    assert result.groups["status"].tolist() == ["WARN"]
    # a consumer fast enough to catch each partition up at its turn stays OK throughout
    keeping_up = lag_status(_read_in_turns(take=400.0), timeline=True)
    assert set(keeping_up.group_timeline["status"]) == {"OK"}


def test_a_slow_build_up_on_many_partitions_warns():
    # each of 50 partitions falls behind by 10 msg/s for 25 minutes (15,000 each): across one
    # window of 10 commits (45 s) a partition's lag grows by 450, less than its in-flight lag
    # of 750, so each reads OK; the group's total (750,000) never caught up and kept rising
    lag = make_lag(n=300, partitions=50, produce_rate=150, consume_rate=140, noise=30, seed=1)
    result = lag_status(lag)
    assert set(result.partitions["status"]) == {"OK"}
    assert result.groups["status"].tolist() == ["WARN"]
