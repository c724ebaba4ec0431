"""Waiting for a real cluster to reach a state, with a message that says what never came."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], object], *, timeout_s: float, what: str = "condition",
    poll_s: float = 0.5,
) -> None:
    """Return once ``predicate()`` is true; fail the test after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")
