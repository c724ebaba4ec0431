"""Drain-forecast backtest: ``kbp.time_to_drain`` against the baselines people use today.

For every recording that contains a drain (lag grows well above its healthy
level, then returns to it), at many moments during the growth and the drain
we forecast with only the data up to that moment and compare with when the
lag truly returned to baseline (read from the recording's later data):

* ours: ``kbp.time_to_drain(lag_so_far, by=("group", "topic"), target_lag=ceiling)``
  -- ETA and its 90 % interval;
* naive: ``lag / (rate of lag decrease over the last interval)``;
* predict_linear: PromQL-style least-squares line over the last 5 minutes of
  total lag, solved for the ceiling (below);
* Burrow: ``kbp.lag_status`` status words (no ETA).

Ground truth, the same rule for every source: the key's total lag, its
"baseline ceiling" (``meta["baseline_ceiling_lag"]`` when the recording says,
else twice the 90th percentile of the first 15 % of the recording -- the
rule the scenarios use), the peak (largest total lag), and the drain end =
the first snapshot after the peak from which the total lag stays at or below
the ceiling for 3 snapshots, moved back to where the lag crossed the ceiling
(interpolated between that snapshot and the one before). Growth moments run
from the last snapshot at baseline before the peak to the peak; drain
moments from the peak to the drain end. Every method is asked the question
it is scored on: when is the lag back at the baseline ceiling (ours with
``target_lag=ceiling``, the baselines' lines solved for the ceiling instead
of zero). ``ours_default_target`` is a diagnostic: ``time_to_drain`` with its
default target (the healthy in-flight lag seen before the backlog), scored
against the same crossing of the ceiling.

Sources: bundled samples (``kbp.list_samples()``), fresh short scenario runs
on the sandbox with ``--fresh``, and -- always, labelled as such -- synthetic
frames from ``kbp_notebook.datasets.make_lag`` (a model of the kind
``time_to_drain`` assumes, so a flattering reference, never the headline).

Cases are reported apart by where they come from: the new sample recordings
(drains of minutes; split by drain length and by whether the members own
equal or unequal numbers of partitions), held-out recordings (``--holdout
DIR``, never in git), the old samples, and synthetic frames. Every moment is
also forecast without the owner columns (``ours_no_owners``).

Run: ``python -m benchmarks.backtest_drain [--fresh] [--no-samples] [--holdout DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.baselines import burrow_status, naive_eta, predict_linear_eta

CONFIDENCE = 0.9
WITHIN = 0.2  # "within 20 % of the truth"
MAX_MOMENTS_PER_PHASE = 20
METHODS = ("ours", "ours_no_owners", "naive", "predict_linear", "ours_default_target")
#: Methods with an interval: the columns of its fast and slow ends.
INTERVALS = {
    "ours": ("ours_low", "ours_high"),
    "ours_no_owners": ("no_owners_low", "no_owners_high"),
}
#: Columns that say which member owns a partition; dropped for ``ours_no_owners``.
OWNER_COLUMNS = ("consumer_id", "host", "client_id")
#: A drain "a user would wait for" (the targets are stated on these).
LONG_DRAIN_S = 180.0


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One (recording, group, topic) whose lag we backtest."""

    name: str
    source: str  # "synthetic", "sample-old", "sample-new", "holdout", "fresh"
    lag: pd.DataFrame  # LAG frame of this key only
    ceiling: float | None = None  # baseline ceiling from the recording's meta


@dataclass(frozen=True)
class Episode:
    """Indices (into the key's snapshot times) of one growth-and-drain episode."""

    onset: int
    peak: int
    end: int
    ceiling: float


