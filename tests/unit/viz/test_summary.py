"""verdict_box and human_table: the HTML a report opens with, every number human."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kbp_notebook.viz import human_table, verdict_box

HOSTILE = "<img src=x onerror=alert(1)>"


@dataclass(frozen=True)
class _Incidents:
    """The incident model's contract: verdict lines, episodes, worst(), as_of."""

    episodes: pd.DataFrame
    verdict: tuple[str, ...]
    as_of: pd.Timestamp = pd.Timestamp("2026-11-26T16:02:04.123456Z")
    events: pd.DataFrame = field(default_factory=pd.DataFrame)

    def worst(self):
        return None if self.episodes.empty else self.episodes.iloc[0]


def _episodes(group: str = "orders") -> pd.DataFrame:
    return pd.DataFrame({
        "cluster": ["prod"], "group": [group], "topic": ["payments"],
        "start": [pd.Timestamp("2026-11-26T15:58:37.939123Z")],
        "peak_time": [pd.Timestamp("2026-11-26T15:59:37.5Z")],
        "peak_lag": [26976.0], "end": [pd.NaT], "peak_time_lag_s": [29.87654],
        "peak_time_lag_is_lower_bound": [False], "cause": ["producer_surge"],
        "growth_rate_per_s": [451.2345],
    })


def test_verdict_box_leads_with_the_worst_figures_the_cause_and_the_action():
    found = _Incidents(_episodes(), (
        "orders on payments fell behind at 2026-11-26 15:58:37 UTC.",
        "At worst 26,976 messages behind.", "Why: a producer surge.",
        "Not over and not draining.", "What to do: add consumers."))
    html = verdict_box(found).html
    assert html.startswith("<div class='kbp-verdict'>")
    assert "26,976" in html and "30 s" in html and "15:59:37 UTC" in html
    assert "producer surge" in html
    assert "<li class='kbp-action'>What to do: add consumers.</li>" in html
    assert "2026-11-26 16:02:04 UTC" in html  # as of, the date once
    assert not re.search(r"\d\.\d{5}", html)  # no raw floats


def test_verdict_box_escapes_names_and_says_when_there_is_nothing_to_say():
    found = _Incidents(_episodes(HOSTILE), (f"{HOSTILE} fell behind.",))
    html = verdict_box(found).html
    assert "<img" not in html and "&lt;img" in html
    calm = verdict_box(_Incidents(_episodes().iloc[0:0], ("No incident.", "Nothing to do.")))
    assert "kbp-ok" in calm.html and "No incident" in calm.html
    assert "kbp-none" in verdict_box(None).html


def test_human_table_is_short_with_the_full_table_folded_and_human_numbers():
    frame = pd.DataFrame({
        "group": [HOSTILE, "b"], "topic": ["t", "t"], "lag": [26177.0, 3.0],
        "eta_s": [np.inf, 134.2], "retention_loss_s": [np.inf, 10.0],
        "slope_per_s": [299.772923, -0.5], "rho": [0.91234, 0.1],
        "onset": [pd.Timestamp("2026-11-26T15:58:37.939123Z"), pd.NaT],
        "shift": [pd.Timedelta(seconds=80), pd.Timedelta(0)],
        "causes": [("producer_surge", "partition_skew"), ()],
    })
    html = human_table(frame, title="Drain", columns=["group", "lag", "eta_s"]).html
    short, _, folded = html.partition("<details>")
    assert "26,177" in short and "does not drain at current rates" in short
    assert "slope" not in short and "<summary>All 10 columns, 2 rows</summary>" in folded
    assert "300 msg/s" in folded and "15:58:37 UTC" in folded and "1 min 20 s" in folded
    assert "autocorrelation (rho)" in folded and ">never<" in folded
    assert "producer surge, partition skew" in folded
    assert "<img" not in html
    assert not re.search(r"\binf\b|\bNaN\b|\bNaT\b|\.939", html)
