"""Dataset folders on disk: the only code that knows their layout.

A Dataset folder holds ``meta.json`` and one sub-folder per frame
(``lag/``, ``metrics/``, ``events/``) of immutable zstd Parquet parts. A part
is written to ``*.tmp`` and then renamed into place, so a process killed at
any moment leaves only complete parts behind: appending is adding a part,
and reading is reading every part of a folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from kbp_notebook.errors import KbpInputError
from kbp_notebook.frames import (
    LAG_COLUMNS,
    LAG_OPTIONAL_COLUMNS,
    Dataset,
    empty_events_frame,
    empty_lag_frame,
    empty_metrics_frame,
)
from kbp_notebook.units import parse_time_utc

__all__ = ["DatasetAppender", "lag_key_counts", "read_dataset", "write_dataset"]

_FRAMES = ("lag", "metrics", "events")
_EMPTY = {"lag": empty_lag_frame, "metrics": empty_metrics_frame, "events": empty_events_frame}


def _write_part(folder: Path, frame: pd.DataFrame, sequence: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"part-{sequence:08d}-{_time.time_ns()}.parquet"
    tmp = final.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, compression="zstd", index=False)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    return final


def _unreadable(part: Path, exc: BaseException) -> KbpInputError:
    return KbpInputError(
        f"Dataset part {part} cannot be read ({exc}); move it aside and read the "
        f"folder again (the other parts are intact).",
        path=str(part),
    )


_T = TypeVar("_T")


def _read_each(parts: list[Path], read: Callable[[Path], _T]) -> list[_T]:
    """``read`` every part; a part that cannot be read is a KbpInputError naming it."""
    out = []
    for part in parts:
        try:
            out.append(read(part))
        except Exception as exc:  # pyarrow raises several unrelated types
            raise _unreadable(part, exc) from None
    return out


def _read_parts(folder: Path, name: str) -> pd.DataFrame:
    parts = _part_files(folder)
    if not parts:
        return _EMPTY[name]()
    frames = _read_each(parts, pd.read_parquet)
    frames = [frame for frame in frames if len(frame)] or frames[:1]
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class _Filters:
    """Row filters pushed down into the Parquet scan (None: no filter)."""

    groups: tuple[str, ...] | None = None
    topics: tuple[str, ...] | None = None
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None

    @classmethod
    def of(
        cls,
        groups: Iterable[str] | str | None,
        topics: Iterable[str] | str | None,
        start: Any,
        end: Any,
    ) -> _Filters:
        """Check and normalise the filters a caller passed (KbpInputError names a bad one)."""
        return cls(
            _names(groups, "groups"),
            _names(topics, "topics"),
            _bound(start, "start"),
            _bound(end, "end"),
        )

    @property
    def empty(self) -> bool:
        return (
            self.groups is None
            and self.topics is None
            and self.start is None
            and (self.end is None)
        )


def _names(value: Iterable[str] | str | None, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
    if not names:
        raise KbpInputError(
            f"{name} is empty; pass the {name} to read, or None for all.", column=name
        )
    return names


def _bound(value: Any, name: str) -> pd.Timestamp | None:
    return None if value is None else parse_time_utc(value, name)


def _part_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def _arrow_dataset(folder: Path, name: str) -> Any:
    """Open a pyarrow dataset over a frame's parts, with one schema for parts that differ."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    parts = _part_files(folder)
    if not parts:
        return None
    schemas = _read_each(parts, pq.read_schema)
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise KbpInputError(
            f"{folder}: its parts do not fit together ({exc}); move aside the part(s) written "
            f"by another tool and read the folder again.",
            path=str(folder),
        ) from None
    schema = schema.remove_metadata()
    return pads.dataset([str(p) for p in parts], schema=schema, format="parquet")


