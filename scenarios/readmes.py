"""README.md of each recorded sample: fixed prose plus figures read back from the recording.

The prose (what the scenario does, which questions the data answers) is
written here by hand; the timeline and the figures are computed from the
Dataset folder just written, so a README never disagrees with its data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from kbp_notebook.collect import read_dataset

QUESTIONS: dict[str, list[str]] = {
    "slow-consumer-then-scale-out": [
        "When did lag start growing, and how fast (msg/s)? "
        "(`lag_trend`: onset vs `slowdown_start`)",
        "Was the group keeping up before, and by how much did capacity fall short after?",
        "How long would the backlog have taken to drain without scaling? With 6 consumers? "
        "(`time_to_drain`, `capacity_plan`)",
        "How far behind in seconds were the consumers at the peak? (`time_lag`; ground truth: "
        "`record_age_at_commit_s` in the metrics)",
    ],
    "producer-burst": [
        "Did lag grow because consumers slowed down or because producers sped up? "
        "(compare `messages_in_per_s` with the consume rate)",
        "How big did the backlog get and when will it drain with the same consumers? "
        "(`time_to_drain` during the drain phase)",
        "How much headroom does the group have at the base rate? (`capacity_plan`)",
    ],
    "broker-flush-pressure": [
        "Did broker flush latency (`log_flush_time_ms_p99`) rise, when, and by how much "
        "against its own baseline?",
        "Does lag follow flush latency, and with what delay? (`correlate`, `flush_latency_vs_lag`)",
        "Which request times moved with it (`produce_total_time_ms_p99`, producer "
        "`producer_request_latency_avg_ms`)?",
        "Did the consumers slow down although nothing changed in them? (`diagnose`)",
    ],
    "skewed-partition": [
        "Which partition holds the lag, and is it one consumer's problem or the group's? "
        "(per-partition `lag_status`, `lag_trend(by=('group','topic','partition'))`)",
        "Would adding consumers help? (no: one partition is consumed by one member — "
        "`capacity_plan` with `partitions`)",
    ],
    "stuck-consumer": [
        "Burrow-style status over time: OK, then STALL (member present, offsets still), "
        "then STOP (no member), then REWIND (committed offset moved back) — `lag_status`.",
        "Is it the consumer or the cluster? (the control group `audit-archiver` stays OK)",
        "How much was re-processed because of the reset, and how long did catching up take?",
    ],
    "consumers-gone": [
        "Burrow-style status: OK, then STOP (no member, committed offsets still) — `lag_status`; "
        "the incident model's cause `consumer_stopped` (`incidents`).",
        "When did the group lose its members, and is it growing at the produce rate? "
        "(`lag_trend`: onset vs `consumers_stopped`, slope vs `produce_rate_per_s`)",
        "Will it drain? (`time_to_drain`: never, with no consumer) How many consumers at what "
        "rate would clear it in an hour once they are back? (`capacity_plan`)",
    ],
    "rebalance-churn": [
        "Why does a group with headroom fall behind? (`incidents`: cause `rebalance_churn`; the "
        "member ids in `consumer_id` change at every rebalance, consumption pauses)",
        "How often did the group rebalance, and how much consume time did it lose? (members "
        "joining and leaving in the events, the consume rate during the churn)",
        "Once it settled, when does the backlog drain? (`time_to_drain` during the drain; equal "
        "partitions per member)",
    ],
    "offset-reset": [
        "Burrow-style REWIND: committed offsets moved backwards (`lag_status`), and the incident "
        "model's cause `offset_rewind` (`incidents`): a lag jump with no change in the produce "
        "rate.",
        "How much is replayed, and how long will the replay take at the group's capacity? "
        "(`time_to_drain`, `capacity_plan`)",
        "Is the consumer side or the cluster to blame? (neither: the rates before and after)",
    ],
    "healthy-baseline": [
        "The control: every analysis must stay quiet. `incidents` finds no episode, `lag_trend` "
        "says stable, `lag_status` says OK, `diagnose` has no finding above info level.",
        "What does ordinary lag look like? (the sawtooth of batch commits, its size in messages "
        "and seconds: `time_lag`)",
        "How much headroom do the groups have? (`capacity_plan` at today's produce rate)",
    ],
    "multi-group-cluster": [
        "Three groups, three fates: which group has a problem, since when, and why? "
        "(`incidents`: `consumer_slowdown` for the slowed group, `partition_skew` for the hot "
        "partition's group, nothing for the healthy one)",
        "Is it the cluster or the consumers? (the healthy group on the same topic and brokers "
        "keeps up)",
        "How long will each drain take? (`time_to_drain` on drains of minutes, with unequal "
        "partitions per member in the slowed group; `benchmarks/backtest_drain.py`)",
        "Which partition holds the skewed group's lag, and would more consumers help? "
        "(per-partition `lag_trend`, `capacity_plan` with `partitions`)",
    ],
}

WHAT: dict[str, str] = {
    "slow-consumer-then-scale-out": (
        "A producer writes at a steady rate to the topic. One consumer with headroom keeps up; "
        "then its per-record processing time rises (a slow downstream call) so the group "
        "consumes slower than the produce rate and lag grows linearly. More members join (how "
        "many: `consumers` in the settings below; with fewer members than partitions some own "
        "two and finish last), the group rebalances and the backlog drains."
    ),
    "producer-burst": (
        "A group with headroom over the base produce rate (`group_capacity_per_s_nominal` in the "
        "settings below). The produce rate jumps above the group's capacity for a while (a batch "
        "job, a retry storm), lag builds, and after the burst the same consumers drain the "
        "backlog with their headroom."
    ),
    "broker-flush-pressure": (
        "The broker flushes after every message (`log.flush.interval.messages=1`) and runs two "
        "request handler threads (`num.io.threads=2`), both set as dynamic broker configs for "
        "the run, so offset commits are fsynced too. On a quiet disk that costs little. Then a "
        "disk-heavy neighbour (`dd` writers in a loop, half with direct I/O, half filling the "
        "page cache and fsyncing it; bounded in time, files deleted) competes for the "
        "broker's data disk: each fsync waits, `LogFlushRateAndTimeMs` p99 climbs, produce "
        "and commit requests slow down, and the group, which commits synchronously after "
        "every 20 records, falls behind. When the neighbour stops, lag drains. Kafka's "
        "quantiles come from a reservoir that decays over minutes, so the recorded p99 rises "
        "with a delay and stays high for a while after the window."
    ),
    "skewed-partition": (
        "A producer at a steady rate, keys spread over a 6-partition topic; three consumers (two "
        "partitions each) with headroom. Then most messages carry one hot key, so the default "
        "(murmur2) partitioner sends them all to one partition: the consumer owning it cannot keep "
        "up and that partition's lag grows while the others stay near zero. When the hot key's "
        "traffic spreads out again the backlog drains."
    ),
    "stuck-consumer": (
        "Two groups read one 3-partition topic: `ledger-writer` gets stuck, `audit-archiver` is a "
        "healthy control. The `ledger-writer` member first stalls (stays in the group, heartbeats, "
        "re-commits the same offsets every 5 s, makes no progress), then shuts down and leaves "
        "(empty group), then an operator rewinds its offsets with the official tool "
        "(`kafka-consumer-groups --reset-offsets --shift-by -N --execute`; the tool clamps at the "
        "log start), and a fresh member rejoins and drains the backlog."
    ),
    "consumers-gone": (
        "A producer writes at a steady rate; the group's members keep up with plenty of "
        "headroom. Then every member shuts down within a few seconds (a deployment scaled to "
        "zero, a crash loop after a bad config push) and leaves the group. The group is empty, "
        "its committed offsets stand still, the producer goes on: lag grows at the produce rate "
        "and never drains (the recording ends with the group still empty)."
    ),
    "rebalance-churn": (
        "A group with modest headroom over the produce rate. For a few minutes its members keep "
        "leaving and joining (a deploy loop restarting them one at a time; now and then a member "
        "whose handler hangs is expelled once `max.poll.interval.ms` passes): every join and "
        "leave is a rebalance, during which the group consumes nothing, and commits that race a "
        "rebalance fail, so some records are processed twice. Lag builds although no consumer "
        "got slower. Then the membership settles and the same capacity drains the backlog."
    ),
    "offset-reset": (
        "A group keeps up with a steady producer on a topic that already holds history. An "
        "operator replays it: the members are stopped (the group must be empty), its offsets are "
        "moved back with the official tool (`kafka-consumer-groups --reset-offsets --shift-by -N "
        "--execute`) and the members are started again. Lag jumps by N per partition with no "
        "change in the produce rate, and the group replays the backlog at its capacity."
    ),
    "healthy-baseline": (
        "Nothing goes wrong. Two groups on two topics keep up for ten minutes: one commits "
        "large batches (the ordinary sawtooth of batch commits), the other follows a produce "
        "rate that drifts up and down by about a quarter. This is the control every analysis "
        "must stay quiet on; where the machine's other work (see the load figures) shows as a "
        "lag blip, that is real data."
    ),
    "multi-group-cluster": (
        "Three brokers, two topics of 24 or more partitions (replication factor 3) and three "
        "groups with different fates in one recording. On `orders`, a healthy audit group keeps "
        "up throughout while the fulfilment group is slowed by a consumer-side change (a deploy "
        "that doubles the processing time per record) until it is rolled back, then drains for "
        "minutes with unequal partitions per member. On `inventory-events`, one SKU's key gets "
        "hot: the member owning its partition cannot keep up, that partition's lag grows while "
        "the others stay near zero, and when the key cools down it drains for minutes."
    ),
}


def _rel(time: pd.Timestamp, start: pd.Timestamp) -> str:
    seconds = (time - start).total_seconds()
    return f"{seconds:+.0f} s"


def _figures(name: str, folder: Path) -> list[str]:
    ds = read_dataset(folder)
    lag = ds.lag
    group = str(ds.meta.get("group"))
    mine = lag[lag["group"] == group]
    total = mine.groupby("time")["lag"].sum()
    lines = [
        f"- LAG frame: {len(lag)} rows, {lag['time'].nunique()} snapshots, "
        f"{lag['partition'].nunique()} partitions, groups {sorted(lag['group'].unique())}",
        f"- peak total lag of `{group}`: {int(total.max())} messages at "
        f"{_rel(total.idxmax(), lag['time'].min())}",
        *_other_groups(ds, group),
        f"- METRICS frame: {len(ds.metrics)} rows, entities "
        f"{sorted(ds.metrics['entity'].str.split(':').str[0].unique())}, metrics: "
        + ", ".join(f"`{m}`" for m in sorted(ds.metrics["metric"].unique())),
    ]
    if name == "broker-flush-pressure":
        start = ds.events.loc[ds.events["kind"] == "flush_pressure_start", "time"].min()
        end = ds.events.loc[ds.events["kind"] == "flush_pressure_end", "time"].min()
        flush = ds.metrics[ds.metrics["metric"] == "log_flush_time_ms_p99"]
        before = flush.loc[flush["time"] < start, "value"].median()
        during = flush.loc[(flush["time"] >= start) & (flush["time"] <= end), "value"].max()
        lines.append(
            f"- `log_flush_time_ms_p99`: median {before:.1f} ms before the pressure window, "
            f"peak {during:.1f} ms inside it"
        )
    if name == "skewed-partition":
        hot = int(ds.meta["hot_partition"])
        peak_time = total.idxmax()
        at_peak = mine[mine["time"] == peak_time]
        share = float(at_peak.loc[at_peak["partition"] == hot, "lag"].sum()) / max(
            1.0, float(at_peak["lag"].sum())
        )
        lines.append(f"- hot partition {hot} holds {share:.0%} of the group's lag at the peak")
    return lines


def _other_groups(ds: Any, main: str) -> list[str]:
    """One line per other recorded group: peak and median total lag, in messages."""
    lines = []
    start = ds.lag["time"].min()
    for name in sorted(set(ds.lag["group"]) - {main}):
        total = ds.lag[ds.lag["group"] == name].groupby("time")["lag"].sum()
        lines.append(
            f"- `{name}`: median total lag {int(total.median())} messages, peak "
            f"{int(total.max())} at {_rel(total.idxmax(), start)}"
        )
    return lines


def _ground_truth(meta: dict[str, Any], start: pd.Timestamp) -> str:
    """The expected cause and true onset per group, as a table (for ``kbp.incidents``)."""
    causes = meta.get("expected_causes") or {}
    if not causes:
        return ""
    onsets = meta.get("expected_onsets") or {}
    rows = []
    for group, cause in sorted(causes.items()):
        onset = onsets.get(group)
        when = "no episode" if onset is None else _rel(pd.Timestamp(onset), start)
        rows.append(f"| `{group}` | `{cause}` | {when} |")
    return (
        "## Ground truth for the incident model\n\n"
        "`meta.json` carries `expected_causes` (closed vocabulary of `kbp.incidents`) and "
        "`expected_onsets` (UTC) per group, from the events above.\n\n"
        "| group | expected cause | true onset |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
    )


def _load(meta: dict[str, Any]) -> str:
    """How busy the shared machine was while recording (from ``meta['machine_load']``)."""
    load = meta.get("machine_load")
    if not load or load.get("load1_median") is None:
        return ""
    return (
        f"- machine load while recording ({load.get('cores')} cores shared with other work): "
        f"1-minute load average median {load['load1_median']:.1f}, max "
        f"{load['load1_max']:.1f} (sampled every {load.get('load1_every_s')} s; `uptime` at "
        f"start and end in `meta.json`);\n"
    )


def _correction(meta: dict[str, Any]) -> str:
    note = meta.get("corrected_after_recording")
    return f"Corrected after recording: {note}.\n\n" if note else ""


def _baseline_note(ds: Any, meta: dict[str, Any]) -> str:
    ends = ("baseline_reached", "_drained")
    marks = sorted({kind for kind in ds.events["kind"] if kind.endswith(ends)})
    if not marks:
        return ""
    label = " and ".join(f"`{kind}`" for kind in marks)
    ceiling = meta.get("baseline_ceiling_lag")
    by_group = meta.get("baseline_ceiling_lag_by_group")
    if by_group:
        ceiling = ", ".join(f"`{group}` {value}" for group, value in by_group.items())
    return (
        f"{label} {'is' if len(marks) == 1 else 'are each'} the first of three consecutive LAG "
        "snapshots with the group's total\n"
        f"lag at or below `baseline_ceiling_lag` = {ceiling} (twice the healthy\n"
        "phase's 90th percentile, with a floor).\n\n"
    )


def render(name: str, folder: Path, meta: dict[str, Any]) -> str:
    """Return the README.md text of the sample recorded in ``folder``."""
    ds = read_dataset(folder)
    start = ds.lag["time"].min()
    events = "\n".join(
        f"| {_rel(row.time, start)} | {row.time:%H:%M:%S} | `{row.kind}` | {row.text} |"
        for row in ds.events.itertuples()
    )
    captures = sorted(p.name for p in (folder / "captures").glob("*.txt"))
    settings = json.dumps(
        {
            key: meta.get(key)
            for key in (
                "kafka_version",
                "brokers",
                "sandbox_broker_config",
                "dynamic_broker_config",
                "topic",
                "partitions",
                "group",
                "control_group",
                "produce_rate_per_s",
                "processing_s_per_record",
                "consumers",
                "group_capacity_per_s_nominal",
                "max_poll_records",
                "hot_key",
                "hot_partition",
                "reset_shift_by",
                "disk_neighbour",
                "phases_s",
                "variant",
            )
            if meta.get(key) is not None
        },
        indent=2,
        sort_keys=True,
    )
    questions = "\n".join(f"- {q}" for q in QUESTIONS[name])
    figures = "\n".join(_figures(name, folder))
    load = _load(meta)
    client_every = meta.get("client_metrics_every_s")
    return f"""# {name}

