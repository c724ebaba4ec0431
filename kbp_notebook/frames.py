"""The shared vocabulary: tidy frame schemas, their validation, and ``Dataset``.

Two long ("tidy") frames pass between the layers:

* the **LAG frame**: one row per (time, cluster, group, topic, partition)
  with ``committed_offset``, ``log_end_offset`` and ``lag``;
* the **METRICS frame**: ``time``, ``cluster``, ``entity``, ``metric``,
  ``value``.

``validate_lag_frame`` and ``validate_metrics_frame`` check a frame and
return a normalised copy (UTC nanosecond times, string keys, nullable
integer offsets), raising ``KbpInputError`` that names the column and what
to do. A ``Dataset`` bundles the frames of one recording.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kbp_notebook.errors import KbpInputError

__all__ = [
    "EVENT_COLUMNS",
    "LAG_COLUMNS",
    "LAG_OPTIONAL_COLUMNS",
    "METRICS_COLUMNS",
    "Dataset",
    "empty_events_frame",
    "empty_lag_frame",
    "empty_metrics_frame",
    "validate_events_frame",
    "validate_lag_frame",
    "validate_metrics_frame",
]

TIME_DTYPE = "datetime64[ns, UTC]"

LAG_COLUMNS: dict[str, str] = {
    "time": TIME_DTYPE,
    "cluster": "string",
    "group": "string",
    "topic": "string",
    "partition": "int32",
    "committed_offset": "Int64",
    "log_end_offset": "Int64",
    "lag": "Int64",
}
LAG_OPTIONAL_COLUMNS: dict[str, str] = {
    "log_start_offset": "Int64",
    "consumer_id": "string",
    "host": "string",
    "client_id": "string",
    # what the group coordinator says: classic / consumer / share / streams, and its state
    "group_type": "string",
    "group_state": "string",
    # lag in seconds read from the record at the committed offset (LagCollector time_lag=True)
    "time_lag_s": "float64",
    "time_lag_source": "string",
    "time_lag_note": "string",
    "timestamp_type": "string",
}
METRICS_COLUMNS: dict[str, str] = {
    "time": TIME_DTYPE,
    "cluster": "string",
    "entity": "string",
    "metric": "string",
    "value": "float64",
}
EVENT_COLUMNS: dict[str, str] = {"time": TIME_DTYPE, "kind": "string", "text": "string"}


def _require_frame(frame: object, what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise KbpInputError(
            f"{what} must be a pandas DataFrame, got {type(frame).__name__}; "
            f"build one with the collectors or pandas.DataFrame(...)."
        )
    return frame


def _check_columns(frame: pd.DataFrame, required: dict[str, str], what: str) -> None:
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise KbpInputError(
            f"{what} is missing column(s) {missing}; it needs {list(required)}. "
            f"Rename or add them (see DESIGN.md, 'Tidy frames').",
            column=missing[0],
        )


def _is_number_not_time(value: object) -> bool:
    if isinstance(value, float) and value != value:
        return False  # NaN: a missing time, reported as such below
    return isinstance(value, int | float | np.number | bytes)


def _normalise_time(frame: pd.DataFrame, what: str) -> pd.Series:
    times = frame["time"]
    if not pd.api.types.is_datetime64_any_dtype(times):
        try:
            if pd.api.types.is_numeric_dtype(times) or bool(
                times.map(_is_number_not_time).any()
            ):
                # pandas would guess (and warn about) epochs; an explicit unit is the fix
                raise ValueError("numbers or bytes are not timestamps")
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # an ambiguous value is a user error here
                times = pd.to_datetime(times, utc=False, format="ISO8601")
        except (ValueError, TypeError, Warning) as exc:
            raise KbpInputError(
                f"{what}: column 'time' could not be read as timestamps ({exc}); "
                f"give timezone-aware datetimes, e.g. pd.to_datetime(..., utc=True).",
                column="time",
            ) from None
    if getattr(times.dt, "tz", None) is None:
        raise KbpInputError(
            f"{what}: column 'time' has naive timestamps (no timezone); make them UTC "
            f"with frame['time'] = frame['time'].dt.tz_localize('UTC') if they are UTC.",
            column="time",
        )
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise KbpInputError(
            f"{what}: column 'time' has a missing timestamp at row {row}; drop such rows.",
            column="time",
            row=row,
        )
    utc: pd.Series = times.dt.tz_convert("UTC").astype(TIME_DTYPE)
    return utc


def _to_dtype(series: pd.Series, dtype: str, what: str, name: str) -> pd.Series:
    try:
        if dtype in ("Int64", "int32"):
            numeric = pd.to_numeric(series, errors="raise")
            if pd.api.types.is_float_dtype(numeric) and bool(np.isinf(numeric).any()):
                raise ValueError("infinite values")
            as_float = pd.Series(numeric, index=series.index).astype("Float64")
            fractional = as_float.notna() & (as_float != as_float.round())
            if bool(fractional.fillna(False).any()):
                raise ValueError("non-integer values")
            converted = numeric.astype("Int64")
            if dtype == "int32":
                if converted.isna().any():
                    raise ValueError("missing values")
                converted = converted.astype("int32")
            return converted
        if dtype == "string":
            return series.astype("string")
        # float64 / datetimes: pandas-stubs cannot type astype() with a str variable
        return series.astype(dtype)  # type: ignore[call-overload,no-any-return]
    except (ValueError, TypeError, OverflowError) as exc:
        raise KbpInputError(
            f"{what}: column {name!r} cannot be read as {dtype} ({exc}); "
            f"fix or drop the offending rows.",
            column=name,
        ) from None


def _require_keys(frame: pd.DataFrame, names: tuple[str, ...], what: str) -> None:
    """Raise KbpInputError naming the first row where a key column of ``names`` is missing."""
    for name in names:
        if frame[name].isna().any():
            row = _first_bad_row(frame[name].isna())
            raise KbpInputError(
                f"{what}: column {name!r} is missing at row {row}; every row needs a {name}.",
                column=name,
                row=row,
            )


def _first_bad_row(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.fillna(False).to_numpy())[0])


def validate_lag_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a LAG frame and return a normalised copy.

    Parameters
    ----------
    frame
        One row per (time, cluster, group, topic, partition).

    Returns
    -------
    pandas.DataFrame
        A copy with ``time`` as ``datetime64[ns, UTC]``, string keys,
        ``int32`` partitions and nullable ``Int64`` offsets, sorted by
        key and time.

    Raises
    ------
    KbpInputError
        A required column is missing, times are naive, offsets are negative,
        ``lag`` disagrees with the offsets, or a key repeats at one time.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> lag = kbp.validate_lag_frame(kbp.load_sample("producer-burst").lag)
    """
    what = "LAG frame"
    frame = _require_frame(frame, what)
    _check_columns(frame, LAG_COLUMNS, what)
    out = frame.copy()
    out["time"] = _normalise_time(out, what)
    for name, dtype in {**LAG_COLUMNS, **LAG_OPTIONAL_COLUMNS}.items():
        if name != "time" and name in out.columns:
            out[name] = _to_dtype(out[name], dtype, what, name)
    _require_keys(out, ("cluster", "group", "topic"), what)
    for name in ("partition", "committed_offset", "log_end_offset", "log_start_offset"):
        if name in out.columns and bool((out[name] < 0).fillna(False).any()):
            row = _first_bad_row(out[name] < 0)
            raise KbpInputError(
                f"{what}: column {name!r} has a negative value ({out[name].iloc[row]}) at row "
                f"{row}; offsets and partitions are never negative. Write NA for unknown values.",
                column=name,
                row=row,
            )
    expected = out["log_end_offset"] - out["committed_offset"]
    disagree = (out["lag"] != expected).fillna(False) | (out["lag"].isna() != expected.isna())
    if bool(disagree.any()):
        row = _first_bad_row(disagree)
        raise KbpInputError(
            f"{what}: column 'lag' at row {row} is {out['lag'].iloc[row]} but "
            f"log_end_offset - committed_offset is {expected.iloc[row]}; recompute lag as "
            f"log_end_offset - committed_offset (NA where there is no commit).",
            column="lag",
            row=row,
        )
    keys = ["cluster", "group", "topic", "partition", "time"]
    duplicated = out.duplicated(subset=keys, keep="first")
    if bool(duplicated.any()):
        row = _first_bad_row(duplicated)
        raise KbpInputError(
            f"{what}: row {row} repeats (cluster, group, topic, partition, time) of an earlier "
            f"row; drop duplicates with frame.drop_duplicates({keys!r}).",
            column="time",
            row=row,
        )
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def validate_metrics_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a METRICS frame and return a normalised copy.

    Parameters
    ----------
    frame
        Long format: ``time``, ``cluster``, ``entity``, ``metric``, ``value``.

    Returns
    -------
    pandas.DataFrame
        A copy with UTC nanosecond times, string keys and float values,
        sorted by (cluster, entity, metric, time).

    Raises
    ------
    KbpInputError
        A column is missing, times are naive, or values are not numeric.
    """
    what = "METRICS frame"
    frame = _require_frame(frame, what)
    _check_columns(frame, METRICS_COLUMNS, what)
    out = frame.copy()
    out["time"] = _normalise_time(out, what)
    for name, dtype in METRICS_COLUMNS.items():
        if name != "time":
            out[name] = _to_dtype(out[name], dtype, what, name)
    _require_keys(out, ("cluster", "entity", "metric"), what)
    keys = ["cluster", "entity", "metric", "time"]
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def validate_events_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check an events frame (``time``, ``kind``, ``text``) and return a normalised copy."""
    what = "events frame"
    frame = _require_frame(frame, what)
    _check_columns(frame, EVENT_COLUMNS, what)
    out = frame.copy()
    out["time"] = _normalise_time(out, what)
    for name in ("kind", "text"):
        out[name] = _to_dtype(out[name], "string", what, name)
    return out.sort_values("time", kind="stable").reset_index(drop=True)


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def empty_lag_frame() -> pd.DataFrame:
    """Return a LAG frame with no rows and the right dtypes."""
    return _empty(LAG_COLUMNS)


