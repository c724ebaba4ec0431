"""Every report of every sample, opened in headless Chromium with the network blocked.

For each curated notebook on each bundled sample (whatever ``kbp.list_samples()``
returns) and on a synthetic recording whose group id is hostile HTML:

* the file is at most 2.5 MB, the page makes no request and raises no error;
* the verdict box is entirely within the first 900 px;
* every control in the page is moved with the mouse (plotly's dropdowns and
  sliders, the ``<details>`` folds) and what it drives changed accordingly:
  the figure's title names the chosen group, metric or consumer count, and the
  traces shown are that choice's; no other form control exists (no dead widget);
* the visible text (HTML and the figures' SVG text, folds opened) has no float
  with more than 4 significant digits, no inf/NaN/NaT and no raw timestamp.

A screenshot of the first screen of each report is kept under test-artifacts/.
"""

from __future__ import annotations

import html
import re

import pytest

import kbp_notebook as kbp
from kbp_notebook.report import NOTEBOOKS, render_report

SOURCES = [*kbp.list_samples(), "synthetic"]
LIVE = {"duration_s": 8.0, "every_s": 1.0}
MAX_BYTES = 2_500_000
FIRST_SCREEN_PX = 900
#: How many choices of one control are tried (the first, some middle ones and the last).
CHOICES_TRIED = 4

FLOAT = re.compile(r"(?<![\w.:/-])-?\d[\d,]*\.\d+(?![\d.])")
NOT_A_NUMBER = re.compile(r"(?<![\w-])(?:-?inf|Inf|Infinity|NaN|nan|NaT)(?![\w-])")
RAW_TIME = re.compile(
    r"\d{2}:\d{2}:\d{2}\.\d{3,}"  # fractional seconds
    r"|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?[+-]\d{2}:\d{2}"  # pandas repr, offset
    r"|(?<!\d)1\d{15}(?:\d{3})?(?!\d)"  # epoch microseconds / nanoseconds
)
INTERNAL_NAME = re.compile(r"(?<![(\w])(?:rho|n_eff)(?![\w)])")


def _ids(param):
    return f"{param[0]}-{param[1][:2]}"


@pytest.fixture(scope="module", params=[(s, n) for s in SOURCES for n in NOTEBOOKS], ids=_ids)
def report(request, synthetic_recording, tmp_path_factory):
    source, name = request.param
    out = tmp_path_factory.mktemp("reports") / f"{source}-{name}.html"
    parameters = dict(LIVE) if name == "04_live_monitor" else None
    render_report(str(synthetic_recording) if source == "synthetic" else source, out,
                  notebook=name, parameters=parameters)
    return source, name, out


