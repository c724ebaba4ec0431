"""Lead/lag correlation between two time series, with an honest p-value.

``correlate(x, y)`` puts two series on a common time grid, computes their
correlation (Spearman by default, Pearson on request) at every shift within
``±max_shift`` and reports the shift where ``|r|`` is largest.

Why the p-value is not the textbook one
---------------------------------------
Metrics sampled every few seconds are strongly autocorrelated: 360 samples
of a slowly moving lag series carry the information of a few dozen
independent ones, and two unrelated random walks routinely show ``|r| >
0.5`` (Yule's "nonsense correlations"). Picking the best of hundreds of
shifts inflates ``|r|`` further. A t-test on ``n`` would call most such
pairs "significant".

The p-value here is a surrogate test of the statistic actually reported,
``max over shifts of |r|``. One series is replaced by ``n_surrogates``
copies that keep its least-squares trend exactly, the amplitude spectrum of
its residual (so its autocorrelation) and its values (rank remapping), but
whose Fourier phases are random, so they are independent of the other series
by construction; the p-value is the share of copies whose best ``|r|``
reaches the observed one. The residual's end points are pinned before
the phases are drawn (its periodic extension then has no jump, which would
otherwise make surrogates of a random walk rougher than the walk), and the
trend is kept as it is (surrogates whose trend wandered would make a trend
shared by both series look like evidence: "both went up" alone is not
reported as significant).

Phase surrogates are exact for stationary series and slightly liberal for
random walks, so the test is run both ways -- randomising ``x`` while ``y``
is kept, then ``y`` while ``x`` is kept -- and the larger p-value is
reported. Measured on independent pairs of 360 samples searched over ±120
shifts at ``alpha = 0.05`` (``tests/unit/analysis/test_correlate.py``
prints the rates): random walks about 0.05, AR(1) with φ = 0.95 about 0.03,
shared trend plus AR(1) about 0.03; one direction alone gave 0.08 for
random walks. The surrogates use a fixed seed, so the same input gives the
same answer.

``n_eff`` (Bartlett's effective sample size, ``n / (1 + 2 Σ ρx(k) ρy(k))``)
is reported alongside, to say in numbers how much independent information
the record holds; the decision uses the surrogate p-value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import fft as sp_fft
from scipy import stats

from kbp_notebook.analysis._result import Result
from kbp_notebook.errors import KbpDataError, KbpInputError
from kbp_notebook.frames import Dataset
from kbp_notebook.lagdata import lag_totals
from kbp_notebook.units import format_duration, format_time, parse_duration_s

__all__ = ["Correlation", "correlate", "flush_latency_vs_lag"]

#: Fewest aligned points (at shift 0) for which a correlation is attempted.
MIN_POINTS = 12
#: A grid point is interpolated only when its neighbouring samples are at
#: most this many grid steps apart; beyond that it is a gap (missing).
GAP_STEPS = 2.5
_SURROGATE_BATCH = 50

SeriesLike = pd.Series | pd.DataFrame


@dataclass(frozen=True, repr=False)
class Correlation(Result):
    """Lead/lag correlation of two series (result of :func:`correlate`).

    Attributes
    ----------
    table
        Correlation by shift: ``shift`` (Timedelta), ``shift_s``, ``r``,
        ``n`` (pairs at that shift).
    r
        Correlation at the best shift (largest ``|r|``).
    p_value
        Surrogate p-value of the best ``|r|``, corrected for autocorrelation
        and for the search over shifts.
    shift
        Best shift; positive when ``x`` leads ``y`` (``y`` follows ``x`` by
        this long), negative when ``y`` leads.
    n
        Aligned pairs at the best shift.
    n_eff
        Bartlett effective sample size at the best shift.
    significant
        ``p_value < alpha``.
    method
        ``"spearman"`` or ``"pearson"``.
    alpha
        Significance level used for ``significant``.
    step
        Grid step the series were aligned on.
    max_shift
        Largest shift searched (may be less than asked when the record is short).
    n_surrogates
        Surrogates behind ``p_value``.
    x_name, y_name
        Labels of the two series (for plots and text).
    aligned
        The aligned grid: ``time``, ``x``, ``y`` (NaN in gaps), for plots.
    notes
        Plain-language lines shown first in the repr (set by helpers such as
        :func:`flush_latency_vs_lag`).
    """

    r: float = float("nan")
    p_value: float = float("nan")
    shift: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(0))
    n: int = 0
    n_eff: float = float("nan")
    significant: bool = False
    method: str = "spearman"
    alpha: float = 0.05
    step: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(0))
    max_shift: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(0))
    n_surrogates: int = 0
    x_name: str = "x"
    y_name: str = "y"
    aligned: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: tuple[str, ...] = ()

    plot_builder: ClassVar[str] = "plot_correlation"
    title: ClassVar[str] = "Lead/lag correlation"

    @property
    def shift_s(self) -> float:
        """Best shift in seconds (positive: ``x`` leads ``y``)."""
        return float(self.shift.total_seconds())

    def summary_lines(self) -> list[str]:
        """Return the one-line facts shown above the table."""
        return [*self.notes, *self._facts()]

    def _facts(self) -> list[str]:
        lead = _describe_shift(self.shift, self.x_name, self.y_name)
        verdict = "significant" if self.significant else "not significant"
        return [
            f"{self.method} r = {self.r:+.3f} at shift {_fmt_td(self.shift)} ({lead})",
            f"p = {self.p_value:.3g} ({verdict} at alpha {self.alpha:g}; {self.n_surrogates} "
            f"surrogates, searched ±{_fmt_td(self.max_shift)})",
            f"n = {self.n} pairs on a {_fmt_td(self.step)} grid, effective n ≈ {self.n_eff:.0f} "
            f"after autocorrelation",
        ]


# --------------------------------------------------------------------------- inputs


def _as_timedelta(value: object, name: str) -> pd.Timedelta:
    """Read a non-negative duration option (a bare number is seconds) as a Timedelta."""
    return pd.Timedelta(seconds=parse_duration_s(value, name=name, allow_zero=True))


def _utc_index(index: pd.Index, what: str) -> pd.DatetimeIndex:
    if not isinstance(index, pd.DatetimeIndex):
        raise KbpInputError(
            f"{what} needs a time index (DatetimeIndex, UTC), got {type(index).__name__}; "
            f"use series.set_axis(pd.to_datetime(times, utc=True)) or pass a frame with a "
            f"'time' column.",
            column="time",
        )
    if index.tz is None:
        raise KbpInputError(
            f"{what} has naive timestamps; make them UTC with .tz_localize('UTC') if they are.",
            column="time",
        )
    return index.tz_convert("UTC").as_unit("ns")


def _frame_to_series(frame: pd.DataFrame, what: str) -> pd.Series:
    if "time" in frame.columns:
        try:
            times = pd.to_datetime(frame["time"], format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise KbpInputError(
                f"{what}: column 'time' could not be read as timestamps ({exc}); give "
                f"timezone-aware datetimes, e.g. pd.to_datetime(..., utc=True).",
                column="time",
            ) from None
        body = frame.drop(columns="time")
    else:
        times = frame.index.to_series()
        body = frame
    if "metric" in body.columns and len(body["metric"].unique()) > 1:
        names = sorted(map(str, body["metric"].unique()))
        raise KbpInputError(
            f"{what} holds several metrics {names}; select one, e.g. "
            f"frame[frame['metric'] == {names[0]!r}].",
            column="metric",
        )
    if "value" in body.columns:
        values, how = body["value"], "mean"
    elif "lag" in body.columns:
        values, how = body["lag"], "sum"
    else:
        numeric = [c for c in body.columns if pd.api.types.is_numeric_dtype(body[c])]
        if len(numeric) != 1:
            raise KbpInputError(
                f"{what} is a frame with numeric columns {numeric}; give a 'value' column "
                f"(METRICS frame), a 'lag' column (LAG frame) or exactly one numeric column.",
            )
        values, how = body[numeric[0]], "mean"
    index = _utc_index(pd.DatetimeIndex(times), what)
    series = pd.Series(
        pd.to_numeric(values, errors="coerce").to_numpy("float64", na_value=np.nan), index=index
    )
    grouped = series.groupby(level=0)
    # Several entities or partitions at one time: lag adds up, other metrics average.
    return grouped.sum(min_count=1) if how == "sum" else grouped.mean()


def _to_series(obj: object, what: str) -> pd.Series:
    """Return float values on a sorted UTC DatetimeIndex, NaN dropped, one value per time."""
    if isinstance(obj, pd.DataFrame):
        series = _frame_to_series(obj, what)
    elif isinstance(obj, pd.Series):
        index = _utc_index(obj.index, what)
        try:
            values = pd.to_numeric(obj, errors="raise").to_numpy("float64", na_value=np.nan)
        except (ValueError, TypeError) as exc:
            raise KbpInputError(f"{what} must hold numbers ({exc}).") from None
        series = pd.Series(values, index=index).groupby(level=0).mean()
    else:
        raise KbpInputError(
            f"{what} must be a pandas Series indexed by UTC time or a frame with a 'time' "
            f"column, got {type(obj).__name__}."
        )
    series = series[np.isfinite(series.to_numpy())].sort_index()
    if len(series) < 2:
        raise KbpDataError(
            f"{what} has {len(series)} usable point(s); a correlation needs at least "
            f"{MIN_POINTS} aligned points. Record for longer.",
        )
    out: pd.Series = series
    return out


def _times_ns(series: pd.Series) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(series.index).asi8)


def _median_step_ns(series: pd.Series) -> int:
    diffs = np.diff(_times_ns(series))
    diffs = diffs[diffs > 0]
    return int(np.median(diffs)) if len(diffs) else 0


def _on_grid(series: pd.Series, grid_ns: np.ndarray, step_ns: int) -> np.ndarray:
    """Linear interpolation onto the grid, NaN where the series has a gap."""
    t = _times_ns(series)
    v = series.to_numpy("float64")
    out: np.ndarray = np.interp(grid_ns, t, v)
    hi = np.clip(np.searchsorted(t, grid_ns, side="left"), 0, len(t) - 1)
    lo = np.clip(hi - 1, 0, len(t) - 1)
    exact = t[hi] == grid_ns
    bracketed = (t[lo] <= grid_ns) & (t[hi] >= grid_ns)
    close = (t[hi] - t[lo]) <= GAP_STEPS * step_ns
    out[~(exact | (bracketed & close))] = np.nan
    return out


# --------------------------------------------------------------------------- maths


def _rank_valid(values: np.ndarray) -> np.ndarray:
    """Average ranks of the finite entries along the last axis; NaN stays NaN."""
    return np.asarray(stats.rankdata(values, axis=-1, nan_policy="omit"), dtype="float64")


def _standardise(values: np.ndarray) -> np.ndarray:
    mask = np.isfinite(values)
    centre = values[mask].mean()
    scale = values[mask].std()
    return np.asarray((values - centre) / (scale if scale > 0 else 1.0))


class _CrossCorrelator:
    """Windowed correlation r(k) of many x rows against one y, for shifts -K..K.

    Pairs at shift ``k`` are ``(x[t], y[t + k])`` where both are present; the
    means and variances are those of the pairs in that window (exact Pearson
    per shift), computed for every shift at once with FFT cross-correlations.
    """

    def __init__(self, y: np.ndarray, x_mask: np.ndarray, max_lag: int) -> None:
        n = len(y)
        self.max_lag = max_lag
        self.length = sp_fft.next_fast_len(n + max_lag + 1, real=True)
        self.x_mask = x_mask.astype("float64")
        y_mask = np.isfinite(y)
        y0 = np.where(y_mask, y, 0.0)
        self._fy_mask = sp_fft.rfft(y_mask.astype("float64"), self.length)
        self._fy = sp_fft.rfft(y0, self.length)
        self._fy2 = sp_fft.rfft(y0 * y0, self.length)
        fmx = sp_fft.rfft(self.x_mask, self.length)
        self.count = np.rint(self._lags(fmx, self._fy_mask))
        self.sy = self._lags(fmx, self._fy)
        self.syy = self._lags(fmx, self._fy2)

    def _lags(self, fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
        full = sp_fft.irfft(np.conj(fa) * fb, self.length, axis=-1)
        k = self.max_lag
        return np.concatenate([full[..., self.length - k :], full[..., : k + 1]], axis=-1)

    def r(self, x: np.ndarray) -> np.ndarray:
        """Return r for shifts -K..K (last axis) of each row of ``x`` (gaps as NaN or masked)."""
        x0 = np.where(self.x_mask > 0, np.nan_to_num(x), 0.0)
        fx = sp_fft.rfft(x0, self.length, axis=-1)
        fx2 = sp_fft.rfft(x0 * x0, self.length, axis=-1)
        sx = self._lags(fx, self._fy_mask)
        sxx = self._lags(fx2, self._fy_mask)
        sxy = self._lags(fx, self._fy)
        count = np.maximum(self.count, 1.0)
        cov = sxy - sx * self.sy / count
        var_x = np.maximum(sxx - sx * sx / count, 0.0)
        var_y = np.maximum(self.syy - self.sy * self.sy / count, 0.0)
        denom = np.sqrt(var_x * var_y)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(denom > 1e-12 * np.maximum(count, 1.0), cov / denom, np.nan)
        r = np.clip(r, -1.0, 1.0)
        r[..., self.count < 3] = np.nan
        return np.asarray(r)


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    mask = np.isfinite(values)
    if mask.all():
        return values.copy()
    index = np.arange(len(values))
    return np.asarray(np.interp(index, index[mask], values[mask]))


def _detrend_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into their least-squares line and the residual (last axis)."""
    t = np.arange(values.shape[-1], dtype="float64")
    t -= t.mean()
    centre = values.mean(axis=-1, keepdims=True)
    slope = (values @ t)[..., None] / float(t @ t)
    line = centre + slope * t
    return line, values - line


