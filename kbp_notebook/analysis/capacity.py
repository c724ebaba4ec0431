"""How many consumers (and partitions) to drain a backlog within a target time.

Per key (group + topic):

1. ``lag``, ``produce_rate`` and ``consume_rate`` come from
   :func:`kbp_notebook.analysis.drain.time_to_drain` (same spans, same rates).
2. ``per_consumer_rate`` (messages/s one consumer handles) is estimated from
   the data: for every interval between snapshots in which the key had a
   backlog at the start (so consumers were busy, not waiting for data), the
   consume rate over the interval is regressed through the origin on the
   number of active members (distinct ``consumer_id`` owning the key's
   partitions). When membership changed during the recording this is
   literally "how consume rate varied with the number of members". Without
   ``consumer_id`` the current consume rate is divided by ``consumers`` (if
   given). If the consumers were never behind, the rate they showed is only
   what producers offered: it is reported as a lower bound in ``note``.
3. ``consumers_needed = ceil((produce_rate * (1 + produce_growth) + lag /
   target_s) / per_consumer_rate)``. A consumer group cannot usefully have
   more active members than partitions; where that cap binds,
   ``partitions_needed`` says how many partitions (one consumer each) would
   do, and ``feasible`` is False.
4. ``eta_s_at_plan`` is the drain time with the planned consumers (needed,
   capped by partitions, or the ``consumers`` of :meth:`CapacityPlan.what_if`).

5. **One consumer per partition**: a partition is read by one member at a
   time, so no group size drains a partition faster than ``per_consumer_rate``
   minus what producers write to it. The partition that drains slowest with
   a consumer of its own (``slowest_partition``) bounds ``eta_s_at_plan``;
   where its produce rate is at or above ``per_consumer_rate`` the plan is
   not feasible at any size ("re-key or add partitions").
6. **A one-off burst is not steady state**: planning at ``as_of`` inside an
   episode that the incident model calls a ``producer_surge`` and that ended
   on its own, the steady produce rate from before the surge is planned for,
   and the note says so (``produce_growth`` plans for the peak instead).
7. Rates are never negative: a rewind moves committed offsets back, which is
   not negative consumption (the rate reads 0 and the note says why).

Assumes per-consumer throughput is the bottleneck and scales linearly with
members up to the partition count; a broker, disk or downstream limit will
make the plan optimistic (see ``diagnose``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from kbp_notebook.analysis._result import Result
from kbp_notebook.analysis._series import (
    build_panel,
    int_column,
    normalise_by,
    owner_ids,
    prepare_lag,
    quiet,
)
from kbp_notebook.analysis.drain import time_to_drain
from kbp_notebook.errors import KbpDataError, KbpInputError
from kbp_notebook.units import format_rate, format_time

__all__ = ["CapacityPlan", "capacity_plan"]

KEYS = ("cluster", "group", "topic")
COLUMNS = [
    *KEYS,
    "lag",
    "produce_rate",
    "consume_rate",
    "consumers_now",
    "partitions",
    "per_consumer_rate",
    "consumers_needed",
    "partitions_needed",
    "consumers_planned",
    "eta_s_at_plan",
    "slowest_partition",
    "feasible",
    "note",
]


@dataclass(frozen=True, repr=False)
class CapacityPlan(Result):
    """Consumers and partitions needed per (group, topic) to meet ``target_s``.

    Attributes
    ----------
    table
        One row per key with the columns in :data:`COLUMNS` (rates in
        messages/s, ``eta_s_at_plan`` in seconds).
    basis
        The measured inputs (lag, rates, members, per-consumer rate and its
        provenance) that :meth:`what_if` re-plans from.
    target_s
        Drain target in seconds.
    produce_growth
        Assumed relative growth of the produce rate (0.2 = +20 %).
    """

    basis: pd.DataFrame = None  # type: ignore[assignment]
    target_s: float = 0.0
    produce_growth: float = 0.0
    consumers: int | None = None
    per_consumer_rate: float | None = None

    plot_builder: ClassVar[str] = "plot_capacity"
    title: ClassVar[str] = "Capacity plan"

    def summary_lines(self) -> list[str]:
        """Target and how many keys can meet it."""
        feasible = int(self.table["feasible"].fillna(False).astype(bool).sum())
        return [
            f"target: drain within {self.target_s:g} s "
            f"at produce rate x {1 + self.produce_growth:g}",
            f"{feasible} of {len(self.table)} key(s) feasible within their partition count",
        ]

    def what_if(
        self,
        *,
        consumers: int | None = None,
        produce_growth: float | None = None,
        per_consumer_rate: float | None = None,
        target_s: float | None = None,
        partitions: int | None = None,
    ) -> CapacityPlan:
        """Re-plan with other assumptions (no data needed; for widgets).

        Parameters
        ----------
        consumers
            Plan with this many consumers (capped by partitions) instead of
            the number needed.
        produce_growth
            Relative produce-rate growth (0.5 = +50 %).
        per_consumer_rate
            Override the measured messages/s per consumer.
        target_s
            Another drain target.
        partitions
            Assume this many partitions per key.

        Returns
        -------
        CapacityPlan
        """
        basis = self.basis
        if partitions is not None:
            basis = basis.assign(partitions=int(partitions))
        return _plan(
            basis,
            target_s=self.target_s if target_s is None else target_s,
            produce_growth=self.produce_growth if produce_growth is None else produce_growth,
            consumers=self.consumers if consumers is None else consumers,
            per_consumer_rate=(
                self.per_consumer_rate if per_consumer_rate is None else per_consumer_rate
            ),
        )


def _check(
    target_s: float, produce_growth: float, consumers: int | None, rate: float | None
) -> None:
    if not (isinstance(target_s, (int, float)) and np.isfinite(target_s) and target_s > 0):
        raise KbpInputError(
            f"target_s={target_s!r} must be a positive number of seconds, e.g. 3600."
        )
    if not produce_growth > -1:
        raise KbpInputError(f"produce_growth={produce_growth!r} must be above -1 (0.2 = +20 %).")
    if consumers is not None and consumers < 1:
        raise KbpInputError(f"consumers={consumers!r} must be at least 1.")
    if rate is not None and not rate > 0:
        raise KbpInputError(f"per_consumer_rate={rate!r} must be positive messages/s.")


def _plan(
    basis: pd.DataFrame,
    *,
    target_s: float,
    produce_growth: float,
    consumers: int | None,
    per_consumer_rate: float | None,
) -> CapacityPlan:
    _check(target_s, produce_growth, consumers, per_consumer_rate)
    with quiet():
        return _plan_rows(
            basis,
            target_s=target_s,
            produce_growth=produce_growth,
            consumers=consumers,
            per_consumer_rate=per_consumer_rate,
        )


def _plan_rows(
    basis: pd.DataFrame,
    *,
    target_s: float,
    produce_growth: float,
    consumers: int | None,
    per_consumer_rate: float | None,
) -> CapacityPlan:
    lag = basis["lag"].to_numpy(np.float64)
    produce = basis["produce_rate"].to_numpy(np.float64) * (1.0 + produce_growth)
    partition_lag = basis["partition_lags"].to_list()
    partition_numbers = basis["partition_numbers"].to_list()
    partition_produce = [np.asarray(p, dtype=np.float64) * (1.0 + produce_growth)
                         for p in basis["partition_produce_rates"].to_list()]
    partitions = basis["partitions"].to_numpy(np.float64)
    rate = basis["per_consumer_rate"].to_numpy(np.float64)
    if per_consumer_rate is not None:
        rate = np.full(len(basis), float(per_consumer_rate))
    with np.errstate(invalid="ignore", divide="ignore"):
        demand = produce + np.maximum(lag, 0.0) / target_s
        needed = np.maximum(np.ceil(demand / rate - 1e-9), 1.0)
        capped = np.minimum(needed, partitions)
        planned = capped if consumers is None else np.minimum(float(consumers), partitions)
        capacity = planned * rate
        eta = np.where(
            lag <= 0, 0.0, np.where(capacity > produce, lag / (capacity - produce), np.inf)
        )
        slowest_at, partition_eta = _slowest_partition(partition_lag, partition_produce, rate)
        eta = np.fmax(eta, partition_eta)
    slowest = [None if at is None else int(numbers[at])
               for at, numbers in zip(slowest_at, partition_numbers, strict=True)]
    hot_bound = np.isinf(partition_eta)
    known = np.isfinite(rate) & (rate > 0)
    feasible = known & (needed <= partitions) & (eta <= target_s) & ~hot_bound
    partitions_needed = np.where(known, np.maximum(needed, partitions), np.nan)
    notes = []
    for row, was_needed, part, ok, is_known, eta_row, hot, bound in zip(
        basis.itertuples(index=False), needed, partitions, feasible, known, eta, slowest,
        hot_bound, strict=True,
    ):  # builds one sentence per key for the reader; all maths is above, vectorised
        parts = [str(row.basis_note)] if row.basis_note else []
        if not is_known:
            parts.append("no per-consumer rate: pass consumers= or per_consumer_rate=")
        elif bound:
            parts.append(
                f"partition {hot} receives more than one consumer reads "
                f"({format_rate(row.per_consumer_rate)}): no number of consumers drains it; "
                "re-key the hot key or add partitions"
            )
        elif was_needed > part:
            parts.append(
                f"needs {was_needed:.0f} consumers but only {part:.0f} partitions: "
                f"add partitions (to {was_needed:.0f}) or speed up each consumer"
            )
        elif not ok and np.isfinite(eta_row):
            parts.append("planned consumers drain more slowly than the target")
        elif not ok:
            parts.append("planned consumers cannot keep up with producers")
        notes.append("; ".join(parts))
    table = basis[
        [*KEYS, "lag", "produce_rate", "consume_rate", "consumers_now", "partitions"]
    ].copy()
    table["produce_rate"] = produce
    table["per_consumer_rate"] = rate
    table["consumers_needed"] = int_column(np.where(known, needed, np.nan)).array
    table["partitions_needed"] = int_column(partitions_needed).array
    table["consumers_planned"] = int_column(np.where(known, planned, np.nan)).array
    table["eta_s_at_plan"] = np.where(known, eta, np.nan)
    table["slowest_partition"] = pd.array(slowest, dtype="Int64")
    table["feasible"] = feasible
    table["note"] = pd.array(notes, dtype="string")
    return CapacityPlan(
        table=table[COLUMNS],
        basis=basis,
        target_s=float(target_s),
        produce_growth=float(produce_growth),
        consumers=consumers,
        per_consumer_rate=per_consumer_rate,
    )


def _partition_lists(partitions: pd.DataFrame) -> pd.DataFrame:
    """Per key: the partitions' numbers, lags and produce rates as arrays (for the ceiling)."""
    rows = []
    for key, part in partitions.groupby(list(KEYS), sort=False, observed=True):
        rows.append({
            **dict(zip(KEYS, key, strict=True)),
            "partition_numbers": part["partition"].to_numpy(),
            "partition_lags": part["lag"].to_numpy(dtype=np.float64),
            "partition_produce_rates": np.clip(
                part["produce_rate"].to_numpy(dtype=np.float64), 0.0, None),
        })
    return pd.DataFrame(rows, columns=[*KEYS, "partition_numbers", "partition_lags",
                                       "partition_produce_rates"])