def _open_offline(browser, path):
    page = browser.new_page(viewport={"width": 1280, "height": FIRST_SCREEN_PX})
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
            return plots.length > 0 && plots.every(
                p => p.querySelectorAll('.trace, .annotation').length > 0);
        }""",
        timeout=60_000,
    )
    return page, attempted, errors


_STATE = """i => {
    const gd = document.querySelectorAll('.js-plotly-plot')[i];
    const title = gd.querySelector('.g-gtitle');
    const shown = gd.data.map((t, k) => [k, t.visible]).filter(([, v]) => v !== false)
        .map(([k]) => k);
    return {
        meta: gd.layout.meta && gd.layout.meta.kbp_control || null,
        menus: (gd.layout.updatemenus || []).length,
        sliders: (gd.layout.sliders || []).length,
        title: title ? title.textContent : '',
        shown: shown,
        drawn: gd.querySelectorAll('.trace').length,
        notes: [...gd.querySelectorAll('.annotation')].map(a => a.textContent),
        menuActive: gd.layout.updatemenus && gd.layout.updatemenus.length
            ? gd.layout.updatemenus[0].active : null,
        sliderActive: gd.layout.sliders && gd.layout.sliders.length
            ? gd.layout.sliders[0].active : null,
    };
}"""

_EXPECTED = """([i, k, kind]) => {
    const gd = document.querySelectorAll('.js-plotly-plot')[i];
    const step = kind === 'dropdown' ? gd.layout.updatemenus[0].buttons[k]
                                     : gd.layout.sliders[0].steps[k];
    return step.args[0].visible.map((v, n) => [n, v]).filter(([, v]) => v !== false)
        .map(([n]) => n);
}"""


_SETTLED = """([i, k, kind, wanted]) => {
    const gd = document.querySelectorAll('.js-plotly-plot')[i];
    const control = kind === 'dropdown' ? gd.layout.updatemenus[0] : gd.layout.sliders[0];
    const step = kind === 'dropdown' ? control.buttons[k] : control.steps[k];
    const title = gd.querySelector('.g-gtitle');
    return control.active === k && !!title && title.textContent.includes(wanted)
        && step.args[0].visible.every((v, n) => (gd.data[n].visible ?? true) === v);
}"""


def _tried(count, active):
    """The choices to move to: the first, the middle, the last and the next to the active one."""
    picks = {0, count // 2, count - 1, (active + 1) % count}
    return sorted(p for p in picks if p != active)[:CHOICES_TRIED]


def _move_dropdown(page, index, k):
    plot = page.locator(".js-plotly-plot").nth(index)
    plot.locator(".updatemenu-header-group").click()
    button = plot.locator(".updatemenu-dropdown-button").nth(k)
    # a long list is a plotly scroll box: wheel it until the choice is inside the figure
    area = plot.bounding_box()
    for _ in range(20):
        page.wait_for_timeout(150)  # the list fades in
        box = button.bounding_box()
        if area["y"] + 30 <= box["y"] and box["y"] + box["height"] <= area["y"] + area["height"]:
            break
        page.mouse.move(box["x"] + box["width"] / 2, area["y"] + area["height"] / 2)
        page.mouse.wheel(0, box["y"] - (area["y"] + area["height"] / 2))
    button.click()


def _move_slider(page, index, k):
    plot = page.locator(".js-plotly-plot").nth(index)
    tick = plot.locator(".slider-tick-rect").nth(k).bounding_box()
    rail = plot.locator(".slider-rail-rect").bounding_box()
    page.mouse.click(tick["x"] + tick["width"] / 2, rail["y"] + rail["height"] / 2)


def _exercise_controls(page):
    """Move every plotly control; return how many were moved."""
    moved = 0
    for index in range(page.locator(".js-plotly-plot").count()):
        state = page.evaluate(_STATE, index)
        if not (state["menus"] or state["sliders"]):
            continue
        meta = state["meta"]
        assert meta is not None, "a plotly control that kbp did not build"
        assert state["menus"] + state["sliders"] == 1
        kind, choices = meta["kind"], meta["choices"]
        assert len(choices) >= 2, "a control with nothing to choose"
        page.locator(".js-plotly-plot").nth(index).scroll_into_view_if_needed()
        before = state
        active = state["menuActive"] if kind == "dropdown" else state["sliderActive"]
        for k in _tried(len(choices), active):
            label = html.unescape(choices[k])
            wanted = label if kind == "dropdown" else f"{label} {meta['label']}"
            if kind == "dropdown":
                _move_dropdown(page, index, k)
            else:
                _move_slider(page, index, k)
            # wait for the state asserted below: the control at k, plotly done redrawing
            page.wait_for_function(_SETTLED, arg=[index, k, kind, wanted], timeout=30_000)
            after = page.evaluate(_STATE, index)
            # the figure says what was chosen, and shows that choice's traces
            assert wanted in after["title"], (wanted, after["title"])
            assert after["shown"] == page.evaluate(_EXPECTED, [index, k, kind])
            # traces drawn, or (nothing to draw for that choice) a note saying why
            assert (after["shown"] and after["drawn"] > 0) or after["notes"], after
            assert after["title"] != before["title"], "the control did not change the figure"
            before = after
        moved += 1
    return moved


def _open_folds(page):
    folds = page.locator("details")
    for k in range(folds.count()):
        fold = folds.nth(k)
        fold.locator("summary").click()
        assert fold.evaluate("d => d.open")
        assert fold.locator("table").is_visible()
    return folds.count()


def _visible_text(page):
    return page.evaluate("""() => [document.body.innerText,
        ...[...document.querySelectorAll('svg text')].map(t => t.textContent)].join('\\n')""")


@pytest.mark.browser
@pytest.mark.slow
def test_report_is_light_offline_verdict_first_and_every_control_works(browser, report,
                                                                       artifacts):
    source, name, path = report
    with (artifacts / "report-sizes.tsv").open("a", encoding="utf-8") as sizes:
        sizes.write(f"{source}\t{name}\t{path.stat().st_size}\n")  # for benchmarks/RESULTS.md
    assert path.stat().st_size <= MAX_BYTES, f"{path.stat().st_size:,} bytes"
    page, attempted, errors = _open_offline(browser, path)
    try:
        box = page.locator(".kbp-verdict").first.bounding_box()
        assert box is not None, "no verdict box"
        assert box["y"] + box["height"] <= FIRST_SCREEN_PX, box
        page.screenshot(path=str(artifacts / f"report-{source}-{name}.png"))
        _exercise_controls(page)
        _open_folds(page)
        # no control but plotly's own: an ipywidget in a report would be dead
        dead = page.eval_on_selector_all(
            "select, input, textarea, button:not(.modebar-btn), .jupyter-widgets",
            "els => els.length")
        assert dead == 0
        # and nothing offers to upload the data ("Share chart..." sends it to a cloud)
        titles = page.eval_on_selector_all(".modebar-btn", "els => els.map(e => e.dataset.title)")
        assert titles and not [t for t in titles if "Share" in t or "Chart Studio" in t], titles
        # hostile names stay text: no element was created from them, no script ran
        assert page.eval_on_selector_all("img[src='x']", "els => els.length") == 0
        assert attempted == [], f"the report tried to reach {attempted[:3]}"
        assert errors == [], errors[:3]
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_report_text_has_human_numbers_only(browser, report):
    _, _, path = report
    page, _, _ = _open_offline(browser, path)
    try:
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        text = _visible_text(page)
    finally:
        page.close()
    long_floats = [m for m in FLOAT.findall(text)
                   if len(re.sub(r"\D", "", m).lstrip("0")) > 4]
    assert long_floats == [], long_floats[:10]
    assert NOT_A_NUMBER.findall(text) == []
    assert RAW_TIME.findall(text) == []
    assert INTERNAL_NAME.findall(text) == []
