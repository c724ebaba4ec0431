"""Shared machinery: one LAG frame in, padded numpy arrays per series out.

Every analysis here works on a :class:`Panel`: the LAG frame grouped once
into ``(K, T)`` float arrays, one row per key (``cluster`` plus the asked
``by`` columns), samples left-aligned in time order and NaN-padded on the
right. Grouping uses factorised key codes and, where the key is not a prefix
of the validated sort order, one stable argsort -- never a Python loop per
series.

When the key leaves out ``partition`` the partition rows are summed to one
value per key and snapshot time. Snapshots where fewer partitions reported
than the key's usual number are dropped, and a column's sum is NaN where
fewer partitions had a value than usual, so a missing partition never shows
up as a fall in committed offsets (which would read as a rewind or a burst
of lag). That rule is owned by :mod:`kbp_notebook.lagdata`
(:func:`~kbp_notebook.lagdata.snapshot_totals`, used here, and ``lag_totals``
for frames; with ``owner_ids`` re-exported here for the analyses).

Times are float seconds since the frame's first timestamp (``Panel.t0``),
computed with ``Series.dt.total_seconds()`` so the datetime resolution pandas
picked (``ns`` or ``us``) does not matter.

Also here: the vectorised statistics several analyses share (OLS per row,
lag-1 autocorrelation, a one-change drift test, windowing).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import numpy as np
import pandas as pd
from scipy import stats

from kbp_notebook.errors import KbpDataError, KbpInputError
from kbp_notebook.frames import validate_lag_frame
from kbp_notebook.lagdata import lag_totals, owner_ids, snapshot_totals
from kbp_notebook.units import parse_duration_s

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    _Rows = TypeVar("_Rows", bound=DataclassInstance)

__all__ = [
    "KEY_ORDER",
    "DriftChange",
    "LineFit",
    "Panel",
    "apply_window",
    "build_panel",
    "compact",
    "concat_rows",
    "drift_change",
    "ffill_index",
    "int_column",
    "key_codes",
    "lag_totals",
    "lag1_autocorr",
    "noise_components",
    "normalise_by",
    "ols",
    "owner_ids",
    "prepare_lag",
    "quiet",
    "run_starts",
    "split_rows",
    "sub_panel",
    "to_timestamps",
]

#: Columns a key may use, in the order the validated LAG frame is sorted.
KEY_ORDER: tuple[str, ...] = ("cluster", "group", "topic", "partition")

NUMERIC_COLUMNS: tuple[str, ...] = ("committed_offset", "log_end_offset", "lag")


@contextmanager
def quiet() -> Iterator[None]:
    """Silence numpy's empty-slice and invalid-value warnings for padded arrays.

    NaN padding is the design here (thin rows give NaN plus a ``reason``), so
    "Mean of empty slice" and friends are expected, not news for the user.
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def prepare_lag(lag: pd.DataFrame) -> pd.DataFrame:
    """Validate a LAG frame and refuse an empty one.

    Parameters
    ----------
    lag
        LAG frame (see DESIGN.md).

    Returns
    -------
    pandas.DataFrame
        The normalised copy from :func:`kbp_notebook.frames.validate_lag_frame`,
        or the frame itself when it is already in that normal form (dtypes,
        sort order, unique keys, consistent ``lag``, no negative offsets):
        those invariants are checked here with a few vectorised passes, so a
        frame validated once is not copied and re-sorted by every analysis.
        Analyses never modify the frame they are given.

    Raises
    ------
    KbpInputError
        The frame does not fit the LAG schema.
    KbpDataError
        The frame has no rows.
    """
    out = lag if _already_normal(lag) else validate_lag_frame(lag)
    if len(out) == 0:
        raise KbpDataError(
            "LAG frame has no rows; record some snapshots first "
            "(LagCollector.record or load_sample)."
        )
    return out


_STRING_KEYS = ("cluster", "group", "topic")


