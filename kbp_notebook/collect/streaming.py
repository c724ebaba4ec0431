"""Run an analysis over a recording larger than memory, a chunk of groups at a time.

The analyses are vectorised across keys but hold a whole LAG frame: a day of
5-second snapshots of 5,000 partitions is 86 million rows, about 9 GB in
pandas. ``analyse_recording`` counts the rows per group first (reading one
dictionary-encoded column, a batch at a time), packs whole groups into chunks
of at most ``max_rows`` rows, reads each chunk with the group filter pushed
into the Parquet scan, runs the analysis on it and concatenates the results.
Every key of the analyses here (``by`` of ``group``/``topic``) lies inside
one group, so a chunked run gives the same per-key rows as one run over
everything.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

from kbp_notebook.collect.storage import lag_key_counts, read_dataset, read_side_frames
from kbp_notebook.errors import KbpDataError, KbpInputError
from kbp_notebook.frames import Dataset

__all__ = ["analyse_recording", "chunk_groups"]

#: Default rows per chunk: about 1 GB in pandas with the owner columns.
DEFAULT_MAX_ROWS = 5_000_000


def chunk_groups(rows_per_group: pd.Series, max_rows: int) -> list[list[str]]:
    """Pack groups, in id order, into chunks of at most ``max_rows`` rows.

    A group with more rows than ``max_rows`` gets a chunk of its own (groups are
    never split: an analysis needs all of a key's history).

    Parameters
    ----------
    rows_per_group
        Rows per group id (index: ids).
    max_rows
        Budget of one chunk.

    Returns
    -------
    list of list of str
        The chunks.
    """
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for group, rows in rows_per_group.sort_index().items():
        if current and size + int(rows) > max_rows:
            chunks.append(current)
            current, size = [], 0
        current.append(str(group))
        size += int(rows)
    if current:
        chunks.append(current)
    return chunks


def _combine_incidents(parts: Sequence[Any], combined: Any) -> Any:
    """Incidents: broker events repeat in every chunk; the verdict is about all episodes."""
    from kbp_notebook.analysis.incident_model import verdict_lines

    events = combined.events.drop_duplicates(ignore_index=True)
    if "time" in events.columns:
        events = events.sort_values("time", kind="stable").reset_index(drop=True)
    verdict = verdict_lines(combined.table, combined.baselines, as_of=combined.as_of)
    return dataclasses.replace(combined, events=events, verdict=verdict)


#: Result classes (by name) whose combined fields need more than concatenation.
_FINISH: dict[str, Callable[[Sequence[Any], Any], Any]] = {"Incidents": _combine_incidents}


def _combine(results: Sequence[Any]) -> Any:
    """One result from the results of each chunk.

    A result class may define ``combine(parts)`` (a classmethod) to do it
    itself; otherwise DataFrame fields are concatenated, timestamps take the
    latest, tuples are joined without repeats, and other fields keep the first
    chunk's value; ``Incidents`` then gets its verdict from all the episodes.
    """
    first = results[0]
    if len(results) == 1:
        return first
    if isinstance(first, pd.DataFrame):
        return pd.concat(results, ignore_index=True)
    combine = getattr(type(first), "combine", None)
    if callable(combine):
        return combine(list(results))
    if not dataclasses.is_dataclass(first) or isinstance(first, type):
        raise KbpInputError(
            f"analyse_recording cannot combine results of type {type(first).__name__}; "
            f"pass an analysis that returns a DataFrame or a kbp result object.",
            column="analysis",
        )
    changes: dict[str, Any] = {}
    for spec in dataclasses.fields(first):
        if not spec.init:
            continue
        values = [getattr(r, spec.name) for r in results]
        sample = values[0]
        if isinstance(sample, pd.DataFrame):
            frames = [v for v in values if isinstance(v, pd.DataFrame) and len(v)]
            changes[spec.name] = (
                pd.concat(frames, ignore_index=True) if frames else sample.iloc[0:0].copy()
            )
        elif isinstance(sample, pd.Timestamp):
            known = [v for v in values if isinstance(v, pd.Timestamp) and not pd.isna(v)]
            changes[spec.name] = max(known) if known else sample
        elif isinstance(sample, tuple):
            changes[spec.name] = tuple(dict.fromkeys(item for v in values for item in v))
    combined = dataclasses.replace(first, **changes)
    finish = _FINISH.get(type(first).__name__)
    return combined if finish is None else finish(results, combined)


def _first_parameter(function: Callable[..., Any]) -> str | None:
    try:
        parameters = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return None
    return parameters[0] if parameters else None


def analyse_recording(
    path: str | os.PathLike[str],
    analysis: Callable[..., Any],
    *,
    data: str = "auto",
    max_rows: int = DEFAULT_MAX_ROWS,
    groups: Iterable[str] | str | None = None,
    topics: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    columns: Iterable[str] | None = None,
    progress: Callable[[int, int, list[str]], None] | None = None,
    **options: Any,
) -> Any:
    """Run ``analysis`` over a recording folder, a chunk of whole groups at a time.

    Parameters
    ----------
    path
        A Dataset folder (a ``kbp collect`` recording).
    analysis
        ``kbp.lag_trend``, ``kbp.time_to_drain``, ``kbp.incidents``, ``kbp.lag_status``
        or any function of a LAG frame (or a Dataset, see ``data``) whose keys lie
        within one group.
    data
        ``"lag"`` passes each chunk's LAG frame; ``"dataset"`` passes a Dataset of
        the chunk's LAG rows with the recording's metrics and events (for
        ``incidents`` and ``diagnose``, which use broker metrics when present);
        ``"auto"`` (default) passes a LAG frame to functions whose first
        parameter is named ``lag`` and a Dataset to the others.
    max_rows
        LAG rows per chunk (default 5 million, about 1 GB in pandas with the owner
        columns). Peak memory follows this, not the recording's size.
    groups, topics, start, end
        Analyse only these groups / topics / this time range (pushed into the scan).
    columns
        Optional LAG columns to read (see ``read_dataset``); ``[]`` reads only the
        required ones and halves the memory of a chunk.
    progress
        Called as ``progress(chunk_index, n_chunks, group_ids)`` before each chunk.
    **options
        Passed to ``analysis`` (e.g. ``by=("group",)``, ``confidence=0.9``).

    Returns
    -------
    object
        The analysis's result type with the chunks' tables concatenated (a result
        class can define a ``combine(parts)`` classmethod to merge its own fields).

    Raises
    ------
    KbpDataError
        The recording holds no LAG rows for the filters.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> trend = kbp.analyse_recording(kbp.sample_path("stuck-consumer"), kbp.lag_trend)
    >>> sorted(trend.table["group"].unique())
    ['audit-archiver', 'ledger-writer']
    >>> found = kbp.analyse_recording(kbp.sample_path("stuck-consumer"), kbp.incidents)
    >>> sorted(found.episodes["group"].unique())
    ['ledger-writer']
    """
    if data not in ("auto", "lag", "dataset"):
        raise KbpInputError(f"data={data!r}: pass 'auto', 'lag' or 'dataset'.", column="data")
    if data == "auto":
        data = "lag" if _first_parameter(analysis) == "lag" else "dataset"
    if not isinstance(max_rows, int) or max_rows < 1:
        raise KbpInputError(f"max_rows={max_rows!r}: pass a positive number of rows.")
    counts = lag_key_counts(path, by="group", groups=groups, topics=topics, start=start, end=end)
    if counts.empty:
        raise KbpDataError(
            f"{path} holds no LAG rows"
            + (
                " for these filters"
                if any(v is not None for v in (groups, topics, start, end))
                else ""
            )
            + "; check the folder and the groups/topics/start/end asked for."
        )
    chunks = chunk_groups(counts, max_rows)
    extras: Dataset | None = None
    if data == "dataset":
        # Metrics and events are small next to LAG rows; read them once (no group rows).
        extras = read_side_frames(path, start=start, end=end)
    results = []
    for index, chunk in enumerate(chunks):
        if progress is not None:
            progress(index, len(chunks), chunk)
        lag = read_dataset(
            path, groups=chunk, topics=topics, start=start, end=end, columns=columns
        ).lag
        if extras is not None:
            argument: Any = Dataset(
                lag=lag, metrics=extras.metrics, events=extras.events, meta=extras.meta
            )
        else:
            argument = lag
        results.append(analysis(argument, **options))
        del lag, argument
        gc.collect()
    return _combine(results)
