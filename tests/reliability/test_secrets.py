"""Secrets stay secret: a SCRAM password (the canary) appears in no file and no message.

Against the SCRAM sandbox, with the user's real password as the canary:

* ``kbp collect --command-config client.properties`` records (stdout and
  stderr kept as log files), in-process ``LagCollector.record`` records too,
  and a ``LiveMonitor`` watches the SASL listener while recording;
* a report and the curated notebooks are executed on that recording (the
  executed notebooks are written out with their outputs and widget state), and
  the live monitor notebook watches the SASL listener through its
  ``command_config`` parameter;
* failures with the canary in the config: bad user (authentication fails),
  a black-holed address, the SASL config on the PLAINTEXT listener, and
  ``kbp collect`` with a wrong user.

Then every file written under the test folder is searched for the canary (as
is, base64, URL-encoded and hex), and so is every exception message, repr,
context attribute and formatted traceback, the monitor's readout, and every
log record captured during the test.
"""

from __future__ import annotations

import base64
import binascii
import socket
import subprocess
import sys
import traceback
import urllib.parse
from pathlib import Path

import pytest

from kbp_notebook.collect.kafka_lag import LagCollector
from kbp_notebook.collect.storage import read_dataset
from kbp_notebook.errors import KbpError
from tests.helpers.reliability import ROOT, create_topic, produce_and_commit, unique

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
        urllib.parse.quote(secret).encode(),
        binascii.hexlify(raw),
    ]


def _leaks(blob: bytes | str, secret: str) -> bool:
    data = blob.encode("utf-8", "replace") if isinstance(blob, str) else blob
    return any(form in data for form in _forms(secret))


