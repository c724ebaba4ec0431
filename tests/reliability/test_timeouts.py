"""Every network call has a timeout: a black-holed address fails in time with KbpConnectionError.

Two kinds of black hole on 127.0.0.1, both real sockets:

* ``never_accepts``: listening with a backlog, never calling ``accept`` (the
  kernel completes the handshake, nobody ever reads);
* ``accepts_silently``: accepts every connection, reads what is sent, never answers.

The bound asserted is generous (the configured timeout, plus kafka-python's
bootstrap retries, plus slack for a loaded 2-core machine): the property is
"gives up on its own, with a useful error", not a precise figure.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from kbp_notebook.errors import KbpConnectionError
from tests.helpers.reliability import FIGURES, ROOT

TIMEOUT_S = 2.0


class BlackHole:
    """A TCP listener on 127.0.0.1 that never answers."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        if kind == "accepts_silently":
            self.sock.settimeout(0.2)
            self._thread = threading.Thread(target=self._swallow, daemon=True)
            self._thread.start()

    def _swallow(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.setblocking(False)
            self._held.append(conn)
            for held in list(self._held):
                try:
                    held.recv(65536)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        for conn in self._held:
            conn.close()
        self.sock.close()


@pytest.fixture(params=["never_accepts", "accepts_silently"])
def black_hole(request: pytest.FixtureRequest) -> Iterator[BlackHole]:
    hole = BlackHole(request.param)
    yield hole
    hole.close()


def _bound_s(timeout_s: float) -> float:
    return 3 * timeout_s + 10


def _timed(call):
    started = time.monotonic()
    try:
        call()
    except KbpConnectionError as exc:
        return time.monotonic() - started, exc
    raise AssertionError("no KbpConnectionError from a black-holed address")


def test_lag_collector_gives_up_on_a_black_hole(black_hole: BlackHole) -> None:
    from kbp_notebook.collect.kafka_lag import LagCollector

    timeout_ms = int(TIMEOUT_S * 1000)

    def connect() -> None:
        with LagCollector(
            black_hole.address, request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms
        ) as collector:
            collector.snapshot()

    elapsed_s, error = _timed(connect)
    FIGURES[f"timeout: LagCollector vs {black_hole.kind} (s, timeout {TIMEOUT_S:g}s)"] = round(
        elapsed_s, 1
    )
    assert black_hole.address in str(error)
    assert elapsed_s < _bound_s(TIMEOUT_S), f"took {elapsed_s:.1f}s"


def test_lag_collector_default_timeouts_are_bounded(black_hole: BlackHole) -> None:
    """Without any timeout setting, the defaults (10 s) still give up."""
    from kbp_notebook.collect._kafka import DEFAULT_CLIENT_CONFIG
    from kbp_notebook.collect.kafka_lag import LagCollector

    elapsed_s, error = _timed(lambda: LagCollector(black_hole.address).snapshot())
    default_s = DEFAULT_CLIENT_CONFIG["bootstrap_timeout_ms"] / 1000
    FIGURES[f"timeout: LagCollector defaults vs {black_hole.kind} (s)"] = round(elapsed_s, 1)
    assert black_hole.address in str(error)
    assert elapsed_s < _bound_s(default_s), f"took {elapsed_s:.1f}s"


def test_log_dir_usage_gives_up_on_a_black_hole(black_hole: BlackHole) -> None:
    from kbp_notebook.collect.clients import log_dir_usage

    timeout_ms = int(TIMEOUT_S * 1000)
    elapsed_s, error = _timed(
        lambda: log_dir_usage(
            black_hole.address, request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms
        )
    )
    assert black_hole.address in str(error)
    assert elapsed_s < _bound_s(TIMEOUT_S), f"took {elapsed_s:.1f}s"


def test_prometheus_source_gives_up_on_a_black_hole(black_hole: BlackHole) -> None:
    from kbp_notebook.collect.prometheus import PrometheusSource

    source = PrometheusSource(f"http://{black_hole.address}", timeout_s=TIMEOUT_S)
    elapsed_s, error = _timed(
        lambda: source.query_range("up", "2026-01-01T00:00Z", "2026-01-01T00:05Z", "15s")
    )
    FIGURES[f"timeout: PrometheusSource vs {black_hole.kind} (s, timeout {TIMEOUT_S:g}s)"] = round(
        elapsed_s, 1
    )
    assert black_hole.address in str(error)
    assert elapsed_s < 2 * TIMEOUT_S + 3, f"took {elapsed_s:.1f}s"


def test_kbp_collect_exits_with_a_message_on_a_black_hole(black_hole: BlackHole, tmp_path) -> None:
    """The command line gives up too, exit code 1 and the address in one line, no traceback."""
    props = tmp_path / "client.properties"
    props.write_text(f"request.timeout.ms={int(TIMEOUT_S * 1000)}\n")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "kbp_notebook.cli", "collect", "--bootstrap-server",
         black_hole.address, "--out", str(tmp_path / "rec"), "--duration", "5s",
         "--every", "1s", "--no-progress", "--command-config", str(props)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    elapsed_s = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert black_hole.address in done.stderr
    assert "Traceback" not in done.stderr
    assert elapsed_s < _bound_s(10.0), f"took {elapsed_s:.1f}s"
