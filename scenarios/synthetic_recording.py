"""A long synthetic recording written straight to a Dataset folder, for scale tests.

Shaped like ``kbp collect`` output (one time per snapshot, rows sorted by
group, owner columns, zstd Parquet parts) but generated with numpy, a part at
a time, so a day of 5-second snapshots of 5,000 partitions (86 million rows)
is written in a few minutes with little memory.

Every group consumes its own topic. Each partition's producer appends at a
steady per-partition rate; the consumer keeps up (lag wanders between 0 and
about two seconds of production) except in the groups given an episode:
from ``episode_start_s`` the consumer runs at ``slowdown`` of the produce
rate for ``episode_s`` seconds, then at ``1 / slowdown`` of it until the
backlog is gone. So which keys have an episode, and when it starts, is
known.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kbp_notebook.collect.storage import DatasetAppender

__all__ = ["SyntheticRecording", "write_synthetic_recording"]


@dataclass(frozen=True)
class SyntheticRecording:
    """What was written."""

    path: Path
    groups: tuple[str, ...]
    episode_groups: tuple[str, ...]
    partitions: int
    snapshots: int
    rows: int
    start: pd.Timestamp
    every_s: float
    episode_start_s: float


def write_synthetic_recording(
    path: str | os.PathLike[str],
    *,
    groups: int,
    partitions_per_group: int,
    snapshots: int,
    every_s: float = 5.0,
    snapshots_per_part: int = 12,
    episode_every: int = 10,
    episode_start_s: float | None = None,
    episode_s: float = 1800.0,
    slowdown: float = 0.5,
    start: str = "2026-11-01T00:00:00Z",
    seed: int = 7,
) -> SyntheticRecording:
    """Write ``groups x partitions_per_group x snapshots`` LAG rows to a new folder.

    Parameters
    ----------
    path
        The folder (created; parts are appended if it exists).
    groups, partitions_per_group, snapshots
        Size: rows = groups * partitions_per_group * snapshots.
    every_s
        Seconds between snapshots.
    snapshots_per_part
        Snapshots per Parquet part (``kbp collect`` writes 1; more is faster to write).
    episode_every
        Every ``episode_every``-th group (0, k, 2k, ...) has an episode.
    episode_start_s
        When the episodes start (seconds from ``start``; default: halfway).
    episode_s
        How long the consumer is slow.
    slowdown
        Consumer rate during the episode as a fraction of the produce rate.
    start
        Time of the first snapshot.
    seed
        Random seed (rates, noise).

    Returns
    -------
    SyntheticRecording
        Names, sizes and the episode's timing.
    """
    rng = np.random.default_rng(seed)
    n_part = groups * partitions_per_group
    group_ids = tuple(f"svc-{g:04d}" for g in range(groups))
    episode_groups = tuple(group_ids[::episode_every]) if episode_every else ()
    t_start = pd.Timestamp(start)
    total_s = (snapshots - 1) * every_s
    ep_start = total_s / 2 if episode_start_s is None else float(episode_start_s)

    group_index = np.repeat(np.arange(groups), partitions_per_group)
    partition = np.tile(np.arange(partitions_per_group, dtype="int32"), groups)
    rate = rng.uniform(5.0, 50.0, n_part)  # messages/s per partition
    base_offset = rng.integers(0, 10_000_000, n_part)
    in_episode = np.isin(group_index, [group_ids.index(g) for g in episode_groups])
    slow_rate = rate * (1.0 - slowdown)  # backlog growth per second while slow
    drain_rate = rate * (1.0 / slowdown - 1.0)  # backlog drain per second after
    peak = slow_rate * episode_s

    group_col = pd.array(np.asarray(group_ids, dtype=object)[group_index], dtype="string")
    topic_col = pd.array(
        np.asarray([f"events.{g}" for g in group_ids], dtype=object)[group_index], dtype="string"
    )
    owner = [f"consumer-{g}-{p % 4}-5f0c1e" for g, p in zip(group_index, partition, strict=True)]
    owner_col = pd.array(np.asarray(owner, dtype=object), dtype="string")
    host_col = pd.array(
        np.asarray(
            [f"/10.1.{g % 250}.{p % 4}" for g, p in zip(group_index, partition, strict=True)],
            dtype=object,
        ),
        dtype="string",
    )
    client_col = pd.array(
        np.asarray([f"svc-{g:04d}-client" for g in group_index], dtype=object), dtype="string"
    )

    appender = DatasetAppender(
        path,
        meta={
            "source": "scenarios.synthetic_recording",
            "cluster": "synthetic",
            "every_s": every_s,
            "groups": None,
            "synthetic": {
                "groups": groups,
                "partitions_per_group": partitions_per_group,
                "snapshots": snapshots,
                "episode_groups": list(episode_groups),
                "episode_start_s": ep_start,
                "episode_s": episode_s,
            },
        },
    )
    rows = 0
    for first in range(0, snapshots, snapshots_per_part):
        ks = np.arange(first, min(first + snapshots_per_part, snapshots))
        t_s = ks * every_s  # (k,)
        log_end = base_offset[None, :] + np.floor(rate[None, :] * t_s[:, None]).astype("int64")
        healthy = rng.uniform(0.0, 2.0, (len(ks), n_part)) * rate[None, :]
        since = t_s[:, None] - ep_start
        growing = np.clip(since, 0.0, episode_s) * slow_rate[None, :]
        drained = np.clip(since - episode_s, 0.0, None) * drain_rate[None, :]
        backlog = np.where(in_episode[None, :], np.clip(growing - drained, 0.0, peak), 0.0)
        lag = np.floor(healthy + backlog).astype("int64")
        committed = log_end - lag
        n = len(ks)
        times = pd.DatetimeIndex(t_start + pd.to_timedelta(np.repeat(t_s, n_part), unit="s"))
        frame = pd.DataFrame(
            {
                "time": times.as_unit("ns"),
                "cluster": pd.array(["synthetic"] * (n * n_part), dtype="string"),
                "group": np.tile(group_col, n),
                "topic": np.tile(topic_col, n),
                "partition": np.tile(partition, n),
                "committed_offset": pd.array(committed.ravel(), dtype="Int64"),
                "log_end_offset": pd.array(log_end.ravel(), dtype="Int64"),
                "lag": pd.array(lag.ravel(), dtype="Int64"),
                "log_start_offset": pd.array(
                    np.tile(np.maximum(base_offset - 1_000_000, 0), n), dtype="Int64"
                ),
                "consumer_id": np.tile(owner_col, n),
                "host": np.tile(host_col, n),
                "client_id": np.tile(client_col, n),
            }
        )
        appender.append(lag=frame)
        rows += len(frame)
    return SyntheticRecording(
        path=Path(path),
        groups=group_ids,
        episode_groups=episode_groups,
        partitions=n_part,
        snapshots=snapshots,
        rows=rows,
        start=t_start,
        every_s=every_s,
        episode_start_s=ep_start,
    )
