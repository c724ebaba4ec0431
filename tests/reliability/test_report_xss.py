"""Shared reports are safe to open: hostile group ids recorded from a real cluster stay text.

A consumer group id may be any string. Real groups with script-carrying ids
(and topics with odd but legal names) are created on the sandbox, committed
to, recorded with ``LagCollector.record``, rendered with ``render_report``
and opened in headless Chromium with every network request blocked:

* no dialog opens (``page.on("dialog")``) and ``alert``/``confirm``/``prompt``
  (replaced before any page script runs) are never called;
* no injected handler logs to the console and no element was created from
  a name (no ``img[src=x]``, no ``svg[onload]``, no ``<b>`` from a name);
* the names are shown as text.
"""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from kbp_notebook.collect.kafka_lag import LagCollector
from kbp_notebook.collect.storage import read_dataset
from tests.helpers.reliability import CHROMIUM_ARGS, commit_offset, create_topic, unique

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

MARK = unique("xss")
HOSTILE_GROUPS = [
    f"<img src=x onerror=console.log('{MARK}-1');alert(1)>",
    f"</script><script>console.log('{MARK}-2');alert(2)</script>",
    f"\"><svg onload=console.log('{MARK}-3')>",
    f"';console.log('{MARK}-4');//",
    f"<b>{MARK}-bold</b>\u2028${{console.log('{MARK}-5')}}{{{{7*7}}}}",
]
# Legal topic names are [a-zA-Z0-9._-]{1,249}; these are the odd ones.
ODD_TOPICS = [f"_-.-_{MARK}", f"x{'.' * 3}{MARK}", f"{MARK}-" + "y" * 180]


def _produce(bootstrap: str, topics: list[str], count: int) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for i in range(count):
        for topic in topics:
            producer.send(topic, value=b"m%d" % i)
    producer.flush(timeout=30)
    producer.close()


@pytest.fixture(scope="module")
def hostile_recording(sandbox, tmp_path_factory):
    bootstrap = sandbox.bootstrap_servers
    for topic in ODD_TOPICS:
        create_topic(bootstrap, topic, 1)
    _produce(bootstrap, ODD_TOPICS, 200)
    plain = {"bootstrap_servers": bootstrap}
    watched = [(group, ODD_TOPICS[i % len(ODD_TOPICS)]) for i, group in enumerate(HOSTILE_GROUPS)]
    for i, (group, topic) in enumerate(watched):
        commit_offset(plain, topic, group, 10 * (i + 1))
    out = tmp_path_factory.mktemp("xss") / "recording"
    with LagCollector(bootstrap, cluster=f"<i>{MARK}-cluster</i>") as collector:
        for k in range(6):  # lag grows between snapshots; the consumers commit a little
            collector.record(out, every="1s", duration="1s", groups=HOSTILE_GROUPS, progress=False)
            _produce(bootstrap, ODD_TOPICS, 50)
            for i, (group, topic) in enumerate(watched):
                commit_offset(plain, topic, group, 10 * (i + 1) + 5 * k)
            time.sleep(0.5)
    dataset = read_dataset(out)
    assert set(dataset.lag["group"]) == set(HOSTILE_GROUPS)
    assert dataset.lag["time"].nunique() >= 5
    return out


def test_report_on_hostile_group_ids_runs_no_script(hostile_recording, tmp_path) -> None:
    from kbp_notebook.report import render_report

    html_path = render_report(str(hostile_recording), tmp_path / "report.html")
    html = html_path.read_text(encoding="utf-8")
    assert MARK in html  # the names made it into the report

    seen = _probe(html_path)
    dialogs, calls, console = seen["dialogs"], seen["calls"], seen["console"]
    injected, attempted, page_errors = seen["injected"], seen["attempted"], seen["page_errors"]
    text, svg_text = seen["text"], seen["svg_text"]

    assert dialogs == []
    assert calls == []
    assert not [line for line in console if MARK in line], console
    assert injected == {"img": 0, "svg": 0, "bold": 0, "italic": 0}
    assert attempted == [], attempted[:3]
    assert page_errors == [], page_errors[:3]
    # the names are displayed, as text (in tables/readouts or in the plots' SVG labels)
    shown = text + "\n" + svg_text
    visible = [g for g in HOSTILE_GROUPS if g.split("\u2028")[0][:30] in shown]
    assert visible, f"no hostile group id is shown as text; page text starts {shown[:300]!r}"


def _probe(html_path, *, wait_for_plots: bool = True) -> dict:
    """Open a page offline in Chromium and return what ran and what is shown.

    Runs in a worker thread: rendering a report in-process (nbclient) can leave an
    asyncio loop marked running on this thread, and Playwright's sync API refuses to
    start inside a running loop.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_probe_in_this_thread, html_path, wait_for_plots=wait_for_plots).result()


def _probe_in_this_thread(html_path, *, wait_for_plots: bool) -> dict:
    from playwright.sync_api import sync_playwright

    attempted: list[str] = []
    dialogs: list[str] = []
    console: list[str] = []
    page_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def route(route_) -> None:
                if route_.request.url.startswith(("file:", "data:")):
                    route_.continue_()
                else:
                    attempted.append(route_.request.url)
                    route_.abort()

            page.route("**/*", route)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("console", lambda m: console.append(m.text))
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.add_init_script(
                "window.__calls = [];"
                "for (const f of ['alert', 'confirm', 'prompt']) {"
                "  window[f] = (...a) => { window.__calls.push(f + ':' + a.join(' ')); };"
                "}"
            )
            page.goto(html_path.as_uri(), wait_until="load")
            if wait_for_plots:
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.js-plotly-plot')].length > 0 && "
                    "[...document.querySelectorAll('.js-plotly-plot')]"
                    ".every(p => p.querySelectorAll('.trace, .table').length > 0)",
                    timeout=90_000,
                )
            page.wait_for_timeout(1500)  # let late handlers (onerror of a broken img) fire
            calls = page.evaluate("window.__calls")
            injected = page.evaluate(
                """(mark) => ({
                    img: document.querySelectorAll("img[src='x']").length,
                    svg: document.querySelectorAll('svg[onload]').length,
                    bold: [...document.querySelectorAll('b')]
                        .filter(b => b.textContent.includes(mark)).length,
                    italic: [...document.querySelectorAll('i')]
                        .filter(i => i.textContent.includes(mark)).length,
                })""",
                MARK,
            )
            text = page.evaluate("document.body.innerText")
            svg_text = page.evaluate(
                "[...document.querySelectorAll('svg text')].map(t => t.textContent).join('\\n')"
            )
        finally:
            browser.close()
    return {
        "dialogs": dialogs, "calls": calls, "console": console, "injected": injected,
        "attempted": attempted, "page_errors": page_errors, "text": text, "svg_text": svg_text,
    }  # fmt: skip


def test_the_probe_catches_an_unescaped_name(tmp_path) -> None:
    """Control: the same names pasted raw into a page are caught by every hook above."""
    page = tmp_path / "unsafe.html"
    page.write_text("<html><body>" + "".join(HOSTILE_GROUPS) + "</body></html>")
    seen = _probe(page, wait_for_plots=False)
    assert seen["calls"] or seen["dialogs"]
    assert [line for line in seen["console"] if MARK in line]
    assert seen["injected"]["img"] == 1 and seen["injected"]["bold"] == 1
