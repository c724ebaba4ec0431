"""Synthetic LAG frames with known answers: a producer and a consumer per partition.

``make_lag`` simulates, for every (group, topic, partition), a producer
appending at ``produce_rate`` messages/s and a consumer able to commit at
``consume_rate`` messages/s (never past the log end), sampled every
``step_s`` seconds. Everything is vectorised across partitions, so a
100,000-partition frame is cheap to build.

Knobs (all optional):

* ``produce_rate`` / ``consume_rate``: a number, or breakpoints
  ``[(t_s, rate), ...]`` for steps (rate from ``t_s`` on);
* ``skew``: per-partition multipliers of the produce rate;
* ``rw_noise``: standard deviation of the per-second rate fluctuation of
  both producer and consumer (offsets become random walks with drift:
  per sample the increment's sd is ``rw_noise * sqrt(step_s)``);
* ``noise``: measurement noise (messages, sd) on the committed offset, as
  commit timing jitter would give;
* ``stalls``: ``[(from_s, to_s), ...]`` when the consumer does not move;
* ``rewinds``: ``[(t_s, messages), ...]``: the committed offset jumps back;
* ``spikes``: ``[(t_s, messages), ...]``: one sample reports the committed
  offset that many messages behind (rebalance artefact), then it recovers;
* ``owners``: None (no ``consumer_id`` column), an int (that many consumers
  round-robin over partitions), or ``"none"`` (column present, all empty);
* ``retention_msgs``: adds ``log_start_offset = max(0, log_end - retention_msgs)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Rate", "Simulation", "drain_case", "make_lag", "simulate"]

Rate = float | Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Simulation:
    """Offsets of ``P`` partitions at ``T`` sample times, from :func:`simulate`.

    Attributes
    ----------
    t_s : numpy.ndarray
        Sample times in seconds from the start, shape ``(T,)``.
    log_end : numpy.ndarray
        Log end offsets, int64, shape ``(P, T)``.
    committed : numpy.ndarray
        Committed offsets as a collector would observe them (measurement
        noise and spikes included), int64, shape ``(P, T)``.
    committed_true : numpy.ndarray
        The consumer's real position (before noise and spikes), int64,
        shape ``(P, T)``.
    """

    t_s: np.ndarray
    log_end: np.ndarray
    committed: np.ndarray
    committed_true: np.ndarray


def _rate_at(rate: Rate, t: np.ndarray) -> np.ndarray:
    if isinstance(rate, (int, float)):
        return np.full_like(t, float(rate))
    points = sorted(rate)
    out = np.full_like(t, float(points[0][1]))
    for start, value in points:
        out[t >= start] = value
    return out


def simulate(
    *,
    partitions: int = 1,
    n: int = 120,
    step_s: float = 5.0,
    produce_rate: Rate = 100.0,
    consume_rate: Rate = 100.0,
    start_lag: float = 0.0,
    skew: Sequence[float] | None = None,
    rw_noise: float = 0.0,
    noise: float = 0.0,
    stalls: Sequence[tuple[float, float]] = (),
    rewinds: Sequence[tuple[float, float]] = (),
    spikes: Sequence[tuple[float, float]] = (),
    start_offset: float = 1_000_000.0,
    seed: int = 0,
) -> Simulation:
    """Simulate the offsets of ``partitions`` partitions read by one consumer each.

    Parameters
    ----------
    partitions, n, step_s : int, int, float
        How many partitions, how many samples, seconds between samples.
    produce_rate, consume_rate : float or sequence of (t_s, rate)
        Messages per second appended, and the most the consumer can commit,
        per partition; a sequence gives steps (each rate from its ``t_s`` on).
    start_lag : float
        Backlog at the first sample, messages.
    skew : sequence of float, optional
        Per-partition multipliers of the produce rate.
    rw_noise, noise : float
        Rate fluctuation (random walk, messages/s sd) and measurement noise
        on the committed offset (messages sd); see the module docstring.
    stalls, rewinds, spikes : sequence of pairs
        Consumer stalls ``(from_s, to_s)``, committed-offset rewinds and
        one-sample spikes ``(t_s, messages)``.
    start_offset : float
        Committed offset of every partition at the first sample.
    seed : int
        Seed of the random generator: equal arguments give equal offsets.

    Returns
    -------
    Simulation
        Sample times and the (P, T) offset arrays.

    Examples
    --------
    >>> sim = simulate(partitions=2, n=3, produce_rate=10.0, consume_rate=0.0)
    >>> (sim.log_end - sim.committed)[:, -1].tolist()
    [100, 100]
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64) * step_s
    produce = _rate_at(produce_rate, t)[None, :] * np.ones((partitions, 1))
    if skew is not None:
        produce = produce * np.asarray(skew, dtype=np.float64)[:, None]
    capacity = _rate_at(consume_rate, t)[None, :] * np.ones((partitions, 1))
    produced = produce * step_s
    consumable = capacity * step_s
    if rw_noise > 0:
        sd = rw_noise * np.sqrt(step_s)
        produced = produced + rng.normal(0.0, sd, size=produced.shape)
        consumable = consumable + rng.normal(0.0, sd, size=consumable.shape)
    produced = np.maximum(produced, 0.0)
    consumable = np.maximum(consumable, 0.0)
    produced[:, 0] = 0.0
    log_end = start_offset + start_lag + np.cumsum(produced, axis=1)
    committed = np.empty_like(log_end)
    current = np.full(partitions, start_offset)
    stalled = np.zeros(n, dtype=bool)
    for begin, end in stalls:
        stalled |= (t >= begin) & (t < end)
    rewind_at = dict(rewinds)
    # A loop over samples (not partitions): each step depends on the previous position.
    for j in range(n):
        if j > 0 and not stalled[j]:
            current = np.minimum(log_end[:, j], current + consumable[:, j])
        for when, amount in rewind_at.items():
            if t[j] - step_s < when <= t[j]:
                current = np.maximum(current - amount, 0.0)
        committed[:, j] = current
    log_end_i = np.round(log_end).astype(np.int64)
    committed_true = np.minimum(np.round(committed).astype(np.int64), log_end_i)
    observed = committed.copy()
    if noise > 0:
        observed = observed + rng.normal(0.0, noise, size=observed.shape)
    for when, amount in spikes:
        j = int(np.argmin(np.abs(t - when)))
        observed[:, j] -= amount
    observed_i = np.clip(np.round(observed), 0, log_end_i).astype(np.int64)
    return Simulation(
        t_s=t, log_end=log_end_i, committed=observed_i, committed_true=committed_true
    )