def _already_normal(lag: object) -> bool:
    """Tell whether ``lag`` already satisfies everything validate_lag_frame guarantees."""
    if not isinstance(lag, pd.DataFrame) or len(lag) == 0:
        return False
    from kbp_notebook.frames import LAG_COLUMNS, LAG_OPTIONAL_COLUMNS

    for name, dtype in {**LAG_COLUMNS, **LAG_OPTIONAL_COLUMNS}.items():
        if name not in lag.columns:
            if name in LAG_COLUMNS:
                return False
            continue
        actual = lag[name].dtype
        if dtype == "string":
            if not isinstance(actual, pd.StringDtype):
                return False
        elif str(actual) != dtype:
            return False
    if bool(lag["time"].isna().any()) or any(bool(lag[k].isna().any()) for k in _STRING_KEYS):
        return False
    for name in ("committed_offset", "log_end_offset", "log_start_offset"):
        if name in lag.columns and bool((lag[name] < 0).fillna(False).any()):
            return False
    if bool((lag["partition"].to_numpy() < 0).any()):
        return False
    expected = lag["log_end_offset"] - lag["committed_offset"]
    if bool(
        ((lag["lag"] != expected).fillna(False) | (lag["lag"].isna() & expected.notna())).any()
    ):
        return False
    keys = [*_STRING_KEYS, "partition"]
    change = run_starts(lag, keys)
    nanos = pd.DatetimeIndex(lag["time"]).asi8
    if bool((np.diff(nanos)[~change[1:]] <= 0).any()):
        return False  # time not strictly increasing within a key (unsorted or duplicated)
    starts = lag.loc[change, keys].reset_index(drop=True)
    ordered = starts.sort_values(keys, kind="stable").index
    return bool((ordered == starts.index).all()) and not bool(starts.duplicated().any())