def total_lag_series(lag: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Return (seconds since first snapshot, total lag, times) of a one-key LAG frame."""
    totals = lag.groupby("time", sort=True)["lag"].sum(min_count=1).dropna()
    times = pd.DatetimeIndex(totals.index)
    t_s = (times - times[0]).total_seconds().to_numpy(np.float64)
    return t_s, totals.to_numpy(np.float64), times


def baseline_ceiling(t_s: np.ndarray, total: np.ndarray, *, given: float | None = None) -> float:
    """Return the lag level that counts as "back at baseline" (see module docstring)."""
    if given is not None and np.isfinite(given):
        return float(given)
    head = total[t_s <= t_s[0] + 0.15 * (t_s[-1] - t_s[0])]
    healthy = float(np.percentile(head, 90)) if len(head) else 0.0
    return max(2.0 * healthy, 1.0)


def find_episode(
    t_s: np.ndarray, total: np.ndarray, *, ceiling: float, consecutive: int = 3
) -> Episode | None:
    """Return the episode around the largest lag, or None if it never drains.

    Parameters
    ----------
    t_s, total
        Snapshot times (s) and total lag.
    ceiling
        Baseline ceiling.
    consecutive
        Snapshots the lag must stay at or below the ceiling to count as drained.
    """
    if len(total) < 8:
        return None
    peak = int(np.nanargmax(total))
    if not total[peak] >= 5 * ceiling:
        return None
    low = total <= ceiling
    end = None
    for i in range(peak + 1, len(total) - consecutive + 1):
        if low[i : i + consecutive].all():
            end = i
            break
    if end is None:
        return None
    before = np.flatnonzero(low[:peak])
    onset = int(before[-1]) if len(before) else 0
    if end - peak < 4:
        return None
    return Episode(onset=onset, peak=peak, end=end, ceiling=ceiling)


def synthetic_cases(seeds: Iterable[int] = (1, 2)) -> list[Case]:
    """Synthetic growth-then-drain frames (rates per partition, messages/s).

    Families, chosen before looking at any result: a steady drain; noisy
    commits (large commit jitter and rate wander); a skewed topic whose hot
    partition drains last; a drain that slows down half way (the model's
    "rates continue" assumption is wrong); and sparse 15 s snapshots.
    """
    from kbp_notebook.datasets import make_lag

    families = {
        "steady": dict(
            partitions=6, n=260, step_s=5.0, produce_rate=50.0,
            consume_rate=[(0, 80.0), (300, 30.0), (900, 110.0)], rw_noise=3.0, noise=10.0,
        ),
        "noisy-commits": dict(
            partitions=6, n=260, step_s=5.0, produce_rate=50.0,
            consume_rate=[(0, 80.0), (300, 30.0), (900, 110.0)], rw_noise=10.0, noise=150.0,
        ),
        "skewed": dict(
            partitions=6, n=340, step_s=5.0, produce_rate=50.0,
            skew=[1.8, 1.0, 1.0, 1.0, 0.7, 0.5],
            consume_rate=[(0, 100.0), (300, 30.0), (900, 150.0)], rw_noise=3.0, noise=10.0,
        ),
        "slowing-drain": dict(
            partitions=6, n=260, step_s=5.0, produce_rate=50.0,
            consume_rate=[(0, 80.0), (300, 30.0), (900, 130.0), (1000, 90.0)],
            rw_noise=3.0, noise=10.0,
        ),
        "sparse-15s": dict(
            partitions=6, n=90, step_s=15.0, produce_rate=50.0,
            consume_rate=[(0, 80.0), (300, 30.0), (900, 110.0)], rw_noise=3.0, noise=10.0,
        ),
    }  # fmt: skip
    cases = []
    for family, options in families.items():
        for seed in seeds:
            frame = make_lag(seed=seed, **options)
            cases.append(Case(name=f"synthetic/{family}/seed{seed}", source="synthetic", lag=frame))
    return cases


def dataset_cases(dataset: object, *, name: str, source: str) -> list[Case]:
    """Split a Dataset's LAG frame into one case per (group, topic)."""
    lag = dataset.lag  # type: ignore[attr-defined]
    meta = getattr(dataset, "meta", None) or {}
    given = meta.get("baseline_ceiling_lag")
    by_group = meta.get("baseline_ceiling_lag_by_group") or {}
    cases = []
    for (group, topic), frame in lag.groupby(["group", "topic"], sort=True, observed=True):
        ceiling = by_group.get(str(group), given)
        cases.append(
            Case(
                name=f"{name} [{group}/{topic}]",
                source=source,
                lag=frame.reset_index(drop=True),
                ceiling=float(ceiling) if ceiling is not None else None,
            )
        )
    return cases


def sample_cases(only: Iterable[str] | None = None) -> list[Case]:
    """Cases from every bundled sample recording (none if there are no samples yet).

    ``sample-new``: recorded by the scenarios of issue 12 (longer drains, a
    ``variant`` in their meta); ``sample-old``: the first recordings.
    """
    import kbp_notebook as kbp

    cases = []
    for name in kbp.list_samples():
        if name.startswith(".") or (only is not None and name not in only):
            continue
        dataset = kbp.load_sample(name)
        source = "sample-new" if "variant" in dataset.meta else "sample-old"
        cases.extend(dataset_cases(dataset, name=f"sample/{name}", source=source))
    return cases


def folder_cases(root: Path, *, source: str) -> list[Case]:
    """Cases from every Dataset folder under ``root`` (e.g. the held-out recordings)."""
    import kbp_notebook as kbp

    cases = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / "meta.json").exists():
            continue
        dataset = kbp.read_dataset(folder)
        cases.extend(dataset_cases(dataset, name=f"{source}/{folder.name}", source=source))
    return cases


