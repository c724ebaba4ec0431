"""Synthetic LAG frames with known answers, shared by tests, benchmarks and docs.

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
from typing import Any

import numpy as np
import pandas as pd

Rate = float | Sequence[tuple[float, float]]


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
) -> dict[str, np.ndarray]:
    """Return ``t_s`` (T,), ``log_end`` and ``committed`` (P, T) int64 arrays.

    The *latent* committed offset (before measurement noise and spikes) is
    returned too, as ``committed_true``.
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
    for j in range(n):
        if j > 0 and not stalled[j]:
            current = np.minimum(log_end[:, j], current + consumable[:, j])
        for when, amount in rewind_at.items():
            if t[j] - step_s < when <= t[j]:
                current = np.maximum(current - amount, 0.0)
        committed[:, j] = current
    log_end = np.round(log_end).astype(np.int64)
    committed_true = np.minimum(np.round(committed).astype(np.int64), log_end)
    observed = committed.copy()
    if noise > 0:
        observed = observed + rng.normal(0.0, noise, size=observed.shape)
    for when, amount in spikes:
        j = int(np.argmin(np.abs(t - when)))
        observed[:, j] -= amount
    observed = np.clip(np.round(observed), 0, log_end).astype(np.int64)
    return {
        "t_s": t,
        "log_end": log_end,
        "committed": observed,
        "committed_true": committed_true,
    }


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
    """Build a LAG frame: every group reads every topic; see the module docstring.

    Each (group, topic) gets its own random stream (seed derived from ``seed``).
    """
    frames = []
    t0 = pd.Timestamp(start)
    index = 0
    for group in groups:
        for topic in topics:
            sim = simulate(
                partitions=partitions,
                n=n,
                step_s=step_s,
                seed=seed * 1009 + index,
                **simulate_options,
            )
            index += 1
            p, width = sim["log_end"].shape
            frame = pd.DataFrame(
                {
                    "time": np.tile(t0 + pd.to_timedelta(sim["t_s"], unit="s"), p),
                    "cluster": cluster,
                    "group": group,
                    "topic": topic,
                    "partition": np.repeat(np.arange(p, dtype=np.int32), width),
                    "committed_offset": sim["committed"].ravel(),
                    "log_end_offset": sim["log_end"].ravel(),
                }
            )
            frame["lag"] = frame["log_end_offset"] - frame["committed_offset"]
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
    """A recorded history and the true future drain time of each partition.

    The process is simulated past the recording with the same rates and
    noise; the truth is when the *latent* backlog (log end minus the
    consumer's real position, before measurement noise) first reaches zero,
    interpolated between samples, in seconds after the last recorded
    snapshot (inf if not within ``future`` samples).
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
    backlog = (sim["log_end"] - sim["committed_true"])[:, history - 1 :]
    done = backlog <= 0
    hit = np.argmax(done, axis=1)
    before = np.take_along_axis(backlog, np.clip(hit - 1, 0, None)[:, None], axis=1)[:, 0]
    at = np.take_along_axis(backlog, hit[:, None], axis=1)[:, 0]
    fraction = np.where(before > at, before / np.maximum(before - at, 1e-12), 1.0)
    truth = np.where(done.any(axis=1), (hit - 1 + np.clip(fraction, 0, 1)) * step_s, np.inf)
    truth = np.where(hit == 0, 0.0, truth)
    t0 = pd.Timestamp("2026-01-01T00:00:00Z")
    frame = pd.DataFrame(
        {
            "time": np.tile(t0 + pd.to_timedelta(sim["t_s"][:history], unit="s"), partitions),
            "cluster": "test",
            "group": "g",
            "topic": "t",
            "partition": np.repeat(np.arange(partitions, dtype=np.int32), history),
            "committed_offset": sim["committed"][:, :history].ravel(),
            "log_end_offset": sim["log_end"][:, :history].ravel(),
        }
    )
    frame["lag"] = frame["log_end_offset"] - frame["committed_offset"]
    return frame, truth
