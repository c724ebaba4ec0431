"""The wheel carries the samples: ``kbp samples`` and ``kbp report`` work from a fresh install.

Offline on purpose: the wheel is built with the test environment's own
setuptools (``--no-build-isolation``) and installed with ``--no-deps`` into a
fresh venv whose only view of the dependencies is a ``.pth`` line naming the
test environment's site-packages (where an editable kbp_notebook may live:
its finder is a ``.pth`` hook, which a plain path line does not run, so the
fresh venv imports the wheel's copy; asserted below). Commands run from an
empty folder, without ``PYTHONPATH`` or ``KBP_SAMPLE_DATA``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from kbp_notebook.collect.samples import list_samples

pytestmark = [pytest.mark.slow, pytest.mark.notebook]

ROOT = Path(__file__).resolve().parents[2]
#: Largest wheel we call "a few MB" (samples included).
MAX_WHEEL_BYTES = 4 * 2**20


def _run(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "kbp_notebook",
        source / "kbp_notebook",
        ignore=shutil.ignore_patterns("__pycache__", ".*.recording"),
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KBP_SAMPLE_DATA")}
    dist = work / "dist"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(dist), str(source)],
        cwd=work, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("kbp_notebook-*.whl")

    venv = work / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work, env=env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=work, env=env,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "test-environment.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    pip = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", str(wheel)],
        cwd=work, env=env,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-2000:]
    # pip would install ipykernel's kernel spec and nbconvert's templates with them (data
    # files of their wheels); the borrowed site-packages bring none: link the templates,
    # and register the fresh venv's python as the python3 kernel
    shared = Path(sys.prefix, "share", "jupyter", "nbconvert")
    (venv / "share" / "jupyter").mkdir(parents=True, exist_ok=True)
    (venv / "share" / "jupyter" / "nbconvert").symlink_to(shared, target_is_directory=True)
    kernel = _run(
        [str(python), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
        cwd=work, env=env,
    )  # fmt: skip
    assert kernel.returncode == 0, kernel.stderr[-2000:]
    outside = work / "elsewhere"
    outside.mkdir()
    return wheel, venv, env | {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


def test_wheel_is_small_and_holds_every_sample(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    wheel, _, _ = installed
    size = wheel.stat().st_size
    assert size < MAX_WHEEL_BYTES, f"wheel is {size / 2**20:.2f} MiB"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    for sample in list_samples():
        assert f"kbp_notebook/sample_data/{sample}/meta.json" in names
        assert any(n.startswith(f"kbp_notebook/sample_data/{sample}/lag/") for n in names)
    assert not [n for n in names if "/." in n], "a hidden staging folder went into the wheel"
    print(f"wheel {wheel.name}: {size / 2**20:.2f} MiB, {len(names)} files")


def test_fresh_install_lists_the_samples(installed: tuple[Path, Path, dict[str, str]]) -> None:
    _, venv, env = installed
    cwd = venv.parent / "elsewhere"
    where = _run(
        [str(venv / "bin" / "python"), "-c",
         "import kbp_notebook, kbp_notebook.collect.samples as s; "
         "print(kbp_notebook.__file__); print(s.samples_root())"],
        cwd=cwd, env=env,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    package, root = where.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(root).is_relative_to(venv), where.stdout

    listed = _run([str(venv / "bin" / "kbp"), "samples"], cwd=cwd, env=env)
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    assert len(names) >= 9 and "healthy-baseline" in names, listed.stdout
    assert set(names) == set(list_samples())


def test_fresh_install_renders_a_report(installed: tuple[Path, Path, dict[str, str]]) -> None:
    _, venv, env = installed
    cwd = venv.parent / "elsewhere"
    rendered = _run(
        [str(venv / "bin" / "kbp"), "report", "healthy-baseline", "--out", "x.html"],
        cwd=cwd, env=env,
    )  # fmt: skip
    assert rendered.returncode == 0, (rendered.stdout[-2000:], rendered.stderr[-3000:])
    html = (cwd / "x.html").read_text(encoding="utf-8")
    assert "healthy-baseline" in html and "js-plotly-plot" in html
    assert "Traceback" not in html