def fresh_cases(
    workdir: Path, *, only: Iterable[str] | None = None
) -> tuple[list[Case], list[str]]:
    """Run the short scenarios on fresh sandboxes and return their cases and any notes."""
    notes: list[str] = []
    try:
        import scenarios
        from kbp_notebook.sandbox import Sandbox
    except ImportError as exc:
        return [], [f"fresh runs skipped: {exc}"]
    import kbp_notebook as kbp

    cases: list[Case] = []
    for name in only or scenarios.MODULES:
        try:
            module = scenarios.scenario(name)
        except (ImportError, KeyError) as exc:
            notes.append(f"fresh {name}: not available ({exc})")
            continue
        out = workdir / name
        started = time.perf_counter()
        try:
            with Sandbox(**getattr(module, "SANDBOX", {"brokers": 1})) as sandbox:
                module.run(sandbox, out, short=True)
        except Exception as exc:  # noqa: BLE001 - one failed scenario must not end the benchmark
            notes.append(f"fresh {name}: run failed ({type(exc).__name__}: {exc})")
            continue
        notes.append(f"fresh {name}: recorded in {time.perf_counter() - started:.0f} s")
        cases.extend(dataset_cases(kbp.read_dataset(out), name=f"fresh/{name}", source="fresh"))
    return cases, notes


# --------------------------------------------------------------------------- forecasting


def crossing_time(t_s: np.ndarray, total: np.ndarray, episode: Episode) -> float:
    """When the lag crossed the baseline ceiling at the drain end, interpolated.

    The snapshot at ``episode.end`` is the first one seen at or below the
    ceiling; the crossing happened between it and the one before. Using the
    snapshot's own time would make the truth late by up to one snapshot
    interval for every method (all forecast a crossing in continuous time).
    """
    before, after = episode.end - 1, episode.end
    drop = total[before] - total[after]
    if not drop > 0:
        return float(t_s[after])
    share = min(max((total[before] - episode.ceiling) / drop, 0.0), 1.0)
    return float(t_s[before] + share * (t_s[after] - t_s[before]))


def moments(episode: Episode, *, limit: int = MAX_MOMENTS_PER_PHASE) -> list[tuple[str, int]]:
    """Snapshot indices to forecast at: growth (onset+1 .. peak-1) and drain (peak .. end-1)."""
    out: list[tuple[str, int]] = []
    for phase, first, last in (
        ("growth", episode.onset + 1, episode.peak - 1),
        ("drain", episode.peak, episode.end - 1),
    ):
        if last < first:
            continue
        count = last - first + 1
        picks = np.unique(np.linspace(first, last, min(count, limit)).round().astype(int))
        out.extend((phase, int(i)) for i in picks)
    return out


