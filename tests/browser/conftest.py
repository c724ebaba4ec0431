from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.synthetic_dataset import write_synthetic

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-default-apps", "--disable-extensions",
]


@pytest.fixture(scope="session")
def synthetic_recording(tmp_path_factory):
    """A synthetic Dataset folder (hostile group id included), built in code, never committed."""
    return write_synthetic(tmp_path_factory.mktemp("synthetic") / "recording")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
