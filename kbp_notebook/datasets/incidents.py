"""Synthetic incidents with a known cause and onset, one per word of the cause vocabulary.

A per-second simulation of one group reading one topic: producers append to each
partition at its own rate; each member owns partitions round-robin and reads them at
up to its capacity (shared evenly, capped per partition by what one consumer can do on
one partition); members commit every ``COMMIT_S`` seconds; snapshots every ``STEP_S``
seconds land between commits, so healthy lag is a sawtooth as in a real recording.

The incident runs from ``ONSET_S`` for two minutes (``consumer_stopped``: two and a
half, then the members come back; ``offset_rewind``: one jump back of 4,000 messages
per partition at ``ONSET_S``) in a recording of ``DURATION_S`` seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kbp_notebook.analysis.incident_model import CAUSES
from kbp_notebook.errors import KbpInputError
from kbp_notebook.frames import Dataset

__all__ = [
    "COMMIT_S", "DURATION_S", "KINDS", "ONSET_S", "PARTITIONS", "START", "STEP_S",
    "incident_case",
]  # fmt: skip

ONSET_S = 120.0
DURATION_S = 420.0
STEP_S = 5.0
COMMIT_S = 5.0
START = pd.Timestamp("2026-03-01T10:00:00Z")
PARTITIONS = 6
#: Every cause of the incident model's vocabulary, ``none`` (a healthy group) first.
KINDS: tuple[str, ...] = ("none", *(cause for cause in CAUSES if cause != "none"))


def incident_case(kind: str, *, seed: int = 0, owners: bool = True) -> Dataset:
    """Return a Dataset whose group ``g`` (topic ``t``) suffers ``kind`` from ``ONSET_S`` on.

    Parameters
    ----------
    kind : str
        One of ``KINDS``.
    seed : int
        Seed of the produce-rate noise and the broker metrics.
    owners : bool
        Whether the LAG frame has ``consumer_id`` (member ids carry the group
        generation, so a rebalance shows as new owners).

    Returns
    -------
    Dataset
        ``lag`` (6 partitions, a snapshot every 5 s) and broker ``metrics``
        (``log_flush_time_ms_p99``, ``produce_total_time_ms_p99``).

    Raises
    ------
    KbpInputError
        If ``kind`` is not one of ``KINDS``.

    Examples
    --------
    >>> ds = incident_case("consumer_stopped")
    >>> sorted(ds.lag["group"].unique().tolist())
    ['g']
    """
    if kind not in KINDS:
        raise KbpInputError(
            f"unknown incident kind {kind!r}: pass one of {', '.join(KINDS)}"
        )
    rng = np.random.default_rng(seed)
    seconds = np.arange(int(DURATION_S) + 1, dtype=np.float64)
    in_incident = (seconds >= ONSET_S) & (seconds < ONSET_S + 120)
    produce = np.full((PARTITIONS, len(seconds)), 40.0)
    capacity = np.full(len(seconds), 400.0)  # per member
    per_partition_cap = 150.0
    members = np.full(len(seconds), 2)
    paused = np.zeros(len(seconds), dtype=bool)
    stalled_member = np.full(len(seconds), -1)
    generation = np.zeros(len(seconds), dtype=np.int64)
    rewind_at: float | None = None
    if kind == "producer_surge":
        produce[:, in_incident] = 160.0
    elif kind == "consumer_slowdown":
        capacity[in_incident] = 60.0
    elif kind == "broker_slow":
        capacity[in_incident] = 60.0
    elif kind == "consumer_stopped":
        members[seconds >= ONSET_S] = 0
        members[seconds >= ONSET_S + 150] = 2
    elif kind == "consumer_stalled":
        stalled_member[in_incident] = 0
    elif kind == "partition_skew":
        produce[:, in_incident] = 10.0
        produce[5, in_incident] = 190.0
    elif kind == "rebalance_churn":
        for k in range(6):
            at = ONSET_S + 20 * k
            generation[seconds >= at] += 1
            paused[(seconds >= at) & (seconds < at + 15)] = True
    elif kind == "offset_rewind":
        rewind_at = ONSET_S
    produce = produce * (1 + 0.05 * rng.standard_normal(produce.shape)).clip(0.5, 1.5)
    log_end = 1_000_000 + np.cumsum(produce, axis=1)
    position = np.full(PARTITIONS, 1_000_000.0)
    committed = np.empty_like(log_end)
    last_commit = position.copy()
    owner_of = np.arange(PARTITIONS) % 2
    for j, second in enumerate(seconds):
        if rewind_at is not None and second == rewind_at:
            position = np.maximum(position - 4_000.0, 1_000_000.0)
            last_commit = position.copy()
        if members[j] > 0 and not paused[j]:
            for member in range(members[j]):
                if stalled_member[j] == member:
                    continue
                mine = owner_of == member
                share = capacity[j] / mine.sum()
                room = log_end[mine, j] - position[mine]
                position[mine] += np.minimum(room, min(share, per_partition_cap))
        if second % COMMIT_S == 0 and members[j] > 0:
            last_commit = np.where(
                (owner_of == stalled_member[j]), last_commit, position
            )
        committed[:, j] = last_commit
    snap = np.arange(2, len(seconds), int(STEP_S))
    rows = []
    for j in snap.tolist():
        for p in range(PARTITIONS):
            if owners and members[j] > 0:
                owner = f"g-member-{owner_of[p]}-gen{generation[j]}"
            else:
                owner = None
            rows.append((START + pd.Timedelta(seconds=float(seconds[j])), p,
                         int(committed[p, j]), int(log_end[p, j]), owner))
    frame = pd.DataFrame(rows, columns=["time", "partition", "committed_offset",
                                        "log_end_offset", "consumer_id"])
    frame.insert(1, "cluster", "test")
    frame.insert(2, "group", "g")
    frame.insert(3, "topic", "t")
    frame["lag"] = frame["log_end_offset"] - frame["committed_offset"]
    if not owners:
        frame = frame.drop(columns="consumer_id")
    return Dataset(lag=frame, metrics=_broker_metrics(kind, seconds, rng))


def _broker_metrics(kind: str, seconds: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    every = seconds[::2]
    flush = 50.0 + 5.0 * rng.standard_normal(len(every))
    produce = 30.0 + 3.0 * rng.standard_normal(len(every))
    if kind == "broker_slow":
        hot = (every >= ONSET_S - 10) & (every < ONSET_S + 120)
        flush[hot] *= 4.0
        produce[hot] *= 3.0
    times = START + pd.to_timedelta(every, unit="s")
    return pd.DataFrame({
        "time": np.r_[times, times],
        "cluster": "test",
        "entity": "broker-1",
        "metric": (["log_flush_time_ms_p99"] * len(every)
                   + ["produce_total_time_ms_p99"] * len(every)),
        "value": np.r_[flush, produce],
    })
