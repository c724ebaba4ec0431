"""Retention risk: when retention starts to delete messages a group has not read yet.

Kafka deletes whole segments, oldest first, never a message in the active
segment. A group loses data when the log start offset passes its committed
offset. Per partition, at current rates (over a trailing ``window``), three
ways to get there, each with an interval:

``observed``
    The log start is already moving (``log_start_offset`` history): it
    closes in on the committed offset at ``start_rate - consume_rate``.
    It moves in segment-sized jumps, so the interval is one jump (the
    largest seen) either side.
``retention.bytes``
    The log is kept between ``retention.bytes`` and ``retention.bytes +
    segment.bytes`` (a segment goes when what is left after it is still at
    least ``retention.bytes``). In offsets (bytes per offset from the
    partition's size over its offset span), unread data goes when the lag
    grows into that band at ``produce_rate - consume_rate``; the broker acts
    on its next retention check (``log.retention.check.interval.ms``), added
    to the slow end.
``retention.ms``
    A segment goes once its newest record is ``retention.ms`` old. The
    record at the committed offset is ``time_lag_s`` old (from
    :func:`kbp_notebook.analysis.time_lag`: the record's timestamp where the
    collector read it), growing at ``d time_lag / dt``; its segment's newest
    record is at most one segment-fill later (``segment.ms``, or
    ``segment.bytes`` at the current byte rate), plus the check interval.

The soonest way wins (``limit``); ``loss_s`` is its point, ``loss_low_s`` /
``loss_high_s`` the interval. A partition whose committed offset is already
below the log start has lost data (0 s, ``limit == "deleted"``). Without
topic configs only ``observed`` applies: a log start that does not move
gives ``inf`` -- never a marker for a consumer that merely stands still on a
log nothing is deleting from. Compacted topics (``cleanup.policy`` without
``delete``) are never at risk from retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
import pandas as pd

from kbp_notebook.analysis._result import Result
from kbp_notebook.analysis._series import prepare_lag, quiet
from kbp_notebook.analysis.lag_seconds import time_lag
from kbp_notebook.errors import KbpInputError
from kbp_notebook.units import parse_duration_s

__all__ = ["RetentionRisk", "retention_risk"]

_KEYS = ["cluster", "group", "topic", "partition"]
#: Kafka's default ``log.retention.check.interval.ms`` (5 minutes).
DEFAULT_CHECK_S = 300.0
_CONFIG_COLUMNS = (
    "retention_ms", "retention_bytes", "segment_bytes", "segment_ms",
    "retention_check_ms", "size_bytes", "size_log_start_offset", "size_log_end_offset",
)  # fmt: skip


@dataclass(frozen=True, repr=False)
class RetentionRisk(Result):
    """When unread messages start to be deleted, per partition and per group/topic.

    Attributes
    ----------
    table
        One row per (cluster, group, topic, partition): ``committed_offset``,
        ``log_start_offset``, ``lag``, rates (``produce_rate``,
        ``consume_rate``, ``start_rate`` in offsets/s), ``loss_s``,
        ``loss_low_s``, ``loss_high_s`` (seconds from the last snapshot;
        ``inf`` when nothing is deleted at current rates), ``limit``
        (``deleted``, ``observed``, ``retention.bytes``, ``retention.ms``,
        ``none``) and ``at_risk`` (finite ``loss_s``).
    keys
        One row per (cluster, group, topic): the soonest partition's figures.
    """

    keys: pd.DataFrame
    plot_builder: ClassVar[str] = "plot_retention_risk"
    title: ClassVar[str] = "Retention risk"

    def summary_lines(self) -> list[str]:
        """Soonest loss, or that none is expected."""
        risky = self.keys[self.keys["at_risk"]]
        if not len(risky):
            return ["at current rates retention deletes no unread message"]
        row = risky.iloc[int(np.argmin(risky["loss_s"].to_numpy()))]
        return [
            f"{row['group']} / {row['topic']}: unread messages deleted in about "
            f"{row['loss_s']:.0f} s ({row['loss_low_s']:.0f}-{row['loss_high_s']:.0f} s; "
            f"{row['limit']}, partition {row['partition']})"
        ]


def retention_loss_observed(
    gap: np.ndarray, start_rate: np.ndarray, consume_rate: np.ndarray, step: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seconds until a moving log start passes the committed offset.

    Parameters
    ----------
    gap
        ``committed_offset - log_start_offset`` now (negative: already lost).
    start_rate, consume_rate
        Offsets per second of the log start and of the committed offset.
    step
        Largest single jump of the log start seen (a segment, in offsets).

    Returns
    -------
    tuple of numpy.ndarray
        Point, low and high (``inf`` where the log start does not close in;
        0 where ``gap < 0``; NaN where ``gap`` is NaN).
    """
    closing = start_rate - consume_rate
    with np.errstate(invalid="ignore", divide="ignore"):
        moving = (start_rate > 0) & (closing > 0)
        point = np.where(moving, gap / closing, np.inf)
        low = np.where(moving, np.maximum(gap - step, 0.0) / closing, np.inf)
        high = np.where(moving, (gap + step) / closing, np.inf)
    lost = gap < 0
    out = [np.where(lost, 0.0, values) for values in (point, low, high)]
    return out[0], out[1], out[2]


