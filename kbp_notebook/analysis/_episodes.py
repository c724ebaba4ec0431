"""When did a key fall behind, and when was it back? Baselines and episodes.

The rules, as a Kafka engineer would state them:

* A consumer that keeps up comes back to its usual lag at least every
  ``CATCH_UP_WINDOW_S`` (30 s; commits happen every 5 s by default, polls far
  more often). So the lag's **lower envelope** -- the least lag in a 30 s
  window around each snapshot -- is what a backlog looks like without the
  commit sawtooth.
* The key's **own baseline** is read from the snapshots where that envelope
  sits near its lowest level (within ``COMMIT_INTERVAL_S`` of production):
  ``usual_lag`` is the 95th percentile of the lag there (the top of its
  sawtooth, or its steady small lag).
* The key is **behind** while its envelope stays above the usual lag by more
  than the larger of: the sawtooth's own height, ``IN_FLIGHT_S`` (10 s) of its
  typical production, and ``MIN_MARGIN_MESSAGES``. A rebalance blip or a slow
  batch that recovers inside 30 s never gets there.
* An **episode** starts at the last snapshot at or below the usual lag before
  the key fell behind, peaks at its largest lag, and ends at the first
  snapshot back at or below the usual lag (NaT while it is not). Episodes
  closer than 30 s are one episode.

None of these numbers is fitted to a recording: 5 s is Kafka's default
``auto.commit.interval.ms``, and 10 s / 30 s are what "keeping up" means in
an on-call sense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from kbp_notebook.analysis._keyed import KeyBlock
from kbp_notebook.analysis._series import lag1_autocorr, ols, quiet, variance_inflation

__all__ = [
    "CATCH_UP_WINDOW_S",
    "COMMIT_INTERVAL_S",
    "IN_FLIGHT_S",
    "Baseline",
    "Span",
    "baseline_of",
    "find_spans",
    "slope_interval",
]

#: Kafka's default auto.commit.interval.ms, in seconds.
COMMIT_INTERVAL_S = 5.0
#: A consumer that keeps up is back at its usual lag within this many seconds.
CATCH_UP_WINDOW_S = 30.0
#: More than this many seconds of production beyond the usual lag is "behind".
IN_FLIGHT_S = 10.0
#: Below this many messages nobody is behind, whatever the rates (idle topics).
MIN_MARGIN_MESSAGES = 10.0


@dataclass(frozen=True)
class Baseline:
    """A key's own normal lag.

    Attributes
    ----------
    floor
        Lowest usual lag (10th percentile of the lower envelope).
    usual_lag
        Top of the usual lag (95th percentile of the lag at baseline).
    margin
        How far above ``usual_lag`` the envelope must stay to count as behind.
    produce_rate_per_s
        Typical produce rate (median over the snapshots).
    window_s
        The catch-up window used for the envelope.
    envelope
        ``(T,)`` lower envelope of the key's total lag.
    """

    floor: float
    usual_lag: float
    margin: float
    produce_rate_per_s: float
    window_s: float
    envelope: np.ndarray

    @property
    def behind_level(self) -> float:
        """Envelope level above which the key is behind."""
        return self.usual_lag + self.margin


@dataclass(frozen=True)
class Span:
    """Indices of one episode into the key's snapshot arrays (``end`` -1 while not over)."""

    start: int
    peak: int
    end: int
    began_before_data: bool


def window_min(t: np.ndarray, y: np.ndarray, before_s: float, after_s: float) -> np.ndarray:
    """Least value of ``y`` over ``[t - before_s, t + after_s]`` for every sample (NaN ignored).

    A sparse table of minima answers every window in ``O(T log T)`` without a loop per sample.
    """
    n = len(y)
    if n == 0:
        return np.zeros(0)
    values = np.where(np.isnan(y), np.inf, y)
    lo = np.searchsorted(t, t - before_s, side="left")
    hi = np.searchsorted(t, t + after_s, side="right") - 1
    levels = [values]
    width = 1
    while 2 * width <= n:
        prev = levels[-1]
        levels.append(np.minimum(prev[:-width], prev[width:]))
        width *= 2
    length = hi - lo + 1
    k = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
    out = np.empty(n)
    for level in np.unique(k).tolist():
        rows = k == level
        table = levels[level]
        out[rows] = np.minimum(table[lo[rows]], table[hi[rows] - (1 << level) + 1])
    out[np.isinf(out)] = np.nan
    return out