def _steady_produce_rates(drain: pd.DataFrame, whole: pd.DataFrame, *, at: pd.Timestamp
                          ) -> pd.DataFrame:
    """Replace a surge that ended on its own by the steady rate before it (with a note)."""
    from kbp_notebook.analysis.incident_model import incidents

    drain = drain.assign(steady_note="", produce_scale=1.0)
    try:
        episodes = incidents(whole).episodes
    except KbpDataError:
        return drain
    surges = episodes[(episodes["cause"] == "producer_surge") & episodes["recovered"].astype(bool)
                      & (episodes["start"] <= at) & (episodes["end"] >= at)]
    for _, surge in surges.iterrows():
        mine = (drain["group"] == surge["group"]) & (drain["topic"] == surge["topic"])
        steady = float(surge["produce_rate_before_per_s"])
        if not mine.any() or not np.isfinite(steady):
            continue
        current = drain.loc[mine, "produce_rate"].to_numpy(dtype=np.float64)
        drain.loc[mine, "produce_scale"] = np.where(current > steady, steady / current, 1.0)
        drain.loc[mine, "produce_rate"] = np.minimum(current, steady)
        drain.loc[mine, "steady_note"] = (
            f"the {format_rate(surge['produce_rate_during_per_s'])} surge from "
            f"{format_time(surge['start'])} drained on its own by {format_time(surge['end'])}: "
            f"planned for the steady {format_rate(steady)} (produce_growth= plans for a peak)"
        )
    return drain


