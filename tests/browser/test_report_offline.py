"""Rendered reports open in headless Chromium with every network request blocked.

Every plot must draw its traces, the explorers' widget state must render
(through the embedded html-manager, not a CDN), and the page must not even
try to reach a host. A full-page screenshot is kept under test-artifacts/.
"""

from __future__ import annotations

import pytest

import kbp_notebook as kbp
from kbp_notebook.report import NOTEBOOKS, render_report

SAMPLES = kbp.list_samples()
EXPECTED_WIDGET_TEXT = {
    "01_incident_postmortem": "messages behind",
    "02_capacity_planning": "consumers ×",
    "03_flush_latency_vs_lag": "r = ",
    "04_live_monitor": "snapshot",
}


def _source(recording):
    return SAMPLES[0] if SAMPLES else str(recording)


@pytest.fixture(scope="module", params=NOTEBOOKS)
def report(request, synthetic_recording, tmp_path_factory):
    name = request.param
    out = tmp_path_factory.mktemp("reports") / f"{name}.html"
    parameters = {"duration_s": 3.0, "every_s": 0.5} if name == "04_live_monitor" else None
    render_report(_source(synthetic_recording), out, notebook=name, parameters=parameters)
    return name, out


def _open_offline(browser, path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    attempted, errors = [], []

    def route(route_):
        url = route_.request.url
        if url.startswith(("file:", "data:")):
            route_.continue_()
        else:
            attempted.append(url)
            route_.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"),
                                      dialog.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function(
        """() => {
            const plots = [...document.querySelectorAll('.js-plotly-plot')];
            const widgets = document.querySelectorAll('.widget-dropdown, .widget-slider, '
                + '.widget-button, .widget-toggle-buttons').length;
            return plots.length > 0 && widgets > 0
                && plots.every(p => p.querySelectorAll('.trace, .table').length > 0);
        }""",
        timeout=60_000,
    )
    return page, attempted, errors


@pytest.mark.browser
@pytest.mark.slow
def test_report_renders_offline(browser, report, artifacts):
    name, path = report
    page, attempted, errors = _open_offline(browser, path)
    dialogs = [e for e in errors if e.startswith("dialog")]
    try:
        traces = page.eval_on_selector_all(
            ".js-plotly-plot", "els => els.map(e => e.querySelectorAll('.trace, .table').length)")
        assert traces and min(traces) > 0
        html = path.read_text(encoding="utf-8")
        assert html.count("plotly-graph-div") >= len(traces) - 1
        # widget state: the controls and the readout came from the embedded state
        widget_text = page.inner_text(".jupyter-widgets.widget-vbox")
        assert EXPECTED_WIDGET_TEXT[name] in widget_text
        assert "Error" not in widget_text
        # hostile names stay text: no element was created from them, no script ran
        assert page.eval_on_selector_all("img[src='x']", "els => els.length") == 0
        assert dialogs == []
        assert attempted == [], f"the report tried to reach {attempted[:3]}"
        assert errors == [], errors[:3]
        page.screenshot(path=str(artifacts / f"report-{name}.png"), full_page=True)
    finally:
        page.close()
