"""The explorers driven in a real browser: Voilà on 127.0.0.1, Debian's Chromium.

A DrainPlanner slider moved with the keyboard runs the kernel-side observer,
so the ETA readout and the figure change; picking another group in a
LagExplorer redraws its plot.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.helpers.synthetic_dataset import HOSTILE_GROUP, SLOW_GROUP

VOILA = Path(sys.executable).with_name("voila")

SETUP = """import pandas as pd
import kbp_notebook as kbp
from kbp_notebook.widgets import DrainPlanner, LagExplorer

ds = kbp.read_dataset({recording!r})
behind = ds.lag[ds.lag["time"] < pd.Timestamp("2026-01-01T00:07:00Z")]"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def voila(synthetic_recording, tmp_path_factory):
    folder = tmp_path_factory.mktemp("voila")
    nb = new_notebook(cells=[
        new_code_cell(SETUP.format(recording=str(synthetic_recording))),
        new_code_cell(f"planner = DrainPlanner(behind, group={SLOW_GROUP!r}, target_s=600)\n"
                      "planner.add_class('kbp-planner')\nplanner"),
        new_code_cell(f"explorer = LagExplorer(ds, group={SLOW_GROUP!r})\n"
                      "explorer.add_class('kbp-lag-explorer')\nexplorer"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = folder / "explorers.ipynb"
    nbformat.write(nb, path)
    port = _free_port()
    log = open(folder / "voila.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(VOILA), path.name, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
         "--Voila.tornado_settings={'headers':{'Content-Security-Policy':''}}"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((folder / "voila.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        if process.poll() is None:
            process.kill()
        log.close()


def _local_only(page):
    outside = []

    def route(route_):
        url = route_.request.url
        if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            route_.continue_()
        else:
            outside.append(url)
            route_.abort()

    page.route("**/*", route)
    return outside


def _figure_of(page, selector):
    return page.evaluate(
        """sel => { const p = document.querySelector(sel + ' .js-plotly-plot');
                   return p ? {title: p.layout.title.text,
                               names: p.data.map(t => t.name || ''),
                               ys: p.data.map(t => Array.from(t.y || []).slice(-3))} : null; }""",
        selector)


@pytest.mark.browser
@pytest.mark.slow
def test_drain_planner_slider_changes_eta_and_figure(browser, voila, artifacts):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    outside = _local_only(page)
    try:
        page.goto(voila, wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_selector(".kbp-planner .js-plotly-plot .trace", timeout=120_000)
        readout = page.locator(".kbp-planner .widget-html").first
        before_text = readout.inner_text()
        before_fig = _figure_of(page, ".kbp-planner")
        assert "does not drain" in before_text
        handle = page.locator(".kbp-planner .widget-slider .noUi-handle").first
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        # 2 -> 4 consumers: the group drains. Each key press runs the kernel-side observer, so
        # the page passes through the 3-consumer state first: wait for the state asserted below
        # (readout AND figure at 4 consumers), not for any change.
        page.wait_for_function(
            """() => {
                const box = document.querySelector('.kbp-planner');
                const readout = box && box.querySelector('.widget-html');
                const plot = box && box.querySelector('.js-plotly-plot');
                return !!(readout && plot && plot.data
                    && readout.innerText.includes('4 consumers')
                    && readout.innerText.includes('ETA to drain')
                    && plot.data.some(t => (t.name || '').includes('4 consumers drain in')));
            }""", timeout=120_000)
        after_text = readout.inner_text()
        after_fig = _figure_of(page, ".kbp-planner")
        assert "ETA to drain" in after_text and after_text != before_text
        assert any("4 consumers drain in" in name for name in after_fig["names"])
        assert after_fig["names"] != before_fig["names"]
        # Voilà's own page template links two CDN stylesheets (blocked here); nothing else
        # may try to leave the machine.
        assert all(url.endswith(".css") for url in outside), outside
        page.screenshot(path=str(artifacts / "voila-drain-planner.png"), full_page=True)
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_lag_explorer_group_pick_redraws_the_plot(browser, voila, artifacts):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    outside = _local_only(page)
    try:
        page.goto(voila, wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_selector(".kbp-lag-explorer .js-plotly-plot .trace", timeout=120_000)
        before = _figure_of(page, ".kbp-lag-explorer")
        assert SLOW_GROUP in before["title"]
        select = page.locator(".kbp-lag-explorer .widget-dropdown select").nth(1)
        select.select_option(label=HOSTILE_GROUP)
        # wait for the state asserted below (the title names the picked group), not any change
        page.wait_for_function(
            """() => { const p = document.querySelector('.kbp-lag-explorer .js-plotly-plot');
                      const t = p && p.layout && p.layout.title && p.layout.title.text || '';
                      return t.includes('&lt;img') && p.data.length > 0; }""",
            timeout=120_000)
        after = _figure_of(page, ".kbp-lag-explorer")
        assert "&lt;img" in after["title"] or "<img" not in after["title"]
        assert after["names"] != before["names"]
        assert page.eval_on_selector_all("img[src='x']", "els => els.length") == 0
        # Voilà's own page template links two CDN stylesheets (blocked here); nothing else
        # may try to leave the machine.
        assert all(url.endswith(".css") for url in outside), outside
        page.screenshot(path=str(artifacts / "voila-lag-explorer.png"), full_page=True)
    finally:
        page.close()
