"""When will the backlog be gone? Rates, ETA with a calibrated interval, retention risk.

Model
-----
Per partition, over the chosen span (``window``, or by default since the
last significant change of drain rate, found by a CUSUM test on the lag
increments, see :func:`kbp_notebook.analysis._series.drift_change`),
offsets are cumulative counts, so lag behaves as a **random walk with
drift** ``-v`` (``v`` = consume rate - produce rate, the net drain
rate) observed through **measurement noise** (commit timing jitter: the
committed offset trails what has really been processed by a varying amount).

* ``produce_rate`` and ``consume_rate`` are the log-end and committed offset
  advances over the span divided by its length (the maximum-likelihood drift
  of a random walk); their difference ``v`` is the net drain rate.
* From the lag increments we split the noise into its two parts by the
  method of moments: measurement noise makes successive increments
  negatively correlated (``cov = -sigma_m^2``), the random walk adds
  ``sigma_w^2`` per second. Then ``var(v_hat) = sigma_w^2 / T + 2 sigma_m^2 / T^2``
  for a span of ``T`` seconds.
* The truth we forecast is the time at which the *same process*, continued,
  reaches zero lag. At that time ``t``, ``L - v_hat t`` (``L`` = current lag)
  has variance ``sigma_m^2 + sigma_w^2 t + var(v_hat) t^2`` (today's
  measurement error, the walk's wandering until ``t``, and the error of our
  rate, all independent). The interval is every ``t >= 0`` at which
  ``|L - v_hat t|`` is within ``q`` standard deviations, ``q`` the Student-t
  quantile for ``confidence`` -- a Fieller-style inversion that is solved in
  closed form (a quadratic in ``t``) for all partitions at once. It is
  skewed like drain times are, and its upper end is ``inf`` whenever the
  data cannot rule out that the backlog never drains.
* Real drains do not hold one rate: load, batch sizes and members finishing
  move it. Where the span's net rate moved more than the noise explains (the
  span cut into ``DRIFT_BLOCKS`` blocks, Cochran's Q at 5 %), the rate to come
  gets the excess variance of the blocks' rates on top of ``var(v_hat)``
  (:func:`rate_drift_variance`); where it held, nothing is added. It widens
  the interval, the point ETA is unchanged. A rate that keeps wandering after
  the recording is still not covered as often as claimed (measured in
  ``benchmarks/backtest_drain.py`` and ``test_drain.py``).
* A recording sees the drain only at a snapshot: the lag crosses the target
  between two snapshots, and the first one that shows it comes up to one
  snapshot interval later. The slow end is therefore moved to the first
  snapshot at or after it (:func:`seen_at`; snapshots every ``duration / (n -
  1)`` seconds of the span). The map is monotone, so the interval covers both
  the crossing and the snapshot that shows it at least as often as the band
  covers the crossing. Without it an interval narrower than a snapshot
  interval (little noise, sparse snapshots) missed the drain a snapshot
  showed at a third to all of the moments (synthetic backtest: 49 % coverage).
* ``tests/unit/analysis/test_drain.py`` checks the coverage on simulated
  random walks, on measurement noise and on both, over 200 seeds each, and
  against the snapshot that shows the drain with 20 s snapshots over 600
  seeds, and prints it.

Changes the span does not show yet: the last ``MIN_SAMPLES`` increments are
tested against the span's trend (robust scale, all in the same direction,
see :func:`recent_regime_start`); a switch from growth to draining is so
seen within a few snapshots instead of when the CUSUM test gets significant.

**Drained** means back at the healthy in-flight lag, not zero: a consumer
committing per batch always has a few batches in flight. ``target_lag``
(default ``"auto"``) is that level, estimated per series from its history
before the peak (:func:`healthy_lag`; zero when the recording does not show
one), or given in messages. A partition also counts as caught up when its
lag came back within measurement noise (or one snapshot interval's worth
of produced messages) of the target and is not significantly growing.

A key (default group + topic) is first forecast from its **total** lag and
total offsets -- the same model on the summed series -- because a consumer
moves its capacity between the partitions it owns: a partition it has not
got to yet reads "never" on its own while the key drains. The per-partition
forecasts stay in ``.partitions``; ``slowest_partition`` names the latest.
That reading assumes capacity moves freely. It does not move between
*members*: a member whose own partitions are drained stops contributing, and
the total drain rate falls (:func:`members_finish`). So, where the owners
are known (``consumer_id``, two or more members), the key's ETA and interval
come from its members, each forecast from its own partitions' total over the
key's span; where they are not, the ETA stays the total's and the slow end is
bounded by every partition draining at its own current rate (its share of
its member's capacity can only grow as the member's other partitions
finish). See :func:`_members_reading`; measured in
``benchmarks/backtest_drain.py``.
``retention_loss_s`` (where
``log_start_offset`` is known) is the soonest time at which a partition's
committed offset would fall behind its log start offset at current rates
(0 if it already has, ``inf`` if never; a log start that does not move never
catches up). With topic configs, :func:`kbp_notebook.analysis.retention_risk`
also forecasts from ``retention.bytes`` / ``retention.ms``.

Caveats: the forecast assumes today's rates continue; it ignores the
first-passage subtlety that a noisy walk can touch zero before its mean
path does (small when the drift dominates the noise); without owner columns
the ETA assumes capacity moves freely, and is early where members own
unequal shares of the backlog (the slow end allows for it); a rebalance
during the drain changes the members it assumed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from kbp_notebook.analysis._result import Result
from kbp_notebook.analysis._series import (
    Panel,
    build_panel,
    compact,
    concat_rows,
    drift_change,
    noise_components,
    normalise_by,
    owner_ids,
    parse_window,
    prepare_lag,
    quiet,
    require_single_ok,
    split_rows,
    sub_panel,
    to_timestamps,
)
from kbp_notebook.analysis.retention import retention_loss_observed
from kbp_notebook.errors import KbpInputError

__all__ = ["DrainForecast", "members_finish", "time_to_drain"]

#: Fewest samples in the span for a rate and its uncertainty.
MIN_SAMPLES = 4

#: Level of the test that the last few increments left the span's trend.
RECENT_CONFIDENCE = 0.99

#: The healthy level counts only if the backlog rose at least this many times above it.
HEALTHY_RISE = 10.0

#: A committed offset stepping back by more than this many robust deviations was rewound.
REWIND_SCALES = 5.0

#: Share of the samples up to the peak that the lag must have spent at or below the healthy level.
HEALTHY_QUANTILE = 0.25


def healthy_lag(lag: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Estimate each series' healthy in-flight lag from its history (0 when there is none).

    A consumer committing per batch never reaches zero lag: it returns to
    the few batches it has in flight. That level is read from the samples up
    to the series' peak (before the backlog built up): their lower quartile,
    a level the lag held at least a quarter of the time. It counts only when
    there are at least ``2 * MIN_SAMPLES`` such samples and the peak rose
    ``HEALTHY_RISE`` times above it -- otherwise (a recording that starts
    inside the backlog, a steady series) the target stays zero.

    Parameters
    ----------
    lag
        Left-aligned ``(K, T)`` lag, NaN padded.
    n
        ``(K,)`` samples per row.

    Returns
    -------
    numpy.ndarray
        ``(K,)`` messages.
    """
    if lag.shape[1] == 0:
        return np.zeros(lag.shape[0])
    filled = np.where(np.isnan(lag), -np.inf, lag)
    peak_at = np.argmax(filled, axis=1)
    peak = filled[np.arange(lag.shape[0]), peak_at]
    index = np.arange(lag.shape[1])[None, :]
    before = np.where(index <= peak_at[:, None], lag, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.nanquantile(before, HEALTHY_QUANTILE, axis=1)
        usable = (
            (peak_at + 1 >= 2 * MIN_SAMPLES)
            & (level >= 0)
            & (peak > HEALTHY_RISE * np.maximum(level, 1.0))
            & (n > 0)
        )
    return np.where(usable, level, 0.0)


def since_last_rewind(panel: Panel) -> Panel:
    """Keep each series' samples from the last time its committed offset moved backwards.

    A reset or seek moves the committed offset back: the offsets before it
    belong to another process (a rate measured across it would count the
    rewind as negative consumption). Rates are measured after it only; with
    fewer than ``MIN_SAMPLES`` samples since, the forecast says it needs more.
    A step back counts as a rewind when it is larger than ``REWIND_SCALES``
    robust standard deviations of the series' steps (a committed offset read
    with jitter can step back a little without anyone rewinding it).
    """
    committed = panel["committed_offset"]
    if committed.shape[1] < 2:
        return panel
    steps = np.diff(committed, axis=1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmedian(steps, axis=1)
        scale = 1.4826 * np.nanmedian(np.abs(steps - centre[:, None]), axis=1)
        back = steps < -REWIND_SCALES * np.fmax(scale, 1.0)[:, None]
    index = np.arange(1, committed.shape[1])[None, :]
    start = np.where(back, index, 0).max(axis=1)
    if not start.any():
        return panel
    return compact(panel, np.arange(committed.shape[1])[None, :] >= start[:, None])


def robust_step_variance(t: np.ndarray, y: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Variance per second of each row's detrended increments, from their median absolute deviation.

    Treating all the noise as random walk gives ``var(rate over T) = s^2 / T``,
    which is conservative for measurement noise (``2 sigma_m^2 / T^2``); the
    median keeps one burst (a rebalance, a producer spike) from hiding a
    change.
    """
    d_y, d_t = np.diff(y, axis=1), np.diff(t, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        u = (d_y - slope[:, None] * d_t) / np.sqrt(d_t)
        centre = np.nanmedian(u, axis=1)
        mad = np.nanmedian(np.abs(u - centre[:, None]), axis=1)
    return np.asarray((1.4826 * mad) ** 2 + (centre**2), dtype=np.float64)


def recent_regime_start(panel: Panel, *, confidence: float) -> np.ndarray:
    """Time from which to measure rates when the latest samples left the span's trend.

    The change-of-slope test over the whole span needs several snapshots
    after a change before it is significant, so a switch from growth to
    draining would be seen late. Here the rate over the last ``MIN_SAMPLES``
    samples is compared with the rate over the span before them (variance
    from :func:`robust_step_variance`). Where they differ at level
    ``confidence`` and every one of those latest increments departs from the
    earlier trend in the same direction, the rates are measured from the
    most likely change point of the span (the peak of its CUSUM bridge) when
    it lies in the later half of the span, else over the last
    ``MIN_SAMPLES`` samples.

    Returns
    -------
    numpy.ndarray
        ``(K,)`` seconds (``-inf`` where the span stays as it is).
    """
    t, n = panel.time_s, panel.n
    out = np.full(len(n), -np.inf)
    if t.shape[1] < 2 * MIN_SAMPLES:
        return out
    lag = panel["log_end_offset"] - panel["committed_offset"]
    rows = np.arange(len(n))
    split = np.clip(n - MIN_SAMPLES, 0, t.shape[1] - 1)
    last = np.clip(n - 1, 0, t.shape[1] - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_split, t_last = t[rows, split], t[rows, last]
        early_s, late_s = t_split - t[:, 0], t_last - t_split
        early = (lag[rows, split] - lag[:, 0]) / early_s
        late = (lag[rows, last] - lag[rows, split]) / late_s
        slope = (lag[rows, last] - lag[:, 0]) / (t_last - t[:, 0])
        scale2 = robust_step_variance(t, lag, slope)
        var = scale2 / early_s + scale2 / late_s
        z = float(stats.norm.ppf(0.5 + confidence / 2.0))
        # every one of the latest increments must leave the trend the same way:
        # one burst or one late commit (up, then back) is not a new regime
        index = np.arange(t.shape[1] - 1)[None, :]
        tail = (index >= split[:, None]) & (index < last[:, None])
        step = np.diff(lag, axis=1) - early[:, None] * np.diff(t, axis=1)
        side = np.sign(late - early)[:, None]
        consistent = np.all(~tail | (np.sign(step) == side), axis=1)
        moved = (n >= 2 * MIN_SAMPLES) & consistent & (np.abs(late - early) > z * np.sqrt(var))
    if not moved.any():
        return out
    tau = drift_change(t, lag, n).tau
    with np.errstate(invalid="ignore"):
        middle = (t[:, 0] + t_split) / 2.0
        start = np.where(np.isfinite(tau) & (tau >= middle), np.fmin(tau, t_split), t_split)
    return np.where(moved, start, out)


#: The forecast's columns, per partition and per key, in table order.
_FORECAST_COLUMNS = ("lag", "produce_rate", "consume_rate", "eta_s", "eta_low_s", "eta_high_s")


@dataclass(frozen=True, repr=False)
class DrainForecast(Result):
    """Rates and time to drain per key, with interval.

    Attributes
    ----------
    table
        One row per key: ``lag`` (messages, now), ``produce_rate``,
        ``consume_rate`` (messages/s), ``eta_s``, ``eta_low_s``,
        ``eta_high_s`` (seconds from the last snapshot; inf where it does
        not drain; the interval covers the moment lag reaches the target and
        the first snapshot that shows it), ``drains`` (bool), ``drain_time`` (UTC, NaT if never),
        ``retention_loss_s``, ``target_lag`` (messages that count as
        drained), ``partitions``, ``slowest_partition``,
        ``n`` (samples used, fewest over partitions), ``reason``.
    partitions
        The same per (cluster, group, topic, partition).
    confidence
        Level of the ETA interval.
    as_of
        The last snapshot (UTC): "now" of the forecast, where its figure starts.
    """

    partitions: pd.DataFrame = None  # type: ignore[assignment]
    confidence: float = 0.9
    as_of: pd.Timestamp = None  # type: ignore[assignment]

    plot_builder: ClassVar[str] = "plot_drain"
    title: ClassVar[str] = "Time to drain"

    def summary_lines(self) -> list[str]:
        """Keys that drain and those that do not."""
        drains = self.table["drains"].fillna(False).astype(bool)
        return [
            f"{int(drains.sum())} of {len(self.table)} key(s) drain at current rates; "
            f"intervals at {self.confidence:.0%}"
        ]


def interval_roots(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the hull of ``{t >= 0 : a t^2 + b t + c <= 0}`` per element as (low, high).

    (inf, inf) where the set is empty.
    """
    low = np.full(a.shape, np.inf)
    high = np.full(a.shape, np.inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        disc = b * b - 4 * a * c
        sq = np.sqrt(np.maximum(disc, 0.0))
        # numerically stable roots
        qq = -0.5 * (b + np.copysign(sq, b))
        r_a = qq / a
        r_b = np.where(qq != 0, c / qq, np.nan)
        r1 = np.fmin(r_a, r_b)
        r2 = np.fmax(r_a, r_b)
        pos = a > 0
        ok = pos & (disc >= 0) & (r2 >= 0)
        low = np.where(ok, np.maximum(r1, 0.0), low)
        high = np.where(ok, r2, high)
        neg = a < 0
        all_t = neg & ((disc < 0) | (r1 >= 0))
        low = np.where(all_t, 0.0, low)
        high = np.where(neg, np.inf, high)
        tail = neg & ~all_t
        low = np.where(tail, np.maximum(r2, 0.0), low)
        zero = a == 0
        root = -c / b
        low = np.where(zero & (b < 0), np.maximum(root, 0.0), low)
        high = np.where(zero & (b < 0), np.inf, high)
        fits = zero & (b > 0) & (root >= 0)
        low = np.where(fits, 0.0, low)
        high = np.where(fits, root, high)
        flat = zero & (b == 0) & (c <= 0)
        low = np.where(flat, 0.0, low)
        high = np.where(flat, np.inf, high)
    return low, high


def seen_at(seconds: np.ndarray, snapshot_s: np.ndarray) -> np.ndarray:
    """Time of the first snapshot at or after ``seconds`` (both from the last snapshot).

    Snapshots come every ``snapshot_s`` seconds, so a lag that crosses its
    target at ``seconds`` is first *seen* there at the next multiple of
    ``snapshot_s``. The map is monotone: an interval that covers the crossing
    with some probability, its ends so moved, covers both the crossing and the
    snapshot that shows it with at least that probability. Unchanged where
    ``snapshot_s`` is not positive (a span of no time) or ``seconds`` not finite.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        # a relative tolerance keeps an end that already is a snapshot time where it is
        steps = np.ceil(seconds / snapshot_s * (1.0 - 1e-12))
        moved = np.fmax(steps, 0.0) * snapshot_s
    return np.where(np.isfinite(seconds) & (snapshot_s > 0), moved, seconds)


def _first_column(array: np.ndarray) -> np.ndarray:
    """First sample of each row; NaN when no row has any sample (a reason is given later)."""
    return array[:, 0] if array.shape[1] else np.full(array.shape[0], np.nan)


@dataclass(frozen=True)
class DrainArrays:
    """Per-series drain forecast from :func:`drain_arrays`, all ``(K,)`` arrays.

    Attributes
    ----------
    lag, target_lag
        Lag at the last snapshot and the level that counts as drained (messages).
    produce_rate, consume_rate
        Log-end and committed offset advance over the span (messages/s).
    eta_s, eta_low_s, eta_high_s
        Seconds from the last snapshot to the target (inf: never), and interval.
    retention_loss_s
        Seconds until the committed offset falls behind the log start (NaN: unknown).
    n
        Samples in the span.
    last_s, span_start_s
        Last sample and start of the span, seconds from the panel's ``t0``.
    snapshot_s
        Mean seconds between snapshots over the span (0 or NaN where it spans no time).
    reason
        Why a series has no forecast ("" where it has one).
    unknown
        True where the series is too thin to forecast (its values are NaN).
    """

    lag: np.ndarray
    target_lag: np.ndarray
    produce_rate: np.ndarray
    consume_rate: np.ndarray
    eta_s: np.ndarray
    eta_low_s: np.ndarray
    eta_high_s: np.ndarray
    retention_loss_s: np.ndarray
    n: np.ndarray
    last_s: np.ndarray
    span_start_s: np.ndarray
    snapshot_s: np.ndarray
    reason: np.ndarray
    unknown: np.ndarray


@dataclass(frozen=True)
class _Span:
    """One panel's series over the span the rates are measured on (``(K,)`` unless noted)."""

    panel: Panel
    lag: np.ndarray  # (K, T)
    t_first: np.ndarray
    t_last: np.ndarray
    duration: np.ndarray
    produce: np.ndarray
    consume: np.ndarray

    @property
    def snapshot_s(self) -> np.ndarray:
        """Mean seconds between snapshots over the span (its time resolution)."""
        return np.asarray(self.duration / np.maximum(self.panel.n - 1, 1), dtype=np.float64)

    @classmethod
    def of(cls, panel: Panel) -> _Span:
        """Rates as the offsets' advance over the span divided by its length."""
        t = panel.time_s
        committed, log_end = panel["committed_offset"], panel["log_end_offset"]
        t_first, t_last = _first_column(t), panel.last(t)
        duration = t_last - t_first
        with np.errstate(invalid="ignore", divide="ignore"):
            produce = (panel.last(log_end) - _first_column(log_end)) / duration
            consume = (panel.last(committed) - _first_column(committed)) / duration
        return cls(panel, log_end - committed, t_first, t_last, duration, produce, consume)


def _target_levels(panel: Panel, target_lag: object) -> np.ndarray:
    """Each series' drained level: the healthy in-flight lag (``"auto"``) or the given one."""
    if isinstance(target_lag, str):
        return healthy_lag(panel["log_end_offset"] - panel["committed_offset"], panel.n)
    return np.broadcast_to(np.asarray(target_lag, dtype=np.float64), panel.n.shape)


def _span_keep(panel: Panel, span: pd.Timedelta | None, since: np.ndarray | None) -> np.ndarray:
    """Mark the samples in the span: from ``since``, the last ``span``, or the last change.

    The last ``MIN_SAMPLES`` samples are always kept when the span starts at
    ``since`` or at a detected change (a change at the very end leaves enough to measure).
    """
    t, n = panel.time_s, panel.n
    index = np.arange(t.shape[1])[None, :]
    tail = index >= (n - MIN_SAMPLES)[:, None]
    if since is not None:
        return np.asarray((t >= since[:, None]) | tail)
    if span is not None:
        return np.asarray(t >= (panel.last(t) - span.total_seconds())[:, None])
    lag = panel["log_end_offset"] - panel["committed_offset"]
    change = drift_change(t, lag, n)
    since = np.where(change.significant, change.tau, -np.inf)
    keep = (t >= since[:, None]) | tail
    since = recent_regime_start(compact(panel, keep), confidence=RECENT_CONFIDENCE)
    return np.asarray(keep & ((t >= since[:, None]) | tail))


def _caught_up(
    span: _Span, current: np.ndarray, net: np.ndarray, q: np.ndarray,
    sigma_m2: np.ndarray, var_v: np.ndarray, target: np.ndarray,
) -> np.ndarray:
    """Series already back at the target (within noise) and not significantly growing.

    Caught up: in the last few snapshots the lag came back to within measurement
    noise of the target, or stayed below one snapshot interval's worth of
    produced messages throughout (what a consumer in step with its producer has
    in flight, which snapshots cannot resolve); and it is not significantly growing.
    """
    t, n, lag = span.panel.time_s, span.panel.n, span.lag
    index = np.arange(t.shape[1])[None, :]
    recent = np.where(index >= (n - MIN_SAMPLES)[:, None], lag, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # no sample at all (a key whose offsets are all NA): NaN, and a reason later
        empty = np.full(len(n), np.nan)
        floor = (np.nanmin(recent, axis=1) if recent.shape[1] else empty) - target
        in_flight = np.maximum(span.produce, 0.0) * span.snapshot_s
        ceiling = (np.nanmax(recent, axis=1) if recent.shape[1] else empty) - target
        near = (floor <= q * np.sqrt(sigma_m2)) | (ceiling <= in_flight)
        return np.asarray((current <= 0) | (near & (net + q * np.sqrt(var_v) >= 0)))


def _eta_interval(
    span: _Span, target: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Point ETA and its Fieller-style interval (see the module docstring), and the backlog.

    The slow end is the first snapshot at or after the inverted band's end
    (:func:`seen_at`): a recording shows the drain at a snapshot, up to one
    snapshot interval after the crossing.

    Returns ``(eta, low, high, current)``; ``current`` is the backlog above the target.
    """
    t, n = span.panel.time_s, span.panel.n
    net = span.consume - span.produce  # drain rate v
    current = span.panel.last(span.lag) - target  # backlog above the healthy in-flight lag
    sigma_m2, sigma_w2 = noise_components(t, span.lag, net)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_v = sigma_w2 / span.duration + 2.0 * sigma_m2 / span.duration**2
    # the rate to come: as uncertain as the fit, plus how much it moved within the span
    var_ahead = var_v + rate_drift_variance(t, span.lag, n, sigma_m2, sigma_w2)
    # The noise split is estimated, not known: a Student-t quantile with a third of the
    # residual degrees of freedom accounts for that (chosen by the calibration test).
    q = stats.t.ppf(0.5 + confidence / 2.0, np.maximum((n - 2) / 3.0, 1.0))
    q2 = q * q
    a = net * net - q2 * var_ahead
    b = -(2.0 * current * net + q2 * sigma_w2)
    c = current * current - q2 * sigma_m2
    low, high = interval_roots(a, b, c)
    drained = _caught_up(span, current, net, q, sigma_m2, var_v, target)
    with np.errstate(invalid="ignore", divide="ignore"):
        eta = np.where(drained, 0.0, np.where(net > 0, current / net, np.inf))
    low = np.where(drained, 0.0, low)
    # at or below the target: the interval keeps the chance of noise above it;
    # caught up with a few in-flight messages: nothing left to forecast
    high = np.where(
        current <= 0, np.fmax(high, 0.0), np.where(drained, 0.0, seen_at(high, span.snapshot_s))
    )
    return eta, np.minimum(low, eta), np.maximum(high, eta), current


#: Blocks a span is cut into to see whether its rate held (each needs ``MIN_BLOCK`` samples).
DRIFT_BLOCKS = 4
MIN_BLOCK = 3


def rate_drift_variance(
    t: np.ndarray, lag: np.ndarray, n: np.ndarray, sigma_m2: np.ndarray, sigma_w2: np.ndarray
) -> np.ndarray:
    """Variance of the net rate between parts of the span beyond what the noise explains.

    The span is cut into ``DRIFT_BLOCKS`` disjoint blocks; each block's net
    drain rate has variance ``sigma_w^2 / T_j + 2 sigma_m^2 / T_j^2`` if the
    rate is constant. Where the block rates differ more than that (Cochran's
    Q against chi-square at 5 %), the excess (DerSimonian-Laird) is how much
    the rate to come can differ from the span's: the rate has not held, so
    it need not hold until the drain ends. 0 where it held or the span is short.
    """
    if t.shape[1] < DRIFT_BLOCKS * MIN_BLOCK:
        return np.zeros(len(n))
    rows = np.arange(len(n))
    edges = (np.arange(DRIFT_BLOCKS + 1)[None, :] * n[:, None]) // DRIFT_BLOCKS  # (K, B+1)
    first, last = edges[:, :-1], edges[:, 1:] - 1
    t_a, t_b = t[rows[:, None], first], t[rows[:, None], np.maximum(last, 0)]
    y_a, y_b = lag[rows[:, None], first], lag[rows[:, None], np.maximum(last, 0)]
    with np.errstate(invalid="ignore", divide="ignore"):
        length = t_b - t_a
        rate = -(y_b - y_a) / length
        var = sigma_w2[:, None] / length + 2.0 * sigma_m2[:, None] / length**2
        weight = 1.0 / var
        usable = (
            (n >= DRIFT_BLOCKS * MIN_BLOCK)[:, None]
            & (last - first + 1 >= MIN_BLOCK)
            & np.isfinite(rate)
            & np.isfinite(weight)
            & (weight > 0)
        ).all(axis=1)
        weight = np.where(usable[:, None], weight, 0.0)
        rate = np.where(usable[:, None], rate, 0.0)
        total = weight.sum(axis=1)
        mean = (weight * rate).sum(axis=1) / total
        q = (weight * (rate - mean[:, None]) ** 2).sum(axis=1)
        scale = total - (weight**2).sum(axis=1) / total
        excess = (q - (DRIFT_BLOCKS - 1)) / scale
    drifted = usable & (q > stats.chi2.ppf(0.95, DRIFT_BLOCKS - 1))
    return np.where(drifted & np.isfinite(excess), np.maximum(excess, 0.0), 0.0)


def _span_retention_loss(span: _Span) -> np.ndarray:
    """Seconds until each committed offset falls behind its log start (NaN: not recorded)."""
    panel = span.panel
    if "log_start_offset" not in panel.arrays:
        return np.full(panel.size, np.nan)
    start_offset = panel["log_start_offset"]
    with np.errstate(invalid="ignore", divide="ignore"):
        start_rate = (panel.last(start_offset) - _first_column(start_offset)) / span.duration
        gap = panel.last(panel["committed_offset"]) - panel.last(start_offset)
        # committed == log start is the oldest kept message, still there: not a loss
        retention = retention_loss_observed(gap, start_rate, span.consume, np.zeros(len(gap)))[0]
    return np.where(np.isnan(panel.last(start_offset)), np.nan, retention)


def _thin_reasons(n: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Why each series is too thin to forecast ("" where it is not)."""
    return np.where(
        n < MIN_SAMPLES,
        np.char.add(
            np.char.add("only ", n.astype(str)),
            f" sample(s) with both offsets in the span; need at least {MIN_SAMPLES}",
        ),
        np.where(~(duration > 0), "samples span no time; need snapshots over time", ""),
    )


def drain_arrays(
    panel: Panel,
    *,
    confidence: float,
    window: object,
    target_lag: object = 0.0,
    since: np.ndarray | None = None,
) -> DrainArrays:
    """Per-series rates, ETA and interval for a per-partition (or any) panel.

    The panel needs ``committed_offset`` and ``log_end_offset`` (and may
    carry ``log_start_offset``). ``since`` (seconds from the panel's ``t0``,
    per row) fixes where each span starts instead of detecting it; the
    start used is returned as ``span_start_s``.
    """
    valid = ~(np.isnan(panel["committed_offset"]) | np.isnan(panel["log_end_offset"]))
    panel = compact(panel, valid)
    window_span = parse_window(window)
    target = _target_levels(panel, target_lag)
    panel = since_last_rewind(panel)
    span = _Span.of(compact(panel, _span_keep(panel, window_span, since)))
    n = span.panel.n
    eta, low, high, current = _eta_interval(span, target, confidence)
    thin = (n < MIN_SAMPLES) | ~(span.duration > 0)
    # A thin series that is caught up still has a known answer: nothing to drain.
    known_zero = thin & (current <= 0)
    unknown = thin & ~known_zero

    def blank(values: np.ndarray) -> np.ndarray:
        return np.where(unknown, np.nan, values)

    return DrainArrays(
        lag=span.panel.last(span.lag),
        target_lag=target,
        produce_rate=blank(span.produce),
        consume_rate=blank(span.consume),
        eta_s=np.where(known_zero, 0.0, blank(eta)),
        eta_low_s=np.where(known_zero, 0.0, blank(low)),
        eta_high_s=np.where(known_zero, 0.0, blank(high)),
        retention_loss_s=blank(_span_retention_loss(span)),
        n=n,
        last_s=span.t_last,
        span_start_s=span.t_first,
        snapshot_s=span.snapshot_s,
        reason=np.where(known_zero, "", _thin_reasons(n, span.duration)),
        unknown=unknown,
    )


def time_to_drain(
    lag: pd.DataFrame,
    *,
    by: str | Iterable[str] = ("group", "topic"),
    confidence: float = 0.9,
    window: object = None,
    target_lag: float | str = "auto",
) -> DrainForecast:
    """Forecast when each key's backlog is gone at current rates.

    Parameters
    ----------
    lag
        LAG frame (``log_start_offset`` optional, for ``retention_loss_s``).
    by
        Key columns, a subset of ``("group", "topic", "partition")``.
        Forecast from each key's total lag and offsets (per partition in
        ``.partitions``).
    confidence
        Level of ``eta_low_s``/``eta_high_s``.
    window
        Span the rates are measured over: a duration (``"15min"``, or a
        bare number of seconds), or None for "since the last change of slope"
        (or of the latest few snapshots' trend).
    target_lag
        Lag (messages, per key; shared evenly by its partitions) that counts
        as drained, or ``"auto"`` for the healthy in-flight lag seen before
        the backlog built up (0 when the recording does not show one).
        The value used is in the ``target_lag`` column.

    Returns
    -------
    DrainForecast
        ``.table`` per key, ``.partitions`` per partition.

    Raises
    ------
    KbpInputError
        Bad frame, ``by``, ``window`` or ``confidence``.
    KbpDataError
        A single key with too few samples (multi-key results give NaN and a
        ``reason``).

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> drain = kbp.time_to_drain(kbp.load_sample("producer-burst").lag)  # doctest: +SKIP
    >>> drain.table[["group", "topic", "eta_s", "eta_low_s", "eta_high_s"]]  # doctest: +SKIP
    """
    if not 0 < confidence < 1:
        raise KbpInputError(f"confidence={confidence!r} must be between 0 and 1, e.g. 0.9.")
    parse_window(window)
    keys = normalise_by(by)
    frame = prepare_lag(lag)
    columns = ["committed_offset", "log_end_offset"]
    if "log_start_offset" in frame.columns and frame["log_start_offset"].notna().any():
        columns.append("log_start_offset")
    panel = build_panel(frame, by=normalise_by(("group", "topic", "partition")), columns=columns)
    if target_lag == "auto":
        part_target: object = "auto"
    else:
        # a key's target is shared evenly by its partitions
        share = panel.keys.groupby(list(keys), sort=False, observed=True)["partition"]
        part_target = float(target_lag) / share.transform("size").to_numpy(np.float64)
    fit = _drain_all(panel, confidence=confidence, window=window, target_lag=part_target)
    parts = _partition_table(panel, fit)
    group = None
    if "partition" not in keys:
        group = _key_reading(frame, keys, columns, confidence=confidence, window=window,
                             target_lag=target_lag)
    table = _roll_up(parts, fit, keys, panel, group)
    require_single_ok(
        "time_to_drain",
        table[list(keys)],
        table["reason"].to_numpy(),
        table["reason"].eq("").to_numpy(),
    )
    as_of = pd.Timestamp(frame["time"].max())
    return DrainForecast(table=table, partitions=parts, confidence=confidence, as_of=as_of)


def _partition_table(panel: Panel, fit: DrainArrays) -> pd.DataFrame:
    """One row per partition series: the ``.partitions`` table of the result."""
    parts = panel.keys.copy()
    for name in (*_FORECAST_COLUMNS, "target_lag"):
        parts[name] = getattr(fit, name)
    parts["drains"] = np.where(fit.unknown, False, np.isfinite(fit.eta_s))
    parts["drain_time"] = to_timestamps(panel.t0, fit.last_s + fit.eta_s)
    parts["retention_loss_s"] = fit.retention_loss_s
    parts["n"] = fit.n.astype(np.int64)
    parts["reason"] = pd.array(fit.reason, dtype="string")
    return parts


def _key_reading(
    frame: pd.DataFrame,
    keys: tuple[str, ...],
    columns: list[str],
    *,
    confidence: float,
    window: object,
    target_lag: float | str,
) -> pd.DataFrame:
    """Each key's forecast from its total lag and offsets, re-read by members where known."""
    key_panel = build_panel(frame, by=keys, columns=columns)
    whole = _drain_all(key_panel, confidence=confidence, window=window, target_lag=target_lag)
    group = key_panel.keys.copy()
    for name in ("produce_rate", "consume_rate", "eta_s", "eta_low_s", "eta_high_s"):
        group[name] = np.where(whole.unknown, np.nan, getattr(whole, name))
    group["target_lag"] = whole.target_lag
    return _members_reading(
        group, frame, keys, columns, confidence=confidence,
        span_start_s=whole.span_start_s, snapshot_s=whole.snapshot_s,
        partitions=key_panel.partitions,
    )



def _owner_of_partition(frame: pd.DataFrame) -> pd.Series:
    """Each row's partition's owner at its last snapshot.

    Where no owner is known (no ``consumer_id``, or none at the last
    snapshot) the partition counts as its own member.
    """
    part = ["cluster", "group", "topic", "partition"]
    alone = "partition " + frame["partition"].astype("string")
    ids = owner_ids(frame)
    if ids is None:
        return alone
    # "" (not NA) where no owner, so that "last" takes the last snapshot's value
    owners = ids.fillna("").groupby([frame[c] for c in part], sort=False, observed=True)
    last = owners.transform("last")
    return last.where(last != "", alone)


def _rows_of(frame: pd.DataFrame, wanted: pd.DataFrame, keys: tuple[str, ...]) -> np.ndarray:
    """Boolean mask of the frame's rows whose key is one of ``wanted``'s rows."""
    index = pd.MultiIndex.from_frame(frame[list(keys)])
    return np.asarray(index.isin(pd.MultiIndex.from_frame(wanted)))


def _members_reading(
    group: pd.DataFrame,
    frame: pd.DataFrame,
    keys: tuple[str, ...],
    columns: list[str],
    *,
    confidence: float,
    span_start_s: np.ndarray,
    snapshot_s: np.ndarray,
    partitions: np.ndarray,
) -> pd.DataFrame:
    """Re-read each key's drain as members that finish their own partitions and stop.

    A member's capacity goes to the partitions assigned to it, not to another
    member's: when its own backlog is gone it stops contributing, and the
    key's total drain rate falls. So each member's partitions (by
    ``consumer_id`` at their last snapshot) are forecast from their total,
    over the key's span and towards their share of the key's target lag, and
    :func:`members_finish` gives when their excess lags, each falling at its
    own rate, add up to no more than the key's target.

    * Owners known (two or more members): the key's point ETA is that time
      with every member at its own point ETA, and the interval's slow end the
      same with every member at its slow end (never below the total's). The
      fast end stays the total's: capacity moving freely between members
      (after a rebalance, say) is the fastest the key can drain. A partition
      without an owner is a member of its own.
    * Owners unknown (no ``consumer_id``, or none set): members cannot be
      told apart, so the point ETA and fast end stay the total's (capacity
      moving freely). The slow end is bounded from the per-partition rates:
      a partition's share of its member's capacity can only grow as the
      member's other partitions finish, so every partition draining at its
      own current rate over the span is the slowest drain consistent with
      the data (``inf`` where a partition with a backlog has not gained on
      its producer over the whole span: it may have no working consumer).

    Keys with a single member, or a member too thin to forecast, keep the
    total's reading. ``span_start_s``, ``snapshot_s`` and ``partitions`` are per row
    of ``group``: where the total's span started (seconds from the panel's ``t0``),
    its seconds between snapshots (the slow end is the first snapshot that can show
    the members' crossing) and how many partitions the key has.
    """
    open_keys = group.loc[group["eta_s"] > 0, list(keys)]
    if not len(open_keys):
        return group
    frame = frame[_rows_of(frame, open_keys, keys)]
    ids = owner_ids(frame)
    with_owner = frame.assign(
        _owner=_owner_of_partition(frame),
        _known=False if ids is None else ids.notna().to_numpy(),
    )
    per_key = with_owner.groupby(list(keys), sort=False, observed=True).agg(
        _members=("_owner", "nunique"), _owned=("_known", "any")
    )
    if not (per_key["_members"] > 1).any():
        return group
    panel = build_panel(with_owner, by=(*keys, "_owner"), columns=columns)
    per_group = group[[*keys, "target_lag"]].assign(span_start_s=span_start_s,
                                                    partitions=partitions)
    key_of = panel.keys[list(keys)].merge(per_group, on=list(keys), how="left")
    share = key_of["target_lag"].to_numpy(np.float64) * (
        panel.partitions / key_of["partitions"].to_numpy(np.float64)
    )
    members = _drain_all(
        panel,
        confidence=confidence,
        window=None,
        target_lag=share,
        since=key_of["span_start_s"].to_numpy(np.float64),
    )
    key_id, key_values = pd.MultiIndex.from_frame(key_of[list(keys)]).factorize()
    excess = members.lag - members.target_lag
    assert isinstance(key_values, pd.MultiIndex)  # factorize keeps the index type
    solved = key_values.to_frame(index=False, name=list(keys))
    for end in ("eta_s", "eta_high_s"):
        solved[f"_{end}"] = members_finish(key_id, excess, getattr(members, end))
    usable = ~pd.Series(members.unknown).groupby(key_id).any().to_numpy()
    solved["_usable"] = usable & (np.bincount(key_id) > 1)
    merged = group[list(keys)].merge(solved, on=list(keys), how="left")
    merged = merged.merge(per_key.reset_index(), on=list(keys), how="left")
    usable = merged["_usable"].fillna(False).to_numpy(bool)
    owned = usable & merged["_owned"].fillna(False).to_numpy(bool)
    unowned = usable & ~owned
    out = group.copy()
    eta, low, high = (group[c].to_numpy(np.float64) for c in ("eta_s", "eta_low_s", "eta_high_s"))
    m_eta, m_high = (merged[c].to_numpy(np.float64) for c in ("_eta_s", "_eta_high_s"))
    new_eta = np.where(owned, m_eta, eta)
    # the fast end stays the total's: capacity moving freely (after a rebalance) is the
    # fastest the key can drain
    new_low = np.where(owned, np.fmin(low, new_eta), low)
    new_high = np.where(owned, np.fmax(high, m_high), high)
    # unknown owners: every partition at its own current rate bounds the slow end
    new_high = np.where(
        unowned,
        np.where(np.isfinite(m_eta), np.fmax(high, seen_at(m_eta, snapshot_s)), m_eta),
        new_high,
    )
    out["eta_s"] = new_eta
    out["eta_low_s"] = new_low
    out["eta_high_s"] = np.fmax(new_high, new_eta)
    return out


def members_finish(key_id: np.ndarray, excess: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """When the members' excess lags first add up to zero or less, per key.

    Member ``i`` of key ``key_id[i]`` has ``excess[i]`` messages above its
    share of the target and reaches its share after ``eta[i]`` seconds
    (inf: never; its excess stays), falling linearly until then. A member
    already at or below its share keeps its (negative) excess: slack for the
    others. Keys are ``0..K-1``; returns ``(K,)`` seconds (inf: never).
    """
    n_keys = int(key_id.max()) + 1 if len(key_id) else 0
    with np.errstate(invalid="ignore", divide="ignore"):
        falling = (excess > 0) & np.isfinite(eta) & (eta > 0)
        rate = np.where(falling, excess / np.where(falling, eta, 1.0), 0.0)
    # the part of each key's sum that does not fall: members that do not drain,
    # those at their share, and members done at once (eta 0) contribute nothing
    done_now = (excess > 0) & (eta == 0)
    steady = np.where(falling | done_now | np.isnan(excess), 0.0, excess)
    constant = np.bincount(key_id, weights=steady, minlength=n_keys)
    total_now = constant + np.bincount(
        key_id, weights=np.where(falling, excess, 0.0), minlength=n_keys
    )
    out = np.where(total_now <= 0, 0.0, np.inf)
    rows = np.flatnonzero(falling)
    if len(rows) == 0:
        return out
    order = rows[np.lexsort((eta[rows], key_id[rows]))]
    keys, t = key_id[order], eta[order]
    # suffix sums within each key: the members still falling on the segment ending at t
    e_rev = pd.Series(excess[order][::-1]).groupby(keys[::-1]).cumsum().to_numpy()[::-1]
    r_rev = pd.Series(rate[order][::-1]).groupby(keys[::-1]).cumsum().to_numpy()[::-1]
    level_at_t = constant[keys] + e_rev - r_rev * t
    # at the last member's own end its excess minus rate x eta is zero only up to
    # rounding: a relative tolerance keeps that from reading "never"
    hit = level_at_t <= 1e-9 * (np.abs(constant[keys]) + e_rev)
    first_hit = pd.Series(np.where(hit, np.arange(len(keys)), len(keys))).groupby(keys).min()
    found = first_hit.to_numpy() < len(keys)
    at = first_hit.to_numpy()[found]
    crossing = (constant[keys[at]] + e_rev[at]) / r_rev[at]
    solved = np.full(n_keys, np.nan)
    solved[first_hit.index.to_numpy()[found]] = crossing
    return np.where(total_now <= 0, 0.0, np.where(np.isnan(solved), np.inf, solved))


def _drain_all(
    panel: Panel,
    *,
    confidence: float,
    window: object,
    target_lag: object,
    since: np.ndarray | None = None,
) -> DrainArrays:
    """Run :func:`drain_arrays` over a panel in cache-sized chunks of rows."""
    with quiet():
        chunks = []
        for rows in split_rows(panel.size):
            target = target_lag
            if isinstance(target_lag, np.ndarray):
                target = target_lag[rows]
            chunks.append(
                drain_arrays(
                    sub_panel(panel, rows),
                    confidence=confidence,
                    window=window,
                    target_lag=target,
                    since=None if since is None else since[rows],
                )
            )
    return concat_rows(chunks)


#: Columns of ``DrainForecast.table``, after the key columns.
_TABLE_COLUMNS = (
    *_FORECAST_COLUMNS,
    "drains",
    "drain_time",
    "retention_loss_s",
    "target_lag",
    "partitions",
    "slowest_partition",
    "n",
    "reason",
)


def _roll_up(
    parts: pd.DataFrame,
    fit: DrainArrays,
    keys: tuple[str, ...],
    panel: Panel,
    group: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Sum rates and lag, take the slowest partition's ETA, per key.

    ``fit`` is the per-partition forecast ``parts`` was made from (row for row).
    """
    if "partition" in keys:
        out = parts.copy()
        out.insert(len(keys), "partitions", 1)
        out.insert(len(out.columns) - 1, "slowest_partition", out["partition"].astype(np.int32))
        return out
    key_list = list(keys)
    work = parts.assign(_last_s=fit.last_s, _unknown_count=fit.unknown.astype(np.int64))
    grouped = work.groupby(key_list, sort=True, observed=True)
    out = grouped.agg(
        lag=("lag", "sum"),
        produce_rate=("produce_rate", "sum"),
        consume_rate=("consume_rate", "sum"),
        eta_s=("eta_s", "max"),
        eta_low_s=("eta_low_s", "max"),
        eta_high_s=("eta_high_s", "max"),
        retention_loss_s=("retention_loss_s", "min"),
        n=("n", "min"),
        partitions=("partition", "size"),
        _last_s=("_last_s", "max"),
        _unknown=("_unknown_count", "sum"),
    ).reset_index()
    index = (
        pd.MultiIndex.from_frame(out[key_list]) if len(key_list) > 1 else pd.Index(out[key_list[0]])
    )
    out["slowest_partition"] = _slowest_partition(parts, key_list, index)
    unknown = out["_unknown"].to_numpy() > 0
    reasons = _key_reasons(parts, fit.unknown, key_list, index, unknown)
    for name in (
        "produce_rate",
        "consume_rate",
        "eta_s",
        "eta_low_s",
        "eta_high_s",
        "retention_loss_s",
    ):
        out.loc[unknown, name] = np.nan
    if group is not None:
        out = _with_group(out, group, key_list)
    else:
        out["target_lag"] = grouped["target_lag"].sum().to_numpy()
    out["drains"] = ~unknown & np.isfinite(out["eta_s"].to_numpy())
    out["drain_time"] = to_timestamps(panel.t0, out["_last_s"].to_numpy() + out["eta_s"].to_numpy())
    out["reason"] = pd.array(reasons, dtype="string")
    return out[[*key_list, *_TABLE_COLUMNS]]


def _slowest_partition(parts: pd.DataFrame, key_list: list[str], index: pd.Index) -> np.ndarray:
    """Partition with the latest ETA (then the largest lag) of each key in ``index``."""
    eta_rank = parts["eta_s"].fillna(np.inf).replace(np.inf, np.finfo(float).max)
    slowest = parts.assign(_eta_rank=eta_rank).sort_values(
        [*key_list, "_eta_rank", "lag"],
        ascending=[True] * len(key_list) + [False, False],
        kind="stable",
    )
    slowest = slowest.drop_duplicates(key_list, keep="first").set_index(key_list)
    return np.asarray(slowest.loc[index, "partition"].to_numpy(), dtype=np.int32)


def _key_reasons(
    parts: pd.DataFrame,
    thin: np.ndarray,
    key_list: list[str],
    index: pd.Index,
    unknown: np.ndarray,
) -> np.ndarray:
    """Each key's reason for no forecast: its first thin partition's ("" where known).

    ``thin`` marks the partitions (rows of ``parts``) too thin to forecast,
    ``unknown`` the keys (rows of ``index``) with any.
    """
    work = parts.assign(_thin_reason=parts["reason"].where(thin, pd.NA))
    first_reason = (
        work.dropna(subset=["_thin_reason"]).drop_duplicates(key_list).set_index(key_list)
    )
    reasons = np.full(len(index), "", dtype=object)
    if unknown.any():
        found = first_reason.reindex(index[unknown])
        reasons[unknown] = [
            f"partition {int(p)}: {r}"
            for p, r in zip(found["partition"], found["_thin_reason"], strict=True)
        ]
    return reasons


def _with_group(out: pd.DataFrame, group: pd.DataFrame, key_list: list[str]) -> pd.DataFrame:
    """Take the key's ETA, interval and rates from its total lag and total offsets.

    A consumer moves its capacity between the partitions it owns: one it has
    not got to yet reads "never" on its own (its committed offset stands
    still), and one it is on drains faster than it will on average. The
    total lag over the total rates does not depend on that ordering. The
    per-partition forecasts stay in ``partitions`` (and name the
    ``slowest_partition``). A key whose partitions are all caught up is
    caught up too.
    """
    merged = out[key_list].merge(group, on=key_list, how="left", validate="one_to_one")
    known = merged["eta_s"].notna().to_numpy() & out["eta_s"].notna().to_numpy()
    # every partition caught up (out's ETA is their maximum): so is the key
    caught_up = (out["eta_s"] == 0).to_numpy()
    for name in ("eta_s", "eta_low_s", "eta_high_s", "produce_rate", "consume_rate"):
        key_level = merged[name].to_numpy(np.float64)
        if name.startswith("eta"):
            key_level = np.where(caught_up, 0.0, key_level)
        out[name] = np.where(known, key_level, out[name].to_numpy())
    out["target_lag"] = merged["target_lag"].to_numpy(np.float64)
    return out
