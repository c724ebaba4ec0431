"""The ``kbp`` command line: a thin dispatcher to the modules that do the work.

Sub-commands::

    kbp sandbox fetch|up|down|status   a throwaway real Kafka + Prometheus
    kbp collect ...                    record consumer lag to a Dataset folder
    kbp report SOURCE --out FILE       render a notebook to one offline HTML file
    kbp samples                        list the bundled sample recordings
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from kbp_notebook.errors import KbpError

_COMMANDS = {
    "sandbox": ("kbp_notebook.sandbox", "cli_main", "a throwaway real Kafka + Prometheus"),
    "collect": ("kbp_notebook.collect.cli", "collect_main", "record consumer lag to a Dataset"),
    "report": ("kbp_notebook.report", "report_main", "render a notebook to offline HTML"),
    "samples": ("kbp_notebook.collect.cli", "samples_main", "list the bundled sample recordings"),
}


#: Commands that need an optional extra, and the modules of that extra.
_EXTRAS = {
    "report": (
        "notebooks",
        frozenset(
            {"nbclient", "nbconvert", "nbformat", "papermill", "ipykernel", "jupyter_client"}
        ),
    ),
}


def _missing_extra(command: str, exc: ModuleNotFoundError) -> str | None:
    """Return the one-line hint for a command whose optional extra is not installed."""
    extra = _EXTRAS.get(command)
    if extra is None or (exc.name or "").split(".")[0] not in extra[1]:
        return None
    return (
        f"kbp {command}: needs the '{extra[0]}' extra ({exc.name} is not installed): "
        f"pip install 'kbp_notebook[{extra[0]}]'"
    )


def _usage() -> str:
    rows = "\n".join(f"  {name:<9} {help_}" for name, (_, _, help_) in _COMMANDS.items())
    return f"usage: kbp COMMAND [options]\n\ncommands:\n{rows}\n\nkbp COMMAND --help for more."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kbp`` command line and return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in _COMMANDS:
        print(f"kbp: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name, _ = _COMMANDS[command]
    handler = getattr(importlib.import_module(module_name), function_name)
    try:
        return int(handler(rest) or 0)
    except KbpError as exc:
        print(f"kbp {command}: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        hint = _missing_extra(command, exc)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