def empty_metrics_frame() -> pd.DataFrame:
    """Return a METRICS frame with no rows and the right dtypes."""
    return _empty(METRICS_COLUMNS)


def empty_events_frame() -> pd.DataFrame:
    """Return an events frame with no rows and the right dtypes."""
    return _empty(EVENT_COLUMNS)


@dataclass(frozen=True)
class Dataset:
    """The frames of one recording, validated on construction.

    Parameters
    ----------
    lag
        LAG frame.
    metrics
        METRICS frame, or None (an empty frame is kept).
    events
        Ground-truth or annotated events (``time``, ``kind``, ``text``), or None.
    meta
        Free-form facts about the recording (cluster settings, scenario, ...).
    """

    lag: pd.DataFrame
    metrics: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lag", validate_lag_frame(self.lag))
        metrics = empty_metrics_frame() if self.metrics is None else self.metrics
        object.__setattr__(self, "metrics", validate_metrics_frame(metrics))
        events = empty_events_frame() if self.events is None else self.events
        object.__setattr__(self, "events", validate_events_frame(events))
        object.__setattr__(self, "meta", dict(self.meta or {}))

    def __repr__(self) -> str:
        lag = self.lag
        span = "empty"
        if len(lag):
            span = f"{lag['time'].min():%Y-%m-%d %H:%M:%S} to {lag['time'].max():%H:%M:%S} UTC"
        groups = lag["group"].nunique()
        partitions = len(lag.drop_duplicates(["cluster", "topic", "partition"]))
        n_metrics = 0 if self.metrics is None else len(self.metrics)
        n_events = 0 if self.events is None else len(self.events)
        return (
            f"Dataset({len(lag)} lag rows, {groups} group(s), {partitions} partition(s), "
            f"{span}; {n_metrics} metric rows; {n_events} events)"
        )
