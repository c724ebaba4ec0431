"""The incident model: episodes, causes, events and verdict on known cases and real samples."""

import numpy as np
import pandas as pd
import pytest

import kbp_notebook as kbp
from kbp_notebook.analysis.incident_model import CAUSES
from kbp_notebook.datasets.incidents import KINDS, ONSET_S, START, incident_case
from kbp_notebook.errors import KbpDataError, KbpInputError
from kbp_notebook.frames import Dataset

#: What started each bundled sample's incident, and when (ground truth from its events).
SAMPLE_TRUTH = {
    "slow-consumer-then-scale-out": ("orders-enricher", "consumer_slowdown", "slowdown_start"),
    "producer-burst": ("sessionizer", "producer_surge", "burst_start"),
    "broker-flush-pressure": ("fraud-scorer", "broker_slow", "flush_pressure_start"),
    "skewed-partition": ("billing-aggregator", "partition_skew", "skew_start"),
    "stuck-consumer": ("ledger-writer", "consumer_stalled", "stall_start"),
}


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "none"])
@pytest.mark.parametrize("seed", [0, 1])
def test_each_cause_on_a_known_case(kind, seed):
    found = kbp.incidents(incident_case(kind, seed=seed))
    assert len(found.episodes) == 1
    row = found.episodes.iloc[0]
    assert row["cause"] == kind, row["evidence"]
    assert row["causes"][0] == kind
    assert set(row["causes"]) <= set(CAUSES)
    onset_error = (row["start"] - START).total_seconds() - ONSET_S
    assert -15 <= onset_error <= 90
    assert row["evidence"]


def test_healthy_sawtooth_has_no_episode_and_a_quiet_verdict():
    found = kbp.incidents(incident_case("none"))
    assert len(found.episodes) == 0
    assert found.verdict[0].startswith("No incident")
    assert len(found.verdict) <= 5


@pytest.mark.parametrize("kind", ["producer_surge", "consumer_slowdown", "partition_skew",
                                  "broker_slow", "offset_rewind"])
def test_causes_that_need_no_owner_columns(kind):
    row = kbp.incidents(incident_case(kind, owners=False)).episodes.iloc[0]
    assert row["cause"] == kind


def test_without_owners_stopped_commits_read_as_stopped_and_say_so():
    row = kbp.incidents(incident_case("consumer_stopped", owners=False)).episodes.iloc[0]
    assert row["cause"] == "consumer_stopped"
    assert "does not say whether members" in row["evidence"]


def test_rates_and_peak_of_a_known_surge():
    # producers 6 x 160 = 960 msg/s for 120 s against 2 members x 400 = 800 msg/s capacity
    row = kbp.incidents(incident_case("producer_surge")).episodes.iloc[0]
    assert row["produce_rate_during_per_s"] == pytest.approx(960, rel=0.05)
    assert row["produce_rate_before_per_s"] == pytest.approx(240, rel=0.05)
    assert row["growth_rate_low_per_s"] < 960 - 800 + 15 and row["growth_rate_high_per_s"] > 150
    assert row["recovered"]
    assert row["drain_rate_per_s"] > 0
    assert (row["end"] - row["peak_time"]).total_seconds() > 0


def test_stalled_member_is_named_and_later_turns_are_ranked():
    row = kbp.incidents(kbp.load_sample("stuck-consumer")).episodes.iloc[0]
    assert row["cause"] == "consumer_stalled"
    assert "ledger-writer-c1" in row["evidence"]
    assert list(row["causes"]) == ["consumer_stalled", "consumer_stopped", "offset_rewind"]