def _surrogates(x: np.ndarray, count: int, rng: np.random.Generator, *, ranks: bool) -> np.ndarray:
    """Independent copies of ``x`` with its trend, autocorrelation and values.

    ``x`` is split into its least-squares line and a residual. The residual
    is pinned (the straight line through its end points taken out, so that
    its periodic extension has no jump), phase-randomised (amplitude
    spectrum kept, phases drawn at random), stripped of the linear part the
    random phases put in, and remapped by rank onto the residual's own
    values (amplitude adjustment). The surrogate is the original line plus
    that residual; with ``ranks`` it is ranked again, as ``x`` was.

    Keeping the line exactly is what keeps the test honest when both series
    trend (surrogates whose trend wandered would make a shared trend look
    like evidence); pinning the ends is what keeps random walks honest (the
    jump at the wrap would otherwise add white noise and make surrogates of
    a random walk rougher than the walk).
    """
    mask = np.isfinite(x)
    line, residual = _detrend_rows(_fill_gaps(x))
    n = len(residual)
    t = np.arange(n, dtype="float64")
    pinned = residual - (residual[0] + (residual[-1] - residual[0]) * t / max(n - 1, 1))
    spectrum = sp_fft.rfft(pinned)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(count, len(spectrum)))
    phases[:, 0] = 0.0
    if n % 2 == 0:
        phases[:, -1] = 0.0
    randomised = sp_fft.irfft(spectrum * np.exp(1j * phases), n, axis=-1)
    fake_residual = _detrend_rows(randomised)[1]
    levels: np.ndarray = line + _remap(fake_residual, np.sort(residual))
    if ranks:
        # Ranks again, with the original's tied (average) ranks as the values.
        out: np.ndarray = np.full_like(levels, np.nan)
        out[:, mask] = _remap(levels[:, mask], np.sort(x[mask]))
        return out
    levels[:, ~mask] = np.nan
    return levels