def _expression(dataset: Any, filters: _Filters, *, keys: bool) -> Any:
    import pyarrow as pa
    import pyarrow.dataset as pads

    names = set(dataset.schema.names)
    expression = None

    def both(term: Any) -> None:
        nonlocal expression
        expression = term if expression is None else expression & term

    if keys and filters.groups is not None and "group" in names:
        both(pads.field("group").isin(list(filters.groups)))
    if keys and filters.topics is not None and "topic" in names:
        both(pads.field("topic").isin(list(filters.topics)))
    if "time" in names and (filters.start is not None or filters.end is not None):
        time_type = dataset.schema.field("time").type
        if filters.start is not None:
            both(pads.field("time") >= pa.scalar(filters.start.to_pydatetime(), type=time_type))
        if filters.end is not None:
            both(pads.field("time") <= pa.scalar(filters.end.to_pydatetime(), type=time_type))
    return expression


def _scan_frame(
    folder: Path, name: str, filters: _Filters, columns: list[str] | None
) -> pd.DataFrame:
    """Read a frame's parts through pyarrow with the filters pushed into the scan."""
    dataset = _arrow_dataset(folder, name)
    if dataset is None:
        return _EMPTY[name]()
    wanted = None if columns is None else [c for c in columns if c in dataset.schema.names]
    table = dataset.to_table(
        columns=wanted, filter=_expression(dataset, filters, keys=name == "lag")
    )
    frame: pd.DataFrame = table.to_pandas()
    return frame


