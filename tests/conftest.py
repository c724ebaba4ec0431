"""Session fixtures: the real Kafka + Prometheus sandboxes of kbp_notebook.sandbox.

Each fixture starts its sandbox the first time a test asks for it (so a run that
never touches ``sandbox3`` never starts three brokers) and stops it at the end
of the session. Processes die with pytest even if it is killed (PR_SET_PDEATHSIG).

* ``sandbox``        1 broker + Prometheus.
* ``sandbox3``       3 brokers (KRaft quorum of 3) + Prometheus. A test that stops a
                     broker must restart it (``sb.restart_stopped_brokers()`` in a
                     ``finally``).
* ``scram_sandbox``  1 broker with a SASL_PLAINTEXT SCRAM-SHA-512 listener and the user
                     ``SCRAM_USER`` / ``SCRAM_PASSWORD``; ``sb.scram_client_config()``
                     gives kafka-python keyword arguments.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from kbp_notebook.sandbox import Sandbox

SCRAM_USER = "kbp-test-user"
SCRAM_PASSWORD = "kbp-test-password-6f1d"


def _terminate_like_ctrl_c(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A SIGTERM (CI timeout, `kill`) would end Python without running fixture
    # teardown: turn it into Ctrl-C so the sandboxes stop and their temp dirs go.
    # (On SIGKILL the brokers still die with pytest via PR_SET_PDEATHSIG.)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Whatever directory a test lives in, asking for a sandbox makes it an
    # integration test, so `-m "not integration"` never starts a JVM.
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"sandbox", "sandbox3", "scram_sandbox"}:
            item.add_marker(pytest.mark.integration)
        if "sandbox3" in names:
            item.add_marker(pytest.mark.three_brokers)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(brokers=1).start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture(scope="session")
def sandbox3() -> Iterator[Sandbox]:
    sb = Sandbox(brokers=3).start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture(scope="session")
def scram_sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(brokers=1, scram_users={SCRAM_USER: SCRAM_PASSWORD}).start()
    try:
        yield sb
    finally:
        sb.stop()