def make_lag(
    *,
    groups: Sequence[str] = ("orders-consumer",),
    topics: Sequence[str] = ("orders",),
    partitions: int = 1,
    n: int = 120,
    step_s: float = 5.0,
    start: str = "2026-01-01T00:00:00Z",
    cluster: str = "test",
    owners: int | str | None = None,
    retention_msgs: float | None = None,
    seed: int = 0,
    **simulate_options: Any,
) -> pd.DataFrame:
    """Build a LAG frame in which every group reads every topic.

    Parameters
    ----------
    groups, topics : sequence of str
        Consumer group ids and topic names; each (group, topic) pair is
        simulated with its own random stream (seed derived from ``seed``).
    partitions, n, step_s : int, int, float
        Partitions per topic, samples, seconds between samples.
    start : str
        Time of the first sample (UTC).
    cluster : str
        Value of the ``cluster`` column.
    owners : int or "none", optional
        Adds ``consumer_id``: that many members round-robin over the
        partitions, or ``"none"`` for a column of NA (no owner).
    retention_msgs : float, optional
        Adds ``log_start_offset = max(0, log_end_offset - retention_msgs)``.
    seed : int
        Seed: equal arguments give equal frames.
    **simulate_options
        The simulation's other knobs (``produce_rate``, ``consume_rate``,
        ``start_lag``, ``skew``, ``rw_noise``, ``noise``, ``stalls``,
        ``rewinds``, ``spikes``, ``start_offset``), as in :func:`simulate`.

    Returns
    -------
    pandas.DataFrame
        A LAG frame (``time`` UTC, string keys, Int64 offsets and lag).

    Examples
    --------
    >>> lag = make_lag(partitions=2, n=3, produce_rate=10.0, consume_rate=0.0)
    >>> lag.groupby("time")["lag"].sum().tolist()
    [0, 100, 200]
    """
    frames = []
    t0 = pd.Timestamp(start)
    index = 0
    for group in groups:
        for topic in topics:
            sim = simulate(
                partitions=partitions, n=n, step_s=step_s, seed=seed * 1009 + index,
                **simulate_options,
            )
            index += 1
            frame = _frame(sim, samples=n, start=t0, cluster=cluster, group=group, topic=topic)
            if retention_msgs is not None:
                frame["log_start_offset"] = np.maximum(
                    0, frame["log_end_offset"] - int(retention_msgs)
                )
            if owners is not None:
                if owners == "none":
                    frame["consumer_id"] = pd.Series([None] * len(frame), dtype="string")
                else:
                    member = frame["partition"].to_numpy() % int(owners)
                    frame["consumer_id"] = pd.Series(
                        [f"consumer-{m}" for m in member], dtype="string"
                    )
            frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    for name in ("committed_offset", "log_end_offset", "lag"):
        out[name] = out[name].astype("Int64")
    if "log_start_offset" in out:
        out["log_start_offset"] = out["log_start_offset"].astype("Int64")
    for name in ("cluster", "group", "topic"):
        out[name] = out[name].astype("string")
    out["time"] = pd.to_datetime(out["time"], utc=True)
    return out


