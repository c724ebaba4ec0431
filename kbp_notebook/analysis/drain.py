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
* ``tests/unit/analysis/test_drain.py`` checks the coverage on simulated
  random walks, on measurement noise and on both, over 200 seeds each, and
  prints it.

A key (default group + topic) has drained when its **slowest partition**
has: the key's ``eta_s``, ``eta_low_s`` and ``eta_high_s`` are the maxima
over its partitions, so one hot partition holds the answer up. Rates and
lag are sums over partitions. ``retention_loss_s`` (where
``log_start_offset`` is known) is the soonest time at which a partition's
committed offset would fall behind its log start offset at current rates
(0 if it already has, ``inf`` if never).

Caveats: the forecast assumes today's rates continue; it ignores the
first-passage subtlety that a noisy walk can touch zero before its mean
path does (small when the drift dominates the noise), and partitions are
treated as independent.
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
    build_panel,
    compact,
    drift_change,
    noise_components,
    normalise_by,
    parse_window,
    prepare_lag,
    quiet,
    require_single_ok,
    split_rows,
    sub_panel,
    to_timestamps,
)
from kbp_notebook.errors import KbpInputError

__all__ = ["DrainForecast", "time_to_drain"]

#: Fewest samples in the span for a rate and its uncertainty.
MIN_SAMPLES = 4


@dataclass(frozen=True, repr=False)
class DrainForecast(Result):
    """Rates and time to drain per key, with interval.

    Attributes
    ----------
    table
        One row per key: ``lag`` (messages, now), ``produce_rate``,
        ``consume_rate`` (messages/s), ``eta_s``, ``eta_low_s``,
        ``eta_high_s`` (seconds from the last snapshot; inf where it does
        not drain), ``drains`` (bool), ``drain_time`` (UTC, NaT if never),
        ``retention_loss_s``, ``partitions``, ``slowest_partition``,
        ``n`` (samples used, fewest over partitions), ``reason``.
    partitions
        The same per (cluster, group, topic, partition).
    confidence
        Level of the ETA interval.
    """

    partitions: pd.DataFrame = None  # type: ignore[assignment]
    confidence: float = 0.9

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


def _first_column(array: np.ndarray) -> np.ndarray:
    """First sample of each row; NaN when no row has any sample (a reason is given later)."""
    return array[:, 0] if array.shape[1] else np.full(array.shape[0], np.nan)


def drain_arrays(panel: Panel, *, confidence: float, window: object) -> dict[str, np.ndarray]:
    """Per-series rates, ETA and interval for a per-partition (or any) panel.

    The panel needs ``committed_offset`` and ``log_end_offset`` (and may
    carry ``log_start_offset``).
    """
    valid = ~(np.isnan(panel["committed_offset"]) | np.isnan(panel["log_end_offset"]))
    panel = compact(panel, valid)
    span = parse_window(window)
    t = panel.time_s
    lag = panel["log_end_offset"] - panel["committed_offset"]
    n = panel.n
    if span is None:
        change = drift_change(t, lag, n)
        index = np.arange(t.shape[1])[None, :]
        since = np.where(change["significant"], change["tau"], -np.inf)
        keep = (t >= since[:, None]) | (index >= (n - MIN_SAMPLES)[:, None])
    elif isinstance(span, int):
        index = np.arange(t.shape[1])[None, :]
        keep = index >= (n - span)[:, None]
    else:
        end = panel.last(t)
        keep = t >= (end - span.total_seconds())[:, None]
    panel = compact(panel, keep)
    t, n = panel.time_s, panel.n
    committed, log_end = panel["committed_offset"], panel["log_end_offset"]
    lag = log_end - committed
    first = np.zeros_like(n)
    t_first, t_last = t[:, 0] if t.shape[1] else np.full(len(n), np.nan), panel.last(t)
    duration = t_last - t_first
    with np.errstate(invalid="ignore", divide="ignore"):
        produce = (panel.last(log_end) - _first_column(log_end)) / duration
        consume = (panel.last(committed) - _first_column(committed)) / duration
    del first
    net = consume - produce  # drain rate v
    current = panel.last(lag)
    sigma_m2, sigma_w2 = noise_components(t, lag, net)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_v = sigma_w2 / duration + 2.0 * sigma_m2 / duration**2
    # The noise split is estimated, not known: a Student-t quantile with a third of the
    # residual degrees of freedom accounts for that (chosen by the calibration test).
    q = stats.t.ppf(0.5 + confidence / 2.0, np.maximum((n - 2) / 3.0, 1.0))
    q2 = q * q
    a = net * net - q2 * var_v
    b = -(2.0 * current * net + q2 * sigma_w2)
    c = current * current - q2 * sigma_m2
    low, high = interval_roots(a, b, c)
    drained = current <= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        eta = np.where(drained, 0.0, np.where(net > 0, current / net, np.inf))
    low = np.where(drained, 0.0, low)
    high = np.where(drained, np.fmax(high, 0.0), high)
    low = np.minimum(low, eta)
    high = np.maximum(high, eta)
    retention = np.full(len(n), np.nan)
    if "log_start_offset" in panel.arrays:
        start_offset = panel["log_start_offset"]
        with np.errstate(invalid="ignore", divide="ignore"):
            start_rate = (panel.last(start_offset) - _first_column(start_offset)) / duration
            gap = panel.last(committed) - panel.last(start_offset)
            closing = start_rate - consume
            retention = np.where(gap <= 0, 0.0, np.where(closing > 0, gap / closing, np.inf))
        retention = np.where(np.isnan(panel.last(start_offset)), np.nan, retention)
    thin = (n < MIN_SAMPLES) | ~(duration > 0)
    reason = np.where(
        n < MIN_SAMPLES,
        np.char.add(
            np.char.add("only ", n.astype(str)),
            f" sample(s) with both offsets in the span; need at least {MIN_SAMPLES}",
        ),
        np.where(~(duration > 0), "samples span no time; need snapshots over time", ""),
    )
    # A thin series that is caught up still has a known answer: nothing to drain.
    known_zero = thin & (current <= 0)
    unknown = thin & ~known_zero

    def blank(values: np.ndarray) -> np.ndarray:
        return np.where(unknown, np.nan, values)

    return {
        "lag": current,
        "produce_rate": blank(produce),
        "consume_rate": blank(consume),
        "eta_s": np.where(known_zero, 0.0, blank(eta)),
        "eta_low_s": np.where(known_zero, 0.0, blank(low)),
        "eta_high_s": np.where(known_zero, 0.0, blank(high)),
        "retention_loss_s": blank(retention),
        "n": n,
        "last_s": t_last,
        "reason": np.where(known_zero, "", reason),
        "unknown": unknown,
    }