def _configs_for(latest: pd.DataFrame, configs: pd.DataFrame | None) -> pd.DataFrame:
    """Config columns aligned with ``latest`` rows (NaN where unknown)."""
    aligned = pd.DataFrame(index=latest.index)
    if configs is None:
        for name in _CONFIG_COLUMNS:
            aligned[name] = np.nan
        aligned["cleanup_policy"] = "delete"
        return aligned
    if not isinstance(configs, pd.DataFrame) or "topic" not in configs.columns:
        raise KbpInputError(
            "configs must be a DataFrame with a 'topic' column (and retention_ms, "
            "retention_bytes, segment_bytes, ...): use kbp.topic_configs(bootstrap_servers).",
            column="topic",
        )
    on = ["topic", "partition"] if "partition" in configs.columns else ["topic"]
    if "cluster" in configs.columns:
        on = ["cluster", *on]
    table = configs.copy()
    table["topic"] = table["topic"].astype("string")
    if "partition" in table.columns:
        table["partition"] = table["partition"].astype("int32")
    if "cluster" in table.columns:
        table["cluster"] = table["cluster"].astype("string")
    wanted = [c for c in (*_CONFIG_COLUMNS, "cleanup_policy") if c in table.columns]
    merged = latest[on].merge(table[on + wanted].drop_duplicates(on), on=on, how="left")
    merged.index = latest.index
    for name in _CONFIG_COLUMNS:
        aligned[name] = (
            pd.to_numeric(merged[name], errors="coerce").astype(float) if name in merged else np.nan
        )
    policy = merged["cleanup_policy"] if "cleanup_policy" in merged else None
    aligned["cleanup_policy"] = (
        policy.astype("string").fillna("delete") if policy is not None else "delete"
    )
    return aligned