def drain_case(
    *,
    partitions: int = 200,
    history: int = 60,
    future: int = 800,
    step_s: float = 5.0,
    produce_rate: float = 100.0,
    consume_rate: float = 120.0,
    start_lag: float = 30_000.0,
    rw_noise: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Return a recorded history and the true future drain time of each partition.

    The process is simulated past the recording with the same rates and
    noise; the truth is when the *latent* backlog (log end minus the
    consumer's real position, before measurement noise) first reaches zero,
    interpolated between samples, in seconds after the last recorded
    snapshot (inf if not within ``future`` samples).

    Parameters
    ----------
    partitions, history, future, step_s : int, int, int, float
        Partitions (group ``g``, topic ``t``), recorded samples, samples
        simulated past the recording, seconds between samples.
    produce_rate, consume_rate, start_lag, rw_noise, noise, seed
        As in :func:`simulate`.

    Returns
    -------
    tuple of (pandas.DataFrame, numpy.ndarray)
        The LAG frame of the ``history`` samples, and the true drain time in
        seconds per partition (shape ``(partitions,)``).

    Examples
    --------
    >>> _, truth = drain_case(partitions=1, start_lag=2_000.0, produce_rate=100.0,
    ...                       consume_rate=120.0, history=2)
    >>> float(truth[0])
    95.0
    """
    sim = simulate(
        partitions=partitions,
        n=history + future,
        step_s=step_s,
        produce_rate=produce_rate,
        consume_rate=consume_rate,
        start_lag=start_lag,
        rw_noise=rw_noise,
        noise=noise,
        seed=seed,
    )
    backlog = (sim.log_end - sim.committed_true)[:, history - 1 :]
    done = backlog <= 0
    hit = np.argmax(done, axis=1)
    before = np.take_along_axis(backlog, np.clip(hit - 1, 0, None)[:, None], axis=1)[:, 0]
    at = np.take_along_axis(backlog, hit[:, None], axis=1)[:, 0]
    fraction = np.where(before > at, before / np.maximum(before - at, 1e-12), 1.0)
    truth = np.where(done.any(axis=1), (hit - 1 + np.clip(fraction, 0, 1)) * step_s, np.inf)
    # already drained at the last recorded snapshot (argmax is 0 also where it never drains)
    truth = np.where(done[:, 0], 0.0, truth)
    start = pd.Timestamp("2026-01-01T00:00:00Z")
    frame = _frame(sim, samples=history, start=start, cluster="test", group="g", topic="t")
    return frame, truth


def _frame(
    sim: Simulation, *, samples: int, start: pd.Timestamp, cluster: str, group: str, topic: str
) -> pd.DataFrame:
    """Return the first ``samples`` samples of ``sim`` as LAG rows (numpy dtypes, by partition)."""
    partitions = sim.log_end.shape[0]
    frame = pd.DataFrame(
        {
            "time": np.tile(start + pd.to_timedelta(sim.t_s[:samples], unit="s"), partitions),
            "cluster": cluster,
            "group": group,
            "topic": topic,
            "partition": np.repeat(np.arange(partitions, dtype=np.int32), samples),
            "committed_offset": sim.committed[:, :samples].ravel(),
            "log_end_offset": sim.log_end[:, :samples].ravel(),
        }
    )
    frame["lag"] = frame["log_end_offset"] - frame["committed_offset"]
    return frame
