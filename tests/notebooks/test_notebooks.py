"""Every curated notebook executes headless (nbclient, python3 kernel) as in JupyterLab.

Here they run with ``report=False`` (live ipywidgets, widget state stored) on a
synthetic recording whose group id is hostile HTML, on a three-snapshot
recording, and (the live monitor) against the real sandbox cluster. Every
notebook on every bundled sample is executed in report mode, and its report
checked in a browser, by tests/browser/test_report_offline.py.
"""

from __future__ import annotations

import time
import uuid

import pytest

import kbp_notebook as kbp
from kbp_notebook.report import NOTEBOOKS, execute_notebook, find_notebook

PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

#: Figures (plotly bundles) each notebook must produce, not counting those inside widgets.
MIN_FIGURES = {
    "01_incident_postmortem": 6,
    "02_capacity_planning": 1,
    "03_flush_latency_vs_lag": 0,
    "04_live_monitor": 0,
}
LIVE_EXTRA = {"duration_s": 3.0, "every_s": 0.5}


def _outputs(nb):
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]


def _check_executed(nb, name):
    outputs = _outputs(nb)
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""
    figures = [o for o in outputs if PLOTLY in o.get("data", {})]
    assert len(figures) >= MIN_FIGURES[name]
    for figure in figures:
        assert figure["data"][PLOTLY]["data"], "a figure without traces"
    widgets = [o for o in outputs if WIDGET in o.get("data", {})]
    assert widgets, "the notebook's explorer did not display"
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    explorer_id = widgets[0]["data"][WIDGET]["model_id"]
    assert state[explorer_id]["model_name"] == "VBoxModel"
    outputs_models = [m for m in state.values() if m["model_name"] == "OutputModel"]
    drawn = [m for m in outputs_models if any(PLOTLY in o.get("data", {})
                                               for o in m["state"].get("outputs", []))]
    assert drawn, "the explorer's figure is missing from the stored widget state"
    return outputs


def _parameters(name, source):
    params = dict(source)
    if name == "04_live_monitor":
        params.update(LIVE_EXTRA)
    return params


@pytest.mark.notebook
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_on_the_synthetic_recording(name, synthetic_recording):
    nb = execute_notebook(find_notebook(name), parameters=_parameters(
        name, {"source": None, "recording": str(synthetic_recording)}), report=False)
    outputs = _check_executed(nb, name)
    text = "".join(str(o.get("data", {}).get("text/html", "")) + str(o.get("text", ""))
                   for o in outputs)
    assert "<img src=x" not in text  # the hostile group id never reaches HTML unescaped


@pytest.fixture(scope="module")
def three_snapshots(tmp_path_factory):
    """The first three snapshots of a sample: too short for a trend, a status or a forecast."""
    ds = kbp.load_sample("producer-burst")
    first = sorted(ds.lag["time"].unique())[:3]
    short = kbp.Dataset(
        lag=ds.lag[ds.lag["time"].isin(first)],
        metrics=ds.metrics[ds.metrics["time"] <= first[-1]],
        events=ds.events[ds.events["time"] <= first[-1]],
        meta=ds.meta,
    )
    folder = tmp_path_factory.mktemp("short") / "recording"
    kbp.write_dataset(short, folder)
    return folder


@pytest.mark.notebook
@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n != "04_live_monitor"])
def test_notebook_says_not_enough_data_on_a_three_snapshot_recording(name, three_snapshots):
    nb = execute_notebook(
        find_notebook(name), parameters={"source": None, "recording": str(three_snapshots)},
        report=False,
    )
    outputs = _outputs(nb)
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Not enough data:" in printed and "at least" in printed
    assert any(WIDGET in o.get("data", {}) for o in outputs), "the explorer did not display"


def _lagging_group(bootstrap: str) -> tuple[str, str]:
    """Create a topic with a consumer group that committed part of it: real lag."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic, group = f"kbp-live-{uuid.uuid4().hex[:8]}", f"kbp-live-group-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for index in range(400):
        producer.send(topic, f"m{index}".encode())
    producer.flush()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             max_poll_records=50)
    try:
        deadline = time.monotonic() + 60
        read = 0
        while read < 100 and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=1000)
            read += sum(len(records) for records in batch.values())
        consumer.commit()
    finally:
        consumer.close()
    # keep producing while the monitor watches, so lag grows
    for index in range(400):
        producer.send(topic, f"n{index}".encode())
    producer.flush()
    producer.close()
    return topic, group


@pytest.mark.integration
@pytest.mark.notebook
def test_live_monitor_notebook_against_the_sandbox(sandbox):
    topic, group = _lagging_group(sandbox.bootstrap_servers)
    nb = execute_notebook(find_notebook("04_live_monitor"), parameters={
        "source": None, "bootstrap_servers": sandbox.bootstrap_servers, "groups": [group],
        "duration_s": 8.0, "every_s": 2.0, "cluster": "sandbox",
    }, report=False)
    outputs = _check_executed(nb, "04_live_monitor")
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "last error: None" in printed
    polls = int(printed.split(" polls;")[0].split()[-1])
    assert polls >= 3
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    figures = [o["data"][PLOTLY] for m in state.values() if m["model_name"] == "OutputModel"
               for o in m["state"].get("outputs", []) if PLOTLY in o.get("data", {})]
    names = [trace.get("name", "") for fig in figures for trace in fig["data"]]
    assert any(group in name and topic in name for name in names)
    html_readouts = [m["state"]["value"] for m in state.values()
                     if m["model_name"] == "HTMLModel"]
    assert any("messages behind" in value for value in html_readouts)
