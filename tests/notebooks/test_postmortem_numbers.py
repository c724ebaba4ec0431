"""Every section of a rendered post-mortem quotes the incident model's onset, peak and rates."""

from __future__ import annotations

import html
import re

import pytest

import kbp_notebook as kbp
from kbp_notebook import viz
from kbp_notebook.report import render_report
from kbp_notebook.units import format_count, format_rate, format_time

FACTS = re.compile(r"Incident figures:[^<]*")


def _visible(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("sample", ["producer-burst", "stuck-consumer"])
def test_every_section_quotes_the_same_onset_peak_and_rates(sample, tmp_path):
    out = tmp_path / f"{sample}.html"
    render_report(sample, out, notebook="01_incident_postmortem")
    page = out.read_text(encoding="utf-8")
    found = kbp.incidents(kbp.load_sample(sample))
    worst = found.worst()
    expected = html.unescape(FACTS.search(str(viz.episode_facts(found))).group(0))
    quoted = [html.unescape(m.group(0)) for m in FACTS.finditer(page)]
    # trend, status at the peak, drain at the peak, diagnosis
    assert len(quoted) >= 4, quoted
    assert set(quoted) == {expected}
    text = _visible(page)
    onset, peak = format_time(worst["start"]), format_count(worst["peak_lag"])
    assert f"onset {onset}" in expected and f"peak {peak} messages" in expected
    assert format_rate(worst["growth_rate_per_s"]) in expected
    verdict = text[: text.index("Incident figures:")]
    assert peak in verdict  # the verdict box at the top quotes the same peak ...
    assert onset in verdict  # ... and onset (the verdict's first line)
    assert format_rate(worst["growth_rate_per_s"]) in verdict
