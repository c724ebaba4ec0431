"""lag_trend + lag_status + time_to_drain, vectorised vs a naive per-series loop.

Usage::

    python -m benchmarks.bench_analysis [--partitions 100000] [--samples 500] [--naive 1000]

Builds one LAG frame of ``partitions`` series x ``samples`` snapshots (100
groups, one topic, mixed behaviours: growing, draining, stalled, rewound,
noisy), then

1. runs the three public functions per partition, as a user would (each
   call validates the frame), timing each and the peak resident memory
   above the frame itself (``/proc/self/clear_refs`` resets the high-water
   mark after the frame is built);
2. runs the naive way -- a Python loop over series calling scipy
   (``theilslopes``, ``linregress``, ``norm``/``t``/``f`` quantiles,
   ``np.linalg.solve`` per hinge candidate, ``np.roots`` for the ETA
   interval) and plain Python for the Burrow rules, computing the same
   outputs (slopes, intervals, p-values, onsets, statuses, rates, ETAs and
   their intervals) -- on ``--naive`` series spread over the frame, and
   extrapolates its time to all series (running it on 100,000 series would
   take most of an hour; the extrapolation is printed as such);
3. checks both give the same numbers on those series (to 1e-9 relative for
   slopes, rates and ETAs, 1e-6 for intervals and p-values).

Prints the ratio (target >= 50x). Memory figures are resident set sizes
from ``/proc/self/status``.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from kbp_notebook.analysis import lag_status, lag_trend, time_to_drain
from kbp_notebook.analysis.trend import EXACT_SAMPLES
from kbp_notebook.datasets import simulate
from kbp_notebook.frames import validate_lag_frame

GROUPS = 100


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def build_frame(partitions: int, samples: int, step_s: float = 5.0) -> pd.DataFrame:
    """100 groups x one topic; behaviour varies by group."""
    per_group = partitions // GROUPS
    rows = partitions * samples
    committed = np.empty(rows, dtype=np.int64)
    log_end = np.empty(rows, dtype=np.int64)
    at = 0
    for g in range(GROUPS):
        kind = g % 5
        options = dict(
            partitions=per_group,
            n=samples,
            step_s=step_s,
            produce_rate=100.0,
            consume_rate=[100.0, 120.0, 90.0, 100.0, 100.0][kind],
            start_lag=[0.0, 30_000.0, 0.0, 5_000.0, 20_000.0][kind],
            rw_noise=5.0,
            noise=20.0,
            stalls=[(samples * step_s * 0.8, 1e12)] if kind == 3 else [],
            rewinds=[(samples * step_s * 0.95, 50_000.0)] if kind == 4 else [],
            seed=g,
        )
        sim = simulate(**options)
        size = per_group * samples
        committed[at : at + size] = sim.committed.ravel()
        log_end[at : at + size] = sim.log_end.ravel()
        at += size
    # Assemble the frame directly in the normal form validate_lag_frame returns (pyarrow
    # strings, Int64, ns UTC times, sorted by key and time); each analysis call checks
    # that form with a few vectorised passes instead of copying and re-sorting 50M rows.
    t0 = pd.Timestamp("2026-01-01T00:00:00Z").value
    nanos = t0 + (np.arange(samples, dtype=np.int64) * int(step_s * 1e9))
    time_col = pd.to_datetime(np.tile(nanos, partitions), utc=True).astype("datetime64[ns, UTC]")
    names = pa.array([f"group-{g:03d}" for g in range(GROUPS)])
    group_codes = np.repeat(np.arange(GROUPS, dtype=np.int32), per_group * samples)

    def text(dictionary: pa.Array, codes: np.ndarray) -> pd.Series:
        return pd.Series(pd.arrays.ArrowStringArray(pc.take(dictionary, pa.array(codes))))

    zeros = np.zeros(rows, dtype=np.int32)
    no_mask = np.zeros(rows, dtype=bool)
    frame = pd.DataFrame(
        {
            "time": time_col,
            "cluster": text(pa.array(["bench"]), zeros),
            "group": text(names, group_codes),
            "topic": text(pa.array(["orders"]), zeros),
            "partition": np.tile(np.repeat(np.arange(per_group, dtype=np.int32), samples), GROUPS),
            "committed_offset": pd.arrays.IntegerArray(committed, no_mask),
            "log_end_offset": pd.arrays.IntegerArray(log_end, no_mask),
            "lag": pd.arrays.IntegerArray(log_end - committed, no_mask),
        }
    )
    return frame


# --------------------------------------------------------------------------- naive


def naive_change(t: np.ndarray, y: np.ndarray) -> tuple[float, bool, float, float]:
    d_y, d_t = np.diff(y), np.diff(t)
    rate = d_y.sum() / d_t.sum()
    resid = d_y - rate * d_t
    bridge = np.cumsum(resid)
    sigma2 = (resid**2).sum() / d_t.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.nan_to_num(np.abs(bridge) / np.sqrt(sigma2 * d_t.sum()), nan=0.0, posinf=0.0)
    score[-1] = 0
    best = int(np.argmax(score))
    before = d_y[: best + 1].sum() / d_t[: best + 1].sum()
    after = d_y[best + 1 :].sum() / d_t[best + 1 :].sum() if best + 1 < len(d_t) else np.nan
    significant = len(y) >= 8 and score[best] > stats.kstwobign.ppf(0.99) and np.isfinite(after)
    return float(t[best + 1]), bool(significant), float(before), float(after)


def naive_lag1(r: np.ndarray) -> float:
    full = r - r.mean()
    den = (full**2).sum()
    return float((full[:-1] * full[1:]).sum() / den) if den > 0 else 0.0


def naive_noise(t: np.ndarray, lag: np.ndarray, net: float) -> tuple[float, float]:
    """Variogram split into measurement and random-walk variance, one series."""
    n = len(t)
    level = lag + net * t
    span = t[-1] - t[0]
    top = max(1, (n - 1) // 4)
    steps = [2**k for k in range(64) if 2**k <= top]
    g, h, w = [], [], []
    for step in steps:
        if step >= n:
            continue
        d = level[step:] - level[:-step]
        gamma = (d * d).mean()
        gap = (t[step:] - t[:-step]).mean()
        if gamma > 0:
            g.append(gamma)
            h.append(gap * (1 - gap / span))
            w.append((n - step) / step**2)
    g, h, w = np.array(g), np.array(h), np.array(w)
    if len(g) == 0:
        return 0.0, 0.0
    h_mean, g_mean = (w * h).sum() / w.sum(), (w * g).sum() / w.sum()
    shh = (w * (h - h_mean) ** 2).sum()
    slope = (w * (h - h_mean) * (g - g_mean)).sum() / shh if shh > 0 else 0.0
    intercept = g_mean - slope * h_mean
    if slope < 0:
        return g_mean / 2, 0.0
    if intercept < 0:
        return 0.0, (w * h * g).sum() / (w * h * h).sum()
    return intercept / 2, slope


def naive_fit(t: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """Theil-Sen (block medians past EXACT_SAMPLES), inflated Sen interval, walk floor."""
    n_all = len(y)
    if n_all > EXACT_SAMPLES:
        b = np.arange(EXACT_SAMPLES)
        start, end = b * n_all // EXACT_SAMPLES, (b + 1) * n_all // EXACT_SAMPLES
        tb = np.array([np.median(t[i:j]) for i, j in zip(start, end, strict=True)])
        yb = np.array([np.median(y[i:j]) for i, j in zip(start, end, strict=True)])
    else:
        tb, yb = t, y
    n = len(tb)
    slope = stats.theilslopes(yb, tb).slope
    i, j = np.triu_indices(n, 1)
    pair_slopes = np.sort((yb[j] - yb[i]) / (tb[j] - tb[i]))
    m = len(pair_slopes)
    rho = naive_lag1(yb - (np.median(yb - slope * tb) + slope * tb))
    rho = min(max(rho, 0.0), 0.99)
    var_s = n * (n - 1) * (2 * n + 5) / 18.0 * (1 + rho) / (1 - rho)
    sigma = np.sqrt(var_s)
    z = stats.norm.ppf(0.5 + confidence / 2)
    upper = int(min(np.round((m + z * sigma) / 2), m - 1))
    lower = int(max(np.round((m - z * sigma) / 2) - 1, 0))
    ci_low, ci_high = pair_slopes[lower], pair_slopes[upper]
    s = np.sign(yb[j] - yb[i]).sum()
    p_value = 2 * stats.norm.sf(abs((s - np.sign(s)) / sigma)) if var_s > 0 else 1.0
    # random-walk + measurement-noise floor on the interval
    sigma_m2, sigma_w2 = naive_noise(t, y, -slope)
    se = np.sqrt(1.2 * sigma_w2 / (t[-1] - t[0]) + sigma_m2 / ((t - t.mean()) ** 2).sum())
    dof = max((n_all - 2) / 3, 1.0)
    half = stats.t.ppf(0.5 + confidence / 2, dof) * se
    ci_low, ci_high = min(ci_low, slope - half), max(ci_high, slope + half)
    if se > 0:
        p_value = max(p_value, 2 * stats.t.sf(abs(slope) / se, dof))
    status = "growing" if ci_low > 0 else ("draining" if ci_high < 0 else "stable")
    intercept = float(np.median(y - slope * t))
    return {
        "slope_per_s": slope,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "p_value": p_value,
        "trend_status": status,
        "slope_ols_per_s": stats.linregress(t, y).slope,
        "fit_first": intercept + slope * t[0],
        "fit_last": intercept + slope * t[-1],
    }


def naive_split_scores(
    t: np.ndarray, y: np.ndarray, cuts: list[int], alpha: float = 0.01
) -> list[tuple[int, int, np.ndarray]]:
    """Per segment (first sample, last sample, statistic of a cut after each increment)."""
    d_t, d_y = np.diff(t), np.diff(y)
    z = d_y / np.sqrt(d_t)
    step = np.abs(np.diff(z)) / np.sqrt(2.0)
    scale = 1.4826 * np.median(step) if len(step) else 0.0
    if not scale > 0:
        scale = np.sqrt(np.mean(step * step)) if len(step) else 0.0
    bound = 4.0 * (scale if scale > 0 else np.inf) * np.sqrt(d_t)
    edges = [0, *sorted(cuts), len(t) - 1]
    resid = np.empty(len(d_t))
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        rate = d_y[a:b].sum() / d_t[a:b].sum()
        r = np.clip(d_y[a:b] - rate * d_t[a:b], -bound[a:b], bound[a:b])
        resid[a:b] = r - r.sum() / d_t[a:b].sum() * d_t[a:b]
    starts = set(edges[:-1])
    products = [resid[i] * resid[i - 1] for i in range(1, len(resid)) if i not in starts]
    noise2 = max(-np.mean(products), 0.0) if products else 0.0
    walk2 = max(((resid**2).sum() - 2 * noise2 * len(resid)) / d_t.sum(), 0.0)
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        partial = np.abs(np.cumsum(resid[a:b]))
        limit = stats.kstwobign.isf(alpha / 2) * np.sqrt(walk2 * d_t[a:b].sum()) + stats.norm.isf(
            alpha / 4 / (b - a)
        ) * np.sqrt(2 * noise2)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.nan_to_num(partial / limit, nan=0.0, posinf=0.0)
        cut_at = np.arange(a, b) + 1  # a cut after increment i is at sample i + 1
        score[(cut_at - a + 1 < 6) | (b - cut_at + 1 < 6)] = 0.0
        out.append((a, b, score))
    return out


def naive_segments(t: np.ndarray, y: np.ndarray) -> list[int]:
    """Binary segmentation with forced splits where a drain provably reached zero."""
    cuts: list[int] = []

    def grow() -> None:
        while len(cuts) + 1 < 8:
            best, where = 0.0, None
            for a, _, score in naive_split_scores(t, y, cuts):
                if len(score) and score.max() > best:
                    best, where = float(score.max()), a + int(np.argmax(score)) + 1
            if best <= 1.0 or where is None:
                return
            cuts.append(where)

    grow()
    for _ in range(2):
        edges = [0, *sorted(cuts), len(t) - 1]
        floored = None
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            fit = naive_fit(t[a : b + 1], y[a : b + 1])
            middle = 0.5 * (fit["fit_first"] + fit["fit_last"])
            if fit["trend_status"] == "draining" and (
                middle + fit["ci_high"] * 0.5 * (t[b] - t[a]) < 0
            ):
                floored = a
                break
        if floored is None:
            break
        if len(cuts) + 1 < 8:
            for a, _, score in naive_split_scores(t, y, cuts):
                if a == floored and len(score) and score.max() > 0:
                    cuts.append(a + int(np.argmax(score)) + 1)
        grow()
    return sorted(cuts)


def naive_trend(t: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    edges = [0, *naive_segments(t, y), len(t) - 1]
    fits = [
        naive_fit(t[a : b + 1], y[a : b + 1], confidence)
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    current = dict(fits[-1])
    run = len(fits) - 1
    while run > 0 and fits[run - 1]["trend_status"] == "growing":
        run -= 1
    growing = current["trend_status"] == "growing"
    current["onset_s"] = t[edges[run]] if growing and run > 0 else np.nan
    return current


def naive_status(
    t: np.ndarray, committed: np.ndarray, log_end: np.ndarray, window: int = 10
) -> str:
    """The partition rules of lag_status read literally (no owners in these frames)."""
    commits = []
    for i in range(len(committed)):
        if i == 0 or committed[i] != committed[i - 1]:
            commits.append((t[i], committed[i], log_end[i] - committed[i], log_end[i]))
    win = commits[-window:]
    in_flight = 0.0
    if len(win) >= 2 and t[-1] > win[0][0]:
        rate = (log_end[-1] - win[0][3]) / (t[-1] - win[0][0])
        in_flight = max(rate * (win[-1][0] - win[0][0]) / (len(win) - 1), 0.0)
    caught = max(0.0, in_flight)
    if log_end[-1] - committed[-1] <= caught:
        return "OK"
    if t[-1] - win[-1][0] > win[-1][0] - win[0][0] and not any(
        e <= win[-1][1] for e in log_end[-window:]
    ):
        return "STOP"
    if any(win[i][1] < win[i - 1][1] for i in range(1, len(win))) and win[-1][1] < max(
        c[1] for c in win
    ):
        return "REWIND"
    if any(c[2] <= caught for c in win):
        return "OK"
    if len(win) >= 2 and win[-1][2] - win[0][2] > in_flight:
        return "WARN"
    return "OK"


def naive_drain(
    t: np.ndarray, committed: np.ndarray, log_end: np.ndarray, confidence: float = 0.9
) -> dict[str, float]:
    lag = log_end - committed
    tau, significant, _, _ = naive_change(t, lag)
    keep = (t >= tau) if significant else np.ones(len(t), dtype=bool)
    keep[-4:] = True
    t, committed, log_end, lag = t[keep], committed[keep], log_end[keep], lag[keep]
    duration = t[-1] - t[0]
    produce = (log_end[-1] - log_end[0]) / duration
    consume = (committed[-1] - committed[0]) / duration
    net = consume - produce
    current = lag[-1]
    eta = 0.0 if current <= 0 else (current / net if net > 0 else np.inf)
    sigma_m2, sigma_w2 = naive_noise(t, lag, net)
    var_v = sigma_w2 / duration + 2 * sigma_m2 / duration**2
    q2 = stats.t.ppf(0.5 + confidence / 2, max((len(t) - 2) / 3, 1.0)) ** 2
    a = net * net - q2 * var_v
    b = -(2 * current * net + q2 * sigma_w2)
    c = current * current - q2 * sigma_m2
    roots = np.sort(np.roots([a, b, c]).real) if a != 0 else np.array([-c / b])
    disc = b * b - 4 * a * c
    if a > 0:
        low, high = (
            (max(roots[0], 0.0), roots[1]) if disc >= 0 and roots[1] >= 0 else (np.inf, np.inf)
        )
    elif a < 0:
        low = 0.0 if disc < 0 or roots[0] >= 0 else max(roots[1], 0.0)
        high = np.inf
    else:
        low, high = (max(roots[0], 0.0), np.inf) if b < 0 else (0.0, roots[0])
    if current <= 0:
        low, high = 0.0, max(high, 0.0)
    low, high = min(low, eta), max(high, eta)
    return {
        "produce_rate": produce,
        "consume_rate": consume,
        "eta_s": eta,
        "eta_low_s": low,
        "eta_high_s": high,
    }


def run_naive(frame: pd.DataFrame, pick: np.ndarray, samples: int) -> tuple[pd.DataFrame, float]:
    seconds = (frame["time"] - frame["time"].iloc[0]).dt.total_seconds().to_numpy()
    committed = frame["committed_offset"].to_numpy(np.float64)
    log_end = frame["log_end_offset"].to_numpy(np.float64)
    start = time.perf_counter()
    out = []
    for series in pick:
        s = slice(series * samples, (series + 1) * samples)
        t, c, e = seconds[s], committed[s], log_end[s]
        row = {"series": series}
        row.update(naive_trend(t, e - c))
        row["status"] = naive_status(t, c, e)
        row.update(naive_drain(t, c, e))
        out.append(row)
    return pd.DataFrame(out), time.perf_counter() - start


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--naive", type=int, default=1000, help="series timed in the naive loop")
    args = parser.parse_args()
    base = rss_mib()
    t = time.perf_counter()
    frame = build_frame(args.partitions, args.samples)
    build_s = time.perf_counter() - t
    gc.collect()
    frame_mib = frame.memory_usage(deep=True).sum() / 2**20
    after_build = rss_mib()
    peak_ok = reset_peak()
    print(
        f"frame: {len(frame):,} rows = {args.partitions:,} series x {args.samples} samples; "
        f"{frame_mib:,.0f} MiB in memory (built in {build_s:.1f} s; "
        f"process RSS {after_build:,.0f} MiB, {base:,.0f} MiB before)"
    )

    by = ("group", "topic", "partition")
    timings = {}
    check = frame.iloc[: min(len(frame), 5_000_000)]
    t = time.perf_counter()
    validate_lag_frame(check)
    full_validate_s = (time.perf_counter() - t) * len(frame) / len(check)
    print(
        f"validate_lag_frame (full copy, sort, duplicate check) would take "
        f"~{full_validate_s:.0f} s "
        f"on this frame (measured on {len(check):,} rows); the analyses see the frame is "
        f"already in normal form and skip it"
    )
    t = time.perf_counter()
    trend = lag_trend(frame, by=by).table
    timings["lag_trend"] = time.perf_counter() - t
    t = time.perf_counter()
    status = lag_status(frame, timeline=False).partitions
    timings["lag_status"] = time.perf_counter() - t
    t = time.perf_counter()
    drain = time_to_drain(frame, by=by).table
    timings["time_to_drain"] = time.perf_counter() - t
    vector_s = timings["lag_trend"] + timings["lag_status"] + timings["time_to_drain"]
    peak = rss_mib("VmHWM")
    for name, seconds in timings.items():
        print(f"  {name:<28} {seconds:8.1f} s")
    print(f"vectorised total (3 public calls):  {vector_s:8.1f} s")
    if peak_ok:
        print(
            f"peak RSS during analysis: {peak:,.0f} MiB = {peak - after_build:,.0f} MiB above "
            f"the loaded frame = {(peak - after_build) / frame_mib:.1f}x the frame's size"
        )

    rng = np.random.default_rng(0)
    pick = np.sort(
        rng.choice(args.partitions, size=min(args.naive, args.partitions), replace=False)
    )
    naive, naive_s = run_naive(frame, pick, args.samples)
    per_series = naive_s / len(pick)
    naive_total = per_series * args.partitions
    print(
        f"naive loop: {len(pick):,} series in {naive_s:.1f} s ({per_series * 1e3:.2f} ms/series); "
        f"extrapolated to {args.partitions:,} series: {naive_total:,.0f} s (not run in full)"
    )
    print(f"RATIO naive / vectorised: {naive_total / vector_s:.0f}x (target >= 50x)")

    got_trend = trend.iloc[pick].reset_index(drop=True)
    got_status = status.iloc[pick].reset_index(drop=True)
    got_drain = drain.iloc[pick].reset_index(drop=True)
    onset_s = (got_trend["onset"] - frame["time"].iloc[0]).dt.total_seconds().to_numpy()
    checks = {
        "slope_per_s": np.allclose(
            got_trend["slope_per_s"], naive["slope_per_s"], rtol=1e-9, atol=1e-9
        ),
        "slope_ols_per_s": np.allclose(
            got_trend["slope_ols_per_s"], naive["slope_ols_per_s"], rtol=1e-7, atol=1e-9
        ),
        "onset": np.allclose(onset_s, naive["onset_s"], equal_nan=True),
        "trend status": (got_trend["status"].to_numpy() == naive["trend_status"].to_numpy()).all(),
        "burrow status": (got_status["status"].to_numpy() == naive["status"].to_numpy()).all(),
        "produce_rate": np.allclose(got_drain["produce_rate"], naive["produce_rate"], rtol=1e-9),
        "consume_rate": np.allclose(got_drain["consume_rate"], naive["consume_rate"], rtol=1e-9),
        "eta_s": np.allclose(got_drain["eta_s"], naive["eta_s"], rtol=1e-9),
    }
    for name, got in (
        ("ci_low", got_trend),
        ("ci_high", got_trend),
        ("p_value", got_trend),
        ("eta_low_s", got_drain),
        ("eta_high_s", got_drain),
    ):
        a, b = got[name].to_numpy(float), naive[name].to_numpy(float)
        same = np.isclose(a, b, rtol=1e-6, atol=1e-9) | (np.isinf(a) & np.isinf(b))
        checks[name] = bool(same.all())
        if not same.all():
            print(
                f"  {name}: {int((~same).sum())} of {len(a)} differ beyond 1e-6, e.g. "
                f"{a[~same][:3]} vs {b[~same][:3]}"
            )
    for name, ok in checks.items():
        print(f"  same numbers: {name:<16} {'yes' if ok else 'NO'}")
    counts = got_status["status"].value_counts().to_dict()
    print(
        f"statuses on the checked series: {counts}; trend: "
        f"{trend['status'].value_counts().to_dict()}"
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