def members_shape(lag: pd.DataFrame) -> str:
    """How the key's partitions are spread over its members at the last snapshot.

    ``equal`` (every member owns as many partitions), ``unequal``, or
    ``no owners`` (no ``consumer_id`` known).
    """
    if "consumer_id" not in lag.columns:
        return "no owners"
    last = lag[lag["time"] == lag["time"].max()]
    ids = last["consumer_id"].astype("string").str.strip()
    ids = ids[ids.notna() & ~ids.isin(["", "-"])]
    if ids.empty:
        return "no owners"
    counts = ids.value_counts()
    return "equal" if counts.min() == counts.max() else "unequal"


def forecast_ours(lag: pd.DataFrame, *, target: float | str) -> tuple[float, float, float]:
    """Return ``time_to_drain``'s (eta_s, eta_low_s, eta_high_s) for ``target_lag=target``.

    NaN where ``time_to_drain`` cannot say.
    """
    import kbp_notebook as kbp
    from kbp_notebook.errors import KbpDataError

    try:
        row = kbp.time_to_drain(
            lag, by=("group", "topic"), confidence=CONFIDENCE, target_lag=target
        ).table.iloc[0]
    except KbpDataError:
        return float("nan"), float("nan"), float("nan")
    return float(row["eta_s"]), float(row["eta_low_s"]), float(row["eta_high_s"])