{WHAT[name]}

Recorded on the project's sandbox (real Apache Kafka {meta.get("kafka_version")} in KRaft mode,
JMX exporter, Prometheus scraping every second) with real kafka-python producers and consumers,
by `{meta.get("recorded_by")}` ({meta.get("duration_s")} s, {meta.get("recorded_from")} to
{meta.get("recorded_to")}). Load it with `kbp.load_sample("{name}")`.

## What happened, when (ground truth: the `events` frame, written by the scenario itself)

Times are relative to the first LAG snapshot ({start:%Y-%m-%d %H:%M:%S} UTC).

| t | UTC | kind | what |
|---|---|---|---|
{events}

{_baseline_note(ds, meta)}{_ground_truth(meta, start)}## What is in it

{figures}
{load}- client metrics (`producer:*`, `consumer:*`) every {client_every} s from
  `client_metrics`, plus `record_age_at_commit_s`: how old (send time written by the producer
  into each message) the last record a consumer committed was — the ground truth for time lag;
- broker metrics from Prometheus (`PrometheusSource.broker_metrics`, step
  {meta.get("prometheus_step")}, rate window {meta.get("prometheus_rate_window")}), entity
  `broker-1` (`request_handler_idle_ratio` divided by the
  {meta.get("request_handler_pools", 1)} request handler pools of a combined broker + controller
  node, so it reads 0..1); log-dir usage (`logdir:*`) every {meta.get("log_dir_every_s")} s;
- `captures/`: real `kafka-consumer-groups --describe --group ...` output taken during the run
  (file name = UTC start time and phase; `captures/index.csv` has start/end times and the
  tool's stderr notices): {", ".join(f"`{c}`" for c in captures)}.

{_correction(meta)}LAG snapshots every {meta.get("lag_every_s")} s (`LagCollector.snapshot`).
The cluster is called `{meta.get("cluster")}`.

## Settings

```json
{settings}
```

## Questions this data can answer

{questions}
"""
