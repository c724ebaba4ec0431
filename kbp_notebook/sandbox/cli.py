"""``kbp sandbox fetch|up|status|down``: a sandbox that outlives the command, its state file."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kbp_notebook._cache import cache_dir
from kbp_notebook.errors import KbpError, KbpInputError
from kbp_notebook.sandbox._cluster import Sandbox
from kbp_notebook.sandbox._jars import _jars_root, _kafka_version, fetch_jars
from kbp_notebook.sandbox._process import _pid_alive

_STATE_FILE_NAME = "sandbox-state.json"


def _state_path() -> Path:
    explicit = os.environ.get("KBP_SANDBOX_STATE")
    return Path(explicit) if explicit else cache_dir() / _STATE_FILE_NAME


def _owned(pid: int | None, marker: str) -> bool:
    """Tell whether ``pid`` is alive and its command line mentions ``marker`` (our workdir)."""
    if not pid or not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return False
    return marker in cmdline


def _state_pids(state: Mapping[str, Any]) -> list[tuple[str, int | None]]:
    pids: list[tuple[str, int | None]] = [
        (f"broker {i}", b.get("pid")) for i, b in state.get("brokers", {}).items()
    ]
    if state.get("prometheus"):
        pids.append(("prometheus", state["prometheus"].get("pid")))
    return pids


def _down(state: Mapping[str, Any], *, timeout_s: float = 20.0) -> list[str]:
    workdir = state["workdir"]
    stopped = []
    targets = [(name, pid) for name, pid in _state_pids(state) if pid and _owned(pid, workdir)]
    for _name, pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for name, pid in targets:
        assert pid is not None
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid) and _owned(pid, workdir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stopped.append(f"{name} (pid {pid})")
    if state.get("remove_workdir"):
        shutil.rmtree(workdir, ignore_errors=True)
    return stopped


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbp sandbox",
        description="A throwaway real Kafka + JMX exporter + Prometheus on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="resolve the Kafka and JMX exporter jars with mvn (cached)")
    up = sub.add_parser("up", help="start a detached sandbox and print its addresses")
    up.add_argument("--brokers", type=int, choices=(1, 3), default=1)
    up.add_argument("--scram-user", action="append", default=[], metavar="NAME:PASSWORD")
    up.add_argument("--no-prometheus", action="store_true")
    up.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="extra broker property"
    )
    up.add_argument("--workdir", default=None)
    sub.add_parser("status", help="show the sandbox started by 'up'")
    sub.add_parser("down", help="stop the sandbox started by 'up'")
    return parser


def _pairs(items: Sequence[str], *, sep: str, option: str, shape: str) -> dict[str, str]:
    """``["a:b", ...]`` -> ``{"a": "b"}``; an item without ``sep`` is a KbpInputError."""
    out = {}
    for item in items:
        key, found, value = item.partition(sep)
        if not found:
            raise KbpInputError(f"{option} {item!r}: expected {shape}.")
        out[key] = value
    return out


def _fetch() -> int:
    t0 = time.monotonic()
    if not _jars_root(_kafka_version()).joinpath(".complete").exists():
        print(
            f"resolving Kafka {_kafka_version()} and the JMX exporter with mvn "
            "(first time: about 85 MB from Maven Central, a minute or so)...",
            flush=True,
        )
    root = fetch_jars()
    jars = sorted((root / "lib").glob("*.jar"))
    size_mb = sum(p.stat().st_size for p in jars) / 1e6
    print(f"Kafka {_kafka_version()} jars: {root / 'lib'} ({len(jars)} jars, {size_mb:.0f} MB)")
    print(f"JMX exporter agent: {root / 'agent' / 'jmx_prometheus_javaagent.jar'}")
    print(f"({time.monotonic() - t0:.1f} s)")
    return 0


def _up(args: argparse.Namespace, state: Mapping[str, Any] | None, state_path: Path) -> int:
    if state is not None and any(_owned(pid, state["workdir"]) for _, pid in _state_pids(state)):
        raise KbpError(
            f"a sandbox is already up (state in {state_path}); run 'kbp sandbox down' first."
        )
    if state is not None:
        _down(state)  # its processes are gone (reboot, kill): clear its leftovers
        state_path.unlink(missing_ok=True)
    users = _pairs(args.scram_user, sep=":", option="--scram-user", shape="NAME:PASSWORD")
    extra: dict[str, object] = dict(_pairs(args.set, sep="=", option="--set", shape="KEY=VALUE"))
    sb = Sandbox(
        args.brokers,
        prometheus=not args.no_prometheus,
        scram_users=users or None,
        broker_config=extra,
        workdir=args.workdir,
        _detached=True,
    )
    sb.start()
    state_path.write_text(json.dumps(sb._state(), indent=2))
    print(f"bootstrap servers: {sb.bootstrap_servers}")
    if users:
        print(f"SASL (SCRAM-SHA-512) bootstrap servers: {sb.sasl_bootstrap_servers}")
    if sb._prometheus is not None:
        print(f"Prometheus: {sb.prometheus_url}")
    print(f"logs: {sb.workdir}  (started in {sb.timings.total_s:.1f} s)")
    print("stop with: kbp sandbox down")
    return 0


def _status(state: Mapping[str, Any] | None) -> int:
    if state is None:
        print("no sandbox is up (start one with 'kbp sandbox up').")
        return 1
    alive_any = False
    for name, pid in _state_pids(state):
        alive = _owned(pid, state["workdir"])
        alive_any |= alive
        print(f"{name:<11} pid {pid}: {'running' if alive else 'not running'}")
    print(f"bootstrap servers: {state['bootstrap_servers']}")
    if state.get("sasl_bootstrap_servers"):
        print(f"SASL bootstrap servers: {state['sasl_bootstrap_servers']}")
    if state.get("prometheus_url"):
        print(f"Prometheus: {state['prometheus_url']}")
    return 0 if alive_any else 1


def _down_command(state: Mapping[str, Any] | None, state_path: Path) -> int:
    if state is None:
        print("no sandbox is up.")
        return 0
    stopped = _down(state)
    state_path.unlink(missing_ok=True)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cli_main(argv: Sequence[str]) -> int:
    """Entry point of ``kbp sandbox fetch|up|status|down``.

    Parameters
    ----------
    argv
        Arguments after ``kbp sandbox``.

    Returns
    -------
    int
        Exit code.
    """
    args = _parser().parse_args(list(argv))
    if args.command == "fetch":
        return _fetch()
    state_path = _state_path()
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    if args.command == "up":
        return _up(args, state, state_path)
    if args.command == "status":
        return _status(state)
    if args.command == "down":
        return _down_command(state, state_path)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli_main(sys.argv[1:]))