def _slowest_partition(
    lags: list[np.ndarray], produce: list[np.ndarray], rate: np.ndarray
) -> tuple[list[int | None], np.ndarray]:
    """Per key, the partition that drains slowest with a consumer of its own, and its ETA.

    ETA is ``lag / (rate - produce)`` per partition; inf where producers write to it at
    least as fast as one consumer reads (no group size helps); 0 without partitions.
    """
    slowest: list[int | None] = []
    eta = np.zeros(len(rate))
    for index, (lag, prod, r) in enumerate(zip(lags, produce, rate, strict=True)):
        lag = np.asarray(lag, dtype=np.float64)
        if len(lag) == 0 or not np.isfinite(r):
            slowest.append(None)
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            each = np.where(lag <= 0, 0.0, np.where(r > prod, lag / (r - prod), np.inf))
        each = np.where(np.isnan(each), 0.0, each)
        worst = int(np.argmax(each))
        slowest.append(worst if each[worst] > 0 else None)
        eta[index] = each[worst]
    return slowest, eta


def _members_and_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Per key: through-origin fit of busy-interval consume rate on active members."""
    keys = list(KEYS)
    extra: dict[str, np.ndarray] = {}
    owned = owner_ids(frame)
    has_ids = owned is not None and frame["consumer_id"].notna().any()
    if owned is not None and has_ids:
        by_time = [frame[name] for name in [*keys, "time"]]
        members = owned.groupby(by_time, observed=True).transform("nunique")
        rows = frame["time"].groupby(by_time, observed=True).transform("size")
        # Summing members / rows over a snapshot's partition rows gives the member count.
        extra["members"] = (members.fillna(0) / rows).to_numpy(np.float64)
    panel = build_panel(
        frame, by=normalise_by(("group", "topic")), columns=("committed_offset", "lag"), extra=extra
    )
    t = panel.time_s
    committed = panel["committed_offset"]
    backlog = panel["lag"]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.diff(committed, axis=1) / np.diff(t, axis=1)
    busy = (backlog[:, :-1] > 0) & ~np.isnan(rate)
    out = panel.keys.copy()
    out["busy_intervals"] = busy.sum(axis=1)
    if has_ids:
        m = panel["members"][:, :-1]
        use = busy & (m > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            fit = np.where(use, rate * m, 0.0).sum(axis=1) / np.where(use, m * m, 0.0).sum(axis=1)
        out["fitted_rate"] = np.where(use.any(axis=1), fit, np.nan)
        out["members_now"] = np.round(panel.last(panel["members"]))
        out["members_min"] = np.nanmin(np.where(use, m, np.nan), axis=1, initial=np.inf)
        out["members_max"] = np.nanmax(np.where(use, m, np.nan), axis=1, initial=-np.inf)
    else:
        out["fitted_rate"] = np.nan
        out["members_now"] = np.nan
    return out


def capacity_plan(
    lag: pd.DataFrame,
    *,
    target_s: float,
    partitions: int | None = None,
    consumers: int | None = None,
    produce_growth: float = 0.0,
    per_consumer_rate: float | None = None,
    as_of: object = None,
) -> CapacityPlan:
    """Consumers (capped by partitions) and partitions needed to drain within ``target_s``.

    Parameters
    ----------
    lag
        LAG frame; ``consumer_id`` lets the per-consumer rate be measured.
    target_s
        Drain the current backlog within this many seconds.
    partitions
        Partition count to plan with (default: partitions seen per key).
    consumers
        Consumers running now, used when the frame has no ``consumer_id``
        (and as ``consumers_now`` then).
    produce_growth
        Expected relative growth of the produce rate (0.2 = +20 %).
    per_consumer_rate
        Override the measured messages/s per consumer.
    as_of
        Plan as of this time (e.g. the peak of an episode) from the snapshots up to it;
        the whole frame is still read by the incident model, so a surge that ended on
        its own after ``as_of`` is not planned as steady state. Default: the last snapshot.

    Returns
    -------
    CapacityPlan
        ``.table`` per (group, topic); ``.what_if(...)`` re-plans.

    Raises
    ------
    KbpInputError
        Bad frame or option.
    KbpDataError
        A single key whose per-consumer rate cannot be estimated and was
        not given.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> plan = kbp.capacity_plan(kbp.load_sample("slow-consumer-then-scale-out").lag,
    ...                          target_s=3600)  # doctest: +SKIP
    >>> plan.what_if(consumers=6).table  # doctest: +SKIP
    """
    _check(target_s, produce_growth, consumers, per_consumer_rate)
    basis, rewound = _basis(lag, as_of)
    if partitions is not None:
        basis["partitions"] = int(partitions)
    now = basis["members_now"].to_numpy(np.float64)
    if consumers is not None:
        now = np.where(np.isnan(now), float(consumers), now)
    basis["consumers_now"] = int_column(np.where(np.isnan(now), np.nan, now)).array
    rate, measured_notes = _per_consumer_rate(basis, now)
    notes = [
        "; ".join(part for part in (str(a), str(b), "committed offsets moved back (a rewind), "
                                    "so the consume rate reads 0" if back else "") if part)
        for a, b, back in zip(measured_notes, basis["steady_note"].fillna(""), rewound,
                              strict=True)
    ]
    basis["per_consumer_rate"] = rate
    basis["basis_note"] = notes
    if len(basis) == 1 and not np.isfinite(rate[0]) and per_consumer_rate is None:
        key = ", ".join(f"{name}={basis.iloc[0][name]!r}" for name in KEYS)
        raise KbpDataError(
            f"capacity_plan: cannot estimate the per-consumer rate for {key}: the frame has no "
            f"'consumer_id' column and consumers= was not given (or nothing was consumed). "
            f"Pass consumers=<members now> or per_consumer_rate=<messages/s>.",
            key=key,
        )
    return _plan(
        basis,
        target_s=target_s,
        produce_growth=produce_growth,
        consumers=None,
        per_consumer_rate=per_consumer_rate,
    )


def _basis(lag: pd.DataFrame, as_of: object) -> tuple[pd.DataFrame, np.ndarray]:
    """Gather what the plan starts from per key: lag, rates, members, partitions (to ``as_of``).

    Returns the basis and, per key, whether committed offsets moved back (a
    rewind; its consume rate is read as 0).
    """
    whole = prepare_lag(lag)
    frame = whole
    if as_of is not None:
        when = pd.Timestamp(as_of)  # type: ignore[arg-type]
        when = when.tz_localize("UTC") if when.tzinfo is None else when
        frame = prepare_lag(whole[whole["time"] <= when])
    forecast = time_to_drain(frame, by=("group", "topic"))
    drain = forecast.table.copy()
    with quiet():
        measured = _members_and_rates(frame)
    drain = _steady_produce_rates(drain, whole, at=frame["time"].max())
    basis = drain[[*KEYS, "lag", "produce_rate", "consume_rate", "partitions", "steady_note",
                   "produce_scale"]]
    basis = basis.merge(measured, on=list(KEYS), how="left").merge(
        _partition_lists(forecast.partitions), on=list(KEYS), how="left"
    )
    basis["partition_produce_rates"] = [
        rates * scale for rates, scale in zip(basis["partition_produce_rates"],
                                              basis["produce_scale"], strict=True)
    ]
    rewound = basis["consume_rate"].to_numpy(np.float64) < 0
    basis["consume_rate"] = np.maximum(basis["consume_rate"].to_numpy(np.float64), 0.0)
    return basis, rewound


def _per_consumer_rate(basis: pd.DataFrame, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Messages/s one consumer handles, per key, and how it was measured.

    Fitted while the group was behind where it was; else the consume rate over
    the ``now`` consumers (a lower bound when they were never behind). NaN
    where neither is known.
    """
    fitted = basis["fitted_rate"].to_numpy(np.float64)
    busy = basis["busy_intervals"].to_numpy() > 0
    consume = basis["consume_rate"].to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        from_now = consume / now
    rate = np.where(np.isfinite(fitted) & (fitted > 0), fitted, from_now)
    rate = np.where(rate > 0, rate, np.nan)
    measured_notes = np.where(
        np.isfinite(fitted) & (fitted > 0),
        "per-consumer rate measured while behind",
        np.where(
            busy & np.isfinite(rate),
            "per-consumer rate = consume rate / consumers",
            np.where(
                np.isfinite(rate),
                "consumers were never behind: per-consumer rate is a lower bound",
                "",
            ),
        ),
    )
    return rate, measured_notes
