from __future__ import annotations

import pytest

from tests.helpers.synthetic_dataset import make_dataset


@pytest.fixture(scope="session")
def dataset():
    return make_dataset()
