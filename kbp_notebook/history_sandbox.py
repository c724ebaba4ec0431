"""A throwaway Prometheus-compatible history store on loopback, fed by remote write.

``HistoryStore("prometheus")`` runs Debian's ``prometheus`` with its
remote-write receiver on; ``HistoryStore("victoria-metrics")`` runs Debian's
single-node ``victoria-metrics``. Both listen on a free loopback port, keep
their data in a temporary directory and are stopped (and the directory
removed) by :meth:`HistoryStore.stop` or when the Python process dies.
Tests and benchmarks push LAG frames into them with
``kbp_notebook.collect.remote_write.RemoteWriter`` and read them back with
``PrometheusSource``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from kbp_notebook._prometheus_http import PrometheusHttp
from kbp_notebook.errors import KbpError
from kbp_notebook.sandbox._process import _free_ports, _spawn, _tail, _terminate

__all__ = ["HistoryStore"]

_BINARIES = {"prometheus": "prometheus", "victoria-metrics": "victoria-metrics"}


class HistoryStore:
    """Prometheus or VictoriaMetrics (single node) on ``127.0.0.1``.

    Parameters
    ----------
    kind
        ``"prometheus"`` or ``"victoria-metrics"``.
    max_samples
        The server's limit of samples one query may load (Prometheus
        ``--query.max-samples``, VictoriaMetrics ``-search.maxSamplesPerQuery``).
    start_timeout_s
        How long :meth:`start` waits for the server to answer.

    Examples
    --------
    >>> with HistoryStore("victoria-metrics") as store:  # doctest: +SKIP
    ...     store.query_url, store.write_url
    """

    def __init__(
        self, kind: str, *, max_samples: int = 50_000_000, start_timeout_s: float = 60.0
    ) -> None:
        if kind not in _BINARIES:
            raise KbpError(f"kind={kind!r}: pass 'prometheus' or 'victoria-metrics'.")
        self.kind = kind
        self.max_samples = int(max_samples)
        self.start_timeout_s = float(start_timeout_s)
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def query_url(self) -> str:
        """Base URL for ``PrometheusSource``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        """The remote-write endpoint."""
        return f"http://127.0.0.1:{self.port}/api/v1/write"

    def __enter__(self) -> HistoryStore:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"HistoryStore({self.kind!r}, port={self.port})"

    def _command(self, binary: str, data: Path) -> list[str]:
        listen = f"127.0.0.1:{self.port}"
        if self.kind == "prometheus":
            config = data / "prometheus.yml"
            config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
            return [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data / 'tsdb'}",
                f"--web.listen-address={listen}",
                "--web.enable-remote-write-receiver",
                f"--query.max-samples={self.max_samples}",
                "--storage.tsdb.retention.time=2d",
                "--log.level=warn",
            ]
        return [
            binary,
            f"-httpListenAddr={listen}",
            f"-storageDataPath={data / 'vm'}",
            "-retentionPeriod=1",
            # Answer with the newest samples (the default hides the last 30 s).
            "-search.latencyOffset=0s",
            "-search.disableCache",
            f"-search.maxSamplesPerQuery={self.max_samples}",
            "-loggerLevel=ERROR",
        ]

    def start(self) -> HistoryStore:
        """Start the server and wait until it answers queries."""
        binary = shutil.which(_BINARIES[self.kind]) or f"/usr/bin/{_BINARIES[self.kind]}"
        if not Path(binary).exists():
            raise KbpError(
                f"no {self.kind!r} binary: install Debian's package "
                f"(apt-get install {_BINARIES[self.kind]}; scripts/install-system.sh does)."
            )
        self._dir = Path(tempfile.mkdtemp(prefix=f"kbp-{self.kind}-"))
        (self.port,) = _free_ports(1)
        log = self._dir / "server.log"
        self._proc = _spawn(
            self._command(binary, self._dir), log_path=log, cwd=self._dir, detached=False
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                text = _tail(log)
                self.stop()
                raise KbpError(f"{self.kind} exited at start:\n{text}")
            try:
                self.instant("1")
                return self
            except KbpError:  # refused, or 503 / not JSON while it starts
                time.sleep(0.2)
        text = _tail(log)
        self.stop()
        raise KbpError(f"{self.kind} did not answer within {self.start_timeout_s:.0f} s:\n{text}")

    def _http(self) -> PrometheusHttp:
        return PrometheusHttp(
            self.query_url, service=self.kind, hint="is the HistoryStore started?", timeout_s=10
        )

    def instant(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query (for readiness checks and tests)."""
        return self._http().instant(promql)

    def flush(self) -> None:
        """Ask VictoriaMetrics to flush buffered samples to storage.

        The newest samples still become searchable about a second later (more on a
        loaded machine): a caller that reads back what it just wrote must poll.
        """
        if self.kind == "victoria-metrics":
            self._http().text("/internal/force_flush")

    def stop(self) -> None:
        """Stop the server and remove its data."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate([proc], timeout_s=15)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
