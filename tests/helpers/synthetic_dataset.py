"""A small synthetic Dataset for viz, widget, notebook and browser tests.

Two consumer groups on one topic with 4 partitions, sampled every 5 s for
15 minutes. ``slow-app`` falls behind from t = 200 s (the producer doubles)
and drains after a scale-out at t = 500 s; the second group's id is hostile
HTML to check escaping. A broker's p99 flush time moves with the lag.
Built in code (never committed as a sample).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kbp_notebook.collect.storage import write_dataset
from kbp_notebook.frames import Dataset

HOSTILE_GROUP = "<img src=x onerror=alert(1)>&%{y}"
SLOW_GROUP = "slow-app"
START = pd.Timestamp("2026-01-01T00:00:00Z")


def make_dataset(*, n: int = 180, step_s: float = 5.0, partitions: int = 4,
                 seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    t = np.arange(n) * step_s
    produce = np.where(t >= 200, 200.0, 100.0)
    consume_slow = np.where(t >= 500, 320.0, 110.0)
    rows = []
    for group, consume in ((SLOW_GROUP, consume_slow), (HOSTILE_GROUP, np.full(n, 400.0))):
        for p in range(partitions):
            produced = produce * step_s * (1.0 + 0.05 * rng.standard_normal(n))
            produced[0] = 0
            log_end = 10_000 + np.cumsum(np.maximum(produced, 0))
            committed = np.empty(n)
            current = 10_000.0
            for j in range(n):
                if j:
                    current = min(log_end[j], current + consume[j] * step_s)
                committed[j] = current
            log_end_i = np.round(log_end).astype(np.int64)
            committed_i = np.minimum(np.round(committed).astype(np.int64), log_end_i)
            rows.append(pd.DataFrame({
                "time": START + pd.to_timedelta(t, unit="s"),
                "cluster": "synthetic",
                "group": group,
                "topic": "orders",
                "partition": np.int32(p),
                "committed_offset": committed_i,
                "log_end_offset": log_end_i,
                "lag": log_end_i - committed_i,
                "log_start_offset": np.maximum(0, log_end_i - 400_000),
                "consumer_id": f"consumer-{p % (2 if group == SLOW_GROUP else 4)}",
            }))
    lag = pd.concat(rows, ignore_index=True)
    total = lag[lag["group"] == SLOW_GROUP].groupby("time")["lag"].sum().to_numpy(dtype=float)
    flush = 5 + total / max(total.max(), 1) * 80 + rng.normal(0, 2, n)
    metrics = []
    for name, values in (
        ("log_flush_time_ms_p99", flush),
        ("log_flush_time_ms_mean", flush / 3),
        ("request_handler_idle_ratio", np.clip(0.8 - flush / 200, 0, 1)),
        ("under_replicated_partitions", np.zeros(n)),
        ("messages_in_per_s", produce * partitions * 2),
    ):
        metrics.append(pd.DataFrame({"time": START + pd.to_timedelta(t, unit="s"),
                                     "cluster": "synthetic", "entity": "broker-1",
                                     "metric": name, "value": values}))
    events = pd.DataFrame({
        "time": [START + pd.Timedelta(seconds=200), START + pd.Timedelta(seconds=500)],
        "kind": ["load", "scale-out"],
        "text": ["producer rate doubles", "slow-app: 2 -> 4 consumers <b>"],
    })
    return Dataset(lag=lag, metrics=pd.concat(metrics, ignore_index=True), events=events,
                   meta={"scenario": "synthetic", "partitions": partitions})


def write_synthetic(path: Path) -> Path:
    return write_dataset(make_dataset(), path)


def all_strings(node):
    """Every string anywhere in a figure dict (titles, names, hover templates, text arrays)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from all_strings(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from all_strings(value)
    elif hasattr(node, "tolist"):
        yield from all_strings(node.tolist())
