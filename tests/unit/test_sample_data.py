"""The shipped sample recordings contain what their READMEs claim.

Plain-pandas checks (``scenarios.expectations``) of each recording against
the ground-truth events its scenario wrote: lag grows after the recorded
onset and drains after the recorded scale-out; flush latency is clearly
above its own baseline in the pressure window; the skewed partition holds
most of the lag; the stuck consumer's offsets stand still, its member
leaves, and the reset moves the offsets back; the emptied group's lag grows
at the produce rate; the churned group changes members and drains; the
healthy groups stay quiet. Plus: every sample loads as a validated Dataset,
is long enough to show onset, growth and drain, has its
``kafka-consumer-groups`` captures, carries the ground truth per group that
the incident model is validated on, and its README states the figures that
are actually in the data.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kbp_notebook.collect import list_samples, load_sample, parse_consumer_groups, sample_path
from scenarios import MODULES
from scenarios.expectations import CAUSES, check, event_time
from scenarios.readmes import render

NAMES = list(MODULES)
#: Shipped recordings made before the scenarios noted the machine's load.
OLD_RECORDINGS = {
    "slow-consumer-then-scale-out", "producer-burst", "broker-flush-pressure",
    "skewed-partition", "stuck-consumer",
}  # fmt: skip


def test_every_scenario_is_shipped() -> None:
    assert set(NAMES) <= set(list_samples())


def test_sample_data_stays_small() -> None:
    root = sample_path(NAMES[0]).parent
    total = sum(p.stat().st_size for name in NAMES for p in (root / name).rglob("*") if p.is_file())
    assert total < 5 * 2**20, f"sample_data/ holds {total / 2**20:.1f} MiB of recordings"
    for name in NAMES:
        size = sum(p.stat().st_size for p in (root / name).rglob("*") if p.is_file())
        assert size < 2**20, f"{name} holds {size / 2**20:.1f} MiB; keep each sample small"


@pytest.mark.parametrize("name", NAMES)
def test_ground_truth_names_every_group(name: str) -> None:
    ds = load_sample(name)
    causes, onsets = ds.meta["expected_causes"], ds.meta["expected_onsets"]
    assert set(causes) == set(ds.lag["group"]) == set(onsets)
    assert set(causes.values()) <= set(CAUSES)
    start, end = ds.lag["time"].min(), ds.lag["time"].max()
    for group, cause in causes.items():
        onset = onsets[group]
        assert (onset is None) == (cause == "none"), f"{group}: cause {cause}, onset {onset}"
        if onset is not None:
            assert start < pd.Timestamp(onset) < end
            assert pd.Timestamp(onset) in set(ds.events["time"]), "the onset is not an event"


def test_new_kinds_have_their_ground_truth() -> None:
    kinds = {
        cause for name in NAMES for cause in load_sample(name).meta["expected_causes"].values()
    }
    assert kinds == set(CAUSES), f"no sample for {sorted(set(CAUSES) - kinds)}"


def test_multi_group_cluster_is_the_big_one() -> None:
    ds = load_sample("multi-group-cluster")
    assert ds.meta["brokers"] == 3 and ds.meta["replication_factor"] == 3
    topics = ds.lag.groupby("topic")["partition"].nunique()
    assert len(topics) == 2 and (topics >= 24).all(), topics.to_dict()
    assert ds.lag["group"].nunique() == 3
    assert sorted(ds.meta["expected_causes"].values()) == [
        "consumer_slowdown", "none", "partition_skew",
    ]  # fmt: skip
    span_s = (ds.lag["time"].max() - ds.lag["time"].min()).total_seconds()
    assert 15 * 60 <= span_s <= 22 * 60, f"spans {span_s / 60:.1f} min"
    for start, end in (("slowdown_end", "slowdown_drained"), ("skew_end", "skew_drained")):
        drain_s = (event_time(ds, end) - event_time(ds, start)).total_seconds()
        assert drain_s >= 120, f"{start} -> {end}: drained in {drain_s:.0f} s"


@pytest.mark.parametrize("name", NAMES)
def test_recording_notes_the_machine_load(name: str) -> None:
    load = load_sample(name).meta.get("machine_load")
    if load is None:  # recorded before the scenarios noted it
        assert name in OLD_RECORDINGS
        return
    assert load["cores"] >= 1 and load["load1_median"] >= 0
    assert "load average" in load["uptime_at_start"]


@pytest.mark.parametrize("name", NAMES)
def test_recording_shows_what_its_readme_claims(name: str) -> None:
    ds = load_sample(name)
    check(ds, name)


@pytest.mark.parametrize("name", NAMES)
def test_recording_is_the_long_form(name: str) -> None:
    ds = load_sample(name)
    assert ds.meta["short"] is False
    span_s = (ds.lag["time"].max() - ds.lag["time"].min()).total_seconds()
    # multi-group-cluster is planned at 15-20 min; its drains ran slower at load 23 (21 min)
    assert 150 <= span_s <= 22 * 60, f"{name} spans {span_s:.0f} s; expected minutes"
    assert ds.meta["kafka_version"].startswith("4.")


@pytest.mark.parametrize("name", NAMES)
def test_readme_is_generated_from_this_data(name: str) -> None:
    folder = sample_path(name)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert readme == render(name, folder, meta), (
        f"sample_data/{name}/README.md disagrees with its data; regenerate it with "
        f"scenarios.readmes.render (python -m scenarios.record_all re-records everything)"
    )
    for kind in load_sample(name).events["kind"]:
        assert f"`{kind}`" in readme


@pytest.mark.parametrize("name", NAMES)
def test_captures_are_real_tool_output_of_the_recorded_group(name: str) -> None:
    folder = sample_path(name)
    ds = load_sample(name)
    index = pd.read_csv(folder / "captures" / "index.csv")
    assert len(index) >= 3
    assert (index["returncode"] == 0).all()
    for row in index.itertuples():
        text = (folder / "captures" / row.file).read_text(encoding="utf-8")
        parsed = parse_consumer_groups(text, time=pd.Timestamp(row.started), cluster="sandbox")
        assert set(parsed["group"]) == {row.group}
        assert row.group in set(ds.lag["group"])
        assert set(parsed["partition"]) == set(
            ds.lag.loc[ds.lag["group"] == row.group, "partition"]
        )
        # The tool's committed offsets lie within what our collector saw around that moment
        # (only where snapshots bracket the capture: the first recordings stopped sampling
        # just before their last capture finished).
        started, ended = pd.Timestamp(row.started), pd.Timestamp(row.ended)
        lag = ds.lag[ds.lag["group"] == row.group]
        if not (lag["time"].min() <= started and lag["time"].max() >= ended):
            assert row.Index == len(index) - 1, f"{row.file} is outside the recording"
            continue
        seen = lag[
            (lag["time"] >= started - pd.Timedelta(seconds=3))
            & (lag["time"] <= ended + pd.Timedelta(seconds=3))
        ]
        tool = parsed.set_index("partition")["committed_offset"]
        low = seen.groupby("partition")["committed_offset"].min().reindex(tool.index)
        high = seen.groupby("partition")["committed_offset"].max().reindex(tool.index)
        inside = (tool >= low) & (tool <= high)
        assert inside.fillna(False).all(), (
            f"{row.file}: tool offsets {tool.to_dict()} outside collector range "
            f"{low.to_dict()}..{high.to_dict()}"
        )
