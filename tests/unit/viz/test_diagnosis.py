from __future__ import annotations

import pytest

import kbp_notebook as kbp
from kbp_notebook import viz
from kbp_notebook.viz._style import SEVERITY_COLOURS, SEVERITY_RANK


@pytest.fixture(scope="module")
def diagnosis(dataset):
    return kbp.diagnose(dataset)


def test_findings_table_worst_first_with_severity_colours(diagnosis):
    fig = viz.plot_diagnosis(diagnosis)
    findings, recommendations = fig.data[0], fig.data[1]
    assert findings.type == "table" and recommendations.type == "table"
    headers = [h.replace("<b>", "").replace("</b>", "") for h in findings.header.values]
    assert headers == ["severity", "signal", "evidence"]
    severities = list(findings.cells.values[0])
    assert len(severities) == len(diagnosis.findings)
    ranks = [SEVERITY_RANK.get(s.lower(), 9) for s in severities]
    assert ranks == sorted(ranks)
    fills = findings.cells.fill.color[0]
    assert [SEVERITY_COLOURS.get(s.lower(), "white") for s in severities] == list(fills)
    signals = set(findings.cells.values[1])
    assert signals == set(diagnosis.findings["signal"].astype(str))


def test_recommendations_are_shown_with_their_reason(diagnosis):
    fig = viz.plot_diagnosis(diagnosis)
    recommendations = fig.data[1]
    shown = list(recommendations.cells.values[0])
    expected = [viz.esc(text) for text in diagnosis.recommendations["recommendation"]]
    assert shown == expected


def test_tables_are_tall_enough_not_to_scroll(diagnosis):
    fig = viz.plot_diagnosis(diagnosis)
    top = fig.data[0].domain.y
    bottom = fig.data[1].domain.y
    assert bottom[1] < top[0]  # no overlap
    assert fig.layout.height >= 40 * len(diagnosis.findings)
