"""The sandbox's Prometheus: its scrape configuration, its process, instant queries."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbp_notebook._prometheus_http import PrometheusHttp
from kbp_notebook.errors import KbpConnectionError, KbpError
from kbp_notebook.sandbox._process import _spawn

_PROMETHEUS_JOB = "kafka"


@dataclass
class _Prometheus:
    port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "prometheus.log"


def _prometheus_config(exporter_ports: Mapping[int, int]) -> str:
    """Prometheus configuration scraping each broker's JMX exporter every second."""
    lines = [
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "  evaluation_interval: 15s",
        "scrape_configs:",
        f"  - job_name: {_PROMETHEUS_JOB}",
        "    static_configs:",
    ]
    for i, port in exporter_ports.items():
        lines += [
            f"      - targets: ['127.0.0.1:{port}']",
            "        labels:",
            f"          broker: '{i}'",
        ]
    return "\n".join(lines) + "\n"


def _start_prometheus(prom: _Prometheus, *, detached: bool) -> None:
    """Spawn Prometheus for ``prom`` (``KBP_PROMETHEUS`` names the binary)."""
    binary = os.environ.get("KBP_PROMETHEUS") or shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        raise KbpError(
            "no 'prometheus' binary: install it (apt-get install prometheus) or set "
            "KBP_PROMETHEUS, or create the Sandbox with prometheus=False."
        )
    cmd = [
        binary,
        f"--config.file={prom.directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={prom.directory / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom.port}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=7d",
        "--log.level=warn",
    ]
    prom.proc = _spawn(cmd, log_path=prom.log_path, cwd=prom.directory, detached=detached)


def _query(url: str, promql: str, *, time_s: float | None = None) -> list[dict[str, Any]]:
    """Run an instant PromQL query at ``url``; see ``Sandbox.query_prometheus``."""
    return _client(url).instant(promql, time_s=time_s)


def _client(url: str, *, timeout_s: float = 10.0) -> PrometheusHttp:
    return PrometheusHttp(
        url,
        service="the sandbox's Prometheus",
        hint="is the sandbox running?",
        timeout_s=timeout_s,
    )


def _wait_for_series(
    url: str, promql: str, timeout_s: float = 60, *, poll_s: float = 0.5
) -> list[dict[str, Any]]:
    """Poll ``url`` until ``promql`` has data; see ``Sandbox.wait_for_prometheus_series``."""
    deadline = time.monotonic() + timeout_s
    last_error: KbpError | None = None
    while True:
        try:
            result = _query(url, promql)
            if result:
                return result
        except KbpError as exc:  # not started yet answers 503 / not JSON
            last_error = exc
        if time.monotonic() > deadline:
            why = f" (last error: {last_error})" if last_error else ""
            raise KbpConnectionError(
                f"no data for {promql!r} at {url} after {timeout_s:g} s{why}; "
                "check the metric name against kbp_notebook.sandbox's docstring.",
                address=url,
                query=promql,
            )
        time.sleep(poll_s)


def _targets_summary(url: str) -> str:
    """One line per scrape target: URL, health and last error (for error messages)."""
    try:
        targets = _client(url, timeout_s=5).api("targets", {}, query="targets")["activeTargets"]
    except (KbpError, KeyError, TypeError) as exc:
        return f"unavailable ({exc})"
    return "; ".join(
        f"{t['scrapeUrl']} {t['health']} {t.get('lastError') or ''}".strip() for t in targets
    )
