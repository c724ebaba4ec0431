"""kbp_notebook.datasets: the synthetic generators give the answers they promise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import kbp_notebook.datasets as datasets
from kbp_notebook.analysis.incident_model import CAUSES
from kbp_notebook.datasets import (
    KINDS,
    ONSET_S,
    drain_case,
    incident_case,
    make_lag,
    simulate,
)
from kbp_notebook.errors import KbpInputError
from kbp_notebook.frames import validate_lag_frame


def test_lag_grows_by_the_rate_difference_every_sample() -> None:
    lag = make_lag(partitions=3, n=20, step_s=5.0, produce_rate=100.0, consume_rate=60.0,
                   start_lag=500.0)
    per_partition = lag["lag"].to_numpy().reshape(3, 20).T  # rows: partition-major, by time
    expected = 500 + 40 * 5 * np.arange(20)
    assert (per_partition == expected[:, None]).all()


def test_a_fast_consumer_keeps_up_and_never_commits_past_the_log_end() -> None:
    sim = simulate(partitions=4, n=50, produce_rate=80.0, consume_rate=500.0, start_lag=3_000.0)
    backlog = sim.log_end - sim.committed
    assert (backlog >= 0).all()
    # 3,000 messages at a net 420 msg/s: gone after 8 s, i.e. from the second 5 s step on
    assert (backlog[:, 2:] == 0).all() and (backlog[:, 1] > 0).all()


def test_rate_steps_apply_from_their_time_on() -> None:
    sim = simulate(n=10, step_s=10.0, produce_rate=[(0, 10.0), (50, 30.0)], consume_rate=0.0)
    appended = np.diff(sim.log_end[0])
    assert appended[:4].tolist() == [100] * 4 and appended[4:].tolist() == [300] * 5


def test_a_stall_freezes_the_committed_offset_and_a_rewind_moves_it_back() -> None:
    stalled = simulate(n=30, produce_rate=100.0, consume_rate=200.0, stalls=[(50.0, 100.0)])
    at = stalled.t_s
    frozen = stalled.committed[0, (at >= 45) & (at < 100)]
    assert (frozen == frozen[0]).all() and stalled.committed[0, at == 100][0] > frozen[0]
    rewound = simulate(n=30, produce_rate=100.0, consume_rate=100.0, rewinds=[(50.0, 700.0)])
    jump = np.diff(rewound.committed[0])[rewound.t_s[1:] == 50.0][0]
    assert jump == 500 - 700  # one step of consumption, then 700 messages back


def test_a_spike_shows_in_one_observed_sample_but_not_in_the_true_position() -> None:
    sim = simulate(n=20, produce_rate=100.0, consume_rate=100.0, spikes=[(40.0, 900.0)])
    gap = sim.committed_true[0] - sim.committed[0]
    assert gap.tolist() == [900 if t == 40.0 else 0 for t in sim.t_s]


def test_the_frame_is_a_valid_lag_frame_with_owners_and_retention() -> None:
    lag = make_lag(groups=("a", "b"), topics=("t1", "t2"), partitions=5, n=7, owners=2,
                   retention_msgs=1_000)
    assert len(lag) == 2 * 2 * 5 * 7
    validated = validate_lag_frame(lag)
    assert len(validated) == len(lag)
    assert set(lag["consumer_id"]) == {"consumer-0", "consumer-1"}
    assert (lag["consumer_id"][lag["partition"] == 3] == "consumer-1").all()
    assert (lag["log_start_offset"] == lag["log_end_offset"] - 1_000).all()
    assert str(lag["time"].dtype).endswith("UTC]")
    unowned = make_lag(n=3, owners="none")
    assert unowned["consumer_id"].isna().all()


def test_equal_seeds_give_equal_frames_and_pairs_get_their_own_stream() -> None:
    options = dict(groups=("a", "b"), n=30, rw_noise=5.0, noise=20.0)
    first, again = make_lag(seed=3, **options), make_lag(seed=3, **options)
    pd.testing.assert_frame_equal(first, again)
    other = make_lag(seed=4, **options)
    assert not first["committed_offset"].equals(other["committed_offset"])
    a, b = (first.loc[first["group"] == g, "committed_offset"].to_numpy() for g in ("a", "b"))
    assert not np.array_equal(a, b)


def test_drain_case_truth_is_the_analytic_drain_time() -> None:
    # 30,000 messages at a net 20 msg/s drain in 1,500 s from the first sample; the last
    # recorded sample is at 59 x 5 s = 295 s
    frame, truth = drain_case(partitions=3)
    assert np.allclose(truth, 1_500.0 - 295.0)
    assert frame["time"].nunique() == 60 and frame["partition"].nunique() == 3
    _, never = drain_case(partitions=2, produce_rate=100.0, consume_rate=90.0)
    assert np.isinf(never).all()


def test_incident_kinds_are_the_incident_models_causes() -> None:
    assert KINDS[0] == "none"
    assert sorted(KINDS) == sorted(CAUSES)


@pytest.mark.parametrize("kind", KINDS)
def test_each_incident_case_is_a_valid_dataset_that_starts_at_the_onset(kind: str) -> None:
    ds = incident_case(kind)
    validate_lag_frame(ds.lag)
    assert ds.metrics is not None and set(ds.metrics["metric"]) == {
        "log_flush_time_ms_p99", "produce_total_time_ms_p99"}
    seconds = (ds.lag["time"] - ds.lag["time"].min()).dt.total_seconds() + 2
    total = ds.lag.groupby(seconds)["lag"].sum()
    before = total[total.index < ONSET_S].max()
    during = total[(total.index >= ONSET_S) & (total.index < ONSET_S + 120)].max()
    if kind == "none":
        assert during < 2 * before
    else:
        assert during > 2 * before, kind


def test_an_unknown_incident_kind_names_the_choices() -> None:
    with pytest.raises(KbpInputError, match="consumer_stopped"):
        incident_case("consumer-stoped")


def test_the_exported_names_are_exactly_the_generators_and_resolve() -> None:
    assert set(datasets.__all__) == {
        "KINDS", "ONSET_S", "Simulation", "drain_case", "incident_case", "make_lag", "simulate"}
    assert all(getattr(datasets, name) is not None for name in datasets.__all__)
