from __future__ import annotations

import pytest

from tests.helpers.synthetic_dataset import write_synthetic


@pytest.fixture(scope="session")
def synthetic_recording(tmp_path_factory):
    """A synthetic Dataset folder (hostile group id included), built in code, never committed."""
    return write_synthetic(tmp_path_factory.mktemp("synthetic") / "recording")