@pytest.mark.parametrize("name", sorted(SAMPLE_TRUTH))
@pytest.mark.parametrize("with_events", [True, False])
def test_bundled_samples_get_the_right_cause_and_onset(name, with_events):
    ds = kbp.load_sample(name)
    group, cause, onset_kind = SAMPLE_TRUTH[name]
    truth = ds.events.loc[ds.events["kind"] == onset_kind, "time"].iloc[0]
    if not with_events:
        ds = Dataset(lag=ds.lag, metrics=ds.metrics, events=None, meta=ds.meta)
    found = kbp.incidents(ds)
    mine = found.episodes[found.episodes["group"] == group]
    assert len(mine) == 1
    row = mine.iloc[0]
    assert row["cause"] == cause, row["evidence"]
    assert -15 <= (row["start"] - truth).total_seconds() <= 90
    assert set(found.episodes["group"]) == {group}  # the control group stays quiet
    assert 1 <= len(found.verdict) <= 5


def test_verdict_quotes_the_episode():
    found = kbp.incidents(kbp.load_sample("producer-burst"))
    row = found.episodes.iloc[0]
    text = "\n".join(found.verdict)
    assert f"{row['peak_lag']:,.0f}" in text
    assert "producer surge" in text
    assert "What to do" in found.verdict[-1]
    assert found.as_of == kbp.load_sample("producer-burst").lag["time"].max()


def test_an_episode_not_over_has_no_end_and_a_forecast():
    ds = incident_case("producer_surge")
    cut = ds.lag[ds.lag["time"] <= START + pd.Timedelta(seconds=ONSET_S + 150)]
    row = kbp.incidents(cut).episodes.iloc[0]
    assert pd.isna(row["end"]) and not row["recovered"]
    assert row["expected_end"] > cut["time"].max()
    assert row["expected_end_low"] <= row["expected_end"] <= row["expected_end_high"]


def test_derived_events_from_a_recording_without_events():
    found = kbp.incidents(kbp.load_sample("stuck-consumer").lag)
    kinds = set(found.events["kind"])
    assert {"member_left", "member_joined", "rebalance", "commits_stopped", "commits_resumed",
            "offset_rewind", "consume_rate_change", "episode_start"} <= kinds
    assert set(found.events.columns) >= {"time", "kind", "text", "group", "topic", "partition"}


def test_events_of_a_surge_name_the_produce_rate_change():
    events = kbp.incidents(kbp.load_sample("producer-burst")).events
    rises = events[(events["kind"] == "produce_rate_change")
                   & events["text"].str.contains("rose")]
    assert len(rises) >= 1


def _snapshots(ds, n):
    times = sorted(ds.lag["time"].unique())[:n]
    return ds.lag[ds.lag["time"].isin(times)]


def test_bad_input_is_refused_with_what_is_missing():
    ds = incident_case("producer_surge")
    with pytest.raises(KbpDataError, match="at least 6 snapshots"):
        kbp.incidents(_snapshots(ds, 1))
    no_commits = ds.lag.assign(committed_offset=pd.NA, lag=pd.NA)
    with pytest.raises(KbpDataError, match="no partition has a committed offset"):
        kbp.incidents(no_commits)
    all_na = ds.lag.assign(committed_offset=pd.NA, lag=pd.NA, log_end_offset=pd.NA)
    with pytest.raises(KbpDataError):
        kbp.incidents(all_na)
    with pytest.raises(KbpInputError, match="repeats"):
        kbp.incidents(pd.concat([ds.lag, ds.lag.iloc[:3]]))
    with pytest.raises(KbpInputError, match="Dataset or a LAG frame"):
        kbp.incidents("producer-burst")


def test_unsorted_input_gives_the_same_verdict_as_sorted():
    ds = incident_case("consumer_slowdown")
    shuffled = ds.lag.sample(frac=1.0, random_state=np.random.default_rng(3))
    assert kbp.incidents(shuffled).verdict == kbp.incidents(ds.lag).verdict


def test_healthy_control_with_a_rebalance_blip_stays_quiet():
    ds = incident_case("none")
    lag = ds.lag.copy()
    blip = (lag["time"] >= START + pd.Timedelta(seconds=200)) & (
        lag["time"] < START + pd.Timedelta(seconds=210))
    lag.loc[blip, "consumer_id"] = "g-member-9-gen1"
    assert len(kbp.incidents(lag).episodes) == 0


