"""Where a curated notebook's data comes from: sample, recording, Prometheus or a live cluster.

The curated notebooks and ``kbp report`` share these: :func:`source_parameters`
turns a report's SOURCE argument into the notebooks' parameters,
:func:`check_source` says before any kernel starts when that data cannot be
reached, :func:`open_source` loads the Dataset the parameters point at, and
:func:`attempt` lets a notebook cell say "not enough data" in words instead of
stopping the notebook. (They lived in ``kbp_notebook.report``, which still
re-exports them.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from kbp_notebook.errors import KbpDataError, KbpInputError

__all__ = ["attempt", "check_source", "open_source", "source_parameters"]


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


def check_source(params: Mapping[str, Any]) -> None:
    """Raise before any kernel starts when the data the parameters name cannot be reached.

    A Dataset folder must exist, a Prometheus URL must answer a trivial query,
    and some bootstrap server must accept a TCP connection.

    Raises
    ------
    KbpInputError
        The recording folder does not exist.
    KbpConnectionError
        Prometheus or Kafka cannot be reached (the message names the address).
    """
    recording = params.get("recording")
    if recording and not Path(recording).is_dir():
        raise KbpInputError(f"recording {recording!r} is not a folder; give a Dataset folder "
                            "written by `kbp collect` or kbp.write_dataset.")
    if params.get("prometheus_url"):
        from kbp_notebook.collect.prometheus import PrometheusSource

        PrometheusSource(str(params["prometheus_url"]), timeout_s=5.0).check()
    elif params.get("bootstrap_servers"):
        from kbp_notebook.collect._kafka import check_reachable

        check_reachable(str(params["bootstrap_servers"]))