def lag_key_counts(
    path: str | os.PathLike[str],
    *,
    by: str = "group",
    groups: Iterable[str] | str | None = None,
    topics: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
) -> pd.Series:
    """Count the LAG rows of a Dataset folder per value of one key column, batch by batch.

    Reads only the ``by`` column (dictionary-encoded, one record batch at a time),
    so a recording far larger than memory is counted in little memory.

    Parameters
    ----------
    path
        The Dataset folder.
    by
        Key column, ``"group"`` (default) or ``"topic"``.
    groups, topics, start, end
        Filters, as in ``read_dataset``.

    Returns
    -------
    pandas.Series
        Rows per key value (index: the values, sorted).
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    if by not in ("group", "topic", "cluster"):
        raise KbpInputError(f"by={by!r}: count rows by 'group', 'topic' or 'cluster'.", column="by")
    root = _dataset_root(path)
    filters = _Filters.of(groups, topics, start, end)
    dataset = _arrow_dataset(root / "lag", "lag")
    totals: dict[str, int] = {}
    if dataset is not None:
        fmt = pads.ParquetFileFormat(read_options=pads.ParquetReadOptions(dictionary_columns=[by]))
        dataset = pads.dataset(dataset.files, schema=dataset.schema, format=fmt)
        scanner = dataset.scanner(columns=[by], filter=_expression(dataset, filters, keys=True))
        for batch in scanner.to_batches():
            if not batch.num_rows:
                continue
            counts = pc.value_counts(batch.column(0))
            for value, count in zip(
                counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
            ):
                if value is not None:
                    totals[value] = totals.get(value, 0) + int(count)
    return pd.Series(totals, dtype="int64", name="rows").sort_index()


def _next_sequence(folder: Path) -> int:
    names = (p.name.split("-") for p in folder.glob("part-*.parquet"))
    sequences = [int(parts[1]) for parts in names if len(parts) > 2 and parts[1].isdigit()]
    return max(sequences, default=-1) + 1


def read_dataset(
    path: str | os.PathLike[str],
    *,
    groups: Iterable[str] | str | None = None,
    topics: Iterable[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    columns: Iterable[str] | None = None,
) -> Dataset:
    """Read a Dataset folder written by ``write_dataset`` or a recording.

    With any of ``groups``, ``topics``, ``start``, ``end``, ``columns`` the
    filters are pushed down into the Parquet scan (pyarrow datasets): row
    groups whose statistics rule them out are skipped and only the asked
    columns are decoded, so one group of a recording larger than memory can be
    read on its own.

    Parameters
    ----------
    path
        The folder.
    groups, topics
        Read only the LAG rows of these group ids / topics (default: all).
    start, end
        Read only rows (LAG, metrics, events) with ``start <= time <= end``
        (UTC; naive times are taken as UTC).
    columns
        Optional LAG columns to read besides the required ones (``time``,
        ``cluster``, ``group``, ``topic``, ``partition``, ``committed_offset``,
        ``log_end_offset``, ``lag``), e.g. ``[]`` to leave out
        ``consumer_id``/``host``/``client_id`` (most of the memory of a wide
        recording). Default: every column.

    Returns
    -------
    Dataset
        Validated frames and ``meta``.

    Raises
    ------
    KbpInputError
        The folder does not exist, is not a Dataset, or a part is unreadable.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> ds = kbp.read_dataset(kbp.sample_path("producer-burst"))
    >>> one = kbp.read_dataset(kbp.sample_path("producer-burst"), groups=["sessionizer"])
    """
    root = _dataset_root(path)
    filters = _Filters.of(groups, topics, start, end)
    lag_columns: list[str] | None = None
    if columns is not None:
        extra = [str(c) for c in ([columns] if isinstance(columns, str) else columns)]
        unknown = sorted(set(extra) - set(LAG_COLUMNS) - set(LAG_OPTIONAL_COLUMNS))
        if unknown:
            raise KbpInputError(
                f"columns {unknown} are not LAG columns; choose from "
                f"{sorted({**LAG_COLUMNS, **LAG_OPTIONAL_COLUMNS})}.",
                column="columns",
            )
        lag_columns = [*LAG_COLUMNS, *(c for c in extra if c not in LAG_COLUMNS)]
    meta = _read_meta(root)
    try:
        if filters.empty and lag_columns is None:
            frames = {name: _read_parts(root / name, name) for name in _FRAMES}
        else:
            frames = {
                name: _scan_frame(
                    root / name, name, filters, lag_columns if name == "lag" else None
                )
                for name in _FRAMES
            }
        lag = frames["lag"]
        if len(lag):
            # A resumed recording may have re-read an interval; the later copy wins.
            keys = ["cluster", "group", "topic", "partition", "time"]
            lag = lag.drop_duplicates(keys, keep="last")
        return Dataset(lag=lag, metrics=frames["metrics"], events=frames["events"], meta=meta)
    except KbpInputError as exc:
        if str(root) in str(exc):
            raise
        raise KbpInputError(
            f"Dataset {root}: {exc} A part that does not fit the others can be moved aside "
            f"(parts are in {root}/<frame>/part-*.parquet).",
            path=str(root),
        ) from None
    except (KeyError, TypeError, ValueError) as exc:  # parts whose columns do not fit together
        raise KbpInputError(
            f"Dataset {root}: its parts do not fit together ({type(exc).__name__}: {exc}); "
            f"move aside the part(s) written by another tool and read the folder again.",
            path=str(root),
        ) from None


def read_side_frames(
    path: str | os.PathLike[str], *, start: Any = None, end: Any = None
) -> Dataset:
    """Read a Dataset folder's metrics, events and meta without its LAG rows.

    For running analyses a chunk of LAG rows at a time: the other frames are
    small and are read once (filtered by time like ``read_dataset``).
    """
    root = _dataset_root(path)
    filters = _Filters(start=_bound(start, "start"), end=_bound(end, "end"))
    return Dataset(
        lag=_EMPTY["lag"](),
        metrics=_scan_frame(root / "metrics", "metrics", filters, None),
        events=_scan_frame(root / "events", "events", filters, None),
        meta=_read_meta(root),
    )


def _dataset_root(path: str | os.PathLike[str]) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise KbpInputError(
            f"No Dataset folder at {root}; pass a folder written by write_dataset or "
            f"'kbp collect --out'.",
            path=str(root),
        )
    meta_file = root / "meta.json"
    if not meta_file.exists() and not (root / "lag").is_dir():
        raise KbpInputError(
            f"{root} is not a Dataset folder (no meta.json and no lag/ folder).",
            path=str(root),
        )
    return root


def _read_meta(root: Path) -> dict[str, Any]:
    meta_file = root / "meta.json"
    meta: dict[str, Any] = {}
    if meta_file.exists():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise KbpInputError(
                f"{meta_file} is not valid JSON ({exc}); fix or delete it (the frames are intact).",
                path=str(meta_file),
            ) from None
        if not isinstance(meta, dict):
            raise KbpInputError(
                f"{meta_file} holds a JSON {type(meta).__name__}, not an object; fix or delete "
                f"it (the frames are intact).",
                path=str(meta_file),
            )
    return meta


def _write_meta(root: Path, meta: dict[str, Any]) -> None:
    tmp = root / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, root / "meta.json")


def write_dataset(
    dataset: Dataset, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write a Dataset to a new folder (one Parquet part per frame).

    Parameters
    ----------
    dataset
        What to write.
    path
        Target folder; must not hold a Dataset unless ``overwrite``.
    overwrite
        Replace the frames of an existing Dataset folder.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    root = Path(path)
    if (root / "meta.json").exists() and not overwrite:
        raise KbpInputError(
            f"{root} already holds a Dataset; pass overwrite=True or choose another folder.",
            path=str(root),
        )
    root.mkdir(parents=True, exist_ok=True)
    for name in _FRAMES:
        folder = root / name
        if folder.is_dir():
            for old in folder.glob("part-*"):
                old.unlink()
        _write_part(folder, getattr(dataset, name), 0)
    _write_meta(root, dataset.meta)
    return root


def _create_folder_with_meta(root: Path, meta: dict[str, Any]) -> None:
    """Create ``root`` holding ``meta.json`` in one step (a kill never leaves it empty)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    _write_meta(staging, meta)
    try:
        os.rename(staging, root)
    except OSError:  # created meanwhile by someone else: use theirs
        shutil.rmtree(staging, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)


