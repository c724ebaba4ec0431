"""Is lag growing *now*? Regimes of constant rate per key, each with an honest interval.

Lag changes rate when something happens (a burst starts, a consumer slows,
more consumers join), so one straight line over a recording answers the
wrong question: over a build-up and its drain it says "stable, [-637, 188]
msg/s". :func:`lag_trend` first cuts each series into **regimes** of
constant rate, then fits each regime; ``.table`` describes the current
(last) regime and ``.segments`` lists them all.

Regimes
-------
A regime ends where the drift of the lag (its rate of change) changes:
binary segmentation with the CUSUM test on the increments of the lag
(:func:`drift_segments`; one split is the test of
:func:`kbp_notebook.analysis._series.drift_change`). Lag is a cumulative
quantity, a random walk with drift seen through commit-timing noise; under
one constant drift its increments are independent with one mean, so the
centred partial sums are a Brownian bridge and the Kolmogorov critical
value at ``ALPHA`` (1%) is the penalty a driftless random walk beats about
1% of the time (a test on the levels, such as an F-test of a segmented
line, is not used: a random walk fits a spurious break a third of the
time). Each regime keeps at least ``MIN_SEGMENT`` samples; a key has at most
``MAX_SEGMENTS`` regimes. Adjacent regimes share the sample at the change.

Slope and interval of a regime
------------------------------
``slope_per_s`` is the Theil--Sen slope of lag against time (the median of
pairwise slopes), which shrugs off rebalance spikes and single bad samples.

* Regimes of up to ``EXACT_SAMPLES`` (32) points use every pair, exactly like
  :func:`scipy.stats.theilslopes`.
* Longer regimes are first reduced to ``EXACT_SAMPLES`` consecutive blocks,
  each summarised by its median time and median lag, and Theil--Sen runs on
  those block medians. This bounds memory and time per series (496 pairs)
  while staying robust (a spike moves a block median only if it fills half a
  block). It is a different estimator from all-pairs Theil--Sen on the raw
  samples; on a straight line with noise the two agree to well inside the
  interval (the benchmark prints the difference).

The interval is Sen's: order statistics of the pairwise slopes at ranks
``(N -/+ z sigma_S) / 2``, where ``sigma_S^2 = n (n-1) (2n+5) / 18`` is the
variance of Kendall's S -- **inflated for autocorrelation**. Lag samples are
not independent (a backlog now is most of the backlog 5 s later), and the
textbook interval assumes they are; it is then far too narrow and calls noise
a trend. We estimate the lag-1 autocorrelation ``rho`` of the residuals
around the fitted line and multiply ``sigma_S^2`` by the AR(1) factor
``(1 + rho) / (1 - rho)`` (effective sample size ``n (1 - rho) / (1 + rho)``;
Hamed & Rao 1998 / Yue & Wang 2004 in their AR(1) form). ``rho`` is clipped
to ``[0, 0.99]``: negative autocorrelation never narrows the interval. The
p-value is the Mann--Kendall test with the same inflated variance. The
interval is then widened to at least what a random walk plus measurement
noise implies (:func:`_random_walk_floor`), since the AR(1) factor alone is
optimistic for a walk. ``status`` needs the whole interval on one side of
zero (``growing`` / ``draining``), never just the sign of the slope. The
regime's boundaries were chosen from the same data, which makes its interval
somewhat optimistic near a change; the random-walk floor covers most of it.

``slope_ols_per_s`` is the least-squares slope over the regime, for
comparison (a large gap to the Theil--Sen slope means outliers).

``onset`` is when the current growth began: the start of the run of growing
regimes that ends with the current one. NaT when the key is not growing now,
or when that run starts with the data (growth began before the recording).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import ClassVar, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from kbp_notebook.analysis._result import Result
from kbp_notebook.analysis._series import (
    Panel,
    apply_window,
    build_panel,
    compact,
    ffill_index,
    fill_right,
    lag1_autocorr,
    last_valid,
    noise_components,
    normalise_by,
    ols,
    prepare_lag,
    quiet,
    require_single_ok,
    split_rows,
    sub_panel,
    to_timestamps,
    variance_inflation,
)
from kbp_notebook.errors import KbpInputError

__all__ = ["LagTrend", "drift_segments", "lag_trend"]

#: Longest series fitted with all pairs; longer ones use this many block medians.
EXACT_SAMPLES = 32
#: Fewest samples for a trend with an interval.
MIN_SAMPLES = 4
#: Series per chunk in the pairwise step (bounds memory to ~chunk * 2016 floats).
CHUNK = 4096
#: Level of each regime split test (the penalty a driftless random walk beats this often).
ALPHA = 0.01
#: Fewest samples in a regime (enough for an interval and a lag-1 autocorrelation).
MIN_SEGMENT = 6
#: Increments further than this many robust standard deviations from their regime's rate
#: are clipped in the split test, so a rewind or a rebalance spike is not a change of rate.
CLIP_SIGMAS = 4.0
#: Most regimes per key (a build-up, its peak, a drain and the calm on either side fit).
MAX_SEGMENTS = 8
#: Times a drain that provably reached zero inside a regime forces a split there.
FLOOR_PASSES = 2
#: Series per chunk of the whole computation (segment arrays are regimes x samples).
KEYS_PER_CHUNK = 2048

METHODS = ("theil-sen", "ols")


@dataclass(frozen=True, repr=False)
class LagTrend(Result):
    """Regimes of lag per key; ``table`` describes the current one.

    Attributes
    ----------
    table
        One row per key describing its **current regime** (since the last
        change of rate): key columns, ``slope_per_s``, ``ci_low``,
        ``ci_high`` (messages/s), ``p_value``, ``n`` (samples in the regime),
        ``status`` (growing / stable / draining, NA where too thin),
        ``onset`` (UTC: when the current growth began; NaT if not growing or
        growing since before the data), ``regime_start`` (UTC),
        ``segments`` (number of regimes), ``slope_ols_per_s``, ``rho``
        (lag-1 autocorrelation used), ``reason`` (why a row is NaN).
    segments
        One row per regime per key, in time order: key columns, ``segment``
        (0, 1, ...), ``start``, ``end`` (UTC, the shared sample at a change
        ends one regime and starts the next), ``slope_per_s``, ``ci_low``,
        ``ci_high``, ``p_value``, ``n``, ``status``, ``fitted_lag_start``,
        ``fitted_lag_end`` (the regime's line at its ends, messages; may be
        negative where the line is extrapolated to a lag of zero),
        ``current`` (True for the key's last regime).
    method
        ``"theil-sen"`` or ``"ols"``.
    confidence
        Confidence level of the intervals and of ``status``.
    as_of
        Time of the last snapshot in the data (UTC): "now" for this result.
    """

    segments: pd.DataFrame = None  # type: ignore[assignment]
    method: str = "theil-sen"
    confidence: float = 0.95
    as_of: pd.Timestamp = None  # type: ignore[assignment]

    plot_builder: ClassVar[str] = "plot_lag_trend"
    title: ClassVar[str] = "Lag trend (current regime)"

    def summary_lines(self) -> list[str]:
        """Say what the intervals are, how many keys are in each status, and when."""
        counts = self.table["status"].value_counts()
        parts = [f"{int(counts.get(s, 0))} {s}" for s in ("growing", "stable", "draining")]
        when = f" as of {self.as_of:%Y-%m-%d %H:%M:%S} UTC" if self.as_of is not None else ""
        return [
            f"{self.method} slope of the current regime, {self.confidence:.0%} interval "
            "(autocorrelation-adjusted)",
            ", ".join(parts) + when,
        ]


def _block_reduce(t: np.ndarray, y: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median time and value of EXACT_SAMPLES consecutive blocks for rows longer than that."""
    k, width = t.shape
    blocks = EXACT_SAMPLES
    b = np.arange(blocks)
    start = (b[None, :] * n[:, None]) // blocks
    end = ((b[None, :] + 1) * n[:, None]) // blocks
    size = int(max((end - start).max(initial=1), 1))
    index = start[:, :, None] + np.arange(size)[None, None, :]
    valid = index < end[:, :, None]
    index = np.where(valid, index, 0).reshape(k, -1)
    tb = np.take_along_axis(t, index, axis=1).reshape(k, blocks, size)
    yb = np.take_along_axis(y, index, axis=1).reshape(k, blocks, size)
    tb[~valid] = np.nan
    yb[~valid] = np.nan
    if size == 1:
        return tb[:, :, 0], yb[:, :, 0]
    # median of each block: sort (NaN last) and average the middle one or two
    count = valid.sum(axis=2)
    low = np.clip((count - 1) // 2, 0, None)[:, :, None]
    high = np.clip(count // 2, 0, None)[:, :, None]
    out = []
    for array in (tb, yb):
        array.sort(axis=2)
        median = 0.5 * (np.take_along_axis(array, low, 2) + np.take_along_axis(array, high, 2))
        out.append(np.where(count > 0, median[:, :, 0], np.nan))
    return out[0], out[1]


class SlopeFit(NamedTuple):
    """A trend per row (``(K,)`` arrays) from :func:`theil_sen` or :func:`ols_trend`."""

    #: Lag change per second.
    slope: np.ndarray
    #: Interval of the slope.
    ci_low: np.ndarray
    ci_high: np.ndarray
    #: Test of "no trend".
    p_value: np.ndarray
    #: Lag-1 autocorrelation of the residuals (clipped to 0..0.99).
    rho: np.ndarray


def _theil_sen_rows(t: np.ndarray, y: np.ndarray, n: np.ndarray, z: float) -> SlopeFit:
    """Theil--Sen, Sen interval and Mann--Kendall p on rows of at most EXACT_SAMPLES points.

    Works in chunks of ``CHUNK`` rows so the pairwise slopes never exceed
    ``CHUNK * EXACT_SAMPLES * (EXACT_SAMPLES - 1) / 2`` floats.
    """
    k, width = t.shape
    i, j = np.triu_indices(width, 1)
    out = SlopeFit(*(np.full(k, np.nan) for _ in SlopeFit._fields))
    if width < 2:  # one sample per row: no pair, no slope (the caller gives the reason)
        return out
    for lo in range(0, k, CHUNK):
        hi = min(lo + CHUNK, k)
        tc, yc, nc = t[lo:hi], y[lo:hi], n[lo:hi]
        rows = np.arange(hi - lo)
        valid = j[None, :] < nc[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            dy = yc[:, j] - yc[:, i]
            slopes = dy / (tc[:, j] - tc[:, i])
        slopes[~valid] = np.nan
        m = valid.sum(axis=1)
        s = np.where(valid, np.sign(dy), 0.0).sum(axis=1)
        slopes.sort(axis=1)  # NaN sorts last, so the first m are the valid ones
        mid_a = np.clip((m - 1) // 2, 0, None)
        mid_b = np.clip(m // 2, 0, None)
        slope = np.where(m > 0, 0.5 * (slopes[rows, mid_a] + slopes[rows, mid_b]), np.nan)
        with np.errstate(invalid="ignore"):
            intercept = np.nanmedian(yc - slope[:, None] * tc, axis=1)
        rho = lag1_autocorr(yc - (intercept[:, None] + slope[:, None] * tc))
        nf = nc.astype(np.float64)
        var_s = nf * (nf - 1) * (2 * nf + 5) / 18.0 * variance_inflation(rho)
        sigma = np.sqrt(var_s)
        # Sen's ranks, rounded as scipy.stats.theilslopes does.
        upper = np.minimum(np.round((m + z * sigma) / 2.0), m - 1)
        lower = np.maximum(np.round((m - z * sigma) / 2.0) - 1, 0)
        ok = m > 0
        ui = np.where(ok, upper, 0).astype(np.int64)
        li = np.where(ok, lower, 0).astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            zscore = np.where(var_s > 0, (s - np.sign(s)) / sigma, 0.0)
        out.slope[lo:hi] = slope
        out.ci_low[lo:hi] = np.where(ok, slopes[rows, li], np.nan)
        out.ci_high[lo:hi] = np.where(ok, slopes[rows, ui], np.nan)
        out.p_value[lo:hi] = 2.0 * stats.norm.sf(np.abs(zscore))
        out.rho[lo:hi] = np.clip(np.nan_to_num(rho), 0.0, 0.99)
    return out


def theil_sen(
    t: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    *,
    confidence: float,
) -> SlopeFit:
    """Vectorised Theil--Sen with autocorrelation-inflated Sen interval and MK p-value.

    Parameters
    ----------
    t, y
        Left-aligned ``(K, T)`` arrays, NaN-padded, no NaN inside the first ``n``.
    n
        ``(K,)`` sample counts.
    confidence
        Interval level.

    Returns
    -------
    SlopeFit
        ``slope``, ``ci_low``, ``ci_high``, ``p_value``, ``rho`` per row.
    """
    if t.shape[1] > EXACT_SAMPLES:
        long = n > EXACT_SAMPLES
        tb, yb = _block_reduce(t, y, n)
        t = np.where(long[:, None], tb, t[:, :EXACT_SAMPLES])
        y = np.where(long[:, None], yb, y[:, :EXACT_SAMPLES])
        n = np.minimum(n, EXACT_SAMPLES)
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    return _theil_sen_rows(t, y, n, z)


def ols_trend(
    t: np.ndarray,
    y: np.ndarray,
    *,
    confidence: float,
) -> SlopeFit:
    """OLS slope with an AR(1)-inflated t interval, per row."""
    fit = ols(t, y)
    rho = lag1_autocorr(fit.resid)
    rho = np.clip(np.nan_to_num(rho), 0.0, 0.99)
    n = fit.n.astype(np.float64)
    n_eff = np.maximum(n * (1 - rho) / (1 + rho), 3.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(fit.sse / np.maximum(n - 2, 1) / fit.sxx * variance_inflation(rho))
        q = stats.t.ppf(0.5 + confidence / 2.0, n_eff - 2)
        tstat = np.where(se > 0, fit.slope / se, np.where(fit.slope != 0, np.inf, 0.0))
    p_value = 2.0 * stats.t.sf(np.abs(tstat), n_eff - 2)
    return SlopeFit(
        slope=fit.slope,
        ci_low=fit.slope - q * se,
        ci_high=fit.slope + q * se,
        p_value=p_value,
        rho=rho,
    )


def _random_walk_floor(
    fit: SlopeFit,
    t: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    *,
    confidence: float,
) -> SlopeFit:
    """Widen the interval to at least what a random walk plus measurement noise implies.

    Lag is a cumulative quantity: a random walk with drift, seen through
    commit-timing noise. The variance of a slope fitted to levels is then
    about ``6/5 sigma_w^2 / T + sigma_m^2 / Sxx`` (OLS on Brownian motion,
    plus white noise), with ``sigma_w^2``, ``sigma_m^2`` split by
    :func:`noise_components`. The AR(1) inflation alone is far too
    optimistic for a walk (it called ~40 % of driftless walks a trend in
    our tests); with this floor the rate is near the nominal level.
    """
    slope = fit.slope
    duration = np.nan_to_num(np.nanmax(t, axis=1) - t[:, 0]) if t.shape[1] else np.zeros(len(n))
    sigma_m2, sigma_w2 = noise_components(t, y, -np.nan_to_num(slope))
    mask = ~np.isnan(t)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_mean = np.where(mask, t, 0.0).sum(axis=1) / n
        sxx = np.where(mask, (t - t_mean[:, None]) ** 2, 0.0).sum(axis=1)
        variance = 1.2 * sigma_w2 / duration + sigma_m2 / sxx
        se = np.sqrt(variance)
        q = stats.t.ppf(0.5 + confidence / 2.0, np.maximum((n - 2) / 3.0, 1.0))
        model_p = 2.0 * stats.t.sf(np.abs(slope) / se, np.maximum((n - 2) / 3.0, 1.0))
    half = np.where(np.isfinite(se), q * se, 0.0)
    return fit._replace(
        ci_low=np.fmin(fit.ci_low, slope - half),
        ci_high=np.fmax(fit.ci_high, slope + half),
        p_value=np.fmax(fit.p_value, np.where(np.isfinite(model_p), model_p, 0.0)),
    )


def _increment_scale(d_t: np.ndarray, d_y: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Robust noise of the increments per second-root, per row, unmoved by changes of drift.

    From the median absolute difference of consecutive time-normalised
    increments (a change of drift moves one such difference, a rewind or a
    rebalance spike two); the root-mean-square version where the median is
    zero (exact or mostly constant data).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(valid & (d_t > 0), d_y / np.sqrt(d_t), np.nan)
        step = np.abs(np.diff(z, axis=1)) / np.sqrt(2.0)
        robust = 1.4826 * np.nanmedian(step, axis=1)
        rms = np.sqrt(np.nanmean(step * step, axis=1))
    scale = np.where(robust > 0, robust, rms)
    return np.where(np.isfinite(scale) & (scale > 0), scale, np.inf)


def _split_noise(
    resid: np.ndarray, d_t: np.ndarray, pair: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Random-walk variance per second and measurement variance per row, from increments.

    With lag = drift + random walk (``sigma_w^2`` per second) + white
    measurement noise (``sigma_m^2``), an increment's residual has variance
    ``sigma_w^2 dt + 2 sigma_m^2`` and neighbours covary by ``-sigma_m^2``.
    ``pair`` marks increments whose predecessor is in the same segment.
    Both parts are kept non-negative.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        products = np.where(pair[:, 1:], resid[:, 1:] * resid[:, :-1], 0.0)
        pairs = pair[:, 1:].sum(axis=1)
        noise2 = np.clip(np.where(pairs > 0, -products.sum(axis=1) / pairs, 0.0), 0.0, None)
        used = d_t > 0
        walk2 = ((resid * resid).sum(axis=1) - 2.0 * noise2 * used.sum(axis=1)) / d_t.sum(axis=1)
    noise2 = np.nan_to_num(noise2)
    return np.clip(np.nan_to_num(walk2), 0.0, None), noise2


def _split_scores(
    d_t: np.ndarray,
    d_y: np.ndarray,
    valid: np.ndarray,
    bound: np.ndarray,
    cut: np.ndarray,
    *,
    alpha: float,
    min_samples: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Split statistic after each increment (> 1 rejects) and each increment's segment number."""
    k, steps = d_t.shape
    rows = np.arange(k)
    column = np.arange(steps)[None, :]
    begins = cut[:, :steps].copy()  # increment i starts a segment where sample i is a cut
    begins[:, 0] = True
    segment = np.cumsum(begins, axis=1) - 1
    width = int(segment.max(initial=0)) + 1
    flat = (rows[:, None] * width + segment).ravel()

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=values.ravel(), minlength=k * width)

    def spread(values: np.ndarray) -> np.ndarray:
        return np.asarray(values[flat].reshape(k, steps))

    seg_t = total(d_t)
    seg_n = total(valid.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(seg_t > 0, total(d_y) / seg_t, 0.0)
    resid = np.clip(d_y - spread(rate) * d_t, -bound, bound)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.where(seg_t > 0, total(np.where(valid, resid, 0.0)) / seg_t, 0.0)
    # re-centred after clipping so that each segment's partial sums end at zero again
    resid = np.where(valid, resid - spread(centre) * d_t, 0.0)
    walk2, noise2 = _split_noise(resid, d_t, valid & ~begins)
    partial = np.cumsum(resid, axis=1)
    first = ffill_index(begins)
    base = np.take_along_axis(partial - resid, first, axis=1)
    # Half of alpha to each part of the noise: the walk's bridge (Kolmogorov) and the
    # measurement noise at the two ends of a partial sum (Bonferroni over the positions).
    quantile = stats.norm.isf(alpha / 4.0 / np.maximum(seg_n, 1.0))  # per segment, not sample
    measurement = spread(quantile) * np.sqrt(2.0 * noise2)[:, None]
    walk = float(stats.kstwobign.isf(alpha / 2.0)) * np.sqrt(walk2[:, None] * spread(seg_t))
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = np.abs(partial - base) / (walk + measurement)
    # a cut after increment i is at sample i + 1; both sides keep min_samples
    last = first + spread(seg_n).astype(np.int64)  # the segment's last sample
    allowed = (
        valid & (column + 1 - first + 1 >= min_samples) & (last - (column + 1) + 1 >= min_samples)
    )
    return np.where(allowed & np.isfinite(statistic), statistic, 0.0), segment


def drift_segments(
    t: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    *,
    alpha: float = ALPHA,
    min_samples: int = MIN_SEGMENT,
    max_segments: int = MAX_SEGMENTS,
    cut: np.ndarray | None = None,
    force: np.ndarray | None = None,
) -> np.ndarray:
    """Where the drift (rate of change) of each row changes: binary segmentation.

    Each row is cut where a CUSUM test on the increments of ``y`` rejects
    "one constant drift" at ``alpha`` within a segment; the segment is split
    at its most likely change, and the split segments are tested again,
    until no segment rejects or a row has ``max_segments``. Each round
    splits every row's strongest significant segment at once (vectorised
    over rows; the loop is over rounds, at most ``max_segments - 1``).

    The model is the lag's: drift + random walk (``sigma_w^2`` per second)
    + white measurement noise (``sigma_m^2``, commit timing), both split from
    the increments' variance and lag-1 covariance around the current
    segments (:func:`_split_noise`). Under one constant drift the centred
    partial sums of the increments are a Brownian bridge (Kolmogorov
    distribution; :func:`kbp_notebook.analysis._series.drift_change` is the
    one-split, walk-only version) plus the measurement noise at their two
    ends (at most ``2 sigma_m^2``, bounded over the positions by
    Bonferroni). A split needs the partial sum to exceed the sum of both
    critical values, each at ``alpha / 2``: a driftless walk, or pure
    measurement noise, is cut with probability at most about ``alpha``.
    Keeping ``min_samples`` on each side only makes the test more
    conservative. Increments are clipped at ``CLIP_SIGMAS`` robust standard
    deviations from their segment's rate (a one-step Huber CUSUM) and
    re-centred, so that one jump -- a rewind, a rebalance spike -- neither
    looks like a change of rate nor inflates the noise and hides a real
    change elsewhere.

    Parameters
    ----------
    t, y
        Left-aligned ``(K, T)`` arrays without NaN inside the first ``n``.
    n
        ``(K,)`` sample counts.
    alpha
        Level of each split test.
    min_samples
        Fewest samples in a segment (the cut sample belongs to both sides).
    max_segments
        Most segments per row.
    cut
        Cuts to start from (a previous result); none by default.
    force
        Boolean ``(K, T - 1)`` marking increments: the segment holding them
        is split first at its most likely change, significant or not (used
        where a drain provably ended inside a regime, see
        :func:`trend_arrays`).

    Returns
    -------
    numpy.ndarray
        Boolean ``(K, T)``: True at each sample where a new segment begins
        (never at column 0; the cut sample ends the segment before it too).
    """
    k, width = t.shape
    cut = np.zeros((k, width), dtype=bool) if cut is None else cut.copy()
    if width < 2 * min_samples - 1:
        return cut
    rows = np.arange(k)
    t_f = fill_right(t, n)
    y_f = fill_right(y, n)
    valid = np.arange(width - 1)[None, :] < (n - 1)[:, None]
    d_t = np.where(valid, np.diff(t_f, axis=1), 0.0)
    d_y = np.where(valid, np.diff(y_f, axis=1), 0.0)
    bound = CLIP_SIGMAS * _increment_scale(d_t, d_y, valid)[:, None] * np.sqrt(d_t)
    count = cut.sum(axis=1) + 1

    def scores(sub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _split_scores(
            d_t[sub], d_y[sub], valid[sub], bound[sub], cut[sub],
            alpha=alpha, min_samples=min_samples,
        )  # fmt: skip

    active = rows
    if force is not None:
        active = rows[force.any(axis=1)]
        statistic, segment = scores(active)
        # the forced segment of each row: the one holding its first marked increment
        held = np.argmax(force[active], axis=1)[:, None]
        statistic = np.where(segment == np.take_along_axis(segment, held, axis=1), statistic, 0.0)
        best = np.argmax(statistic, axis=1)
        split = (statistic[np.arange(len(active)), best] > 0) & (count[active] < max_segments)
        cut[active[split], best[split] + 1] = True
        count[active[split]] += 1
    # A row that did not split keeps its segments, so its statistics stay the same: each
    # round only looks again at the rows that split in the round before.
    while len(active):
        statistic, _ = scores(active)
        best = np.argmax(statistic, axis=1)
        split = (statistic[np.arange(len(active)), best] > 1.0) & (count[active] < max_segments)
        cut[active[split], best[split] + 1] = True
        count[active[split]] += 1
        active = active[split]
    return cut


def _segment_panel(
    t: np.ndarray, y: np.ndarray, n: np.ndarray, cut: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One left-aligned row per segment: key row, first sample, ``(S, W)`` times and lags, n."""
    k, width = t.shape
    begins = cut.copy()
    if width:
        begins[:, 0] = True
    else:
        begins = np.ones((k, 1), dtype=bool)
    key, first = np.nonzero(begins)
    # a segment ends at the next cut of its key (shared sample), else at the key's last sample
    following = np.empty(len(key), dtype=np.int64)
    following[:-1] = first[1:]
    same_key = np.zeros(len(key), dtype=bool)
    same_key[:-1] = key[1:] == key[:-1]
    end = np.where(same_key, following, n[key] - 1)
    count = np.maximum(end - first + 1, 0)
    span = int(count.max(initial=0))
    index = first[:, None] + np.arange(span)[None, :]
    inside = np.arange(span)[None, :] < count[:, None]
    index = np.clip(index, 0, max(width - 1, 0))
    if width:
        ts = np.where(inside, t[key[:, None], index], np.nan)
        ys = np.where(inside, y[key[:, None], index], np.nan)
    else:
        ts = np.full((len(key), span), np.nan)
        ys = ts.copy()
    return key, first, ts, ys, count


@dataclass(frozen=True)
class SegmentFit:
    """Trend of each segment row from :func:`_segment_stats` (``(S,)`` arrays).

    ``slope``, ``ci_low``, ``ci_high``, ``p_value``, ``rho`` of the chosen
    method (NaN where ``thin``), ``slope_ols``, ``status`` (``growing``,
    ``draining``, ``stable``; ``""`` where thin), ``first_t``/``last_t``
    (seconds from the panel's ``t0``) and the fitted lag there
    (``fit_first``/``fit_last``).
    """

    slope: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray
    rho: np.ndarray
    slope_ols: np.ndarray
    status: np.ndarray
    thin: np.ndarray
    first_t: np.ndarray
    last_t: np.ndarray
    fit_first: np.ndarray
    fit_last: np.ndarray

    def merged(self, keep: np.ndarray, new: SegmentFit, order: np.ndarray) -> SegmentFit:
        """Rows ``keep`` of this fit followed by ``new``'s, then reordered by ``order``."""
        return SegmentFit(**{
            f.name: np.concatenate([getattr(self, f.name)[keep], getattr(new, f.name)])[order]
            for f in fields(SegmentFit)
        })


def _segment_stats(
    ts: np.ndarray, ys: np.ndarray, count: np.ndarray, *, method: str, confidence: float
) -> SegmentFit:
    """Slope, interval, p-value, status and fitted ends of each segment row."""
    if ts.shape[1] == 0:
        ts = np.full((len(count), 1), np.nan)
        ys = ts.copy()
    if method == "theil-sen":
        chosen = theil_sen(ts, ys, count, confidence=confidence)
        linear = ols(ts, ys).slope
    else:
        chosen = ols_trend(ts, ys, confidence=confidence)
        linear = chosen.slope
    chosen = _random_walk_floor(chosen, ts, ys, count, confidence=confidence)
    first_t = ts[:, 0]
    last_t = last_valid(ts, count)
    span = np.nan_to_num(last_t - first_t)
    thin = (count < MIN_SAMPLES) | (span <= 0)
    slope = np.where(thin, np.nan, chosen.slope)
    low = np.where(thin, np.nan, chosen.ci_low)
    high = np.where(thin, np.nan, chosen.ci_high)
    # the line as Theil-Sen anchors it: the median residual at this slope, on the raw samples
    intercept = np.nanmedian(ys - slope[:, None] * ts, axis=1)
    status = np.where(low > 0, "growing", np.where(high < 0, "draining", "stable"))
    return SegmentFit(
        slope=slope,
        ci_low=low,
        ci_high=high,
        p_value=np.where(thin, np.nan, chosen.p_value),
        rho=np.where(thin, np.nan, chosen.rho),
        slope_ols=np.where(thin, np.nan, linear),
        status=np.where(thin, "", status),
        thin=thin,
        first_t=first_t,
        last_t=last_t,
        fit_first=intercept + slope * first_t,
        fit_last=intercept + slope * last_t,
    )


@dataclass(frozen=True)
class _Segments:
    """Every key's segments, one row each sorted by key and start: key row, first sample, n, fit."""

    key: np.ndarray
    first: np.ndarray
    count: np.ndarray
    fit: SegmentFit


def _fit_segments(
    t: np.ndarray, y: np.ndarray, n: np.ndarray, cut: np.ndarray, *, method: str, confidence: float
) -> _Segments:
    """Fit a trend to each segment between the cuts."""
    key, first, ts, ys, count = _segment_panel(t, y, n, cut)
    return _Segments(key, first, count,
                     _segment_stats(ts, ys, count, method=method, confidence=confidence))


def _split_floored(
    t: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    cut: np.ndarray,
    segments: _Segments,
    *,
    method: str,
    confidence: float,
) -> _Segments | None:
    """Cut again where a drain provably ended inside a regime; None when none did.

    Lag cannot drain below zero. Where even the shallowest drain in a regime's interval,
    drawn through the regime's middle, is below zero at its end, the drain ended inside
    the regime (caught up): split it there even if the noise hides the change. Only
    those keys are cut again (``cut`` is updated in place) and refitted.
    """
    fit = segments.fit
    middle = 0.5 * (fit.fit_first + fit.fit_last)
    half = 0.5 * (fit.last_t - fit.first_t)
    floored = (fit.status == "draining") & (middle + fit.ci_high * half < 0)
    if not floored.any():
        return None
    key, first = segments.key, segments.first
    rows = np.unique(key[floored])
    force = np.zeros((len(rows), max(t.shape[1] - 1, 0)), dtype=bool)
    force[np.searchsorted(rows, key[floored]), first[floored]] = True
    cut[rows] = drift_segments(t[rows], y[rows], n[rows], cut=cut[rows], force=force)
    new = _fit_segments(t[rows], y[rows], n[rows], cut[rows], method=method,
                        confidence=confidence)
    keep = ~np.isin(key, rows)
    key = np.concatenate([key[keep], rows[new.key]])
    first = np.concatenate([first[keep], new.first])
    count = np.concatenate([segments.count[keep], new.count])
    order = np.lexsort((first, key))
    return _Segments(key[order], first[order], count[order], fit.merged(keep, new.fit, order))


def trend_arrays(
    panel: Panel, *, method: str, confidence: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Current-regime table and segment table for a panel whose ``lag`` column is the series."""
    valid = ~np.isnan(panel["lag"])
    panel = compact(panel, valid)
    t, y, n = panel.time_s, panel["lag"], panel.n
    cut = drift_segments(t, y, n)
    segments = _fit_segments(t, y, n, cut, method=method, confidence=confidence)
    for _ in range(FLOOR_PASSES):
        refit = _split_floored(t, y, n, cut, segments, method=method, confidence=confidence)
        if refit is None:
            break
        segments = refit
    return _trend_tables(panel, segments)


def _trend_tables(panel: Panel, segments: _Segments) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the per-key table (its current regime) and the per-segment table."""
    key, count, fit, n = segments.key, segments.count, segments.fit, panel.n
    position = np.arange(len(key))
    last_of_key = np.ones(len(key), dtype=bool)
    last_of_key[:-1] = key[1:] != key[:-1]
    first_of_key = np.ones(len(key), dtype=bool)
    first_of_key[1:] = key[1:] != key[:-1]
    # Growth "began" at the first of the run of growing segments that ends now; a run that
    # starts with the data began before the recording (no onset inside the data).
    growing = fit.status == "growing"
    run_begins = growing & (first_of_key | ~np.roll(growing, 1))
    run_first = np.maximum.accumulate(np.where(run_begins, position, -1))
    current = position[last_of_key]  # one per key, in key order
    began = np.clip(run_first[current], 0, None)
    onset_s = np.where(growing[current] & ~first_of_key[began], fit.first_t[began], np.nan)
    reason = np.where(
        n < MIN_SAMPLES,
        np.char.add(
            np.char.add("only ", n.astype(str)),
            f" sample(s) with a committed offset; need at least {MIN_SAMPLES}",
        ),
        np.where(fit.thin[current], "all samples at one time; need samples over time", ""),
    )
    status = pd.Series(fit.status, dtype="string").replace("", pd.NA)
    table = panel.keys.copy()
    table["slope_per_s"] = fit.slope[current]
    table["ci_low"] = fit.ci_low[current]
    table["ci_high"] = fit.ci_high[current]
    table["p_value"] = fit.p_value[current]
    table["n"] = count[current].astype(np.int64)
    table["status"] = status.iloc[current].array
    table["onset"] = to_timestamps(panel.t0, onset_s)
    table["regime_start"] = to_timestamps(panel.t0, fit.first_t[current])
    table["segments"] = np.bincount(key, minlength=len(n)).astype(np.int64)
    table["slope_ols_per_s"] = fit.slope_ols[current]
    table["rho"] = fit.rho[current]
    table["reason"] = pd.array(reason, dtype="string")
    frame = panel.keys.iloc[key].reset_index(drop=True)
    frame["segment"] = position - np.flatnonzero(first_of_key)[np.cumsum(first_of_key) - 1]
    frame["start"] = to_timestamps(panel.t0, fit.first_t)
    frame["end"] = to_timestamps(panel.t0, fit.last_t)
    frame["slope_per_s"] = fit.slope
    frame["ci_low"] = fit.ci_low
    frame["ci_high"] = fit.ci_high
    frame["p_value"] = fit.p_value
    frame["n"] = count.astype(np.int64)
    frame["status"] = status.array
    frame["fitted_lag_start"] = fit.fit_first
    frame["fitted_lag_end"] = fit.fit_last
    frame["current"] = last_of_key
    return table, frame


def lag_trend(
    lag: pd.DataFrame,
    *,
    by: str | Iterable[str] = ("group", "topic"),
    method: str = "theil-sen",
    window: object = None,
    confidence: float = 0.95,
) -> LagTrend:
    """Regimes of lag per key and the current one: slope (messages/s), interval, status, onset.

    Parameters
    ----------
    lag
        LAG frame. Partition lags are summed per snapshot when ``by`` leaves
        out ``partition``.
    by
        Key columns: a subset of ``("group", "topic", "partition")``
        (``cluster`` is always part of the key).
    method
        ``"theil-sen"`` (robust, default) or ``"ols"``; decides
        ``slope_per_s``, the interval and ``status``. ``slope_ols_per_s`` is
        always given.
    window
        Only the last part of each series: a duration (``"30min"``, or a
        bare number of seconds); None for all.
    confidence
        Level of ``ci_low``/``ci_high`` and of the ``status`` decision.

    Returns
    -------
    LagTrend
        ``.table`` one row per key (its current regime), ``.segments`` one
        row per regime, ``.as_of``; see :class:`LagTrend`.

    Raises
    ------
    KbpInputError
        Bad frame, ``by``, ``method``, ``window`` or ``confidence``.
    KbpDataError
        A single key with too few samples (multi-key results give NaN and a
        ``reason`` instead).

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> trend = kbp.lag_trend(kbp.load_sample("producer-burst").lag)  # doctest: +SKIP
    >>> trend.table[["group", "topic", "slope_per_s", "status", "onset"]]  # doctest: +SKIP
    >>> trend.segments[["start", "end", "slope_per_s", "status"]]  # doctest: +SKIP
    """
    if method not in METHODS:
        raise KbpInputError(f"method={method!r} is not one of {METHODS}.")
    if not 0 < confidence < 1:
        raise KbpInputError(f"confidence={confidence!r} must be between 0 and 1, e.g. 0.95.")
    keys = normalise_by(by)
    frame = prepare_lag(lag)
    panel = apply_window(build_panel(frame, by=keys, columns=("lag",)), window)
    with quiet():
        # chunks of series keep the regime arrays small; no loop per series
        parts = [
            trend_arrays(sub_panel(panel, rows), method=method, confidence=confidence)
            for rows in split_rows(panel.size, KEYS_PER_CHUNK)
        ]
    table = pd.concat([part[0] for part in parts], ignore_index=True)
    segments = pd.concat([part[1] for part in parts], ignore_index=True)
    require_single_ok(
        "lag_trend",
        table[list(keys)],
        table["reason"].to_numpy(),
        table["reason"].eq("").to_numpy(),
    )
    return LagTrend(
        table=table,
        segments=segments,
        method=method,
        confidence=confidence,
        as_of=pd.Timestamp(frame["time"].max()),
    )
