"""Render a curated notebook to one self-contained, offline HTML report.

``kbp report SOURCE --out report.html [--notebook NAME]`` executes a notebook
from ``notebooks/`` with papermill-style parameters on a fresh ``python3``
kernel (nbclient) and exports it with a template extending JupyterLab's:

* plotly.js is inlined once in the page head; the kernel draws figures with
  :func:`kbp_notebook.viz.use_report_renderer` (switched on by ``KBP_REPORT=1``
  in the kernel's environment): no plotly.js per figure, no MathJax CDN;
* widget state is embedded and drawn by ``@jupyter-widgets/html-manager``'s
  ``dist/embed.js``, fetched once from the npm registry with ``npm pack`` at a
  pinned version and checked against its registry integrity hash, cached under
  ``~/.cache/kbp_notebook`` and embedded as a base64 ``data:`` script;
* code cells are hidden unless asked for.

Opening the file makes no request to any host.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from kbp_notebook.errors import KbpDataError, KbpInputError

__all__ = [
    "EMBED_JS_SHA256",
    "HTML_MANAGER_INTEGRITY",
    "HTML_MANAGER_VERSION",
    "NOTEBOOKS",
    "attempt",
    "ensure_widget_bundle",
    "find_notebook",
    "open_source",
    "render_report",
    "report_main",
]

HTML_MANAGER_PACKAGE = "@jupyter-widgets/html-manager"
#: Pinned: 1.0.x speaks the ipywidgets 8 protocol (widget state version 2).
HTML_MANAGER_VERSION = "1.0.15"
#: The npm registry's ``dist.integrity`` of that tarball.
HTML_MANAGER_INTEGRITY = (
    "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
)
#: sha256 of ``package/dist/embed.js`` in that tarball: the cached copy is checked on every use.
EMBED_JS_SHA256 = "8f6d2d3f856d8595d1841dec3019d99bbe74d331f2a5178c2a33bfec729e3d6a"

#: The curated notebooks, in reading order.
NOTEBOOKS = (
    "01_incident_postmortem",
    "02_capacity_planning",
    "03_flush_latency_vs_lag",
    "04_live_monitor",
)

_ASSETS = Path(__file__).with_name("report_assets")


def cache_dir() -> Path:
    """Return the cache folder (``$KBP_CACHE_DIR`` or ``~/.cache/kbp_notebook``)."""
    configured = os.environ.get("KBP_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kbp_notebook"


def _integrity_of(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def ensure_widget_bundle(*, quiet: bool = True) -> Path:
    """Return the cached ``embed.js`` of the pinned html-manager, fetching it if missing.

    The tarball comes from the npm registry through ``npm pack`` (the
    registry's ordinary client) and must match :data:`HTML_MANAGER_INTEGRITY`;
    a cached ``embed.js`` that does not match :data:`EMBED_JS_SHA256` is fetched again.

    Returns
    -------
    pathlib.Path
        ``<cache>/html-manager-<version>/embed.js``.

    Raises
    ------
    KbpInputError
        ``npm`` is missing, the download failed, or the tarball's hash differs.
    """
    target_dir = cache_dir() / f"html-manager-{HTML_MANAGER_VERSION}"
    target = target_dir / "embed.js"
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == EMBED_JS_SHA256:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise KbpInputError(
            "npm is not on PATH: it is needed once to fetch "
            f"{HTML_MANAGER_PACKAGE}@{HTML_MANAGER_VERSION} for offline widgets; install "
            "Node.js (apt-get install nodejs npm) or run scripts/vendor_widgets.py elsewhere "
            f"and copy embed.js to {target}."
        )
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir) as scratch:
        spec = f"{HTML_MANAGER_PACKAGE}@{HTML_MANAGER_VERSION}"
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
        integrity = _integrity_of(tarball)
        if integrity != HTML_MANAGER_INTEGRITY:
            raise KbpInputError(
                f"{tarball.name} has integrity {integrity}, expected {HTML_MANAGER_INTEGRITY}; "
                "the registry served something else: do not use it."
            )
        with tarfile.open(tarball) as archive:
            member = archive.extractfile("package/dist/embed.js")
            if member is None:
                raise KbpInputError(f"{tarball.name} has no package/dist/embed.js")
            data = member.read()
        if hashlib.sha256(data).hexdigest() != EMBED_JS_SHA256:
            raise KbpInputError(f"dist/embed.js in {tarball.name} is not the pinned file.")
        tmp = target.with_suffix(".js.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    if not quiet:
        print(f"fetched {spec} -> {target}", file=sys.stderr)
    return target


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


def _redact_url(url: str) -> str:
    """Drop user info (credentials) from a URL before it appears anywhere."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def source_parameters(
    source: str,
    *,
    start: str | None = None,
    end: str | None = None,
    step: str | None = None,
) -> dict[str, Any]:
    """Translate a report SOURCE into the curated notebooks' parameters.

    A sample name becomes ``source``; an existing folder ``recording``; an
    ``http(s)://`` URL ``prometheus_url`` (with ``start``/``end``/``step``);
    ``host:port[,host:port]`` becomes ``bootstrap_servers``.
    """
    if source.startswith(("http://", "https://")):
        return {
            "source": None,
            "prometheus_url": source,
            "prometheus_start": start,
            "prometheus_end": end,
            "prometheus_step": step or "15s",
        }
    if Path(source).expanduser().is_dir():
        return {"source": None, "recording": str(Path(source).expanduser().resolve())}
    if ":" in source and "/" not in source:
        return {"source": None, "bootstrap_servers": source}
    return {"source": source}


