from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
for extra in (ROOT / "benchmarks", ROOT / "tests" / "unit" / "analysis"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))
