"""Is lag growing? Robust slope, honest interval and onset, per key.

Method
------
``slope_per_s`` is the Theil--Sen slope of lag against time (the median of
pairwise slopes), which shrugs off rebalance spikes and single bad samples.

* Series of up to ``EXACT_SAMPLES`` (32) points use every pair, exactly like
  :func:`scipy.stats.theilslopes`.
* Longer series are first reduced to ``EXACT_SAMPLES`` consecutive blocks,
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
p-value is the Mann--Kendall test with the same inflated variance. This is a
first-order correction: for a pure random walk the intervals stay somewhat
optimistic, which is why ``status`` also needs the whole interval on one side
of zero, never just the sign of the slope.

``slope_ols_per_s`` is the least-squares slope on all samples, for
comparison (a large gap to the Theil--Sen slope means outliers).

``onset`` is where growth began: the most likely single change of the
lag's rate of change (a CUSUM test on the increments, 1% level, see
:func:`kbp_notebook.analysis._series.drift_change`), reported when the
change is significant and the rate after it is positive and higher than
before. A series that grows from its first sample has no onset inside the
data (NaT): growth began before the recording. (A test on the levels, such
as an F-test of a segmented line, is not used: a random walk fits a
spurious break a third of the time.) Where such a change is found, the
residual autocorrelation for the interval is measured around the best
continuous two-segment line instead of the straight line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from kbp_notebook.analysis._result import Result
from kbp_notebook.analysis._series import (
    Panel,
    apply_window,
    build_panel,
    compact,
    drift_change,
    hinge_fit,
    hinge_predict,
    lag1_autocorr,
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

__all__ = ["LagTrend", "lag_trend"]

#: Longest series fitted with all pairs; longer ones use this many block medians.
EXACT_SAMPLES = 32
#: Fewest samples for a trend with an interval.
MIN_SAMPLES = 4
#: Series per chunk in the pairwise step (bounds memory to ~chunk * 2016 floats).
CHUNK = 4096

METHODS = ("theil-sen", "ols")


@dataclass(frozen=True, repr=False)
class LagTrend(Result):
    """Slope of lag per key with interval, status and onset.

    Attributes
    ----------
    table
        One row per key: key columns, ``slope_per_s``, ``ci_low``, ``ci_high``
        (messages/s), ``p_value``, ``n``, ``status`` (growing / stable /
        draining, NA where too thin), ``onset`` (UTC, NaT if none),
        ``slope_ols_per_s``, ``rho`` (lag-1 autocorrelation used), ``reason``.
    method
        ``"theil-sen"`` or ``"ols"``.
    confidence
        Confidence level of the interval.
    """

    method: str = "theil-sen"
    confidence: float = 0.95

    plot_builder: ClassVar[str] = "plot_lag_trend"
    title: ClassVar[str] = "Lag trend"

    def summary_lines(self) -> list[str]:
        """One line per status count."""
        counts = self.table["status"].value_counts()
        parts = [f"{int(counts.get(s, 0))} {s}" for s in ("growing", "stable", "draining")]
        return [
            f"{self.method} slope, {self.confidence:.0%} interval (autocorrelation-adjusted)",
            ", ".join(parts),
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


def _theil_sen_rows(
    t: np.ndarray, y: np.ndarray, n: np.ndarray, z: float, hinge: dict[str, np.ndarray] | None
) -> dict[str, np.ndarray]:
    """Theil--Sen, Sen interval and Mann--Kendall p on rows of at most EXACT_SAMPLES points.

    Works in chunks of ``CHUNK`` rows so the pairwise slopes never exceed
    ``CHUNK * EXACT_SAMPLES * (EXACT_SAMPLES - 1) / 2`` floats.
    """
    k, width = t.shape
    i, j = np.triu_indices(width, 1)
    names = ("slope", "ci_low", "ci_high", "p_value", "rho")
    out = {name: np.full(k, np.nan) for name in names}
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
        if hinge is not None:
            # Where a change of slope is significant, the straight line's residuals carry the
            # misfit as spurious autocorrelation; measure the noise around the hinge instead.
            part = {name: value[lo:hi] for name, value in hinge.items()}
            rho_hinge = lag1_autocorr(yc - hinge_predict(part, tc))
            rho = np.where(part["significant"], np.minimum(rho, rho_hinge), rho)
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
        out["slope"][lo:hi] = slope
        out["ci_low"][lo:hi] = np.where(ok, slopes[rows, li], np.nan)
        out["ci_high"][lo:hi] = np.where(ok, slopes[rows, ui], np.nan)
        out["p_value"][lo:hi] = 2.0 * stats.norm.sf(np.abs(zscore))
        out["rho"][lo:hi] = np.clip(np.nan_to_num(rho), 0.0, 0.99)
    return out


def theil_sen(
    t: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    *,
    confidence: float,
    hinge: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Vectorised Theil--Sen with autocorrelation-inflated Sen interval and MK p-value.

    Parameters
    ----------
    t, y
        Left-aligned ``(K, T)`` arrays, NaN-padded, no NaN inside the first ``n``.
    n
        ``(K,)`` sample counts.
    confidence
        Interval level.
    hinge
        Optional :func:`hinge_fit` result; where significant, the residual
        autocorrelation is measured around it rather than the straight line.

    Returns
    -------
    dict
        ``slope``, ``ci_low``, ``ci_high``, ``p_value``, ``rho`` per row.
    """
    if t.shape[1] > EXACT_SAMPLES:
        long = n > EXACT_SAMPLES
        tb, yb = _block_reduce(t, y, n)
        t = np.where(long[:, None], tb, t[:, :EXACT_SAMPLES])
        y = np.where(long[:, None], yb, y[:, :EXACT_SAMPLES])
        n = np.minimum(n, EXACT_SAMPLES)
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    return _theil_sen_rows(t, y, n, z, hinge)


