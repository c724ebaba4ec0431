"""Progress display for recordings: a widget in Jupyter, a bar or log lines elsewhere.

ipywidgets is imported only when a Jupyter kernel is running, so plain
scripts and ``kbp collect`` never pay for it.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO

__all__ = ["Progress", "make_progress"]


class Progress(Protocol):
    """What the recorder tells a progress display."""

    def update(self, *, done: int, rows: int, total_lag: int | None, status: str) -> None:
        """Show that ``done`` intervals are complete."""

    def close(self) -> None:
        """Finish the display."""


class _Silent:
    def update(self, *, done: int, rows: int, total_lag: int | None, status: str) -> None:
        return None

    def close(self) -> None:
        return None


def _summary(done: int, total: int | None, rows: int, total_lag: int | None, status: str) -> str:
    of = f"/{total}" if total else ""
    lag = "-" if total_lag is None else f"{total_lag:,}"
    return f"{done}{of} intervals, {rows:,} rows, total lag {lag}" + (
        f" ({status})" if status else ""
    )


class _TerminalBar:
    """A tqdm-like bar redrawn in place on a terminal, or one line per interval in a log."""

    def __init__(self, total: int | None, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())

    def update(self, *, done: int, rows: int, total_lag: int | None, status: str) -> None:
        text = _summary(done, self.total, rows, total_lag, status)
        if self.interactive:
            bar = ""
            if self.total:
                width = 24
                filled = int(width * min(done, self.total) / self.total)
                bar = "[" + "#" * filled + "-" * (width - filled) + "] "
            self.stream.write("\r\x1b[2Kkbp collect " + bar + text)
        else:
            self.stream.write("kbp collect: " + text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


class _Widget:
    def __init__(self, total: int | None) -> None:
        import ipywidgets
        from IPython.display import display

        self.total = total
        self.bar = ipywidgets.IntProgress(
            value=0, min=0, max=max(total or 1, 1), description="recording"
        )
        self.label = ipywidgets.Label(value="starting")
        if total is None:
            self.bar.bar_style = "info"
        display(ipywidgets.HBox([self.bar, self.label]))  # type: ignore[no-untyped-call]

    def update(self, *, done: int, rows: int, total_lag: int | None, status: str) -> None:
        self.bar.value = min(done, self.bar.max) if self.total else (done % 2)
        self.label.value = _summary(done, self.total, rows, total_lag, status)
        self.bar.bar_style = "warning" if status else ("info" if self.total is None else "")

    def close(self) -> None:
        self.bar.bar_style = "success"


def _in_jupyter() -> bool:
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipykernel implies IPython
        return False
    shell: Any = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def make_progress(enabled: bool, total: int | None, *, stream: TextIO | None = None) -> Progress:
    """Return the progress display that fits where we run."""
    if not enabled:
        return _Silent()
    if stream is None and _in_jupyter():
        return _Widget(total)
    return _TerminalBar(total, stream if stream is not None else sys.stderr)
