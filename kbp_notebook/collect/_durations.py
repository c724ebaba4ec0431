"""Parse human durations (``"5s"``, ``"10m"``, ``"1h30m"``, ``2.5``) into seconds, and times."""

from __future__ import annotations

import datetime as _dt
import re

import pandas as pd

from kbp_notebook.errors import KbpInputError

__all__ = ["parse_duration_s", "parse_time_utc"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)", re.IGNORECASE)


def parse_duration_s(value: object, *, name: str = "duration") -> float:
    """Return ``value`` in seconds.

    Parameters
    ----------
    value
        A number of seconds, a ``timedelta``/``Timedelta``, or text such as
        ``"500ms"``, ``"5s"``, ``"10m"``, ``"1h30m"``, ``"2d"``.
    name
        The option's name, used in the error message.

    Returns
    -------
    float
        Seconds, strictly positive.

    Raises
    ------
    KbpInputError
        The value cannot be read or is not positive.
    """
    seconds: float | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, _dt.timedelta | pd.Timedelta):
        seconds = pd.Timedelta(value).total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if parts and _PART.sub("", text).strip() == "":
                seconds = sum(float(num) * _UNITS[unit] for num, unit in parts)
    if seconds is None or not seconds > 0 or seconds != seconds:
        raise KbpInputError(
            f"{name}={value!r} is not a positive duration; write e.g. 5, '5s', '500ms', "
            f"'10m', '1h30m'.",
            column=name,
        )
    return seconds


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
