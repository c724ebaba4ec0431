import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbp_notebook.analysis import TimeLag, time_lag
from kbp_notebook.datasets import make_lag
from kbp_notebook.errors import KbpDataError


def test_constant_rates_give_lag_over_produce_rate():
    # producer 100/s, consumer 80/s from caught-up: at time t the committed offset is 80 t,
    # which the log end passed at 0.8 t (+ one message): time lag ~ 0.2 t
    result = time_lag(make_lag(n=40, produce_rate=100, consume_rate=80))
    table = result.table
    seconds = (table["time"] - table["time"].min()).dt.total_seconds()
    assert np.allclose(table["time_lag_s"], np.maximum(0.2 * seconds - 0.01, 0), atol=1e-9)
    assert not table["time_lag_is_lower_bound"].any()


def test_caught_up_is_zero():
    table = time_lag(make_lag(n=20, produce_rate=100, consume_rate=300)).table
    assert (table["time_lag_s"] == 0).all()


def test_older_than_history_is_a_flagged_lower_bound():
    # a backlog of 300 messages older than the first snapshot, consumer stopped
    table = time_lag(make_lag(n=10, produce_rate=100, consume_rate=0, start_lag=300)).table
    assert table["time_lag_is_lower_bound"].all()
    seconds = (table["time"] - table["time"].min()).dt.total_seconds()
    assert np.allclose(table["time_lag_s"], seconds)


def test_rate_step_uses_the_history_not_the_current_rate():
    # slow producer (10/s) then a burst (1000/s): the committed offset sits in the slow part,
    # so the lag in seconds is long although the backlog would go in no time at burst rate
    lag = make_lag(n=40, step_s=5, produce_rate=[(0, 10), (100, 1000)], consume_rate=0, start_lag=0)
    table = time_lag(lag).table
    last = table.iloc[-1]
    # committed stays at the first offset: written just after t = 0 (first message at 0.1 s)
    assert last["time_lag_s"] == pytest.approx(195 - 0.1)
    assert not last["time_lag_is_lower_bound"]
    # the naive "lag / current produce rate" would say about half of that
    assert last["lag"] / 1000 < 0.6 * last["time_lag_s"]


def test_missing_commit_gives_nan_and_partitions_are_separate():
    lag = make_lag(n=10, partitions=2, produce_rate=100, consume_rate=50)
    lag.loc[3, ["committed_offset", "lag"]] = pd.NA
    table = time_lag(lag).table
    assert np.isnan(table.loc[3, "time_lag_s"])
    assert table.groupby("partition")["time_lag_s"].max().notna().all()
    # partition 1's history must not leak into partition 0's lookups
    p1 = table[table["partition"] == 1]["time_lag_s"].to_numpy()
    expected = time_lag(lag[lag["partition"] == 1]).table["time_lag_s"].to_numpy()
    assert np.allclose(p1, expected)


def naive_time_lag(rows: pd.DataFrame) -> list[tuple[float, bool]]:
    """One row at a time, straight from the definition."""
    seconds = (rows["time"] - rows["time"].iloc[0]).dt.total_seconds().to_numpy()
    log_end = np.maximum.accumulate(rows["log_end_offset"].astype(float).to_numpy())
    out = []
    for j, committed in enumerate(rows["committed_offset"].astype(float).to_numpy()):
        if committed >= log_end[j]:
            out.append((0.0, False))
            continue
        if committed < log_end[0]:
            out.append((seconds[j] - seconds[0], True))
            continue
        k = next(i for i in range(len(log_end)) if log_end[i] > committed)
        fraction = min((committed + 1 - log_end[k - 1]) / (log_end[k] - log_end[k - 1]), 1.0)
        written = seconds[k - 1] + fraction * (seconds[k] - seconds[k - 1])
        out.append((seconds[j] - written, False))
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    produce=st.floats(1, 500),
    consume=st.floats(0, 600),
    start_lag=st.sampled_from([0, 50, 5000]),
    noise=st.sampled_from([0.0, 20.0]),
)
def test_vectorised_search_matches_the_definition(seed, produce, consume, start_lag, noise):
    lag = make_lag(
        n=30,
        partitions=3,
        produce_rate=produce,
        consume_rate=consume,
        start_lag=start_lag,
        rw_noise=noise,
        seed=seed,
    )
    table = time_lag(lag).table
    for _, rows in table.groupby("partition"):
        expected = naive_time_lag(rows)
        assert np.allclose(rows["time_lag_s"], [e[0] for e in expected], atol=1e-6)
        assert rows["time_lag_is_lower_bound"].tolist() == [e[1] for e in expected]


def test_result_object_and_empty_frame():
    result = time_lag(make_lag(n=10, produce_rate=100, consume_rate=50))
    assert isinstance(result, TimeLag)
    assert result.plot_builder == "plot_time_lag"
    assert len(result.latest()) == 1
    assert "largest current lag" in repr(result)
    with pytest.raises(KbpDataError, match="no rows"):
        time_lag(make_lag(n=10).iloc[0:0])


def test_record_timestamps_win_where_the_collector_read_them():
    # a single snapshot: the history cannot say anything, the record can
    lag = make_lag(n=10, produce_rate=100, consume_rate=0, start_lag=300)
    lag["time_lag_s"] = np.nan
    lag["time_lag_source"] = pd.Series(pd.NA, index=lag.index, dtype="string")
    last = lag.index[-1]
    lag.loc[last, ["time_lag_s", "time_lag_source"]] = [7200.0, "record"]
    table = time_lag(lag).table
    row = table.iloc[-1]
    assert row["time_lag_s"] == 7200.0  # no cap: 2 hours read as 2 hours
    assert row["time_lag_source"] == "record"
    assert not row["time_lag_is_lower_bound"]
    others = table.iloc[:-1]
    assert (others["time_lag_source"] == "lower_bound").all()
    assert others["time_lag_is_lower_bound"].all()


def test_sources_are_interpolated_and_na_without_a_commit():
    lag = make_lag(n=20, produce_rate=100, consume_rate=80)
    lag.loc[lag.index[0], ["committed_offset", "lag"]] = [pd.NA, pd.NA]
    table = time_lag(lag).table
    assert pd.isna(table["time_lag_source"].iloc[0]) and np.isnan(table["time_lag_s"].iloc[0])
    assert (table["time_lag_source"].iloc[1:] == "interpolated").all()
