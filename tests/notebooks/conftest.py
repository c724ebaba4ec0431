from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "viz"))

from synthetic_dataset import write_synthetic  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_recording(tmp_path_factory):
    """A synthetic Dataset folder (hostile group id included), built in code, never committed."""
    return write_synthetic(tmp_path_factory.mktemp("synthetic") / "recording")
