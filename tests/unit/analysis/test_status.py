"""Burrow's rules, one test per status, written from Burrow's documented evaluation rules.

Rules (Burrow wiki "Consumer Lag Evaluation Rules" and evaluator 1.9):
1. lag zero (at most allowed_lag) now, or at some commit in the window -> OK;
2. no commit for longer than the window spans, and not recently caught up -> STOP
   (we: STALL when the partition has an owner);
3. committed offset went backwards in the window and is still behind -> REWIND;
4. offsets advance but lag never decreases across the window -> WARN;
5. group status = worst partition, STOP/STALL/REWIND rolled up as ERR.
"""

import numpy as np
import pandas as pd
import pytest
from synthetic import make_lag

from kbp_notebook.analysis import LagStatus, lag_status
from kbp_notebook.analysis.status import status_timeline
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


def test_no_warn_when_lag_decreases_once_in_the_window():
    lag = make_lag(n=60, produce_rate=150, consume_rate=100, spikes=[(280, 1000)])
    # the spike raises one commit's lag by more than the growth between two snapshots,
    # so the next commit's lag is lower: not WARN (and the dip recovered: not REWIND)
    assert statuses(lag) == ["OK"]


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
    commits = []  # (time, offset, lag)
    for i, offset in enumerate(committed):
        if i == 0 or offset != committed[i - 1]:
            commits.append((seconds[i], offset, log_end[i] - offset))
    win = commits[-window:]
    now = seconds[-1]
    current_lag = log_end[-1] - committed[-1]
    if current_lag <= allowed_lag:
        return "OK"
    first_t, last_t = win[0][0], win[-1][0]
    recent = log_end[-window:]
    if now - last_t > last_t - first_t and not any(e <= win[-1][1] for e in recent):
        return "STOP"
    went_back = any(win[i][1] < win[i - 1][1] for i in range(1, len(win)))
    if went_back and win[-1][1] < max(c[1] for c in win):
        return "REWIND"
    if any(c[2] <= allowed_lag for c in win):
        return "OK"
    if len(win) >= 2 and all(win[i][2] >= win[i - 1][2] for i in range(1, len(win))):
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