class DatasetAppender:
    """Append frames to a Dataset folder, one crash-safe part per call.

    Parameters
    ----------
    path
        The folder; created if missing, resumed if it exists.
    meta
        Merged into ``meta.json`` (existing keys are kept unless given).
    """

    def __init__(self, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        try:
            if not self.path.exists():
                _create_folder_with_meta(self.path, dict(meta or {}))
            for stale in self.path.glob("*/*.tmp"):
                stale.unlink()
            existing: Any = {}
            meta_file = self.path / "meta.json"
            if meta_file.exists():
                try:
                    existing = json.loads(meta_file.read_text(encoding="utf-8"))
                except ValueError:
                    existing = {}
            self.meta = {**(existing if isinstance(existing, dict) else {}), **(meta or {})}
            _write_meta(self.path, self.meta)
            for name in _FRAMES:
                if (self.path / name).exists() and not (self.path / name).is_dir():
                    raise NotADirectoryError(f"{self.path / name} is a file, not a folder")
        except OSError as exc:
            raise KbpInputError(
                f"Cannot record into {self.path} ({exc}); choose another --out folder or "
                f"repair this one (it should hold meta.json and lag/, metrics/, events/ folders).",
                path=str(self.path),
            ) from None
        self._sequence = {name: _next_sequence(self.path / name) for name in _FRAMES}

    def last_time(self) -> pd.Timestamp | None:
        """Return the latest LAG snapshot time already on disk, or None."""
        lag = _read_parts(self.path / "lag", "lag")
        try:
            return None if lag.empty else pd.Timestamp(lag["time"].max())
        except (KeyError, TypeError, ValueError) as exc:
            raise KbpInputError(
                f"{self.path / 'lag'} holds parts that do not fit together ({exc}); move aside "
                f"the part(s) written by another tool, or record into a new folder.",
                path=str(self.path),
            ) from None

    def append(
        self,
        *,
        lag: pd.DataFrame | None = None,
        metrics: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
    ) -> None:
        """Write each non-empty frame given as a new part."""
        for name, frame in (("lag", lag), ("metrics", metrics), ("events", events)):
            if frame is not None and len(frame):
                _write_part(self.path / name, frame, self._sequence[name])
                self._sequence[name] += 1

    def update_meta(self, **facts: Any) -> None:
        """Merge facts into ``meta.json``."""
        self.meta.update(facts)
        _write_meta(self.path, self.meta)