_T = TypeVar("_T")


def attempt(make: Callable[[], _T]) -> _T | None:
    """Return ``make()``, or print why the data cannot answer and return None.

    For notebook cells: a recording too short or too sparse for one analysis
    (``KbpDataError``) shows the reason in words and the rest of the notebook runs on.
    """
    try:
        return make()
    except KbpDataError as exc:
        print(f"Not enough data: {exc}")
        return None


def open_source(
    source: str | None = None,
    *,
    recording: str | None = None,
    prometheus_url: str | None = None,
    prometheus_start: str | None = None,
    prometheus_end: str | None = None,
    prometheus_step: str = "15s",
    cluster: str = "default",
) -> Any:
    """Load the Dataset a curated notebook's parameters point at.

    Parameters
    ----------
    source
        A bundled sample name (``kbp.list_samples()``).
    recording
        A Dataset folder (``kbp collect`` or ``write_dataset``).
    prometheus_url, prometheus_start, prometheus_end, prometheus_step
        A Prometheus server and the time range (ISO times, or ``now-1h``-style
        are left to :class:`kbp_notebook.collect.PrometheusSource`).
    cluster
        Name for the cluster in the frames.

    Returns
    -------
    kbp_notebook.frames.Dataset
    """
    from kbp_notebook.collect import read_dataset
    from kbp_notebook.collect.prometheus import PrometheusSource
    from kbp_notebook.collect.samples import load_sample

    if recording:
        return read_dataset(recording)
    if prometheus_url:
        if not (prometheus_start and prometheus_end):
            raise KbpInputError(
                f"a Prometheus source ({_redact_url(prometheus_url)}) needs a time range: "
                "give prometheus_start and prometheus_end (e.g. --start 2024-05-01T10:00Z "
                "--end 2024-05-01T12:00Z)."
            )
        from kbp_notebook.frames import Dataset

        prom = PrometheusSource(prometheus_url)
        lag = prom.lag(prometheus_start, prometheus_end, prometheus_step)
        metrics = prom.broker_metrics(prometheus_start, prometheus_end, prometheus_step)
        return Dataset(lag=lag, metrics=metrics, meta={"source": _redact_url(prometheus_url)})
    if source:
        return load_sample(source)
    raise KbpInputError(
        "no source given: set `source` to a sample name, `recording` to a Dataset folder "
        "or `prometheus_url` with a time range."
    )


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
) -> Any:
    """Execute a notebook with papermill-style parameters and return the nbformat node.

    Widget state is stored in the notebook's metadata (nbclient's default).
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
    with _environment(KBP_REPORT="1", PYDEVD_DISABLE_FILE_VALIDATION="1"):
        client = NotebookClient(
            nb,
            timeout=int(timeout_s),
            kernel_name=kernel_name,
            resources={"metadata": {"path": str(path.parent)}},
            store_widget_state=True,
        )
        client.execute()
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

    widget_js = ensure_widget_bundle()
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
    from plotly.offline import get_plotlyjs

    resources = {
        "kbp_widget_bundle_b64": base64.b64encode(widget_js.read_bytes()).decode("ascii"),
        # "</script" cannot occur in plotly.js's minified source, but be sure.
        "kbp_plotly_js": get_plotlyjs().replace("</script", "<\\/script"),
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
    params.update(parameters or {})
    if params.get("source") and params["source"] not in list_samples():
        raise KbpInputError(
            f"{source!r} is neither a bundled sample ({', '.join(list_samples()) or 'none'}), "
            "a Dataset folder, a Prometheus URL (http://...) nor bootstrap servers (host:port)."
        )
    ensure_widget_bundle()
    try:
        nb = execute_notebook(path, parameters=params)
    except CellExecutionError as exc:
        raise KbpDataError(
            f"{path.name} failed on {_redact_url(source)!r}: {exc.ename}: "
            f"{_redact_url(str(exc.evalue))[:500]}; run the notebook in JupyterLab with the same "
            "parameters to see where."
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