def ols_trend(
    t: np.ndarray,
    y: np.ndarray,
    *,
    confidence: float,
    hinge: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """OLS slope with an AR(1)-inflated t interval, per row."""
    fit = ols(t, y)
    rho = lag1_autocorr(fit["resid"])
    if hinge is not None:
        rho_hinge = lag1_autocorr(y - hinge_predict(hinge, t))
        rho = np.where(hinge["significant"], np.minimum(rho, rho_hinge), rho)
    rho = np.clip(np.nan_to_num(rho), 0.0, 0.99)
    n = fit["n"].astype(np.float64)
    n_eff = np.maximum(n * (1 - rho) / (1 + rho), 3.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(fit["sse"] / np.maximum(n - 2, 1) / fit["sxx"] * variance_inflation(rho))
        q = stats.t.ppf(0.5 + confidence / 2.0, n_eff - 2)
        tstat = np.where(se > 0, fit["slope"] / se, np.where(fit["slope"] != 0, np.inf, 0.0))
    p_value = 2.0 * stats.t.sf(np.abs(tstat), n_eff - 2)
    return {
        "slope": fit["slope"],
        "ci_low": fit["slope"] - q * se,
        "ci_high": fit["slope"] + q * se,
        "p_value": p_value,
        "rho": rho,
    }


def _random_walk_floor(
    fit: dict[str, np.ndarray],
    t: np.ndarray,
    y: np.ndarray,
    n: np.ndarray,
    *,
    confidence: float,
) -> dict[str, np.ndarray]:
    """Widen the interval to at least what a random walk plus measurement noise implies.

    Lag is a cumulative quantity: a random walk with drift, seen through
    commit-timing noise. The variance of a slope fitted to levels is then
    about ``6/5 sigma_w^2 / T + sigma_m^2 / Sxx`` (OLS on Brownian motion,
    plus white noise), with ``sigma_w^2``, ``sigma_m^2`` split by
    :func:`noise_components`. The AR(1) inflation alone is far too
    optimistic for a walk (it called ~40 % of driftless walks a trend in
    our tests); with this floor the rate is near the nominal level.
    """
    slope = fit["slope"]
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
    out = dict(fit)
    out["ci_low"] = np.fmin(fit["ci_low"], slope - half)
    out["ci_high"] = np.fmax(fit["ci_high"], slope + half)
    out["p_value"] = np.fmax(fit["p_value"], np.where(np.isfinite(model_p), model_p, 0.0))
    return out


def trend_arrays(panel: Panel, *, method: str, confidence: float) -> pd.DataFrame:
    """Compute the trend table body for a panel whose ``lag`` column is the series."""
    valid = ~np.isnan(panel["lag"])
    panel = compact(panel, valid)
    t, y, n = panel.time_s, panel["lag"], panel.n
    span = np.nan_to_num(panel.last(t) - t[:, 0] if t.shape[1] else np.zeros(len(n)))
    if t.shape[1] == 0:
        t = np.full((len(n), 1), np.nan)
        y = t.copy()
    change = drift_change(t, y, n)
    # A random walk fits a spurious hinge often; fit (and trust) the hinge only where
    # the increment-based CUSUM test finds a change of rate -- usually few rows.
    rows = np.flatnonzero(change["significant"])
    hinge = {
        "significant": np.zeros(len(n), dtype=bool),
        **{
            name: np.full(len(n), np.nan)
            for name in ("origin", "level", "tau", "slope_before", "slope_after", "f_stat")
        },
    }
    if len(rows):
        fitted = hinge_fit(t[rows], y[rows], n[rows])
        for name, values in fitted.items():
            hinge[name][rows] = values
    if method == "theil-sen":
        chosen = theil_sen(t, y, n, confidence=confidence, hinge=hinge)
        linear = {"slope": ols(t, y)["slope"]}
    else:
        chosen = linear = ols_trend(t, y, confidence=confidence, hinge=hinge)
    chosen = _random_walk_floor(chosen, t, y, n, confidence=confidence)
    thin = (n < MIN_SAMPLES) | (span <= 0)
    reason = np.where(
        n < MIN_SAMPLES,
        np.char.add(
            np.char.add("only ", n.astype(str)),
            f" sample(s) with a committed offset; need at least {MIN_SAMPLES}",
        ),
        np.where(span <= 0, "all samples at one time; need samples over time", ""),
    )
    low = np.where(thin, np.nan, chosen["ci_low"])
    high = np.where(thin, np.nan, chosen["ci_high"])
    status = np.where(low > 0, "growing", np.where(high < 0, "draining", "stable"))
    onset_ok = (
        ~thin
        & change["significant"]
        & (change["rate_after"] > 0)
        & (change["rate_after"] > change["rate_before"])
    )
    onset = to_timestamps(panel.t0, np.where(onset_ok, change["tau"], np.nan))
    table = panel.keys.copy()
    table["slope_per_s"] = np.where(thin, np.nan, chosen["slope"])
    table["ci_low"] = low
    table["ci_high"] = high
    table["p_value"] = np.where(thin, np.nan, chosen["p_value"])
    table["n"] = n.astype(np.int64)
    table["status"] = pd.Series(status, dtype="string").mask(thin).array
    table["onset"] = onset
    table["slope_ols_per_s"] = np.where(thin, np.nan, linear["slope"])
    table["rho"] = np.where(thin, np.nan, chosen["rho"])
    table["reason"] = pd.array(reason, dtype="string")
    return table


def lag_trend(
    lag: pd.DataFrame,
    *,
    by: str | Iterable[str] = ("group", "topic"),
    method: str = "theil-sen",
    window: object = None,
    confidence: float = 0.95,
) -> LagTrend:
    """Slope of lag per key (messages/s), its interval, status and onset.

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
        ``.table`` one row per key, see :class:`LagTrend`.

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
    """
    if method not in METHODS:
        raise KbpInputError(f"method={method!r} is not one of {METHODS}.")
    if not 0 < confidence < 1:
        raise KbpInputError(f"confidence={confidence!r} must be between 0 and 1, e.g. 0.95.")
    keys = normalise_by(by)
    frame = prepare_lag(lag)
    panel = apply_window(build_panel(frame, by=keys, columns=("lag",)), window)
    with quiet():
        # chunks of series keep temporaries small; no loop per series
        table = pd.concat(
            [
                trend_arrays(sub_panel(panel, rows), method=method, confidence=confidence)
                for rows in split_rows(panel.size)
            ],
            ignore_index=True,
        )
    require_single_ok(
        "lag_trend",
        table[list(keys)],
        table["reason"].to_numpy(),
        table["reason"].eq("").to_numpy(),
    )
    return LagTrend(table=table, method=method, confidence=confidence)