def time_to_drain(
    lag: pd.DataFrame,
    *,
    by: str | Iterable[str] = ("group", "topic"),
    confidence: float = 0.9,
    window: object = None,
) -> DrainForecast:
    """Forecast when each key's backlog is gone at current rates.

    Parameters
    ----------
    lag
        LAG frame (``log_start_offset`` optional, for ``retention_loss_s``).
    by
        Key columns, a subset of ``("group", "topic", "partition")``.
        Computed per partition and rolled up: the slowest partition decides.
    confidence
        Level of ``eta_low_s``/``eta_high_s``.
    window
        Span the rates are measured over: a duration (``"15min"``), a
        number of samples, or None for "since the last change of slope".

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
    with quiet():
        parts_ = [
            drain_arrays(sub_panel(panel, rows), confidence=confidence, window=window)
            for rows in split_rows(panel.size)
        ]
        result = {name: np.concatenate([part[name] for part in parts_]) for name in parts_[0]}
    parts = panel.keys.copy()
    for name in ("lag", "produce_rate", "consume_rate", "eta_s", "eta_low_s", "eta_high_s"):
        parts[name] = result[name]
    parts["drains"] = np.where(result["unknown"], False, np.isfinite(result["eta_s"]))
    parts["drain_time"] = to_timestamps(panel.t0, result["last_s"] + result["eta_s"])
    parts["retention_loss_s"] = result["retention_loss_s"]
    parts["n"] = result["n"].astype(np.int64)
    parts["reason"] = pd.array(result["reason"], dtype="string")
    parts["_last_s"] = result["last_s"]
    parts["_unknown"] = result["unknown"]
    table = _roll_up(parts, keys, panel)
    partitions = parts.drop(columns=["_last_s", "_unknown"])
    require_single_ok(
        "time_to_drain",
        table[list(keys)],
        table["reason"].to_numpy(),
        table["reason"].eq("").to_numpy(),
    )
    return DrainForecast(table=table, partitions=partitions, confidence=confidence)


def _roll_up(parts: pd.DataFrame, keys: tuple[str, ...], panel: Panel) -> pd.DataFrame:
    """Sum rates and lag, take the slowest partition's ETA, per key."""
    if "partition" in keys:
        out = parts.drop(columns=["_last_s", "_unknown"]).copy()
        out.insert(len(keys), "partitions", 1)
        out.insert(len(out.columns) - 1, "slowest_partition", out["partition"].astype(np.int32))
        return out
    key_list = list(keys)
    eta_rank = parts["eta_s"].fillna(np.inf).replace(np.inf, np.finfo(float).max)
    work = parts.assign(
        _eta_rank=eta_rank,
        _unknown_count=parts["_unknown"].astype(np.int64),
        _thin_reason=parts["reason"].where(parts["_unknown"], pd.NA),
    )
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
    slowest = work.sort_values(
        [*key_list, "_eta_rank", "lag"],
        ascending=[True] * len(key_list) + [False, False],
        kind="stable",
    )
    slowest = slowest.drop_duplicates(key_list, keep="first").set_index(key_list)
    index = (
        pd.MultiIndex.from_frame(out[key_list]) if len(key_list) > 1 else pd.Index(out[key_list[0]])
    )
    out["slowest_partition"] = slowest.loc[index, "partition"].to_numpy().astype(np.int32)
    first_reason = (
        work.dropna(subset=["_thin_reason"]).drop_duplicates(key_list).set_index(key_list)
    )
    unknown = out["_unknown"].to_numpy() > 0
    reasons = np.full(len(out), "", dtype=object)
    if unknown.any():
        found = first_reason.reindex(index[unknown])
        reasons[unknown] = [
            f"partition {int(p)}: {r}"
            for p, r in zip(found["partition"], found["_thin_reason"], strict=True)
        ]
    for name in (
        "produce_rate",
        "consume_rate",
        "eta_s",
        "eta_low_s",
        "eta_high_s",
        "retention_loss_s",
    ):
        out.loc[unknown, name] = np.nan
    out["drains"] = ~unknown & np.isfinite(out["eta_s"].to_numpy())
    out["drain_time"] = to_timestamps(panel.t0, out["_last_s"].to_numpy() + out["eta_s"].to_numpy())
    out["reason"] = pd.array(reasons, dtype="string")
    columns = [
        *key_list,
        "lag",
        "produce_rate",
        "consume_rate",
        "eta_s",
        "eta_low_s",
        "eta_high_s",
        "drains",
        "drain_time",
        "retention_loss_s",
        "partitions",
        "slowest_partition",
        "n",
        "reason",
    ]
    return out[columns]
