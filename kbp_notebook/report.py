"""Render a curated notebook to one self-contained, offline HTML report.

``kbp report SOURCE --out report.html [--notebook NAME]`` executes a notebook
from ``notebooks/`` with papermill-style parameters on a fresh ``python3``
kernel (nbclient) and exports it with a template extending JupyterLab's:

* plotly.js's cartesian partial bundle (``plotly.js-cartesian-dist-min``,
  about 1.5 MB against 4.7 MB for the full one) is inlined once in the page
  head. It is fetched once from the npm registry with ``npm pack`` at the
  version plotly (Python) draws with, checked against its registry integrity
  hash and cached under ``~/.cache/kbp_notebook``;
* the kernel draws figures with :func:`kbp_notebook.viz.use_report_renderer`
  (switched on by ``KBP_REPORT=1`` in the kernel's environment): no plotly.js
  per figure, no MathJax CDN, tables as HTML tables;
* there is no kernel behind a mailed report, so the explorers draw themselves
  as one figure with plotly's own dropdown or slider over precomputed
  choices (:meth:`kbp_notebook.widgets.Explorer.offline_figure`): no widget
  state, no widget manager;
* code cells are hidden unless asked for.

Opening the file makes no request to any host; a report is about 2 MB.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kbp_notebook._cache import cache_dir
from kbp_notebook.errors import KbpDataError, KbpInputError

# The notebooks' data loader moved to kbp_notebook.sources; these names stay importable here.
from kbp_notebook.sources import (
    _redact_url,
    attempt,
    check_source,
    open_source,
    source_parameters,
)

__all__ = [
    "NOTEBOOKS",
    "PLOTLY_JS_VERSION",
    "attempt",
    "check_source",
    "ensure_plotly_bundle",
    "find_notebook",
    "notebook_parameters",
    "open_source",
    "render_report",
    "report_main",
    "source_parameters",
]

#: plotly.js's cartesian partial bundle (scatter, bar, heatmap, box, ...: what kbp draws).
PLOTLY_BUNDLE_PACKAGE = "plotly.js-cartesian-dist-min"
#: Pinned: the plotly.js version plotly (Python) 7.1 draws with; the two must be the same.
PLOTLY_JS_VERSION = "4.1.1"
#: The npm registry's ``dist.integrity`` of that tarball.
PLOTLY_BUNDLE_INTEGRITY = (
    "sha512-o8GrFeusncwBIxbBynRJpY4pkgVB6caM+JLpwrLYbbsO7dZ8FJ+SVN2Fr+L7kiG/Z6w4P5O0Jus/Qr5EefHVeg=="
)
#: The file taken from the tarball, and its sha256: the cached copy is checked on every use.
PLOTLY_BUNDLE_MEMBER = "package/plotly-cartesian.min.js"
PLOTLY_BUNDLE_SHA256 = "79542150855a52c567260e3137095dbe2b744e6d702a5cabe67da246942fba7a"

#: The curated notebooks, in reading order.
NOTEBOOKS = (
    "01_incident_postmortem",
    "02_capacity_planning",
    "03_flush_latency_vs_lag",
    "04_live_monitor",
)

_ASSETS = Path(__file__).with_name("report_assets")


def _integrity_of(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _npm_file(package: str, version: str, *, integrity: str, member: str, sha256: str,
              quiet: bool = True) -> Path:
    """Return one file of a pinned npm package from the cache, fetching it if missing.

    The tarball comes from the npm registry through ``npm pack`` (the
    registry's ordinary client) and must match ``integrity``; a cached file
    whose sha256 differs from ``sha256`` is fetched again.

    Raises
    ------
    KbpInputError
        ``npm`` is missing, the download failed, or a hash differs.
    """
    target_dir = cache_dir() / f"{package.replace('/', '+')}-{version}"
    target = target_dir / Path(member).name
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
        return target
    spec = f"{package}@{version}"
    npm = shutil.which("npm")
    if npm is None:
        raise KbpInputError(
            f"npm is not on PATH: it is needed once to fetch {spec} for offline reports; "
            "install Node.js (apt-get install nodejs npm) or run scripts/vendor_js.py "
            f"elsewhere and copy {Path(member).name} to {target}."
        )
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir) as scratch:
        done = subprocess.run(
            [npm, "pack", spec, "--pack-destination", scratch, "--silent"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=scratch,
            check=False,
        )
        tarballs = sorted(Path(scratch).glob("*.tgz"))
        if done.returncode != 0 or not tarballs:
            raise KbpInputError(
                f"`npm pack {spec}` failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-400:]}; check that the npm registry "
                "is reachable (npm config get registry)."
            )
        tarball = tarballs[0]
        got = _integrity_of(tarball)
        if got != integrity:
            raise KbpInputError(
                f"{tarball.name} has integrity {got}, expected {integrity}; "
                "the registry served something else: do not use it."
            )
        with tarfile.open(tarball) as archive:
            extracted = archive.extractfile(member)
            if extracted is None:
                raise KbpInputError(f"{tarball.name} has no {member}")
            data = extracted.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise KbpInputError(f"{member} in {tarball.name} is not the pinned file.")
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    if not quiet:
        print(f"fetched {spec} -> {target}", file=sys.stderr)
    return target


def ensure_plotly_bundle(*, quiet: bool = True) -> Path:
    """Return the cached plotly.js cartesian bundle (about 1.5 MB), fetching it if missing.

    Reports inline this partial bundle instead of plotly's full 4.7 MB one:
    every figure kbp draws uses cartesian trace types
    (:data:`kbp_notebook.viz.REPORT_TRACE_TYPES`); tables become HTML tables.

    Returns
    -------
    pathlib.Path
        ``<cache>/plotly.js-cartesian-dist-min-<version>/plotly-cartesian.min.js``.

    Raises
    ------
    KbpInputError
        The installed plotly (Python) draws with another plotly.js version
        than the pinned bundle, ``npm`` is missing, the download failed, or a
        hash differs.
    """
    from plotly.offline import get_plotlyjs_version

    drawn_with = get_plotlyjs_version()
    if drawn_with != PLOTLY_JS_VERSION:
        raise KbpInputError(
            f"the installed plotly (Python) draws with plotly.js {drawn_with}, but reports pin "
            f"{PLOTLY_BUNDLE_PACKAGE}@{PLOTLY_JS_VERSION}: install plotly 7.1 "
            "(pip install 'plotly>=7.1,<7.2') or update the PLOTLY_BUNDLE_* pins in "
            "kbp_notebook/report.py (npm view <package>@<version> dist.integrity)."
        )
    return _npm_file(PLOTLY_BUNDLE_PACKAGE, PLOTLY_JS_VERSION,
                     integrity=PLOTLY_BUNDLE_INTEGRITY, member=PLOTLY_BUNDLE_MEMBER,
                     sha256=PLOTLY_BUNDLE_SHA256, quiet=quiet)


def notebooks_dir() -> Path:
    """Return the folder holding the curated notebooks (repo checkout or package data)."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "notebooks", package / "notebooks"):
        if (candidate / f"{NOTEBOOKS[0]}.ipynb").is_file():
            return candidate
    raise KbpInputError(
        f"the curated notebooks were not found next to {package}; run from a checkout "
        "(pip install -e .) or reinstall the package."
    )


def find_notebook(name: str) -> Path:
    """Return the path of a curated notebook given its name, number or file name.

    Raises
    ------
    KbpInputError
        No such notebook; the message lists the ones there are.
    """
    if name.endswith(".ipynb") and Path(name).is_file():
        return Path(name)
    stem = Path(name).stem
    matches = [nb for nb in NOTEBOOKS if nb == stem or nb.split("_", 1)[0] == stem]
    if not matches:
        raise KbpInputError(
            f"no curated notebook named {name!r}; choose one of {', '.join(NOTEBOOKS)} "
            "(or give the path of an .ipynb file)."
        )
    return notebooks_dir() / f"{matches[0]}.ipynb"


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_notebook(
    notebook: str | os.PathLike[str],
    *,
    parameters: Mapping[str, Any] | None = None,
    timeout_s: float = 900,
    kernel_name: str = "python3",
    report: bool = True,
) -> Any:
    """Execute a notebook with papermill-style parameters and return the nbformat node.

    Parameters
    ----------
    notebook
        The ``.ipynb`` file.
    parameters
        Injected after the cell tagged ``parameters`` (papermill's way).
    timeout_s
        Per-cell timeout.
    kernel_name
        Jupyter kernel to run it on.
    report
        True: draw for an exported report (``KBP_REPORT=1``: figures without
        plotly.js, explorers as plotly figures with their own controls, no
        widget state). False: as in JupyterLab (ipywidgets, widget state stored
        in the notebook's metadata).

    Returns
    -------
    nbformat.NotebookNode
        The executed notebook.
    """
    import nbformat
    from nbclient import NotebookClient
    from papermill.parameterize import parameterize_notebook

    path = Path(notebook)
    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    for cell in nb.cells:  # papermill expects a tags list on every cell
        cell.metadata.setdefault("tags", [])
    nb.metadata.setdefault("papermill", {})
    if parameters:
        nb = parameterize_notebook(nb, dict(parameters), kernel_name=kernel_name)
    from jupyter_client.manager import KernelManager

    # The kernel talks over Unix sockets in a private folder: over TCP on loopback ipykernel
    # warns on every run that the traffic is unencrypted, and nothing else can connect.
    with tempfile.TemporaryDirectory(prefix="kbp-kernel-") as sockets, _environment(
        KBP_REPORT="1" if report else "0", PYDEVD_DISABLE_FILE_VALIDATION="1"
    ):
        manager = KernelManager(kernel_name=kernel_name, transport="ipc",
                                ip=str(Path(sockets) / "kernel"))
        client = NotebookClient(
            nb,
            km=manager,
            timeout=int(timeout_s),
            kernel_name=kernel_name,
            resources={"metadata": {"path": str(path.parent)}},
            store_widget_state=not report,
        )
        try:
            client.execute()
        finally:
            if manager.has_kernel:
                manager.shutdown_kernel(now=False)
    return nb


def export_html(
    nb: Any,
    *,
    include_code: bool = False,
    title: str | None = None,
    banner: str = "",
) -> str:
    """Export an executed notebook to one offline HTML string."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    plotly_js = ensure_plotly_bundle()
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab",
        exclude_input=not include_code,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    exporter.raw_template = (_ASSETS / "report.html.j2").read_text(encoding="utf-8")
    remover = TagRemovePreprocessor(  # type: ignore[no-untyped-call]
        remove_cell_tags={"remove-cell", "remove_cell"},
        remove_input_tags={"hide-input", "remove-input"},
        enabled=True,
    )
    exporter.register_preprocessor(remover, enabled=True)  # type: ignore[no-untyped-call]
    if title:
        nb.metadata["title"] = title
    resources = {
        # "</script" cannot occur in plotly.js's minified source, but be sure.
        "kbp_plotly_js": plotly_js.read_text(encoding="utf-8").replace("</script", "<\\/script"),
        "kbp_banner": banner,
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return str(body)


def render_report(
    source: str,
    out: str | os.PathLike[str],
    *,
    notebook: str = "01_incident_postmortem",
    parameters: Mapping[str, Any] | None = None,
    include_code: bool = False,
    start: str | None = None,
    end: str | None = None,
    step: str | None = None,
) -> Path:
    """Execute a curated notebook on SOURCE and write one self-contained HTML file.

    Parameters
    ----------
    source
        A sample name, a Dataset folder, a Prometheus URL (with ``start`` and
        ``end``) or bootstrap servers (live monitor).
    out
        The HTML file to write (folders are created).
    notebook
        Which curated notebook (name, number such as ``"02"``, or a path).
    parameters
        Extra notebook parameters, overriding those derived from ``source``.
    include_code
        Show the code cells (hidden by default).
    start, end, step
        Time range for a Prometheus source.

    Returns
    -------
    pathlib.Path
        The written file.

    Examples
    --------
    >>> from kbp_notebook.report import render_report
    >>> render_report("slow-consumer-then-scale-out", "build/report.html")  # doctest: +SKIP
    """
    from nbclient.exceptions import CellExecutionError

    from kbp_notebook.collect.samples import list_samples

    path = find_notebook(notebook)
    params = source_parameters(source, start=start, end=end, step=step)
    unknown = sorted(set(parameters or {}) - set(notebook_parameters(path)))
    if unknown:
        raise KbpInputError(
            f"{path.stem} has no parameter {', '.join(map(repr, unknown))}; its parameters are "
            f"{', '.join(notebook_parameters(path))}."
        )
    params.update(parameters or {})
    if params.get("source") and params["source"] not in list_samples():
        raise KbpInputError(
            f"{source!r} is neither a bundled sample ({', '.join(list_samples()) or 'none'}), "
            "a Dataset folder, a Prometheus URL (http://...) nor bootstrap servers (host:port)."
        )
    check_source(params)
    ensure_plotly_bundle()
    try:
        nb = execute_notebook(path, parameters=params)
    except CellExecutionError as exc:
        detail = _redact_url(str(exc.evalue))[:500]
        if exc.ename.startswith("Kbp"):  # our errors already say what is wrong and what to do
            raise KbpDataError(f"{path.stem} on {_redact_url(source)!r}: {detail}") from None
        raise KbpDataError(
            f"{path.stem} failed on {_redact_url(source)!r}: {exc.ename}: {detail}; run the "
            "notebook in JupyterLab with the same parameters to see where."
        ) from None
    rendered = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    shown = _redact_url(source)
    banner = f"kbp_notebook report: {path.stem} on {shown}, rendered {rendered}"
    html = export_html(
        nb, include_code=include_code, title=f"{path.stem} — {shown}", banner=banner
    )
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    return target


def notebook_parameters(notebook: str | os.PathLike[str]) -> list[str]:
    """Return the names assigned in a notebook's cell tagged ``parameters``, in order."""
    import ast
    import json

    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    names: list[str] = []
    for cell in cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            for node in ast.parse(source).body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


#: Notebook parameters that are file or folder paths.
_PATH_PARAMETERS = ("recording", "command_config", "record_to")


def _parse_parameter(text: str) -> tuple[str, Any]:
    import json

    if "=" not in text:
        raise KbpInputError(f"-p {text!r}: write parameters as NAME=VALUE (VALUE may be JSON).")
    name, raw = text.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    name = name.strip()
    if name in _PATH_PARAMETERS and isinstance(value, str):
        # the notebook runs in notebooks/: a path is read relative to where kbp was called
        value = str(Path(value).expanduser().resolve())
    return name, value


def report_main(argv: Sequence[str]) -> int:
    """Run ``kbp report`` (see the module docstring) and return the exit code."""
    parser = argparse.ArgumentParser(
        prog="kbp report",
        description="Execute a curated notebook on SOURCE and write one offline HTML file.",
    )
    parser.add_argument(
        "source",
        help="sample name (kbp samples), Dataset folder, Prometheus URL, or bootstrap servers",
    )
    parser.add_argument("--out", default="report.html", help="HTML file to write")
    parser.add_argument("--notebook", default=NOTEBOOKS[0], help=f"one of {', '.join(NOTEBOOKS)}")
    parser.add_argument("--start", help="Prometheus range start (ISO 8601)")
    parser.add_argument("--end", help="Prometheus range end (ISO 8601)")
    parser.add_argument("--step", help="Prometheus step, e.g. 15s")
    parser.add_argument("--include-code", action="store_true", help="show code cells")
    parser.add_argument(
        "-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
        help="extra notebook parameter (repeatable)",
    )
    args = parser.parse_args(list(argv))
    started = time.perf_counter()
    path = render_report(
        args.source,
        args.out,
        notebook=args.notebook,
        parameters=dict(_parse_parameter(p) for p in args.parameter),
        include_code=args.include_code,
        start=args.start,
        end=args.end,
        step=args.step,
    )
    size_mib = path.stat().st_size / 2**20
    print(
        f"wrote {path.resolve()} ({size_mib:.1f} MiB, {time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    print(path.resolve())
    return 0