def _number(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as float64, NaN where missing."""
    return frame[name].astype("Float64").to_numpy(np.float64, na_value=np.nan)


class _Rates(NamedTuple):
    """Current rates per partition (rows of ``last``), offsets or seconds per second."""

    produce: np.ndarray
    consume: np.ndarray
    #: How fast the record at the committed offset ages (1 when nothing is read).
    ageing: np.ndarray
    #: Log start movement since deletion began.
    start: np.ndarray
    #: Largest single jump of the log start (a segment's worth of offsets).
    step: np.ndarray


def _current_rates(seconds_lag: pd.DataFrame, last: pd.DataFrame, window: str | float) -> _Rates:
    """Measure produce, consume and ageing over the trailing window, the log start since it moved.

    The log start moves in segment-sized jumps, so a short window would mostly
    see it standing still: its rate is measured from its first move.
    """
    codes = seconds_lag.groupby(_KEYS, sort=False, observed=True).ngroup().to_numpy()
    last_time = seconds_lag.groupby(codes)["time"].transform("max")
    window_s = parse_duration_s(window, name="window")
    recent = seconds_lag[(last_time - seconds_lag["time"]).dt.total_seconds() <= window_s]
    start_values = seconds_lag["log_start_offset"].astype("Float64")
    moved = (start_values.groupby(codes).diff() > 0).fillna(False).to_numpy(bool)
    row_number = np.arange(len(codes))
    first_move = (
        pd.Series(np.where(moved, row_number, len(codes))).groupby(codes).transform("min")
    ).to_numpy()
    since_deleting = seconds_lag[row_number >= first_move]

    def rate(name: str, rows: pd.DataFrame) -> np.ndarray:
        """Offsets/s of ``name`` from its first known value in ``rows`` to the last row."""
        known = rows[rows[name].notna()]
        first = known.groupby(_KEYS, sort=False, observed=True).head(1).set_index(_KEYS)
        first = first.reindex(last.index)
        span = (last["time"] - first["time"]).dt.total_seconds().to_numpy(np.float64)
        span = np.where(span > 0, span, np.nan)
        return np.asarray((_number(last, name) - _number(first, name)) / span)

    with quiet(), np.errstate(invalid="ignore", divide="ignore"):
        start_rate = rate("log_start_offset", since_deleting)
        overall = rate("log_start_offset", seconds_lag)
        # no move after the first one: the history's average, not one jump's burst
        start_rate = np.where(np.isfinite(start_rate) & (start_rate > 0), start_rate, overall)
        by_partition = [seconds_lag[k] for k in _KEYS]
        jumps = start_values.groupby(by_partition, sort=False, observed=True).diff()
        step_series = jumps.groupby(by_partition, sort=False, observed=True).max()
        step = step_series.reindex(last.index).astype("Float64").to_numpy(np.float64, na_value=0.0)
        return _Rates(
            produce=rate("log_end_offset", recent),
            consume=rate("committed_offset", recent),
            ageing=rate("time_lag_s", recent),
            start=start_rate,
            step=step,
        )


class _Limit(NamedTuple):
    """When one topic setting deletes unread messages, where it applies."""

    name: str
    applies: np.ndarray
    point: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _config_limits(cfg: pd.DataFrame, last: pd.DataFrame, rates: _Rates) -> list[_Limit]:
    """Time until ``retention.bytes`` or ``retention.ms`` deletes unread data, per partition.

    Bytes: unread data goes once the lag reaches the kept band (``retention.bytes``
    up to one more segment). Time: the record at the committed offset ages into
    the limit (up to one segment's fill time later). Both may wait one more
    retention check.
    """
    start, end = _number(last, "log_start_offset"), _number(last, "log_end_offset")
    lag_now = end - _number(last, "committed_offset")
    check_s = np.where(
        cfg["retention_check_ms"] > 0, cfg["retention_check_ms"] / 1000.0, DEFAULT_CHECK_S
    )
    deletes = cfg["cleanup_policy"].astype(str).str.contains("delete").to_numpy(bool)
    # bytes per offset: from the offsets read with the size where given
    held = (cfg["size_log_end_offset"] - cfg["size_log_start_offset"]).to_numpy()
    held = np.where(np.isfinite(held), held, end - start)
    per_offset = np.where(held > 0, cfg["size_bytes"].to_numpy() / held, np.nan)
    net = rates.produce - rates.consume
    keep_low = cfg["retention_bytes"].to_numpy() / per_offset
    keep_high = (cfg["retention_bytes"] + cfg["segment_bytes"]).to_numpy() / per_offset
    by_bytes = deletes & (cfg["retention_bytes"].to_numpy() > 0) & np.isfinite(keep_low)
    by_bytes &= net > 0
    b_low = np.maximum(keep_low - lag_now, 0.0) / net
    b_high = np.maximum(keep_high - lag_now, 0.0) / net + check_s
    b_point = (b_low + b_high - check_s) / 2.0
    age_now = _number(last, "time_lag_s")
    retention_s = cfg["retention_ms"].to_numpy() / 1000.0
    byte_rate = rates.produce * per_offset
    fill_s = np.fmin(
        np.where(cfg["segment_ms"] > 0, cfg["segment_ms"] / 1000.0, np.nan),
        cfg["segment_bytes"].to_numpy() / byte_rate,
    )
    fill_s = np.where(np.isfinite(fill_s), fill_s, np.inf)
    by_time = deletes & (retention_s > 0) & (rates.ageing > 0) & np.isfinite(age_now)
    t_low = np.maximum(retention_s - age_now, 0.0) / rates.ageing
    t_high = np.maximum(retention_s + fill_s - age_now, 0.0) / rates.ageing + check_s
    return [
        _Limit("retention.bytes", by_bytes, b_point, b_low, b_high),
        _Limit("retention.ms", by_time, t_low, t_low, t_high),
    ]


def _loss_forecast(
    cfg: pd.DataFrame, last: pd.DataFrame, rates: _Rates
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Soonest loss per partition over the observed log start and the settings.

    Returns ``(point, low, high, limit)``: seconds, and the name of the limit
    that deletes first (``observed``, a setting, ``deleted`` already, ``none``
    or ``unknown``).
    """
    committed, start = _number(last, "committed_offset"), _number(last, "log_start_offset")
    with quiet(), np.errstate(invalid="ignore", divide="ignore"):
        gap = committed - start
        point, low, high = retention_loss_observed(gap, rates.start, rates.consume, rates.step)
        limit = np.where(np.isfinite(point), "observed", "none").astype(object)
        for setting in _config_limits(cfg, last, rates):
            sooner = setting.applies & (setting.point < point)
            point = np.where(sooner, setting.point, point)
            limit = np.where(sooner, setting.name, limit)
            low = np.where(setting.applies, np.fmin(low, setting.low), low)
            high = np.where(setting.applies, np.fmin(high, setting.high), high)
        limit = np.where(gap < 0, "deleted", limit)
        unknown = np.isnan(committed) | np.isnan(start)
        point = np.where(unknown, np.nan, point)
        low = np.where(unknown, np.nan, np.fmin(low, point))
        high = np.where(unknown, np.nan, np.fmax(high, point))
        limit = np.where(unknown, "unknown", limit)
    return point, low, high, limit


def retention_risk(

    lag: pd.DataFrame,
    configs: pd.DataFrame | None = None,
    *,
    window: str | float = "5min",
) -> RetentionRisk:
    """Forecast when retention deletes messages each group has not read yet.

    Parameters
    ----------
    lag
        LAG frame with ``log_start_offset`` (the collector records it); at
        least two snapshots per partition give rates.
    configs
        Topic settings from :func:`kbp_notebook.collect.topic_configs` (one row
        per topic or per topic and partition): ``retention_ms``,
        ``retention_bytes``, ``segment_bytes``, ``segment_ms``,
        ``cleanup_policy``, ``retention_check_ms``, ``size_bytes`` (the
        partition's bytes on disk) and the offsets those bytes span
        (``size_log_start_offset``, ``size_log_end_offset``; else the last
        snapshot's); NaN or negative for unlimited / unknown.
        ``None``: only the observed log start movement is used.
    window
        Trailing span over which produce and consume rates (and the ageing of
        the unread record) are measured: "current rates". The log start's rate
        is measured since its first move in the history.

    Returns
    -------
    RetentionRisk
        ``.table`` per partition, ``.keys`` per (cluster, group, topic).

    Raises
    ------
    KbpInputError
        The frame has no ``log_start_offset`` column, or ``configs`` is malformed.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> risk = kbp.retention_risk(kbp.load_sample("stuck-consumer").lag)
    >>> bool(risk.keys["at_risk"].any())
    False
    """
    frame = prepare_lag(lag)
    if "log_start_offset" not in frame.columns:
        raise KbpInputError(
            "retention_risk needs the 'log_start_offset' column; record with "
            "LagCollector(..., log_start_offsets=True) (the default).",
            column="log_start_offset",
        )
    seconds_lag = time_lag(frame).table
    latest = seconds_lag.groupby(_KEYS, sort=False, observed=True).tail(1).reset_index(drop=True)
    last = latest.set_index(_KEYS)
    rates = _current_rates(seconds_lag, last, window)
    point, low, high, limit = _loss_forecast(_configs_for(latest, configs), last, rates)
    table = latest[
        [*_KEYS, "time", "committed_offset", "log_start_offset", "log_end_offset", "lag"]
    ]
    table = table.assign(
        time_lag_s=_number(last, "time_lag_s"),
        produce_rate=rates.produce,
        consume_rate=rates.consume,
        start_rate=rates.start,
        loss_s=point,
        loss_low_s=low,
        loss_high_s=high,
        limit=pd.Series(limit, index=table.index, dtype="string"),
        at_risk=np.isfinite(point),
    )
    order = np.argsort(np.where(np.isnan(point), np.inf, point), kind="stable")
    soonest = table.iloc[order].drop_duplicates(["cluster", "group", "topic"], keep="first")
    keys = soonest.sort_values(["cluster", "group", "topic"], kind="stable").reset_index(drop=True)
    keys = keys[["cluster", "group", "topic", "partition", "loss_s", "loss_low_s", "loss_high_s",
                 "limit", "at_risk"]]  # fmt: skip
    return RetentionRisk(table=table.reset_index(drop=True), keys=keys)