def backtest_case(case: Case) -> pd.DataFrame | None:
    """Forecast at every chosen moment of the case's episode; None if it has no drain.

    Returns
    -------
    pandas.DataFrame or None
        One row per moment: ``case``, ``source``, ``phase``, ``t_s`` (since
        the peak), ``remaining_s`` (truth), ``drain_s`` (peak to end),
        ``ours``, ``ours_low``, ``ours_high``, ``naive``, ``predict_linear``,
        ``ours_default_target`` (ETAs in s; inf = "does not drain", NaN =
        no answer), ``burrow``.
    """
    t_s, total, times = total_lag_series(case.lag)
    if len(total) < 8:
        return None
    ceiling = baseline_ceiling(t_s, total, given=case.ceiling)
    episode = find_episode(t_s, total, ceiling=ceiling)
    if episode is None:
        return None
    frame = case.lag.sort_values("time", kind="stable")
    rows = []
    t_end = crossing_time(t_s, total, episode)
    shape = members_shape(frame[frame["time"] <= times[episode.peak]])
    for phase, i in moments(episode):
        upto = frame[frame["time"] <= times[i]]
        eta, low, high = forecast_ours(upto, target=ceiling)
        anonymous = upto.drop(columns=[c for c in OWNER_COLUMNS if c in upto.columns])
        eta_anon, low_anon, high_anon = forecast_ours(anonymous, target=ceiling)
        eta_default, _, _ = forecast_ours(upto, target="auto")
        excess = total[: i + 1] - ceiling
        status = burrow_status(upto)["status"]
        rows.append(
            {
                "case": case.name,
                "source": case.source,
                "phase": phase,
                "t_s": t_s[i] - t_s[episode.peak],
                "remaining_s": t_end - t_s[i],
                "drain_s": t_end - t_s[episode.peak],
                "members": shape,
                "ours": eta,
                "ours_low": low,
                "ours_high": high,
                "ours_no_owners": eta_anon,
                "no_owners_low": low_anon,
                "no_owners_high": high_anon,
                "naive": naive_eta(t_s[: i + 1], excess),
                "predict_linear": predict_linear_eta(t_s[: i + 1], excess),
                "ours_default_target": eta_default,
                "burrow": str(status.iloc[0]) if len(status) else "",
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- scoring


def abs_errors(eta: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Return ``|eta - remaining|``, with ``inf`` where the method gave no finite ETA."""
    eta = np.asarray(eta, dtype=np.float64)
    remaining = np.asarray(remaining, dtype=np.float64)
    return np.where(np.isfinite(eta), np.abs(eta - remaining), np.inf)


def median_abs_error(eta: np.ndarray, remaining: np.ndarray) -> tuple[float, float]:
    """Return (median absolute error in s, median absolute error in % of the true remaining time).

    Moments without a finite ETA count as infinitely wrong, so a method that
    answers only when it is easy cannot look better than it is.
    """
    errors = abs_errors(eta, remaining)
    if len(errors) == 0:
        return float("nan"), float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = errors / np.asarray(remaining, dtype=np.float64) * 100.0
    return float(np.median(errors)), float(np.median(relative))


def coverage(low: np.ndarray, high: np.ndarray, remaining: np.ndarray) -> float:
    """Return the share of moments whose true remaining time is inside ``[low, high]``."""
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    remaining = np.asarray(remaining, dtype=np.float64)
    if len(remaining) == 0:
        return float("nan")
    inside = (low <= remaining) & (remaining <= high)
    return float(np.mean(inside))


def first_within(
    t_s: np.ndarray, eta: np.ndarray, remaining: np.ndarray, *, tolerance: float = WITHIN
) -> float:
    """Return the first moment (``t_s``) whose ETA is within ``tolerance`` of the truth.

    NaN if that never happens.
    """
    eta = np.asarray(eta, dtype=np.float64)
    remaining = np.asarray(remaining, dtype=np.float64)
    good = np.isfinite(eta) & (np.abs(eta - remaining) <= tolerance * remaining)
    hits = np.flatnonzero(good)
    return float(np.asarray(t_s, dtype=np.float64)[hits[0]]) if len(hits) else float("nan")


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method, pooled over the cases in ``rows``: errors, coverage, earliness.

    ``first_within_pct_of_drain`` is the median over cases of the first
    moment within 20 % of the truth, as a % of the drain's length (0 = at
    the peak, 100 = never before the end; cases where it never happens
    count as 100).
    """
    drain = rows[rows["phase"] == "drain"]
    growth = rows[rows["phase"] == "growth"]
    out = []
    for method in METHODS:
        mae_s, mae_pct = median_abs_error(drain[method], drain["remaining_s"])
        answered = drain[np.isfinite(drain[method])]
        mae_answered_s, _ = median_abs_error(answered[method], answered["remaining_s"])
        bias_s = (
            float(np.median(answered[method] - answered["remaining_s"]))
            if len(answered)
            else float("nan")
        )
        earliness = []
        for _, case in drain.groupby("case", sort=False):
            first = first_within(case["t_s"], case[method], case["remaining_s"])
            span = float(case["drain_s"].iloc[0])
            earliness.append(100.0 if np.isnan(first) else 100.0 * first / span)
        out.append(
            {
                "method": method,
                "drain_moments": len(drain),
                "median_abs_error_s": mae_s,
                "median_abs_error_pct": mae_pct,
                "median_abs_error_when_answered_s": mae_answered_s,
                "median_signed_error_when_answered_s": bias_s,
                "eta_given_share": float(np.isfinite(drain[method]).mean())
                if len(drain)
                else np.nan,
                "coverage": (
                    coverage(
                        drain[INTERVALS[method][0]],
                        drain[INTERVALS[method][1]],
                        drain["remaining_s"],
                    )
                    if method in INTERVALS
                    else np.nan
                ),
                "finite_slow_end_share": (
                    float(np.isfinite(drain[INTERVALS[method][1]]).mean())
                    if method in INTERVALS and len(drain)
                    else np.nan
                ),
                "first_within_pct_of_drain": float(np.median(earliness)) if earliness else np.nan,
                "growth_finite_eta_share": (
                    float(np.isfinite(growth[method]).mean()) if len(growth) else np.nan
                ),
            }
        )
    return pd.DataFrame(out)


def burrow_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Return how often Burrow said each status, per phase (share of moments)."""
    table = pd.crosstab(rows["phase"], rows["burrow"], normalize="index")
    return table.reindex(index=["growth", "drain"]).fillna(0.0)


# --------------------------------------------------------------------------- report


def _fmt(value: float, unit: str = "", digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if np.isinf(value):
        return "no ETA"
    return f"{value:.{digits}f}{unit}"


def _target_line(by_method: pd.DataFrame, method: str, best: float) -> tuple[str, dict[str, float]]:
    """One method's figures against the targets (ratio >= 2x, coverage 80-100%, finite >= 90%)."""
    ours = float(by_method.loc[method, "median_abs_error_s"])
    ratio = best / ours if ours > 0 else float("inf")
    cov = float(by_method.loc[method, "coverage"])
    finite = float(by_method.loc[method, "finite_slow_end_share"])
    text = (
        f"`{method}`: best baseline's median abs error / ours = **{_fmt(ratio, '×', 2)}** "
        f"(target ≥ 2×: {'met' if ratio >= 2 else 'MISSED'}); 90% interval coverage "
        f"**{cov:.0%}** (target 80–100%: {'met' if cov >= 0.8 else 'MISSED'}); finite slow end "
        f"at **{finite:.0%}** of drain moments (target ≥ 90%: "
        f"{'met' if finite >= 0.9 else 'MISSED'})."
    )
    return text, {"error_ratio": ratio, "coverage": cov, "finite_slow_end": finite, "mae_s": ours}


def section(
    rows: pd.DataFrame, label: str, *, explain: bool = False
) -> tuple[list[str], dict[str, float]]:
    """Markdown lines and headline figures for the cases in ``rows``."""
    lines = []
    figures: dict[str, float] = {}
    cases = rows["case"].nunique()
    summary = summarise(rows)
    lines.append(
        f"**{label}** — {cases} drain episode(s), {int((rows['phase'] == 'drain').sum())} drain "
        f"moments, {int((rows['phase'] == 'growth').sum())} growth moments."
    )
    lines.append("")
    lines.append(
        "| method | median abs error (s) | median abs error (% of remaining) | ETA given | "
        "median abs error where it gives an ETA (s) | median signed error there (s, + = late) | "
        f"interval coverage (nominal {CONFIDENCE:.0%}) | finite slow end | "
        "first within 20% (% into drain, median) | finite ETA while growing |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for record in summary.to_dict("records"):
        lines.append(
            f"| {record['method']} | {_fmt(record['median_abs_error_s'], '', 1)} | "
            f"{_fmt(record['median_abs_error_pct'], '%', 0)} | {record['eta_given_share']:.0%} | "
            f"{_fmt(record['median_abs_error_when_answered_s'], '', 1)} | "
            f"{_fmt(record['median_signed_error_when_answered_s'], '', 1)} | "
            f"{_fmt(100 * record['coverage'], '%', 0)} | "
            f"{_fmt(100 * record['finite_slow_end_share'], '%', 0)} | "
            f"{_fmt(record['first_within_pct_of_drain'], '%', 0)} | "
            f"{_fmt(100 * record['growth_finite_eta_share'], '%', 0)} |"
        )
    by_method = summary.set_index("method")
    best = min(
        by_method.loc["naive", "median_abs_error_s"],
        by_method.loc["predict_linear", "median_abs_error_s"],
    )
    figures["best_baseline_median_abs_error_s"] = float(best)
    lines.append("")
    lines.append(
        "`ours` reads the owner columns (`consumer_id`) where the recording has them; "
        "`ours_no_owners` is the same forecast on the frame without them (Prometheus, saved CLI "
        "output without members). Every method is asked when the lag is back at the baseline "
        "ceiling (ours with `target_lag` = the ceiling; the baselines solved for the ceiling). "
        "`ours_default_target` is time_to_drain with its default target (the healthy in-flight "
        "lag before the backlog), scored against the same crossing."
    )
    for method in INTERVALS:
        text, figs = _target_line(by_method, method, best)
        lines.append("")
        lines.append(text)
        figures.update({f"{method}_{k}": v for k, v in figs.items()})
    if explain:
        drain_rows = rows[rows["phase"] == "drain"]
        silent = float((~np.isfinite(drain_rows["ours"]) & np.isfinite(drain_rows["naive"])).mean())
        early = float((drain_rows["remaining_s"] < drain_rows["ours_low"]).mean())
        late = float((drain_rows["remaining_s"] > drain_rows["ours_high"]).mean())
        lines.append("")
        lines.append(
            f"Where `ours` misses: the true drain end came before the interval's fast end at "
            f"{early:.0%} of drain moments and after its slow end at {late:.0%}; at {silent:.0%} "
            "of drain moments ours says 'does not drain at current rates' (inf) while the naive "
            "method already has an ETA (early in a drain the span can still hold growth)."
        )
    counts = burrow_counts(rows)
    lines.append("")
    lines.append("Burrow status (share of moments; it gives no ETA):")
    lines.append("")
    lines.append("| phase | " + " | ".join(counts.columns) + " |")
    lines.append("|---|" + "---|" * len(counts.columns))
    for phase, values in counts.iterrows():
        lines.append(f"| {phase} | " + " | ".join(f"{v:.0%}" for v in values) + " |")
    per_case = []
    for name, case in rows[rows["phase"] == "drain"].groupby("case", sort=True):
        errors = {m: median_abs_error(case[m], case["remaining_s"])[0] for m in METHODS}
        cov = coverage(case["ours_low"], case["ours_high"], case["remaining_s"])
        cov_anon = coverage(case["no_owners_low"], case["no_owners_high"], case["remaining_s"])
        per_case.append(
            f"| {name} | {case['members'].iloc[0]} | {case['drain_s'].iloc[0]:.0f} | "
            + " | ".join(_fmt(errors[m], "", 1) for m in METHODS)
            + f" | {cov:.0%} | {cov_anon:.0%} |"
        )
    lines.append("")
    lines.append("<details><summary>per episode (median abs error, s)</summary>")
    lines.append("")
    lines.append(
        "| episode | partitions per member | drain length (s) | "
        + " | ".join(METHODS)
        + " | coverage ours | coverage ours_no_owners |"
    )
    lines.append("|---|---|---|" + "---|" * (len(METHODS) + 2))
    lines.extend(per_case)
    lines.append("")
    lines.append("</details>")
    return lines, figures


def run(
    *,
    fresh: bool = False,
    samples: bool = True,
    fresh_only: Iterable[str] | None = None,
    holdout: Path | None = None,
    synthetic: bool = True,
    only_samples: Iterable[str] | None = None,
    earlier_rows: pd.DataFrame | None = None,
) -> dict:
    """Run the backtest; return ``{"markdown": str, "figures": dict, "rows": DataFrame}``."""
    started = time.perf_counter()
    notes: list[str] = []
    cases = synthetic_cases() if synthetic else []
    if samples:
        found = sample_cases(None if only_samples is None else list(only_samples))
        if not found:
            notes.append("no sample recordings found (sample_data/ is empty): none backtested")
        cases.extend(found)
    if holdout is not None and holdout.is_dir():
        cases.extend(folder_cases(holdout, source="holdout"))
    if fresh:
        workdir = Path(tempfile.mkdtemp(prefix="kbp-bench-fresh-"))
        found, fresh_notes = fresh_cases(workdir, only=fresh_only)
        notes.extend(fresh_notes)
        cases.extend(found)
    results = []
    skipped = []
    for case in cases:
        rows = backtest_case(case)
        if rows is None:
            skipped.append(case.name)
        else:
            results.append(rows)
    if earlier_rows is not None:
        results.append(earlier_rows)
    all_rows = pd.concat(results, ignore_index=True) if results else pd.DataFrame()
    lines = ["## 1. Drain-forecast backtest", ""]
    lines.append(
        "At each moment: forecast with only the data up to it; truth = when total lag was back "
        "at baseline (the crossing of the baseline ceiling, interpolated between the snapshots "
        "around it, that starts 3 snapshots at or below it after the peak). "
        "Errors over drain moments; a moment without a finite ETA counts as infinitely wrong "
        "(hence 'no ETA' where a method gives none at most moments). "
        "'first within 20%' = first moment whose ETA is within 20% of the truth, as % of the "
        "way from the peak to the drain end (100% = never). Targets, on drains of at least "
        f"{LONG_DRAIN_S / 60:.0f} minutes: median abs error at least 2× better than the best "
        "baseline, 90% intervals covering 80–100%, a finite slow end at ≥ 90% of drain moments."
    )
    lines.append("")
    figures: dict[str, float] = {}
    groups: list[tuple[str, str, pd.Series]] = []
    if len(all_rows):
        real = all_rows["source"] != "synthetic"
        new = all_rows["source"].isin(["sample-new", "fresh"])
        long = all_rows["drain_s"] >= LONG_DRAIN_S
        groups = [
            ("new_long", f"New recordings, drains ≥ {LONG_DRAIN_S:.0f} s (all)", new & long),
            ("new_long_unequal", "New recordings, drains ≥ 3 min, unequal partitions per member",
             new & long & (all_rows["members"] == "unequal")),
            ("new_long_equal", "New recordings, drains ≥ 3 min, equal partitions per member",
             new & long & (all_rows["members"] == "equal")),
            ("holdout_long", "Held-out recordings (not in git), drains ≥ 3 min",
             (all_rows["source"] == "holdout") & long),
            ("new_short", f"New recordings, drains < {LONG_DRAIN_S:.0f} s", new & ~long),
            ("old", "Old samples (first recordings, drains of 21–129 s)",
             all_rows["source"] == "sample-old"),
            ("synthetic", "SYNTHETIC (kbp_notebook.datasets.make_lag: random walk with drift "
             "+ commit jitter, the model time_to_drain assumes — a flattering reference, not "
             "evidence)", ~real),
        ]  # fmt: skip
    for key, label, mask in groups:
        part_rows = all_rows[mask]
        if not len(part_rows) or not (part_rows["phase"] == "drain").any():
            lines.append(f"**{label}: none in this run.**")
            lines.append("")
            continue
        part, figs = section(part_rows, label, explain=key != "synthetic")
        lines.extend(part)
        lines.append("")
        figures.update({f"{key}_{k}": v for k, v in figs.items()})
    if skipped:
        lines.append("")
        lines.append(f"Without a drain episode (not scored): {', '.join(skipped)}.")
    for note in notes:
        lines.append("")
        lines.append(f"Note: {note}.")
    lines.append("")
    lines.append(f"(backtest took {time.perf_counter() - started:.0f} s)")
    return {"markdown": "\n".join(lines), "figures": figures, "rows": all_rows}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: print the backtest section as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fresh", action="store_true", help="also run short scenarios on the sandbox"
    )
    parser.add_argument("--only", action="append", help="fresh scenario name (repeatable)")
    parser.add_argument("--no-samples", action="store_true", help="skip bundled samples")
    parser.add_argument("--csv", help="write the per-moment rows here")
    parser.add_argument(
        "--holdout", type=Path, help="a folder of held-out Dataset folders, reported apart"
    )
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic frames")
    parser.add_argument("--sample", action="append", help="only this sample (repeatable)")
    parser.add_argument(
        "--rows", type=Path, help="per-moment rows of an earlier run (its --csv) to report with"
    )
    args = parser.parse_args(argv)
    result = run(
        fresh=args.fresh,
        samples=not args.no_samples,
        fresh_only=args.only,
        holdout=args.holdout,
        synthetic=not args.no_synthetic,
        only_samples=args.sample,
        earlier_rows=pd.read_csv(args.rows) if args.rows else None,
    )
    if args.csv:
        result["rows"].to_csv(args.csv, index=False)
    print(result["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
