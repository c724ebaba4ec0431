from __future__ import annotations

import pytest

from kbp_notebook.widgets import CorrelationExplorer


def test_defaults_to_flush_latency_against_lag(dataset):
    explorer = CorrelationExplorer(dataset)
    assert explorer.metric.value == "log_flush_time_ms_p99"
    assert explorer.result is not None
    assert explorer.result.x_name.startswith("log_flush_time_ms_p99")
    assert "log_flush_time_ms_p99" in explorer.figure.layout.title.text


def test_method_target_and_metric_drive_the_result(dataset):
    explorer = CorrelationExplorer(dataset)
    first_fig = explorer.figure
    explorer.method.value = "pearson"
    assert explorer.result.method == "pearson"
    assert "pearson" in explorer.figure.layout.title.text
    assert explorer.figure is not first_fig
    explorer.target.value = "lag_growth"
    assert "growth" in explorer.result.y_name
    explorer.metric.value = "request_handler_idle_ratio"
    assert explorer.result.x_name.startswith("request_handler_idle_ratio")
    bars = [t for t in explorer.figure.data if t.type == "bar"][0]
    assert len(bars.x) == len(explorer.result.table)


def test_shift_window_limits_the_search(dataset):
    explorer = CorrelationExplorer(dataset)
    explorer.max_shift_min.value = 1.0
    assert explorer.result.max_shift.total_seconds() <= 60
    assert max(abs(s) for s in explorer.result.table["shift_s"]) <= 60
    assert abs(explorer.result.shift_s) <= 60


def test_unknown_group_is_explained_not_raised(dataset):
    explorer = CorrelationExplorer(dataset)
    explorer.group.value = explorer.group.options[1]  # the hostile group: its lag is constant
    assert explorer.result is None or explorer.result.n > 0
    if explorer.result is None:
        assert "variance" in explorer.readout.value or "no " in explorer.readout.value


@pytest.mark.parametrize("bad", [object(), 3])
def test_rejects_non_datasets(bad):
    with pytest.raises(TypeError):
        CorrelationExplorer(bad)