def _error_text(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    parts += [repr(v) for v in getattr(exc, "context", {}).values()]
    return "\n".join(parts)


def _properties(user: str, password: str) -> str:
    return (
        "security.protocol=SASL_PLAINTEXT\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";\n'
        "request.timeout.ms=5000\n"
    )


def test_the_scram_password_leaks_nowhere(scram_sandbox, tmp_path, caplog) -> None:
    import nbformat

    from kbp_notebook.report import execute_notebook, find_notebook, render_report
    from kbp_notebook.widgets.live_monitor import LiveMonitor

    caplog.set_level("DEBUG")
    config = scram_sandbox.scram_client_config()
    canary = config["sasl_plain_password"]
    user = config["sasl_plain_username"]
    sasl = config["bootstrap_servers"]
    kafka_config = {k: v for k, v in config.items() if k != "bootstrap_servers"}
    assert len(canary) >= 12
    topic, group = unique("rel-secret-topic"), unique("rel-secret-group")
    create_topic(scram_sandbox.bootstrap_servers, topic, 1)
    produce_and_commit(config, topic, group, messages=100, offset=40)
    work = tmp_path / "work"
    work.mkdir()
    errors: list[str] = []

    # 1. kbp collect with --command-config, output kept as log files
    props = work / "client.properties"
    props.write_text(_properties(user, canary))
    recording = work / "recording"
    done = subprocess.run(
        [sys.executable, "-m", "kbp_notebook.cli", "collect", "--bootstrap-server", sasl,
         "--command-config", str(props), "--group", group, "--every", "0.5s", "--duration", "7s",
         "--out", str(recording)],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    (work / "collect.stdout.log").write_text(done.stdout)
    (work / "collect.stderr.log").write_text(done.stderr)
    assert done.returncode == 0, done.stderr
    dataset = read_dataset(recording)
    assert set(dataset.lag["group"]) == {group} and int(dataset.lag["lag"].iloc[-1]) == 60
    props.unlink()  # the one file that holds the password on purpose

    # 2. in-process recording, and a live monitor on the SASL listener recording too
    with LagCollector(sasl, cluster="scram", **kafka_config) as collector:
        assert not _leaks(repr(collector) + repr(collector.public_config), canary)
        collector.record(work / "inproc", every="1s", duration="2s", groups=[group], progress=False)
    monitor = LiveMonitor(
        sasl, every_s=1.0, groups=[group], record_to=work / "live", **kafka_config
    )
    for _ in range(3):
        assert monitor.poll_once(), monitor.last_error
    readouts = [monitor.readout.value]
    monitor.close_collector()

    # 3. a report and the curated notebooks on the SASL recording
    render_report(str(recording), work / "report.html")
    for name in ("01_incident_postmortem", "02_capacity_planning", "04_live_monitor"):
        params = {"source": None, "recording": str(recording)}
        if name == "04_live_monitor":
            params.update(duration_s=2.0, every_s=0.5)
        try:
            nb = execute_notebook(find_notebook(name), parameters=params)
        except Exception as exc:  # noqa: BLE001 - a notebook error is checked for leaks too
            errors.append(_error_text(exc))
        else:
            nbformat.write(nb, work / f"{name}.executed.ipynb")
    # the live monitor notebook on the SASL listener, secured by its command_config parameter
    live_props = work / "live.properties"
    live_props.write_text(_properties(user, canary))
    nb = execute_notebook(
        find_notebook("04_live_monitor"),
        parameters={
            "source": None, "bootstrap_servers": sasl, "command_config": str(live_props),
            "groups": [group], "duration_s": 4.0, "every_s": 1.0, "cluster": "scram",
        },
    )  # fmt: skip
    live_props.unlink()
    nbformat.write(nb, work / "04_live_monitor.sasl.executed.ipynb")
    printed = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert "last error: None" in printed, printed
    assert int(printed.split(" polls;")[0].split()[-1]) >= 2, printed

    # 4. failures with the canary in the config
    failing = [
        ("bad user", sasl, {**kafka_config, "sasl_plain_username": "nobody-" + user}),
        ("plaintext listener", scram_sandbox.bootstrap_servers, kafka_config),
    ]
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    failing.append(("black hole", f"127.0.0.1:{hole.getsockname()[1]}", kafka_config))
    try:
        for what, address, cfg in failing:
            try:
                with LagCollector(address, request_timeout_ms=3000, bootstrap_timeout_ms=3000,
                                  **cfg) as collector:  # fmt: skip
                    collector.snapshot([group])
            except KbpError as exc:
                errors.append(f"{what}: " + _error_text(exc))
            else:
                if what != "plaintext listener":
                    raise AssertionError(f"{what}: no error")
        bad_monitor = LiveMonitor(
            f"127.0.0.1:{hole.getsockname()[1]}", every_s=1.0, request_timeout_ms=2000,
            bootstrap_timeout_ms=2000, **kafka_config,
        )  # fmt: skip
        assert not bad_monitor.poll_once()
        readouts.append(bad_monitor.readout.value)
        readouts.append(str(bad_monitor.last_error))
    finally:
        hole.close()
    props.write_text(_properties("nobody-" + user, canary))
    bad = subprocess.run(
        [sys.executable, "-m", "kbp_notebook.cli", "collect", "--bootstrap-server", sasl,
         "--command-config", str(props), "--duration", "2s", "--out", str(work / "bad")],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    props.unlink()
    (work / "bad.stderr.log").write_text(bad.stderr + bad.stdout)
    assert (
        bad.returncode != 0
        or "collector_error" in bad.stderr + bad.stdout
        or (work / "bad" / "events").is_dir()
    )
    assert len(errors) >= 3

    # the search: every file written, every message, every log record
    files = [p for p in work.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files) and any(p.suffix == ".ipynb" for p in files)
    assert any(p.suffix == ".parquet" for p in files)
    leaked = [str(p.relative_to(work)) for p in files if _leaks(p.read_bytes(), canary)]
    assert leaked == [], f"the canary is in {leaked}"
    assert [e[:200] for e in errors if _leaks(e, canary)] == []
    assert [r for r in readouts if _leaks(r, canary)] == []
    leaking = sorted({f"{r.name}:{r.levelname}:{r.msg[:60]}" for r in caplog.records
                      if _leaks(r.getMessage(), canary)})  # fmt: skip
    assert leaking == [], f"log records carry the password: {leaking}"
    assert Path(work / "report.html").stat().st_size > 100_000
