"""Durations in and out, and every human number the package prints.

One owner for these meanings so a table, a figure title and a verdict line
say the same thing the same way:

* in: :func:`parse_duration_s` -- a bare number is **seconds** everywhere;
  text such as ``"500ms"``, ``"5s"``, ``"10m"``, ``"1h30m"``; a ``timedelta``.
  :func:`parse_time_utc` -- a time as a UTC Timestamp (naive means UTC).
* out: :func:`format_duration` (``"2 min 14 s"``), :func:`format_count`
  (``"26,177"``), :func:`format_rate` (2--3 significant figures and a unit),
  :func:`format_number`, :func:`format_time` (``"15:58:37 UTC"``, the date
  once when asked), :func:`format_bytes`, :func:`format_percent`, and
  :func:`format_table` which applies them to a whole frame by column meaning.

Nothing here prints ``inf``, ``nan`` or ``NaT``: missing values read ``—``,
an infinite duration reads as the caller's ``never`` text.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from kbp_notebook.errors import KbpInputError

__all__ = [
    "MISSING",
    "format_bytes",
    "format_count",
    "format_duration",
    "format_number",
    "format_percent",
    "format_rate",
    "format_table",
    "format_time",
    "parse_duration_s",
    "parse_time_utc",
]

#: What a missing value reads as.
MISSING = "—"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)", re.IGNORECASE)


def parse_duration_s(value: object, *, name: str = "duration", allow_zero: bool = False) -> float:
    """Return ``value`` in seconds.

    Parameters
    ----------
    value
        A number of seconds, a ``timedelta``/``Timedelta``, or text such as
        ``"500ms"``, ``"5s"``, ``"10m"``, ``"1h30m"``, ``"2d"`` (pandas'
        own spellings such as ``"00:05:00"`` are read too).
    name
        The option's name, used in the error message.
    allow_zero
        Accept a duration of zero (e.g. "no shift").

    Returns
    -------
    float
        Seconds, strictly positive (or zero with ``allow_zero``).

    Raises
    ------
    KbpInputError
        The value cannot be read or is not positive.
    """
    seconds: float | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float | np.integer | np.floating):
        seconds = float(value)
    elif isinstance(value, _dt.timedelta | pd.Timedelta | np.timedelta64):
        seconds = pd.Timedelta(value).total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if parts and _PART.sub("", text).strip() == "":
                seconds = sum(float(num) * _UNITS[unit.lower()] for num, unit in parts)
            else:
                seconds = _pandas_duration_s(text)
    positive = seconds is not None and (seconds >= 0 if allow_zero else seconds > 0)
    if seconds is None or not positive or not math.isfinite(seconds):
        kind = "non-negative" if allow_zero else "positive"
        raise KbpInputError(
            f"{name}={value!r} is not a {kind} duration; write e.g. 5 (seconds), '5s', "
            f"'500ms', '10m', '1h30m'.",
            column=name,
        )
    return seconds


def _pandas_duration_s(text: str) -> float | None:
    """Seconds of a duration written the way pandas reads it, or None."""
    try:
        parsed = pd.Timedelta(text)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(parsed) else parsed.total_seconds()



def parse_time_utc(value: object, name: str) -> pd.Timestamp:
    """Return ``value`` as a UTC Timestamp (naive times are taken as UTC).

    Parameters
    ----------
    value
        A datetime, Timestamp or text such as ``"2024-05-01T12:00Z"``.
    name
        The option's name, used in the error message.

    Raises
    ------
    KbpInputError
        Not a time, or missing.
    """
    try:
        stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise KbpInputError(
            f"{name}={value!r} is not a time ({exc}); pass e.g. '2024-05-01T12:00Z' or a "
            f"timezone-aware datetime.",
            column=name,
        ) from None
    if pd.isna(stamp):
        raise KbpInputError(f"{name} is missing; pass a time.", column=name)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def format_duration(seconds: object, *, never: str = "never") -> str:
    """Return a duration as people say it: ``"45 s"``, ``"2 min 14 s"``, ``"3 h 05 min"``.

    ``never`` is returned for +inf (e.g. "does not drain at current rates");
    ``—`` for a missing value. Negative durations get a leading minus.
    """
    if _missing(seconds):
        return MISSING
    value = float(seconds)  # type: ignore[arg-type]
    if math.isinf(value):
        return never if value > 0 else MISSING
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value < 10:
        text = f"{value:.1f} s" if value % 1 >= 0.05 and value < 9.95 else f"{value:.0f} s"
    elif value < 60:
        text = f"{value:.0f} s"
    elif value < 3600:
        whole = int(round(value))
        minutes, secs = divmod(whole, 60)
        text = f"{minutes} min {secs} s" if secs else f"{minutes} min"
    elif value < 2 * 86400:
        whole = int(round(value / 60))
        hours, minutes = divmod(whole, 60)
        text = f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    else:
        text = f"{value / 86400:.1f} days"
    return sign + text


def _finite(value: object) -> float | None:
    """Return ``value`` as a finite float, or None where it is missing or not finite."""
    if _missing(value):
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def format_count(value: object) -> str:
    """Return a whole count with thousands separators (``"26,177"``)."""
    number = _finite(value)
    if number is None:
        return MISSING
    return f"{round(number):,}"


def format_number(value: object, *, digits: int = 3) -> str:
    """Return a number with at most ``digits`` significant figures, separators above 1,000.

    Whole parts are never cut: 12,345.6 reads ``12,346``.
    """
    number = _finite(value)
    if number is None:
        return MISSING
    if number == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(number)))
    if magnitude >= digits - 1:
        return f"{round(number):,}"
    decimals = max(digits - 1 - magnitude, 0)
    text = f"{number:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_rate(value: object, *, unit: str = "msg/s", signed: bool = False) -> str:
    """Return a rate with 2--3 significant figures and its unit (``"450 msg/s"``).

    ``signed=True`` writes a ``+`` before positive rates (growth ``+56.2 msg/s``).
    """
    if _missing(value):
        return MISSING
    text = f"{format_number(value)} {unit}".strip()
    if signed and text != MISSING and float(value) > 0:  # type: ignore[arg-type]
        text = "+" + text
    return text


def format_percent(value: object) -> str:
    """Return a fraction as a percentage (``0.256`` -> ``"26%"``)."""
    number = _finite(value)
    if number is None:
        return MISSING
    return f"{number * 100:.0f}%"


def format_time(value: object, *, date: bool = False) -> str:
    """Return a time as ``HH:MM:SS UTC`` (``YYYY-MM-DD HH:MM:SS UTC`` with ``date=True``)."""
    if _missing(value):
        return MISSING
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return f"{stamp:%Y-%m-%d %H:%M:%S} UTC" if date else f"{stamp:%H:%M:%S} UTC"


def format_bytes(value: object) -> str:
    """Return a size in binary units (``"1.5 MiB"``)."""
    size = _finite(value)
    if size is None:
        return MISSING
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop returns


#: Column-name endings -> formatter, used by :func:`format_table`.
_BY_SUFFIX: tuple[tuple[str, str], ...] = (
    ("_per_s", "rate"),
    ("_rate", "rate"),
    ("_s", "duration"),
    ("_bytes", "bytes"),
    ("_ratio", "percent"),
    ("lag", "count"),
    ("_offset", "count"),
)


def format_table(
    frame: pd.DataFrame,
    *,
    kinds: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    never: str = "never",
) -> pd.DataFrame:
    """Return ``frame`` as strings for people to read.

    Each column is formatted by its meaning, guessed from its name (``*_per_s``
    rates, ``*_s`` durations, ``*lag``/``*_offset`` counts, times as
    ``HH:MM:SS UTC``) unless ``kinds`` names it: one of ``"count"``,
    ``"rate"``, ``"duration"``, ``"time"``, ``"bytes"``, ``"percent"``,
    ``"number"``, ``"text"``. ``labels`` renames columns for display.
    ``never`` is what an infinite duration reads (e.g. "does not drain at
    current rates").
    """
    kinds = dict(kinds or {})
    out = pd.DataFrame(index=frame.index)
    for name in frame.columns:
        column = frame[name]
        kind = kinds.get(str(name))
        if kind is None:
            if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
                column
            ):
                kind = "time"
            elif pd.api.types.is_bool_dtype(column):
                kind = "text"
            elif pd.api.types.is_numeric_dtype(column):
                kind = next((k for suffix, k in _BY_SUFFIX if str(name).endswith(suffix)), "number")
            else:
                kind = "text"
        out[labels.get(str(name), str(name)) if labels else str(name)] = [
            _format_cell(value, kind, never) for value in column.tolist()
        ]
    return out


def _format_cell(value: object, kind: str, never: str = "never") -> str:
    if kind == "text":
        if isinstance(value, bool | np.bool_):
            return "yes" if value else "no"
        return MISSING if _missing(value) else str(value)
    formatters: dict[str, Callable[[object], str]] = {
        "count": format_count,
        "rate": format_rate,
        "duration": lambda seconds: format_duration(seconds, never=never),
        "time": format_time,
        "bytes": format_bytes,
        "percent": format_percent,
        "number": format_number,
    }
    formatter = formatters.get(kind)
    if formatter is None:
        raise KbpInputError(f"format kind {kind!r} is not known; use one of count, rate, "
                            "duration, time, bytes, percent, number, text.")
    return formatter(value)
