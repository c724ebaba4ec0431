import numpy as np
import pandas as pd
import pytest

from kbp_notebook.analysis import CapacityPlan, capacity_plan, incidents
from kbp_notebook.datasets import make_lag
from kbp_notebook.errors import KbpDataError, KbpInputError


def one(table: pd.DataFrame) -> pd.Series:
    assert len(table) == 1
    return table.iloc[0]


def scaled_out() -> pd.DataFrame:
    """6 partitions; 3 members until 150 s, then 6 members; each member does 100 msg/s."""
    lag = make_lag(
        n=60,
        partitions=6,
        produce_rate=60,
        consume_rate=[(0, 50), (150, 100)],
        start_lag=30_000,
        owners=3,
    )
    seconds = (lag["time"] - lag["time"].min()).dt.total_seconds()
    six = "consumer-" + (lag["partition"] % 6).astype(str)
    lag["consumer_id"] = lag["consumer_id"].where(seconds < 150, six).astype("string")
    return lag


def test_per_consumer_rate_measured_from_changing_membership():
    plan = capacity_plan(scaled_out(), target_s=600)
    row = one(plan.table)
    assert row["per_consumer_rate"] == pytest.approx(100.0, rel=0.02)
    assert row["consumers_now"] == 6
    assert row["partitions"] == 6
    assert "measured while behind" in row["note"]


def test_consumers_needed_for_target():
    # 6 partitions, 3 members at 100/s each (50/s per partition), producers 60/s per partition
    lag = make_lag(n=60, partitions=6, produce_rate=60, consume_rate=50, start_lag=5000, owners=3)
    row = one(capacity_plan(lag, target_s=600).table)
    backlog = 6 * (5000 + 59 * 5 * 10)
    assert row["lag"] == backlog
    assert row["produce_rate"] == pytest.approx(360)
    needed = int(np.ceil((360 + backlog / 600) / 100))
    assert row["consumers_needed"] == needed
    assert row["consumers_planned"] == needed
    assert row["eta_s_at_plan"] == pytest.approx(backlog / (needed * 100 - 360))
    assert bool(row["feasible"])
    assert row["partitions_needed"] == 6


def test_partition_cap_binds_and_says_partitions_needed():
    lag = make_lag(n=60, partitions=4, produce_rate=90, consume_rate=50, start_lag=50_000, owners=2)
    row = one(capacity_plan(lag, target_s=300).table)
    assert row["consumers_needed"] > 4
    assert row["consumers_planned"] == 4
    assert row["partitions_needed"] == row["consumers_needed"]
    assert not bool(row["feasible"])
    assert "add partitions" in row["note"]


def test_what_if_replans_without_data():
    plan = capacity_plan(scaled_out(), target_s=600)
    more = plan.what_if(consumers=5)
    assert isinstance(more, CapacityPlan)
    row = one(more.table)
    assert row["consumers_planned"] == 5
    produce = one(plan.table)["produce_rate"]
    assert row["eta_s_at_plan"] == pytest.approx(
        one(plan.table)["lag"] / (5 * one(plan.table)["per_consumer_rate"] - produce)
    )
    assert one(plan.what_if(consumers=2).table)["eta_s_at_plan"] == np.inf  # 200/s < 360/s
    grown = one(plan.what_if(produce_growth=1.0).table)
    assert grown["produce_rate"] == pytest.approx(2 * produce)
    assert grown["consumers_needed"] >= one(plan.table)["consumers_needed"]
    faster = one(plan.what_if(per_consumer_rate=1000).table)
    assert faster["consumers_needed"] == 1
    wider = one(plan.what_if(partitions=64, target_s=60).table)
    assert wider["partitions"] == 64
    assert plan.table is not more.table  # original untouched


