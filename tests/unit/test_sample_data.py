"""The shipped sample recordings contain what their READMEs claim.

Plain-pandas checks (``scenarios.expectations``) of each recording against
the ground-truth events its scenario wrote: lag grows after the recorded
onset and drains after the recorded scale-out; flush latency is clearly
above its own baseline in the pressure window; the skewed partition holds
most of the lag; the stuck consumer's offsets stand still, its member
leaves, and the reset moves the offsets back. Plus: every sample loads as
a validated Dataset, is long enough to show onset, growth and drain, has
its ``kafka-consumer-groups`` captures, and its README states the figures
that are actually in the data.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kbp_notebook.collect import list_samples, load_sample, parse_consumer_groups, sample_path
from scenarios import MODULES
from scenarios.expectations import check, group_of
from scenarios.readmes import render

NAMES = list(MODULES)


def test_every_scenario_is_shipped() -> None:
    assert set(NAMES) <= set(list_samples())


def test_sample_data_stays_small() -> None:
    root = sample_path(NAMES[0]).parent
    total = sum(p.stat().st_size for name in NAMES for p in (root / name).rglob("*") if p.is_file())
    assert total < 5 * 2**20, f"sample_data/ holds {total / 2**20:.1f} MiB of recordings"


@pytest.mark.parametrize("name", NAMES)
def test_recording_shows_what_its_readme_claims(name: str) -> None:
    ds = load_sample(name)
    check(ds, name)


@pytest.mark.parametrize("name", NAMES)
def test_recording_is_the_long_form(name: str) -> None:
    ds = load_sample(name)
    assert ds.meta["short"] is False
    span_s = (ds.lag["time"].max() - ds.lag["time"].min()).total_seconds()
    assert 150 <= span_s <= 600, f"{name} spans {span_s:.0f} s; expected minutes"
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
        assert set(parsed["group"]) == {group_of(ds)}
        assert set(parsed["partition"]) == set(
            ds.lag.loc[ds.lag["group"] == group_of(ds), "partition"]
        )
        # The tool's committed offsets lie within what our collector saw around that moment
        # (only where snapshots bracket the capture: the first recordings stopped sampling
        # just before their last capture finished).
        started, ended = pd.Timestamp(row.started), pd.Timestamp(row.ended)
        lag = ds.lag[ds.lag["group"] == group_of(ds)]
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
