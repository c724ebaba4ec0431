"""Helpers shared by the reliability tests (imported by name: pytest puts this folder on sys.path).

``TRIED`` counts the generated inputs each property test actually ran (keyed
by target); ``FIGURES`` holds measured figures (long run, fault timings). The
conftest prints both at the end of the session and writes them to
``build/reliability/summary.json``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TRIED: Counter[str] = Counter()
FIGURES: dict[str, object] = {}

ROOT = Path(__file__).resolve().parents[2]

#: Chromium flags that keep a headless browser from phoning home (see NOTES.md).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