def test_without_consumer_ids_needs_consumers_or_rate():
    lag = make_lag(n=60, partitions=6, produce_rate=60, consume_rate=50, start_lag=5000)
    with pytest.raises(KbpDataError, match="consumers="):
        capacity_plan(lag, target_s=600)
    row = one(capacity_plan(lag, target_s=600, consumers=3).table)
    assert row["per_consumer_rate"] == pytest.approx(100.0)
    assert row["consumers_now"] == 3
    given = one(capacity_plan(lag, target_s=600, per_consumer_rate=250.0).table)
    assert given["per_consumer_rate"] == 250.0


def test_never_behind_is_a_lower_bound():
    lag = make_lag(n=40, partitions=2, produce_rate=50, consume_rate=500, owners=2)
    row = one(capacity_plan(lag, target_s=600).table)
    assert "lower bound" in row["note"]
    assert row["lag"] == 0
    assert row["eta_s_at_plan"] == 0


def test_options_checked():
    lag = make_lag(n=20, partitions=2, owners=2)
    with pytest.raises(KbpInputError, match="target_s"):
        capacity_plan(lag, target_s=0)
    with pytest.raises(KbpInputError, match="produce_growth"):
        capacity_plan(lag, target_s=60, produce_growth=-2)
    with pytest.raises(KbpInputError, match="consumers"):
        capacity_plan(lag, target_s=60).what_if(consumers=0)


def test_result_shape():
    plan = capacity_plan(scaled_out(), target_s=600)
    assert plan.plot_builder == "plot_capacity"
    assert list(plan.table.columns[:3]) == ["cluster", "group", "topic"]
    for column in (
        "lag",
        "produce_rate",
        "consume_rate",
        "consumers_now",
        "partitions",
        "per_consumer_rate",
        "consumers_needed",
        "partitions_needed",
        "eta_s_at_plan",
        "feasible",
        "note",
    ):
        assert column in plan.table.columns
    assert "target" in repr(plan)


# ---------------------------------------------------------------- issue 11: ceilings and bursts


def test_a_hot_partition_bounds_what_more_consumers_can_do():
    # partition 0 receives 300 msg/s; one consumer reads about 130 msg/s: never drains
    lag = make_lag(partitions=4, n=120, owners=2, produce_rate=100, skew=[3.0, 0.2, 0.2, 0.2],
                   consume_rate=130, start_lag=2_000)
    plan = capacity_plan(lag, target_s=900, per_consumer_rate=130)
    row = plan.table.iloc[0]
    assert not row["feasible"]
    assert row["slowest_partition"] == 0
    assert np.isinf(row["eta_s_at_plan"])
    assert "no number of consumers drains it" in row["note"]
    assert plan.what_if(consumers=40).table.iloc[0]["feasible"] == False  # noqa: E712


def test_a_burst_that_drained_on_its_own_is_not_planned_as_steady_state():
    from kbp_notebook.datasets.incidents import incident_case

    ds = incident_case("producer_surge")
    episode = incidents(ds).episodes.iloc[0]
    plan = capacity_plan(ds.lag, target_s=900, as_of=episode["peak_time"]).table.iloc[0]
    assert plan["produce_rate"] == pytest.approx(episode["produce_rate_before_per_s"], rel=0.01)
    assert "drained on its own" in plan["note"]
    assert plan["consumers_needed"] <= 2  # the two members read 800 msg/s: enough at 240 msg/s
    peak = capacity_plan(ds.lag, target_s=900, as_of=episode["peak_time"],
                         produce_growth=3.0).table.iloc[0]
    assert peak["consumers_needed"] > plan["consumers_needed"]


def test_rates_are_never_negative_after_a_rewind():
    from kbp_notebook.datasets.incidents import START, incident_case

    ds = incident_case("offset_rewind")
    # a few snapshots into the replay after the rewind at 120 s
    plan = capacity_plan(ds.lag, target_s=900, as_of=START + pd.Timedelta(seconds=150))
    row = plan.table.iloc[0]
    assert row["consume_rate"] >= 0
    assert row["per_consumer_rate"] > 0
