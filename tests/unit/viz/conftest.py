from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_dataset import make_dataset  # noqa: E402


@pytest.fixture(scope="session")
def dataset():
    return make_dataset()