def lower_envelope(t: np.ndarray, y: np.ndarray, window_s: float) -> np.ndarray:
    """Least value of ``y`` within ``window_s`` centred on each sample (NaN ignored)."""
    return window_min(t, y, window_s / 2.0, window_s / 2.0)


def baseline_of(block: KeyBlock) -> Baseline:
    """Return the key's own baseline (see the module docstring for the rules)."""
    t, y = block.t, block.total_lag
    step = block.step_s
    window = max(CATCH_UP_WINDOW_S, 4.0 * step) if np.isfinite(step) else CATCH_UP_WINDOW_S
    with quiet():
        envelope = lower_envelope(t, y, window)
        produced = np.diff(block.total_log_end) / np.diff(t) if len(t) > 1 else np.array([])
        rate = float(np.nanmedian(produced)) if np.isfinite(produced).any() else 0.0
        rate = max(rate, 0.0)
        floor = float(np.nanquantile(envelope, 0.10))
        # at baseline: back near the floor both shortly before and shortly after (a steep
        # drain or the first seconds of a build-up touch the floor on one side only)
        before = window_min(t, y, window / 2.0, 0.0)
        after = window_min(t, y, 0.0, window / 2.0)
        near = floor + rate * COMMIT_INTERVAL_S + MIN_MARGIN_MESSAGES
        near_floor = (before <= near) & (after <= near)
        if near_floor.sum() < 3:
            near_floor = envelope <= np.nanquantile(envelope, 0.25)
        usual = float(np.nanquantile(y[near_floor], 0.95))
    margin = max(usual - floor, rate * IN_FLIGHT_S, MIN_MARGIN_MESSAGES)
    return Baseline(
        floor=floor,
        usual_lag=usual,
        margin=margin,
        produce_rate_per_s=rate,
        window_s=window,
        envelope=envelope,
    )


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive index ranges where ``mask`` is True."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def find_spans(block: KeyBlock, base: Baseline) -> list[Span]:
    """Return the key's episodes as index spans, oldest first."""
    t, y = block.t, block.total_lag
    behind = np.nan_to_num(base.envelope, nan=-np.inf) > base.behind_level
    runs = _runs(behind)
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and t[a] - t[merged[-1][1]] < base.window_s:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    spans: list[Span] = []
    y_filled = np.nan_to_num(y, nan=-np.inf)
    at_baseline = np.nan_to_num(y, nan=np.inf) <= base.usual_lag
    previous_end = 0
    for index, (a, _b) in enumerate(merged):
        # the envelope rose half a window after the lag did: look back from there
        look_from = int(np.searchsorted(t, t[a] - base.window_s / 2.0, side="left"))
        candidates = np.flatnonzero(at_baseline[previous_end : look_from + 1]) + previous_end
        began_before = len(candidates) == 0
        start = int(candidates[-1]) if len(candidates) else previous_end
        limit = merged[index + 1][0] if index + 1 < len(merged) else len(t)
        peak = start + int(np.argmax(y_filled[start:limit]))
        after = np.flatnonzero(at_baseline[peak + 1 : limit]) + peak + 1
        end = int(after[0]) if len(after) else -1
        if spans and spans[-1].end == -1:
            # the previous one never came back: this is the same episode continuing
            last = spans.pop()
            peak = last.peak if y_filled[last.peak] >= y_filled[peak] else peak
            start, began_before = last.start, last.began_before_data
        spans.append(Span(start=start, peak=peak, end=end, began_before_data=began_before))
        previous_end = end if end >= 0 else peak
    return spans


def slope_interval(
    t: np.ndarray, y: np.ndarray, *, confidence: float
) -> tuple[float, float, float]:
    """Least-squares slope of ``y`` on ``t`` with an AR(1)-inflated interval.

    Returns ``(slope, low, high)``; NaNs when fewer than three samples.
    """
    keep = ~(np.isnan(t) | np.isnan(y))
    if keep.sum() < 3:
        return (float("nan"),) * 3
    tt, yy = t[keep][None, :], y[keep][None, :]
    with quiet():
        fit = ols(tt, yy)
        n = float(fit.n[0])
        inflation = float(variance_inflation(lag1_autocorr(fit.resid))[0])
        n_eff = max(n / inflation, 3.0)
        se = np.sqrt(fit.sse[0] / max(n - 2.0, 1.0) / fit.sxx[0] * inflation)
        q = float(stats.t.ppf(0.5 + confidence / 2.0, max(n_eff - 2.0, 1.0)))
    slope = float(fit.slope[0])
    half = q * float(se) if np.isfinite(se) else float("nan")
    return slope, slope - half, slope + half
