"""The ``kbp`` dispatcher: a command whose optional extra is missing says so in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kbp_notebook.cli import main

# Make `import nbclient` fail the way it does where the notebooks extra is not installed.
NO_NBCLIENT = (
    "import sys; sys.modules['nbclient'] = None; from kbp_notebook.cli import main; "
    "sys.exit(main(['report', 'healthy-baseline', '--out', 'x.html']))"
)


def test_report_without_the_notebooks_extra_says_which_extra(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", NO_NBCLIENT],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'kbp_notebook[notebooks]'" in lines[0] and "nbclient" in lines[0]
    assert not (tmp_path / "x.html").exists()


def test_other_missing_modules_are_not_blamed_on_an_extra(monkeypatch) -> None:
    import kbp_notebook.report as report

    def broken(argv):
        raise ModuleNotFoundError("No module named 'not_an_extra'", name="not_an_extra")

    monkeypatch.setattr(report, "report_main", broken)
    with pytest.raises(ModuleNotFoundError):
        main(["report", "x"])
