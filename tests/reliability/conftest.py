"""Reliability suite: print how many hostile inputs were tried and the measured figures."""

from __future__ import annotations

import json

import pytest

from tests.helpers.reliability import FIGURES, ROOT, TRIED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the counts of generated inputs and any figures, and save them as JSON."""
    if not TRIED and not FIGURES:
        return
    terminalreporter.section("reliability")
    for target, count in sorted(TRIED.items()):
        terminalreporter.write_line(f"hostile inputs tried  {target:<44} {count:>7}")
    if TRIED:
        total = sum(TRIED.values())
        terminalreporter.write_line(f"hostile inputs tried  {'TOTAL':<44} {total:>7}")
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name:<66} {value}")
    out = ROOT / "build" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(
        json.dumps({"tried": dict(TRIED), "figures": FIGURES}, indent=2, default=str),
        encoding="utf-8",
    )