def test_plot_has_the_lag_episodes_and_events():
    fig = kbp.incidents(kbp.load_sample("stuck-consumer")).plot()
    assert len(fig.data) >= 2
    assert any(shape.type == "rect" for shape in fig.layout.shapes)


def test_flush_vs_lag_judges_the_broker_against_its_own_level_at_the_onset():
    # the correlation over 3.5 minutes is not significant; the onset comparison is plain
    flush = kbp.flush_latency_vs_lag(kbp.load_sample("broker-flush-pressure"))
    assert not flush.significant
    onset = flush.notes[-1]
    assert "the brokers are a suspect" in onset and "2.9x" in onset
    burst = kbp.flush_latency_vs_lag(kbp.load_sample("producer-burst"))
    assert "the brokers are a suspect" not in burst.notes[-1]


def _broker_excursion(start_s: float, end_s: float, *, metric: str, usual: float) -> pd.DataFrame:
    """One broker signal at ``usual`` ms every 2 s, four times higher from start_s to end_s."""
    seconds = np.arange(0.0, 421.0, 2.0)
    values = np.where((seconds >= start_s) & (seconds < end_s), 4.0 * usual, usual)
    return pd.DataFrame({
        "time": START + pd.to_timedelta(seconds, unit="s"), "cluster": "test",
        "entity": "broker-1", "metric": metric, "value": values,
    })


def test_a_hot_partition_is_not_blamed_on_a_broker_slow_at_the_same_time():
    skew = incident_case("partition_skew")
    slow_flush = _broker_excursion(ONSET_S, ONSET_S + 120, metric="log_flush_time_ms_p99",
                                   usual=50.0)
    row = kbp.incidents(Dataset(lag=skew.lag, metrics=slow_flush)).episodes.iloc[0]
    assert "log flush p99 rose" in row["broker_evidence"]  # the excursion is seen ...
    assert list(row["causes"]) == ["partition_skew"]  # ... and the hot partition explains it


def test_broker_latency_during_a_steady_drain_is_not_a_later_cause():
    surge = incident_case("producer_surge")
    # the surge ends at ONSET_S + 120 s; the members drain at the capacity they read before
    during_drain = _broker_excursion(ONSET_S + 122, ONSET_S + 156,
                                     metric="log_flush_time_ms_p99", usual=50.0)
    found = kbp.incidents(Dataset(lag=surge.lag, metrics=during_drain))
    row = found.episodes.iloc[0]
    assert (row["end"] - START).total_seconds() > ONSET_S + 122 + 30
    assert "broker_latency_high" in set(found.events["kind"])  # the excursion is an event ...
    assert list(row["causes"]) == ["producer_surge"]  # ... but not a cause


def test_consumer_fetch_time_is_not_broker_latency():
    # a fetch waits on the broker up to fetch.max.wait.ms when there is little to read
    waiting = _broker_excursion(ONSET_S, ONSET_S + 120, metric="fetch_consumer_total_time_ms_p99",
                                usual=125.0)
    found = kbp.incidents(Dataset(lag=incident_case("partition_skew").lag, metrics=waiting))
    assert not found.events["kind"].str.startswith("broker_latency").any()
    assert "fetch" not in found.episodes.iloc[0]["broker_evidence"]


def test_one_restart_of_the_group_is_not_churn():
    from kbp_notebook.analysis._causes import is_churn
    from kbp_notebook.analysis._derived_events import MembershipChange

    everyone_left = MembershipChange(index=10, joined=(), left=("a", "b"), moved=6, members_after=0)
    restart = [
        everyone_left,
        MembershipChange(index=12, joined=("c",), left=(), moved=6, members_after=1),
        MembershipChange(index=13, joined=("d",), left=(), moved=3, members_after=2),
    ]
    assert not is_churn(restart)
    again = MembershipChange(index=20, joined=(), left=("c",), moved=3, members_after=1)
    assert is_churn([*restart, again])
