"""The shipped notebooks are exactly what scripts/build_notebooks.py writes.

The prose and code live in the generator; an edit to a notebook that is not
made there (or a generator edit not re-run) fails here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kbp_notebook.report import NOTEBOOKS, notebooks_dir

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  ROOT / "scripts" / "build_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_notebooks_equal_what_the_generator_writes(tmp_path):
    written = _generator().build(tmp_path)
    assert sorted(p.stem for p in written) == sorted(NOTEBOOKS)
    package_copy = ROOT / "kbp_notebook" / "notebooks"
    for path in written:
        fresh = path.read_text(encoding="utf-8")
        shipped = ROOT / "notebooks" / path.name
        assert shipped.read_text(encoding="utf-8") == fresh, (
            f"{shipped} differs from scripts/build_notebooks.py: run "
            "`python scripts/build_notebooks.py` and commit both")
        assert (package_copy / path.name).read_text(encoding="utf-8") == fresh
    assert notebooks_dir() in (ROOT / "notebooks", package_copy)
