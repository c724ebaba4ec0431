"""Child processes of a sandbox: spawning, terminating, free ports, log tails, work dirs."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_WORKDIR_PREFIX = "kbp-sandbox-"
_OWNER_FILE = "owner.pid"
_LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1



def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """Return a ``preexec_fn`` that makes the child get SIGKILL when its parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _spawn(
    cmd: Sequence[str], *, log_path: Path, cwd: Path, detached: bool
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # PDEATHSIG follows the *thread* that forked: from a worker thread the child
    # would die with that thread, so only the main thread uses it (atexit covers the rest).
    use_pdeathsig = not detached and threading.current_thread() is threading.main_thread()
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # Ctrl-C in a terminal reaches pytest only; it stops us
            preexec_fn=_die_with_parent(os.getpid()) if use_pdeathsig else None,
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _terminate(procs: Sequence[subprocess.Popen[bytes]], *, timeout_s: float) -> None:
    """SIGTERM the processes, wait up to ``timeout_s`` together, then SIGKILL."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=30)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _read_start(path: Path, limit_bytes: int = 4 * 1024 * 1024) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit_bytes).decode("utf-8", "replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _dir_in_use(path: Path) -> bool:
    """Tell whether any process on the machine mentions ``path`` on its command line."""
    needle = str(path).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


def _sweep_stale_workdirs() -> None:
    """Remove temporary sandbox directories whose Python owner died (a killed test run)."""
    for workdir in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((workdir / _OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue  # not ours to judge
        if owner != os.getpid() and not _pid_alive(owner) and not _dir_in_use(workdir):
            shutil.rmtree(workdir, ignore_errors=True)


def _random_cluster_id() -> str:
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _render_properties(props: Mapping[str, object]) -> str:
    def esc(value: object) -> str:
        text = "true" if value is True else "false" if value is False else str(value)
        return text.replace("\\", "\\\\").replace("\n", "\\n")

    return "".join(f"{key}={esc(value)}\n" for key, value in props.items())


# ------------------------------------------------------------------------ sandbox


