from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_dataset import make_dataset  # noqa: E402


@pytest.fixture(scope="session")
def dataset():
    return make_dataset()


def all_strings(node):
    """Every string anywhere in a figure dict (titles, names, hover templates, text arrays)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from all_strings(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from all_strings(value)
    elif hasattr(node, "tolist"):
        yield from all_strings(node.tolist())