def _remap(rows: np.ndarray, values_sorted: np.ndarray) -> np.ndarray:
    """Give each row ``values_sorted`` in the order of that row's own ranks."""
    order = np.argsort(rows, axis=-1)
    out = np.empty_like(rows)
    out[np.arange(rows.shape[0])[:, None], order] = values_sorted
    return out


def _autocorrelation(values: np.ndarray, max_lag: int) -> np.ndarray:
    filled = _fill_gaps(values)
    centred = filled - filled.mean()
    n = len(centred)
    length = sp_fft.next_fast_len(2 * n, real=True)
    spec = sp_fft.rfft(centred, length)
    acov = sp_fft.irfft(spec * np.conj(spec), length)[: max_lag + 1]
    return np.asarray(acov / acov[0]) if acov[0] > 0 else np.zeros(max_lag + 1)


def _effective_n(x: np.ndarray, y: np.ndarray, n: int) -> float:
    """Bartlett's n / (1 + 2 Σ ρx(k) ρy(k)), summed up to n/4 (or n - 1 for short series)."""
    max_lag = max(1, min(len(x) - 1, len(x) // 4))
    rho = _autocorrelation(x, max_lag)[1:] * _autocorrelation(y, max_lag)[1:]
    inflation = 1.0 + 2.0 * float(rho.sum())
    return float(np.clip(n / max(inflation, 1e-9), min(2.0, n), n))


def _check_variance(values: np.ndarray, name: str) -> None:
    finite = values[np.isfinite(values)]
    if len(finite) and float(np.ptp(finite)) == 0.0:
        raise KbpDataError(
            f"{name} has no variance on the common grid (every value is {finite[0]:g}); "
            f"a correlation with a constant is undefined. Pick a window where it moves.",
            column=name,
        )


# --------------------------------------------------------------------------- public


def correlate(
    x: SeriesLike,
    y: SeriesLike | None = None,
    *,
    max_shift: str | pd.Timedelta | float = "10min",
    method: Literal["spearman", "pearson"] = "spearman",
    alpha: float = 0.05,
    step: str | pd.Timedelta | float | None = None,
    difference: bool = False,
    n_surrogates: int = 200,
    seed: int = 0,
    x_name: str | None = None,
    y_name: str | None = None,
) -> Correlation:
    """Correlate two time series at every shift within ``±max_shift``.

    Parameters
    ----------
    x, y
        Series indexed by UTC time. Also accepted: a frame with a ``time``
        column and a ``value`` column (a METRICS slice for one metric;
        values of several entities at one time are averaged), a ``lag``
        column (a LAG frame; lag is summed over partitions per time), or one
        other numeric column. With ``y=None``, ``x`` may be a frame with a
        ``time`` column (or a DatetimeIndex) and exactly two numeric columns.
    max_shift
        Largest lead or lag searched, e.g. ``"10min"`` or seconds. Capped at
        a quarter of the record so every shift keeps most of the data.
    method
        ``"spearman"`` (default; rank correlation, robust to spikes and any
        monotone rescaling) or ``"pearson"``. Spearman is computed as the
        Pearson correlation of the ranks over the aligned record.
    alpha
        Significance level for ``significant``.
    step
        Grid step; default the median sampling interval of the coarser series.
    difference
        Correlate first differences (changes per step) instead of levels.
        The p-value is honest either way; differencing asks "do the changes
        move together", which is more powerful for trending series.
    n_surrogates
        Surrogate series for the p-value (smallest possible p is
        ``1 / (n_surrogates + 1)``).
    seed
        Seed of the surrogate generator (results are deterministic).
    x_name, y_name
        Labels used in text and plots (default: the series names or x/y).

    Returns
    -------
    Correlation
        ``r``, ``p_value``, ``shift`` (positive when x leads y), ``n``,
        ``n_eff``, ``significant`` and ``.table`` of r by shift.

    Raises
    ------
    KbpInputError
        An input is not a time series, or an option is invalid.
    KbpDataError
        The series do not overlap, have fewer than 12 aligned points, or one
        of them is constant.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> ds = kbp.load_sample("slow-consumer-then-scale-out")  # doctest: +SKIP
    >>> kbp.flush_latency_vs_lag(ds)  # doctest: +SKIP
    """
    _check_options(method, alpha, n_surrogates)
    if y is None:
        x, y, default_names = _split_pair(x)
    else:
        default_names = (_default_name(x, "x"), _default_name(y, "y"))
    x_label = x_name or default_names[0]
    y_label = y_name or default_names[1]
    xs = _to_series(x, f"x ({x_label})")
    ys = _to_series(y, f"y ({y_label})")
    shift_limit = _as_timedelta(max_shift, "max_shift")
    grid = _common_grid(xs, ys, step=step, difference=difference, labels=(x_label, y_label))
    step_ns = grid.step_ns
    max_lag = min(int(shift_limit.value // step_ns), (len(grid.time_ns) - 1) // 4)
    if method == "spearman":
        xv, yv = _rank_valid(grid.x), _rank_valid(grid.y)
    else:
        xv, yv = _standardise(grid.x), _standardise(grid.y)
    correlator = _CrossCorrelator(yv, np.isfinite(xv), max_lag)
    r_by_shift = correlator.r(xv)
    if not np.isfinite(r_by_shift).any():
        raise KbpDataError(
            f"x ({x_label}) and y ({y_label}) have no shift at which both vary; "
            f"pick a window where both move.",
        )
    lags = np.arange(-max_lag, max_lag + 1)
    best = _best_index(r_by_shift, lags)
    p_value = _two_way_p(xv, yv, correlator, abs(float(r_by_shift[best])), n_surrogates, seed,
                         ranks=method == "spearman")
    n_best = int(correlator.count[best])
    table = pd.DataFrame(
        {
            "shift": pd.to_timedelta(lags * step_ns, unit="ns"),
            "shift_s": lags * step_ns / 1e9,
            "r": r_by_shift,
            "n": correlator.count.astype("int64"),
        }
    )
    aligned = pd.DataFrame(
        {"time": pd.to_datetime(grid.time_ns, utc=True).as_unit("ns"), "x": grid.x, "y": grid.y}
    )
    return Correlation(
        table=table,
        r=float(r_by_shift[best]),
        p_value=float(p_value),
        shift=pd.Timedelta(int(lags[best]) * step_ns),
        n=n_best,
        n_eff=_effective_n(xv, yv, n_best),
        significant=bool(p_value < alpha),
        method=method,
        alpha=float(alpha),
        step=pd.Timedelta(step_ns),
        max_shift=pd.Timedelta(max_lag * step_ns),
        n_surrogates=int(n_surrogates),
        x_name=x_label,
        y_name=y_label,
        aligned=aligned,
    )


def _check_options(method: str, alpha: float, n_surrogates: int) -> None:
    """Raise :class:`KbpInputError` for an unknown method, a bad level or too few surrogates."""
    if method not in ("spearman", "pearson"):
        raise KbpInputError(f"method={method!r}; use 'spearman' or 'pearson'.", column="method")
    if not 0.0 < alpha < 1.0:
        raise KbpInputError(f"alpha={alpha!r} must be between 0 and 1.", column="alpha")
    if n_surrogates < 19:
        raise KbpInputError(
            f"n_surrogates={n_surrogates} is too few for a p-value; use at least 19 (200 is "
            f"the default).",
            column="n_surrogates",
        )


class _Grid(NamedTuple):
    """Both series on one regular time grid (NaN where a series has no sample)."""

    time_ns: np.ndarray
    x: np.ndarray
    y: np.ndarray
    step_ns: int


def _common_grid(
    xs: pd.Series,
    ys: pd.Series,
    *,
    step: str | pd.Timedelta | float | None,
    difference: bool,
    labels: tuple[str, str],
) -> _Grid:
    """Put both series on a grid over the time they overlap (first differences if asked).

    Raises :class:`KbpDataError` when they do not overlap, have fewer than
    ``MIN_POINTS`` aligned points, or one is constant.
    """
    x_label, y_label = labels
    step_ns = (
        int(_as_timedelta(step, "step").value)
        if step is not None
        else max(_median_step_ns(xs), _median_step_ns(ys))
    )
    if step_ns <= 0:
        raise KbpInputError("step must be a positive duration.", column="step")
    start = max(xs.index[0].value, ys.index[0].value)
    end = min(xs.index[-1].value, ys.index[-1].value)
    if end <= start:
        raise KbpDataError(
            f"x ({x_label}) covers {xs.index[0]} to {xs.index[-1]} and y ({y_label}) "
            f"{ys.index[0]} to {ys.index[-1]}: they do not overlap in time.",
        )
    grid_ns = start + step_ns * np.arange((end - start) // step_ns + 1, dtype="int64")
    xg = _on_grid(xs, grid_ns, step_ns)
    yg = _on_grid(ys, grid_ns, step_ns)
    if difference:
        xg, yg, grid_ns = np.diff(xg), np.diff(yg), grid_ns[1:]
    both = np.isfinite(xg) & np.isfinite(yg)
    if int(both.sum()) < MIN_POINTS:
        raise KbpDataError(
            f"only {int(both.sum())} aligned points of x ({x_label}) and y ({y_label}) on a "
            f"{_fmt_td(pd.Timedelta(step_ns))} grid; a correlation needs at least {MIN_POINTS}. "
            f"Record for longer or pass a smaller step.",
        )
    _check_variance(xg, f"x ({x_label})")
    _check_variance(yg, f"y ({y_label})")
    return _Grid(grid_ns, xg, yg, step_ns)


def _two_way_p(
    xv: np.ndarray,
    yv: np.ndarray,
    correlator: _CrossCorrelator,
    observed: float,
    n_surrogates: int,
    seed: int,
    *,
    ranks: bool,
) -> float:
    """Surrogate p-value of the best |r|: the larger of randomising x and randomising y.

    Randomise x keeping y, then y keeping x; keep the larger p-value. Both
    directions draw the same phases, so swapping x and y gives the same p.
    """
    p_x = _surrogate_p(
        xv, correlator, observed, n_surrogates, np.random.default_rng(seed), ranks=ranks
    )
    reverse = _CrossCorrelator(xv, np.isfinite(yv), correlator.max_lag)
    p_y = _surrogate_p(
        yv, reverse, observed, n_surrogates, np.random.default_rng(seed), ranks=ranks
    )
    return max(p_x, p_y)


def _surrogate_p(
    series: np.ndarray,
    correlator: _CrossCorrelator,
    observed: float,
    count: int,
    rng: np.random.Generator,
    *,
    ranks: bool,
) -> float:
    """Share of surrogates of ``series`` whose best |r| reaches ``observed``."""
    exceed = 0
    for start_row in range(0, count, _SURROGATE_BATCH):
        rows = min(_SURROGATE_BATCH, count - start_row)
        fake = _surrogates(series, rows, rng, ranks=ranks)
        best_fake = np.nanmax(np.abs(correlator.r(fake)), axis=-1)
        exceed += int(np.sum(best_fake >= observed - 1e-12))
    return (exceed + 1) / (count + 1)


def _best_index(r_by_shift: np.ndarray, lags: np.ndarray) -> int:
    """Index of the largest |r|; ties go to the smallest |shift|."""
    strength = np.nan_to_num(np.abs(r_by_shift), nan=-1.0)
    top = strength.max()
    candidates = np.flatnonzero(strength >= top - 1e-12)
    return int(candidates[np.argmin(np.abs(lags[candidates]))])


def _default_name(obj: object, fallback: str) -> str:
    name = getattr(obj, "name", None)
    if isinstance(obj, pd.Series) and name is not None:
        return str(name)
    if (
        isinstance(obj, pd.DataFrame)
        and "metric" in obj.columns
        and len(obj["metric"].unique()) == 1
    ):
        return str(obj["metric"].iloc[0])
    if isinstance(obj, pd.DataFrame) and "lag" in obj.columns:
        return "lag"
    return fallback


def _split_pair(frame: object) -> tuple[pd.Series, pd.Series, tuple[str, str]]:
    if not isinstance(frame, pd.DataFrame):
        raise KbpInputError(
            "correlate(x) without y needs a frame with a time column (or DatetimeIndex) and "
            "two numeric columns; otherwise pass both x and y."
        )
    body = (
        frame.set_index(pd.DatetimeIndex(pd.to_datetime(frame["time"])))
        if ("time" in frame.columns)
        else frame
    )
    numeric = [c for c in body.columns if c != "time" and pd.api.types.is_numeric_dtype(body[c])]
    if len(numeric) != 2:
        raise KbpInputError(
            f"correlate(x) without y needs exactly two numeric columns, found {numeric}; "
            f"pass x and y separately.",
        )
    a, b = numeric
    return body[a], body[b], (str(a), str(b))


# --------------------------------------------------------------------------- flush latency


def flush_latency_vs_lag(
    dataset: Any,
    *,
    metric: str = "log_flush_time_ms_p99",
    target: Literal["lag", "lag_growth"] = "lag",
    max_shift: str | pd.Timedelta | float = "10min",
    aggregate: Literal["max", "mean"] = "max",
    group: str | None = None,
    topic: str | None = None,
    **options: Any,
) -> Correlation:
    """Correlate a broker metric (default p99 log flush time) with consumer lag.

    This is the seed's question: does broker flush latency move with lag?
    The broker metric is reduced to one series (``aggregate`` across brokers
    at each time); lag is the total over all partitions at each snapshot
    (optionally one group / topic), or its growth rate in messages/s.

    Parameters
    ----------
    dataset
        A :class:`kbp_notebook.frames.Dataset` with ``lag`` and ``metrics``.
    metric
        Canonical broker metric name in ``dataset.metrics``.
    target
        ``"lag"`` (total lag, messages) or ``"lag_growth"`` (its rate of
        change, messages/s: "does latency go with lag *building up*").
    max_shift
        Largest lead or lag searched.
    aggregate
        ``"max"`` (the worst broker; default) or ``"mean"`` across brokers.
    group, topic
        Restrict lag to one consumer group and/or topic.
    **options
        Passed to :func:`correlate` (``method``, ``alpha``, ``step``, ...).

    Returns
    -------
    Correlation
        With ``x`` = the broker metric and ``y`` = the lag target, so a
        positive shift means the broker metric moves first; the first
        summary lines say in words what was found and what it does not prove.

    Raises
    ------
    KbpDataError
        The metric is not in the recording, or lag or metric is too thin.
    """
    metrics = getattr(dataset, "metrics", None)
    lag = getattr(dataset, "lag", None)
    if not isinstance(lag, pd.DataFrame):
        raise KbpInputError(
            "flush_latency_vs_lag needs a Dataset (kbp_notebook.frames.Dataset) with a lag frame."
        )
    if target not in ("lag", "lag_growth"):
        raise KbpInputError(f"target={target!r}; use 'lag' or 'lag_growth'.", column="target")
    if aggregate not in ("max", "mean"):
        raise KbpInputError(f"aggregate={aggregate!r}; use 'max' or 'mean'.", column="aggregate")
    rows = (
        metrics[metrics["metric"] == metric]
        if isinstance(metrics, pd.DataFrame) and len(metrics)
        else None
    )
    if rows is None or not len(rows):
        raise KbpDataError(
            f"no {metric} in the metrics; record broker metrics with "
            f"PrometheusSource.broker_metrics (or pass a Dataset whose metrics hold it).",
            column=metric,
        )
    broker_series, n_entities = _aggregate_entities(rows, aggregate)

    selected = lag
    if group is not None:
        selected = selected[selected["group"] == group]
    if topic is not None:
        selected = selected[selected["topic"] == topic]
    if not len(selected):
        raise KbpDataError(
            f"no lag rows for group={group!r}, topic={topic!r}; check the names "
            f"(dataset.lag['group'].unique()).",
            column="group",
        )
    total = lag_totals(selected, by=()).set_index("time")["lag"].dropna().sort_index()
    total.index = _utc_index(pd.DatetimeIndex(total.index), "lag")
    if target == "lag_growth":
        seconds = np.diff(total.index.asi8) / 1e9
        growth = np.diff(total.to_numpy()) / np.where(seconds > 0, seconds, np.nan)
        mids = total.index.asi8[:-1] + (np.diff(total.index.asi8) // 2)
        y_series = pd.Series(growth, index=pd.to_datetime(mids, utc=True), name="lag_growth")
        y_label = "lag growth (messages/s)"
    else:
        y_series = total.rename("lag")
        y_label = "total lag (messages)"
    x_label = f"{metric} ({aggregate} over {n_entities} broker{'s' * (n_entities != 1)})"
    result = correlate(
        broker_series, y_series, max_shift=max_shift, x_name=x_label, y_name=y_label, **options
    )
    notes = _flush_notes(result, metric, y_label)
    onset = _onset_note(dataset, rows, metric, group=group, topic=topic)
    return _with_notes(result, (*notes, onset) if onset else notes)


def _aggregate_entities(rows: pd.DataFrame, aggregate: str) -> tuple[pd.Series, int]:
    """One series from several brokers: floor times to the sampling step, then max/mean."""
    times = pd.DatetimeIndex(pd.to_datetime(rows["time"], utc=True)).as_unit("ns")
    values = rows["value"].to_numpy("float64", na_value=np.nan)
    entities = rows["entity"].astype(str).to_numpy()
    n_entities = len(set(entities.tolist()))
    frame = pd.DataFrame({"t": times.asi8, "entity": entities, "value": values})
    steps = frame.sort_values("t").groupby("entity")["t"].diff().dropna()
    steps = steps[steps > 0]
    step_ns = int(steps.median()) if len(steps) else 0
    if step_ns > 0 and n_entities > 1:
        # Brokers are scraped at slightly different instants; bucket to the step.
        frame["t"] = frame["t"] - frame["t"] % step_ns
    reduced = frame.groupby("t")["value"].agg(aggregate)
    series = pd.Series(
        reduced.to_numpy("float64"), index=pd.to_datetime(reduced.index.to_numpy(), utc=True)
    )
    return series, n_entities


def _flush_notes(result: Correlation, metric: str, y_label: str) -> tuple[str, ...]:
    span = f"±{_fmt_td(result.max_shift)}"
    if result.significant:
        direction = "rises with" if result.r > 0 else "falls as"
        lead = _describe_shift(result.shift, metric, "lag")
        found = (
            f"Found: {metric} {direction} {y_label} (r = {result.r:+.2f}, {lead}); "
            f"p = {result.p_value:.2g} after allowing for autocorrelation and the search over "
            f"{span}."
        )
        caveat = (
            "Not proven: that one causes the other. Both can follow a common cause (a produce "
            "burst loads the disks and outruns the consumers at once); a lead only shows which "
            "moved first in this recording."
        )
    else:
        found = (
            f"No evidence that {metric} moves with {y_label}: best r = {result.r:+.2f} "
            f"(p = {result.p_value:.2g}) is within what unrelated series with this much "
            f"autocorrelation give."
        )
        caveat = (
            f"Not proven: that they are unrelated. An effect smaller than the noise, one at a "
            f"shift beyond {span}, or one hidden in a short recording (effective n ≈ "
            f"{result.n_eff:.0f}) would not show here."
        )
    return (found, caveat)


def _onset_note(
    dataset: Any, rows: pd.DataFrame, metric: str, *, group: str | None, topic: str | None
) -> str:
    """Say how the broker metric moved while lag built up, against its own earlier level.

    A correlation over a short recording can miss an effect that is plain at the onset
    (the disk got slow, then lag built up): this note says which it was.
    """
    from kbp_notebook.analysis._causes import ONSET_S, latency_at_onset
    from kbp_notebook.analysis._derived_events import LATENCY_RATIO
    from kbp_notebook.analysis._episodes import CATCH_UP_WINDOW_S
    from kbp_notebook.analysis.incident_model import incidents

    if not isinstance(dataset, Dataset):
        return ""
    try:
        episodes = incidents(dataset).episodes
    except KbpDataError:
        return ""
    if group is not None:
        episodes = episodes[episodes["group"] == group]
    if topic is not None:
        episodes = episodes[episodes["topic"] == topic]
    if not len(episodes):
        return "No episode of lag in this recording, so no onset to judge the brokers at."
    worst = episodes.iloc[int(np.argmax(episodes["peak_lag"].to_numpy(dtype=float)))]
    start = pd.Timestamp(worst["start"])
    until = max(pd.Timestamp(worst["peak_time"]), start + pd.Timedelta(seconds=ONSET_S))
    found = latency_at_onset(rows[["time", "entity", "metric", "value"]], start, until,
                             CATCH_UP_WINDOW_S)
    when = format_time(start, date=True)
    if not found:
        return (f"Too little {metric} history before the onset at {when} to compare the "
                "brokers with their own level.")
    best = max(found, key=lambda s: s.ratio)
    rose = (f"{best.entity} {metric} rose to {best.top_ms:.0f} ms while lag built up from "
            f"{when}, from {best.usual_ms:.0f} ms before it ({best.ratio:.1f}x its own level)")
    if best.excursion:
        return f"{rose}: the brokers are a suspect, whatever the correlation below says."
    if best.ratio >= LATENCY_RATIO:
        return (f"{rose}: only {best.top_ms - best.usual_ms:.0f} ms more, too little to slow "
                "clients down.")
    if best.ratio >= 1.3:
        return (f"{rose}: a rise, short of the {LATENCY_RATIO:g}x that marks a broker "
                "excursion; look at the other broker signals too.")
    return (f"{best.entity} {metric} stayed near its own level while lag built up from {when} "
            f"({best.usual_ms:.0f} ms before, {best.top_ms:.0f} ms at most): the brokers did "
            "not change when lag began.")


def _with_notes(result: Correlation, notes: tuple[str, ...]) -> Correlation:
    from dataclasses import replace

    return replace(result, notes=notes)


# --------------------------------------------------------------------------- text helpers


def _fmt_td(value: pd.Timedelta) -> str:
    """Return a shift or window as people say it (the one duration formatter)."""
    return format_duration(float(value.total_seconds()))



def _describe_shift(shift: pd.Timedelta, x_name: str, y_name: str) -> str:
    if shift > pd.Timedelta(0):
        return f"{x_name} leads {y_name} by {_fmt_td(shift)}"
    if shift < pd.Timedelta(0):
        return f"{y_name} leads {x_name} by {_fmt_td(-shift)}"
    return "no lead either way"