def run_starts(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Boolean per row: True where any of ``columns`` differs from the row before.

    Compares neighbours instead of hashing, which is much cheaper for a
    frame sorted by those columns (pyarrow strings are compared in C++).
    """
    change = np.zeros(len(frame), dtype=bool)
    if len(frame) == 0:
        return change
    change[0] = True
    for name in columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            values = column.cat.codes.to_numpy()
            change[1:] |= values[1:] != values[:-1]
            continue
        if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
            import pyarrow as pa
            import pyarrow.compute as pc

            array = pa.chunked_array(pa.array(column.array))
            differs = pc.not_equal(array.slice(1), array.slice(0, len(array) - 1))
            change[1:] |= differs.to_numpy(zero_copy_only=False).astype(bool)
            continue
        values = column.to_numpy()
        change[1:] |= values[1:] != values[:-1]
    return change


def normalise_by(by: str | Iterable[str]) -> tuple[str, ...]:
    """Return the key columns for ``by``: ``cluster`` first, then ``by`` in schema order.

    ``"partition"`` implies ``"group"`` and ``"topic"``.

    Raises
    ------
    KbpInputError
        ``by`` names a column that is not a key of the LAG frame.
    """
    names = (by,) if isinstance(by, str) else tuple(by)
    unknown = [name for name in names if name not in KEY_ORDER]
    if unknown or not names:
        raise KbpInputError(
            f"by={names!r} is not a key of the LAG frame; use a subset of "
            f"('group', 'topic', 'partition'), e.g. by=('group', 'topic').",
            column=unknown[0] if unknown else None,
        )
    if "partition" in names:
        # A partition number means nothing without its topic, and lag of one
        # partition summed over different groups mixes unrelated consumers.
        names = (*names, "group", "topic")
    return ("cluster", *[name for name in KEY_ORDER[1:] if name in names])


@dataclass(frozen=True)
class Panel:
    """Series of one LAG frame as padded arrays.

    Attributes
    ----------
    keys
        One row per series with the key columns (``cluster``, ...).
    t0
        Timestamp that ``time_s`` counts from.
    time_s
        ``(K, T)`` seconds since ``t0``; NaN after a series' last sample.
    arrays
        Column name -> ``(K, T)`` float64 array aligned with ``time_s``.
    n
        ``(K,)`` number of samples per series.
    partitions
        ``(K,)`` number of partitions summed into each series (1 per partition).
    """

    keys: pd.DataFrame
    t0: pd.Timestamp
    time_s: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    n: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    partitions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __getitem__(self, name: str) -> np.ndarray:
        """Return the ``(K, T)`` array of column ``name``."""
        return self.arrays[name]

    @property
    def size(self) -> int:
        """Number of series."""
        return int(self.time_s.shape[0])

    def last(self, array: np.ndarray) -> np.ndarray:
        """Return each row's value at its last sample (NaN for empty rows)."""
        return last_valid(array, self.n)


def last_valid(array: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Value at index ``n - 1`` of each row of a left-aligned array (NaN where n == 0)."""
    index = np.clip(n - 1, 0, max(array.shape[1] - 1, 0))
    if array.shape[1] == 0:
        return np.full(array.shape[0], np.nan)
    out = np.take_along_axis(array, index[:, None], axis=1)[:, 0].astype(float)
    out[n == 0] = np.nan
    return out


def key_codes(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Combine key columns into one int64 code per row (equal code == equal key)."""
    code = np.zeros(len(frame), dtype=np.int64)
    for name in columns:
        column_codes, uniques = pd.factorize(frame[name], sort=False)
        width = max(len(uniques), 1)
        if code.max(initial=0) >= (np.iinfo(np.int64).max // (width + 1)):
            code = np.unique(code, return_inverse=True)[1].astype(np.int64)
        code = code * width + column_codes.astype(np.int64)
    return code


def _pad(
    key_id: np.ndarray, columns: dict[str, np.ndarray], n_keys: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Scatter rows sorted by (key, time) into ``(K, T)`` arrays, NaN padded."""
    counts = np.bincount(key_id, minlength=n_keys).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(key_id), dtype=np.int64) - starts[key_id]
    width = int(counts.max(initial=0))
    out: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        array = np.full((n_keys, width), np.nan)
        array[key_id, pos] = values
        out[name] = array
    return out, counts


def _float(series: pd.Series) -> np.ndarray:
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def int_column(values: np.ndarray) -> pd.Series:
    """Nullable Int64 column from floats (NaN becomes NA), rounded to whole numbers."""
    rounded = np.round(np.asarray(values, dtype=np.float64))
    # inf or beyond int64 (a plan asking for 1e300 consumers) cannot be a count: NA
    with np.errstate(invalid="ignore"):
        rounded[~(np.abs(rounded) < 2.0**63)] = np.nan
    return pd.Series(rounded).astype("Int64")


def owner_flag(frame: pd.DataFrame) -> np.ndarray | None:
    """Return 1.0 where a row's partition has an owner (``consumer_id``), else 0.0.

    None when ownership is unknown (no ``consumer_id`` column, or all NA).
    """
    ids = owner_ids(frame)
    if ids is None or frame["consumer_id"].isna().all():
        return None
    return ids.notna().to_numpy().astype(np.float64)


def build_panel(
    lag: pd.DataFrame,
    *,
    by: tuple[str, ...],
    columns: Sequence[str] = NUMERIC_COLUMNS,
    extra: dict[str, np.ndarray] | None = None,
) -> Panel:
    """Group a validated LAG frame once into a :class:`Panel`.

    Parameters
    ----------
    lag
        Validated LAG frame (from :func:`prepare_lag`).
    by
        Key columns from :func:`normalise_by` (``cluster`` first).
    columns
        Numeric columns to carry (summed across partitions when ``by`` has no
        ``partition``).
    extra
        Further per-row float arrays to carry under their names (summed like
        ``columns``).

    Returns
    -------
    Panel
    """
    t0 = lag["time"].min()
    seconds = (lag["time"] - t0).dt.total_seconds().to_numpy(dtype=np.float64)
    data = {name: _float(lag[name]) for name in columns if name in lag.columns}
    if extra:
        data.update(extra)
    prefix = by == KEY_ORDER[: len(by)]
    if prefix:
        # Validated frames are sorted by (cluster, group, topic, partition, time),
        # so each key is one contiguous run: neighbours tell where keys change.
        code = np.cumsum(run_starts(lag, by)) - 1
    else:
        code = key_codes(lag, by)
    if "partition" in by:
        if prefix:
            change = np.empty(len(code), dtype=bool)
            change[:1] = True
            change[1:] = code[1:] != code[:-1]
            key_id = np.cumsum(change) - 1
            first = np.flatnonzero(change)
            order = None
        else:
            order = np.lexsort((seconds, code))
            sorted_code = code[order]
            change = np.empty(len(code), dtype=bool)
            change[:1] = True
            change[1:] = sorted_code[1:] != sorted_code[:-1]
            key_id = np.cumsum(change) - 1
            first = order[np.flatnonzero(change)]
        n_keys = int(key_id[-1]) + 1 if len(key_id) else 0
        if order is not None:
            seconds = seconds[order]
            data = {name: values[order] for name, values in data.items()}
        padded, counts = _pad(key_id, {"time_s": seconds, **data}, n_keys)
        keys = lag.iloc[first][list(by)].reset_index(drop=True)
        return Panel(
            keys=keys,
            t0=t0,
            time_s=padded.pop("time_s"),
            arrays=padded,
            n=counts,
            partitions=np.ones(n_keys, dtype=np.int64),
        )
    return _aggregate(lag, by=by, code=code, seconds=seconds, data=data, t0=t0)


def _aggregate(
    lag: pd.DataFrame,
    *,
    by: tuple[str, ...],
    code: np.ndarray,
    seconds: np.ndarray,
    data: dict[str, np.ndarray],
    t0: pd.Timestamp,
) -> Panel:
    """Sum partition rows to one row per (key, snapshot time): complete snapshots only.

    The rule is :func:`kbp_notebook.lagdata.snapshot_totals`' (the one owner of
    totals per key and time); a snapshot where fewer partitions reported than the
    key's usual number is dropped here rather than kept as NaN.
    """
    key_codes, key_id = np.unique(code, return_inverse=True)
    n_keys = len(key_codes)
    partitions_seen = np.unique(
        key_id.astype(np.int64) * (int(lag["partition"].max()) + 1)
        + lag["partition"].to_numpy(dtype=np.int64)
    )
    n_partitions = np.bincount(
        partitions_seen // (int(lag["partition"].max()) + 1), minlength=n_keys
    )
    totals = snapshot_totals(key_id, seconds, data, n_keys)
    keep = totals.complete
    sums = {name: values[keep] for name, values in totals.sums.items()}
    first_row = np.unique(key_id, return_index=True)[1]
    keys = lag.iloc[first_row][list(by)].reset_index(drop=True)
    padded, counts = _pad(totals.key[keep], {"time_s": totals.time[keep], **sums}, n_keys)
    return Panel(
        keys=keys,
        t0=t0,
        time_s=padded.pop("time_s"),
        arrays=padded,
        n=counts,
        partitions=n_partitions.astype(np.int64),
    )


def to_timestamps(t0: pd.Timestamp, seconds: np.ndarray) -> pd.DatetimeIndex:
    """Turn float seconds since ``t0`` into UTC timestamps (NaT for NaN or inf)."""
    seconds = np.asarray(seconds, dtype=np.float64)
    finite = np.isfinite(seconds)
    nanos = np.where(finite, np.round(np.where(finite, seconds, 0.0) * 1e9), 0).astype(np.int64)
    out = pd.DatetimeIndex(t0 + pd.to_timedelta(nanos, unit="ns"))
    out = out.where(pd.Index(finite), pd.NaT)  # type: ignore[call-overload]
    return pd.DatetimeIndex(out)


def parse_window(window: object) -> pd.Timedelta | None:
    """Read ``window``: None, or a duration (a bare number is seconds, as everywhere).

    Raises
    ------
    KbpInputError
        ``window`` is not a positive duration.
    """
    if window is None:
        return None
    if isinstance(window, str) and not any(ch.isdigit() for ch in window):
        raise KbpInputError(
            f"window={window!r} is not a duration; use e.g. window='30min', 600 (seconds) "
            "or pd.Timedelta(minutes=30)."
        )
    try:
        seconds = parse_duration_s(window, name="window")
    except KbpInputError:
        try:
            seconds = pd.Timedelta(window).total_seconds()  # type: ignore[arg-type]
        except (ValueError, TypeError):
            seconds = float("nan")
        if not seconds > 0:
            raise KbpInputError(
                f"window={window!r} is not a positive duration; use e.g. window='30min', "
                "600 (seconds) or pd.Timedelta(minutes=30)."
            ) from None
    return pd.Timedelta(seconds=seconds)


def compact(panel: Panel, keep: np.ndarray) -> Panel:
    """Drop the samples where ``keep`` is False and left-align what remains."""
    keep = keep & ~np.isnan(panel.time_s)
    order = np.argsort(~keep, axis=1, kind="stable")
    n = keep.sum(axis=1).astype(np.int64)
    width = int(n.max(initial=0))
    order = order[:, :width]
    valid = np.arange(width)[None, :] < n[:, None]

    def take(array: np.ndarray) -> np.ndarray:
        out = np.take_along_axis(array, order, axis=1)
        out[~valid] = np.nan
        return out

    return replace(
        panel,
        time_s=take(panel.time_s),
        arrays={name: take(array) for name, array in panel.arrays.items()},
        n=n,
    )


def apply_window(panel: Panel, window: object) -> Panel:
    """Keep the last ``window`` (a duration; a bare number is seconds) of each series."""
    span = parse_window(window)
    if span is None:
        return panel
    end = panel.last(panel.time_s)
    keep = panel.time_s >= (end - span.total_seconds())[:, None]
    return compact(panel, keep)


class LineFit(NamedTuple):
    """Least-squares line per row, from :func:`ols` (``(K,)`` arrays unless noted)."""

    slope: np.ndarray
    intercept: np.ndarray
    #: Pairs used.
    n: np.ndarray
    #: Centred sum of squares of t.
    sxx: np.ndarray
    #: Sum of squared residuals.
    sse: np.ndarray
    #: ``(K, T)`` residuals, NaN where not used.
    resid: np.ndarray


def ols(t: np.ndarray, y: np.ndarray) -> LineFit:
    """Least-squares line per row, ignoring NaN pairs.

    Returns
    -------
    LineFit
        ``slope``, ``intercept``, ``n``, ``sxx`` (centred sum of squares of t),
        ``sse`` and ``resid`` (``(K, T)``, NaN where not used).
    """
    mask = ~(np.isnan(t) | np.isnan(y))
    n = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tz = np.where(mask, t, 0.0)
        yz = np.where(mask, y, 0.0)
        t_mean = tz.sum(axis=1) / n
        y_mean = yz.sum(axis=1) / n
        dt = np.where(mask, t - t_mean[:, None], 0.0)
        dy = np.where(mask, y - y_mean[:, None], 0.0)
        sxx = (dt * dt).sum(axis=1)
        sxy = (dt * dy).sum(axis=1)
        slope = np.where(sxx > 0, sxy / sxx, np.nan)
        intercept = y_mean - slope * t_mean
        resid = np.where(mask, y - (intercept[:, None] + slope[:, None] * t), np.nan)
        sse = np.nansum(resid * resid, axis=1)
    return LineFit(slope=slope, intercept=intercept, n=n, sxx=sxx, sse=sse, resid=resid)


def lag1_autocorr(resid: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each row (NaN-aware, consecutive valid samples)."""
    a = resid[:, :-1]
    b = resid[:, 1:]
    both = ~(np.isnan(a) | np.isnan(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(np.where(np.isnan(resid), np.nan, resid), axis=1)
        centred_a = np.where(both, a - mean[:, None], 0.0)
        centred_b = np.where(both, b - mean[:, None], 0.0)
        full = resid - mean[:, None]
        denominator = np.nansum(full * full, axis=1)
        numerator = (centred_a * centred_b).sum(axis=1)
        return np.where(denominator > 0, numerator / denominator, 0.0)


def variance_inflation(rho: np.ndarray, *, cap: float = 0.99) -> np.ndarray:
    """AR(1) variance inflation ``(1 + rho) / (1 - rho)`` with rho clipped to ``[0, cap]``.

    Negative autocorrelation is not allowed to shrink an interval (clipped at 0).
    """
    r = np.clip(np.nan_to_num(rho, nan=0.0), 0.0, cap)
    return np.asarray((1.0 + r) / (1.0 - r), dtype=np.float64)


@dataclass(frozen=True)
class DriftChange:
    """Most likely change of drift per row, from :func:`drift_change` (``(K,)`` arrays)."""

    #: Time of the sample after which the drift changed.
    tau: np.ndarray
    #: Column of that sample.
    index: np.ndarray
    #: Drift before and after it (per second).
    rate_before: np.ndarray
    rate_after: np.ndarray
    #: CUSUM statistic (Kolmogorov-distributed under "no change").
    statistic: np.ndarray
    #: True where the change is significant (needs at least 8 samples).
    significant: np.ndarray


def drift_change(
    t: np.ndarray, y: np.ndarray, n: np.ndarray, *, alpha: float = 0.01
) -> DriftChange:
    """Most likely single change of drift (rate) per row, with a CUSUM test.

    Works on the increments of ``y``: under "one constant drift" and
    independent increments (a random walk with drift, which cumulative
    offsets are) the centred cumulative sum of increments is a Brownian
    bridge, so ``max |B| / (sigma sqrt(T))`` has the Kolmogorov distribution
    (``scipy.stats.kstwobign``). Measurement noise on ``y`` makes increments
    negatively correlated, which only makes the test conservative. A test on
    levels (e.g. an F-test of a hinge) is not used here because a random
    walk fits a spurious hinge a third of the time.

    Parameters
    ----------
    t, y
        Left-aligned ``(K, T)`` arrays without NaN inside the first ``n``.
    n
        ``(K,)`` sample counts.
    alpha
        Test level.

    Returns
    -------
    DriftChange
        ``tau`` (time of the sample after which the drift changed),
        ``index`` (its column), ``rate_before``, ``rate_after`` (per second),
        ``statistic``, ``significant`` (bool; needs at least 8 samples).
    """
    k, width = t.shape
    if width < 3:
        nan = np.full(k, np.nan)
        return DriftChange(
            tau=nan,
            index=np.zeros(k, dtype=np.int64),
            rate_before=nan.copy(),
            rate_after=nan.copy(),
            statistic=nan.copy(),
            significant=np.zeros(k, dtype=bool),
        )
    t_f = fill_right(t, n)
    y_f = fill_right(y, n)
    d_y = np.diff(y_f, axis=1)
    d_t = np.diff(t_f, axis=1)
    total_t = t_f[:, -1] - t_f[:, 0]
    rows = np.arange(k)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (y_f[:, -1] - y_f[:, 0]) / total_t
        resid = d_y - rate[:, None] * d_t
        sigma2 = np.einsum("ij,ij->i", resid, resid) / total_t
        bridge = np.abs(np.cumsum(resid, axis=1))
        # the full sum is zero by construction; ignore the last increment's partial sums
        bridge[np.arange(width - 1)[None, :] >= (n - 2)[:, None]] = 0.0
        bridge = np.nan_to_num(bridge, nan=0.0)
        best = np.argmax(bridge, axis=1)
        statistic = np.nan_to_num(bridge[rows, best] / np.sqrt(sigma2 * total_t), nan=0.0)
    index = best + 1  # increments 0..best are "before": the change is at sample best + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        y_before = y_f[rows, index] - y_f[:, 0]
        t_before = t_f[rows, index] - t_f[:, 0]
        rate_before = y_before / t_before
        rate_after = (y_f[:, -1] - y_f[rows, index]) / (total_t - t_before)
    critical = float(stats.kstwobign.ppf(1.0 - alpha))
    significant = (n >= 8) & (statistic > critical) & np.isfinite(rate_after)
    tau = np.take_along_axis(t, index[:, None], axis=1)[:, 0]
    return DriftChange(
        tau=tau,
        index=index,
        rate_before=rate_before,
        rate_after=rate_after,
        statistic=statistic,
        significant=significant,
    )


def fill_right(array: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Copy of a left-aligned array with each row's last value repeated past column ``n - 1``."""
    if array.shape[1] == 0:
        return array.copy()
    last = np.take_along_axis(array, np.clip(n - 1, 0, None)[:, None], axis=1)
    return np.where(np.arange(array.shape[1])[None, :] < n[:, None], array, last)


def ffill_index(flags: np.ndarray) -> np.ndarray:
    """Column index of the last True at or before each column of a 2-D array (-1 if none)."""
    index = np.where(flags, np.arange(flags.shape[1])[None, :], -1)
    return np.asarray(np.maximum.accumulate(index, axis=1))


def split_rows(size: int, chunk: int = 8192) -> list[slice]:
    """Row slices of at most ``chunk`` rows (keeps temporaries cache-sized and memory bounded)."""
    return [slice(lo, min(lo + chunk, size)) for lo in range(0, max(size, 1), chunk)]


def concat_rows(parts: Sequence[_Rows]) -> _Rows:
    """Join dataclasses of per-row arrays from consecutive chunks of rows, field by field."""
    first = parts[0]
    return type(first)(**{
        f.name: np.concatenate([getattr(part, f.name) for part in parts]) for f in fields(first)
    })


def sub_panel(panel: Panel, rows: slice) -> Panel:
    """Restrict a panel to a slice of its series (arrays are views)."""
    return replace(
        panel,
        keys=panel.keys.iloc[rows].reset_index(drop=True),
        time_s=panel.time_s[rows],
        arrays={name: array[rows] for name, array in panel.arrays.items()},
        n=panel.n[rows],
        partitions=panel.partitions[rows],
    )


def noise_components(
    t: np.ndarray, lag: np.ndarray, net: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Split the lag's noise into measurement variance and random-walk variance per second.

    Uses the variogram of the detrended lag: for a random walk (variance
    ``sigma_w^2`` per second) seen through white measurement noise
    (variance ``sigma_m^2``), ``E[(L(t + h) - L(t) + v h)^2] = 2 sigma_m^2 +
    sigma_w^2 h (1 - h / T)`` (the last factor because ``v`` is fitted on the
    same span ``T``). The empirical variogram at lags of 1, 2, 4, ... samples up
    to a quarter of each series is fitted by least
    squares to that line; both parts are kept non-negative. Several lags
    make the random-walk part far steadier than the lag-1 moments alone.

    Returns
    -------
    tuple of numpy.ndarray
        ``sigma_m2`` (messages^2) and ``sigma_w2`` (messages^2 per second).
    """
    k_rows, width = t.shape
    n = (~np.isnan(t)).sum(axis=1)
    # Rows are left-aligned; repeating each row's last value past its end makes
    # every difference there zero, so plain sums need no masks.
    t_f = fill_right(t, n)
    level = fill_right(lag + net[:, None] * t, n)
    span = t_f[:, -1] - t_f[:, 0] if width else np.zeros(k_rows)
    cum_t = np.cumsum(t_f, axis=1)
    rows = np.arange(k_rows)
    top = max(1, (width - 1) // 4)
    steps = 2 ** np.arange(int(np.log2(top)) + 1 if top >= 1 else 1)
    gamma = np.full((k_rows, len(steps)), np.nan)
    gap = np.full((k_rows, len(steps)), np.nan)
    pairs = np.zeros((k_rows, len(steps)))
    for column, step in enumerate(steps):  # a handful of lags, vectorised over all series
        if step >= width:
            continue
        # lags up to a quarter of each series' own length (at least lag 1)
        count = np.where((step <= np.maximum((n - 1) // 4, 1)) & (n > step), n - step, 0)
        d = level[:, step:] - level[:, :-step]
        d[np.arange(width - step)[None, :] >= count[:, None]] = 0.0  # pairs past the end
        pairs[:, column] = count
        with np.errstate(invalid="ignore", divide="ignore"):
            gamma[:, column] = np.einsum("ij,ij->i", d, d) / count
            # sum over i < n - step of t[i + step] - t[i] = last `step` minus first `step` times
            end = np.clip(n - 1, 0, width - 1)
            cut = np.clip(n - 1 - step, 0, width - 1)
            last_sum = cum_t[rows, end] - np.where(n - 1 - step >= 0, cum_t[rows, cut], 0.0)
            mean_gap = (last_sum - cum_t[:, step - 1]) / count
            # Detrending with the rate fitted on the same span ties the walk to its
            # endpoints (a Brownian bridge): expected squared change is h (1 - h / T).
            gap[:, column] = mean_gap * (1.0 - mean_gap / span)
    use = ~(np.isnan(gamma) | np.isnan(gap)) & (gamma > 0)
    # Weighted least squares: a mean of squared h-step changes over n - h overlapping
    # pairs has variance ~ 2 gamma^2 h / (n - h), so long lags count less.
    weight = np.where(use, pairs / steps[None, :] ** 2, 0.0)
    g = np.where(use, gamma, 0.0)
    h = np.where(use, gap, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w_sum = weight.sum(axis=1)
        h_mean = (weight * h).sum(axis=1) / w_sum
        g_mean = (weight * g).sum(axis=1) / w_sum
        dh = np.where(use, h - h_mean[:, None], 0.0)
        shh = (weight * dh * dh).sum(axis=1)
        slope = np.where(shh > 0, (weight * dh * (g - g_mean[:, None])).sum(axis=1) / shh, 0.0)
        intercept = g_mean - slope * h_mean
        # constrained fits when one part comes out negative
        through_origin = (weight * h * g).sum(axis=1) / (weight * h * h).sum(axis=1)
        sigma_w2 = np.where(slope < 0, 0.0, np.where(intercept < 0, through_origin, slope))
        sigma_m2 = np.where(slope < 0, g_mean / 2.0, np.where(intercept < 0, 0.0, intercept / 2.0))
    return np.nan_to_num(sigma_m2), np.nan_to_num(sigma_w2)


def require_single_ok(what: str, keys: pd.DataFrame, reasons: np.ndarray, ok: np.ndarray) -> None:
    """Raise KbpDataError when a single-key call could not be computed.

    Parameters
    ----------
    what
        The analysis name, for the message.
    keys
        Key frame of the result.
    reasons
        Reason strings per key ("" where fine).
    ok
        Which keys were computed.
    """
    if len(keys) == 1 and not bool(ok[0]):
        key = ", ".join(f"{name}={keys.iloc[0][name]!r}" for name in keys.columns)
        raise KbpDataError(f"{what}: cannot compute for {key}: {reasons[0]}", key=key)
