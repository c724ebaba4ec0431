"""Write the four curated notebooks in notebooks/ (outputs stripped) from one place.

Run after editing the prose or code below: ``python scripts/build_notebooks.py``.
Keeping the notebooks generated keeps their parameters cells, imports and
headings consistent, and git holds no outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks"

PARAMETERS = '''# Parameters (papermill / `kbp report`): where the data comes from. Set one of them.
source = "slow-consumer-then-scale-out"  # a bundled sample: kbp.list_samples()
recording = None  # a Dataset folder written by `kbp collect` or kbp.write_dataset
prometheus_url = None  # e.g. "http://127.0.0.1:9090", with the time range below
prometheus_start = None  # ISO 8601, e.g. "2024-05-01T10:00:00Z"
prometheus_end = None
prometheus_step = "15s"
bootstrap_servers = None  # a live cluster, "host:port[,host:port]" (used by 04_live_monitor)
cluster = "default"'''

LOAD = '''import kbp_notebook as kbp
from kbp_notebook import viz
from kbp_notebook.sources import attempt, open_source

ds = open_source(
    source,
    recording=recording,
    prometheus_url=prometheus_url,
    prometheus_start=prometheus_start,
    prometheus_end=prometheus_end,
    prometheus_step=prometheus_step,
    cluster=cluster,
)'''


VERDICT = '''found = attempt(lambda: kbp.incidents(ds))  # episodes, causes, verdict
viz.verdict_box(found)'''

# The moment every section looks at: the worst episode's peak (the end without an episode).
PEAK = '''episode = found.worst() if found is not None else None
peak = episode["peak_time"] if episode is not None else ds.lag["time"].max()
display(viz.episode_facts(found))'''

TIMELINE_MD = """## Timeline of the incident

Each band is one episode of one group on one topic: from when lag left its usual level to when it
was back (or "now" if it is not over), with its peak and the events that explain it. Hover for
values, drag to zoom, double-click to reset."""

TIMELINE = '''found.plot() if found is not None else None'''

EPISODES = '''viz.human_table(
    found.episodes, title="Episodes: who fell behind, how far, why", facts=[],
    columns=["group", "topic", "start", "peak_time", "peak_lag", "peak_time_lag_s", "end", "cause"],
) if found is not None else None'''

HOW_TO_USE = """## About this report

Run the notebook top to bottom, or change the parameters cell to point at your recording; render
it for sharing with `kbp report SOURCE --out report.html` (one offline file of about 2 MB). Every
figure is interactive: hover for values, drag to zoom, double-click to reset; dropdowns and
sliders in the figures work without Python. Wide tables are folded: click "All ... columns"."""


def _notebook(title: str, cells: list[tuple[str, str]], *, parameters: str = PARAMETERS,
              load: str | None = LOAD) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["title"] = title
    body = [new_markdown_cell(cells[0][1])]
    body.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    if load is not None:
        body.append(new_code_cell(load))
    for kind, text in cells[1:]:
        body.append(new_markdown_cell(text) if kind == "md" else new_code_cell(text))
    nb.cells = body
    for index, cell in enumerate(nb.cells):  # stable ids: clean diffs
        cell["id"] = f"cell-{index:02d}"
        cell.metadata.setdefault("tags", [])  # papermill reads every cell's tags
    return nb


POSTMORTEM = [
    ("md", """# Incident post-mortem: consumer lag

The verdict first: what happened, how far behind, why, and what to do. The timeline and the
details (trend, status, lag in seconds, drain, diagnosis) follow."""),
    ("code", VERDICT),
    ("md", TIMELINE_MD),
    ("code", TIMELINE),
    ("code", EPISODES),
    ("md", """## 1. Timeline: lag per group and topic

**How to read it.** Each solid line is one consumer group on one topic: the messages it has not
yet processed (sum over partitions). The dashed line is the trend (Theil–Sen, robust to
rebalance spikes) fitted while the backlog was building up, from the start of the recording to
its **peak**, beginning at the **onset** diamond, when growth began. Dotted vertical lines are the
annotated events of the recording (deploys, scale-outs, load changes); hover a label for its
full text.

**What to look for.** A line that climbs steadily is a consumer that is slower than its producer.
A sawtooth is healthy batch consumption. A flat line well above zero is a stuck consumer (see
status below). Note the onset time and line it up with the events: that is the first question of
any post-mortem."""),
    ("code", PEAK + """
trend = attempt(lambda: kbp.lag_trend(ds.lag))
viz.plot_lag(ds.lag, events=ds.events, trend=trend)"""),
    ("md", """### Trend per group and topic: now, and each regime

The incident's own figures are in the line above (the same in every section). The table is
about **now**: the current regime of each group's lag since its last change of slope.
`slope_per_s` is how many messages per second the backlog grows (positive) or shrinks
(negative), with its confidence interval. `status` is decided by the interval, not by the sign of
a noisy slope: **growing** means the whole interval is above zero. `onset` is when the current
growth began (empty when it is not growing). Every regime of the recording is in the fold."""),
    ("code", """viz.human_table(
    trend, title="Trend per group and topic, now",
    columns=["group", "topic", "status", "slope_per_s", "ci_low", "ci_high", "onset"],
) if trend is not None else None"""),
    ("md", """## 2. Status (Burrow's rules)

Each square is one partition at the worst moment of the recording (the peak of the backlog),
coloured by its status over the commits before it:
**OK** (green) healthy; **WARN** (yellow) lag not shrinking while offsets advance, the consumer
keeps up badly; **STALL** (orange) the committed offset stands still while there is lag and the
partition has an owner, often a stuck or poisoned consumer; **STOP** (dark red) no commits at all,
the consumer is gone; **REWIND** (purple) the offset went backwards (a reset or replay).
The group's overall status is in brackets after its name.

**What to do.** STALL on one partition: look at that partition's consumer (a poison message, a
blocking call). STOP: the consumer is not running: restart it or check its deployment.
WARN across all partitions: the group is too slow: see the drain and capacity sections."""),
    ("code", """status = attempt(lambda: kbp.lag_status(ds.lag[ds.lag["time"] <= peak]))
display(viz.episode_facts(found))
status.plot() if status is not None else None"""),
    ("md", """### Status over time

The same rules evaluated at regular points through the recording, so you can see when each group
went from OK to WARN or worse, and when it recovered."""),
    ("code", """import pandas as pd

times = pd.Series(ds.lag["time"].unique()).sort_values()
history = []
for at in times.iloc[:: max(1, len(times) // 24)].iloc[1:]:
    try:
        groups = kbp.lag_status(ds.lag[ds.lag["time"] <= at]).groups
    except kbp.KbpDataError:
        continue  # too few commits yet to judge
    history.append(groups[["group", "status"]].assign(time=at))
viz.plot_status_timeline(pd.concat(history, ignore_index=True)) if history else None"""),
    ("md", """## 3. Lag in seconds

Messages are not time. This is **how far behind the newest message** the committed offset is, in
seconds, for the worst partition of each group: the time at which the log end offset passed the
offset the consumer has committed. It is what "how stale is the data downstream" means.

Open triangles are **lower bounds**: the committed offset is older than anything in the recording,
so we know it is *at least* that far behind and do not invent a number."""),
    ("code", """seconds_behind = attempt(lambda: kbp.time_lag(ds.lag))
seconds_behind.plot() if seconds_behind is not None else None"""),
    ("md", """## 4. When will it drain?

The fan chart starts at the end of the recording ("now"). The solid line runs from the current
backlog to zero at the **median ETA**; the shaded fan is the interval (the ETA at the fast and slow
ends of the estimated rates). A **rising dashed line** means the backlog does not drain at
current rates: consumers are slower than producers and waiting will not help. A red **×** marks
when unread messages start to be deleted by retention (data loss) at current rates, where the
recording knows the log start offsets.

**What to do.** Drains within your tolerance: wait and watch. Does not drain, or the × comes before
the ETA: add consumers (up to the partition count), make the consumer faster, or raise retention
on the topic now to buy time (`retention.ms`)."""),
    ("md", """### At the worst moment

The forecast as it would have looked at the peak of the backlog, from the rates of that moment,
with what really happened next drawn as the thin line: the check that matters in a post-mortem
is whether waiting would have been enough."""),
    ("code", """at_peak = attempt(lambda: kbp.time_to_drain(ds.lag[ds.lag["time"] <= peak]))
display(viz.episode_facts(found))
viz.plot_drain(
    at_peak, lag=ds.lag, as_of=peak,
    title=f"At the peak ({peak:%H:%M:%S} UTC): would it have drained at those rates?",
) if at_peak is not None else None"""),
    ("md", """### At the end of the recording"""),
    ("code", """drain = attempt(lambda: kbp.time_to_drain(ds.lag))
viz.plot_drain(drain, lag=ds.lag) if drain is not None else None"""),
    ("code", """viz.human_table(
    drain, title="Time to drain, at the end of the recording",
    columns=["group", "topic", "lag", "produce_rate", "consume_rate", "eta_s", "eta_high_s"],
) if drain is not None else None"""),
    ("md", """## 5. Diagnosis

Each finding is one signal from the recording (lag growth, consumer vs producer rates, partition
skew, broker flush latency, request handler idle, under-replicated partitions, producer latency,
disk, retention), with its evidence and a severity. Red rows first. The recommendations follow
from the findings; each says which evidence it rests on."""),
    ("code", """diagnosis = attempt(lambda: kbp.diagnose(ds))
display(viz.episode_facts(found))
diagnosis.plot() if diagnosis is not None else None"""),
    ("md", """## 6. Explore

Pick a group, topic, partition or time range; toggle the trend and the per-partition breakdown.
In the shared HTML report the figure's own dropdown picks the group (every group was drawn when
the report was rendered); zoom for a time range, click the legend to hide the trend."""),
    ("code", """from kbp_notebook.widgets import LagExplorer

explorer = LagExplorer(ds)
explorer"""),
    ("md", """## What to do next

1. Write down the **onset** time and the event that precedes it: that is your trigger.
2. If the drain chart shows *does not drain*, act now: the backlog only grows. Open
   `02_capacity_planning` for how many consumers (or partitions) you need.
3. If the diagnosis points at the brokers (flush latency, idle ratios), open
   `03_flush_latency_vs_lag` before changing consumers: more consumers will not help a slow disk.
4. Share: `kbp report <this recording> --out postmortem.html` gives one offline file."""),
    ("md", HOW_TO_USE),
]

CAPACITY = [
    ("md", """# Capacity planning: how many consumers, how many partitions?

From a recording, this notebook estimates **how fast one consumer of each group really is** (from
how the consume rate changed with the number of active members), then **how many consumers you
need to drain the backlog within a target time** at today's produce rate and with growth, and
**where partitions cap you**: a group cannot use more consumers than its topic has partitions.
The incident's verdict and timeline come first: the plan is for that backlog."""),
    ("code", VERDICT),
    ("md", TIMELINE_MD),
    ("code", TIMELINE),
    ("md", """## The plan, from the worst moment of the recording

Capacity is planned from the recording up to the **peak of the backlog**: the rates and the
backlog you had to deal with when it was worst: the peak of the worst episode. (To plan from the
end of the recording instead, drop `as_of=peak`.) One consumer reads one partition at a time, so
a hot partition bounds the plan whatever the group's size; a producer surge that drained on its
own is planned at the steady rate from before it."""),
    ("code", PEAK),
    ("code", """target_s = 1800  # drain the backlog within this many seconds
# planned at the peak, while the incident model reads the whole recording: a burst that
# drained on its own is planned at its steady rate (the note says so)
plan = attempt(lambda: kbp.capacity_plan(ds.lag, target_s=target_s, as_of=peak))
upto = ds.lag[ds.lag["time"] <= peak]  # what the recording knew at the peak
viz.human_table(
    plan, title="Capacity plan",
    columns=["group", "topic", "lag", "consumers_now", "consumers_needed", "partitions",
             "per_consumer_rate", "produce_rate"],
) if plan is not None else None"""),
    ("md", """## Today against what is needed

For each group: the consumers it has, the consumers needed to drain within the target, and the
partitions. **Where the needed consumers exceed the partitions**, adding consumers will not help:
they would sit idle. Increase the topic's partitions (and note that this changes key ordering
for keyed topics) or make each consumer faster (batching, `max.poll.records`, async processing).
"""),
    ("code", """plan.plot() if plan is not None else None"""),
    ("md", """## Per-consumer throughput and rates

`produce_rate` and `consume_rate` are messages per second over the recent window. A consume rate
that stays flat when members are added means the bottleneck is not the consumers (a downstream
system, the brokers, or one hot partition)."""),
    ("code", """rates = attempt(lambda: kbp.time_to_drain(upto))
viz.human_table(
    rates, title="Rates and time to drain at the peak",
    columns=["group", "topic", "lag", "produce_rate", "consume_rate", "eta_s"],
) if rates is not None else None"""),
    ("md", """## What if

The same plan under a few scenarios: today's consumers, doubled, and with 50% more produce
traffic. "drains in (as planned)" is the time to drain with the planned consumers (capped by the
partitions)."""),
    ("code", """import pandas as pd

what_if = None
if plan is not None:
    today = int(plan.table["consumers_now"].fillna(1).max())
    # a group with no member left (consumers gone): compare with one consumer back
    base = max(today, 1)
    scenarios = {
        (f"today ({today} consumers)" if today else "1 consumer back (none today)"):
            plan.what_if(consumers=base),
        f"{2 * base} consumers": plan.what_if(consumers=2 * base),
        f"{base} consumers, +50% produce": plan.what_if(consumers=base, produce_growth=0.5),
        "as planned, +50% produce": plan.what_if(produce_growth=0.5),
    }
    columns = ["group", "topic", "consumers_planned", "partitions", "eta_s_at_plan", "feasible",
               "note"]
    what_if = pd.concat([s.table[columns].assign(scenario=name) for name, s in scenarios.items()],
                        ignore_index=True)
viz.human_table(what_if, title="What if", columns=["scenario", *columns]) \
    if what_if is not None else None"""),
    ("md", """## Drain planner

Move the sliders: number of consumers, per-consumer rate, produce growth and the target. The
readout gives the ETA and what you would need; the chart is the drain forecast of that scenario.
In the shared HTML report the figure's own slider sets the number of consumers (every count was
drawn when the report was rendered; the other settings are as the readout says)."""),
    ("code", """from kbp_notebook.widgets import DrainPlanner

planner = DrainPlanner(upto, target_s=target_s)
planner"""),
    ("md", """## What to do next

* Needed consumers ≤ partitions: scale the consumer group to the needed count, then watch
  `04_live_monitor` until the ETA is inside your target.
* Needed consumers > partitions: add partitions first (plan for key re-distribution), or make each
  consumer faster; more members alone will idle.
* Keep headroom: plan for the produce growth you expect at peak, not today's average."""),
    ("md", HOW_TO_USE),
]

FLUSH = [
    ("md", """# Does broker flush latency have anything to do with consumer lag?

The question behind this project: when lag builds up, is the broker's disk (log flush time) part
of the story? This notebook answers it with **honest statistics**: both series are aligned on one
time grid, the correlation is computed at every lead/lag shift within a window, and the p-value
accounts for the fact that both series are autocorrelated (neighbouring samples are not
independent) *and* that we searched over shifts. Two unrelated trending series will look
correlated by eye; they should not come out significant here. The incident's verdict and
timeline come first."""),
    ("code", VERDICT),
    ("md", TIMELINE_MD),
    ("code", TIMELINE),
    ("md", """## Flush latency against total lag

**How to read it.** Top: the broker's p99 log flush time (left axis, worst broker) and total lag
(right axis) on one time axis. Bottom: the correlation at each shift; the red bar is the chosen
shift. A positive shift means flush latency moved **first**. The title gives r, the shift, the
p-value and the effective sample size."""),
    ("code", """flush_vs_lag = attempt(lambda: kbp.flush_latency_vs_lag(ds))
flush_vs_lag.plot() if flush_vs_lag is not None else None"""),
    ("code", """import textwrap

if flush_vs_lag is not None:
    print("\\n".join(textwrap.fill(line, 100) for line in flush_vs_lag.summary_lines()))"""),
    ("md", """## Flush latency against lag *growth*

Lag level integrates everything that happened before; the growth rate (messages/s) is what a slow
disk would push up directly. If flush latency leads lag growth, the brokers are a suspect; if lag
growth leads, the latency is more likely a consequence of the same load."""),
    ("code", """flush_vs_growth = attempt(lambda: kbp.flush_latency_vs_lag(ds, target="lag_growth"))
flush_vs_growth.plot() if flush_vs_growth is not None else None"""),
    ("md", """## Explore other broker signals

Pick any recorded metric (request handler idle, produce latency, bytes in), the target, a shift
window and the method (Spearman is robust to spikes; Pearson measures linear association). In the
shared HTML report the figure's own dropdown picks the metric (against total lag, Spearman)."""),
    ("code", """from kbp_notebook.widgets import CorrelationExplorer

correlations = CorrelationExplorer(ds)
correlations"""),
    ("md", """## What it means, and what to do

* **Significant, flush latency leads**: the brokers' disks are a plausible bottleneck. Check disk
  utilisation and `log.flush.*` settings (leave flushing to the OS unless you must), spread
  partitions across more disks or brokers, and look at `num.io.threads`.
* **Significant, lag leads or no lead**: latency and lag share a cause, typically a produce burst.
  Look at producer batching (`linger.ms`, `batch.size`, compression) and consumer capacity.
* **Not significant**: the correlation found nothing over this recording, which clears nothing:
  a few minutes give few effectively independent samples. Read the note comparing the broker
  with **its own level before the onset** (printed with the correlation above): a broker whose
  flush or request latency doubled as lag began is a suspect whatever the correlation says; one
  that stayed at its level points back at the consumers (`02_capacity_planning`).

Correlation is not causation in any case: the notes above the table say what was and was not
shown."""),
    ("md", HOW_TO_USE),
]

LIVE_PARAMETERS = PARAMETERS + '''
every_s = 5.0  # poll interval
duration_s = 20.0  # when run headless (report / tests): how long to watch before the snapshot
groups = None  # e.g. ["orders-consumer"]; None watches every group
command_config = None  # secured cluster: a client properties file, as for Kafka's --command-config
record_to = None  # a folder to record the snapshots to as a Dataset, or None'''

LIVE_LOAD = '''import time

import kbp_notebook as kbp
from kbp_notebook import viz
from kbp_notebook.collect import read_client_properties
from kbp_notebook.collect.replay import ReplayCollector
from kbp_notebook.sources import attempt
from kbp_notebook.widgets import LiveMonitor

if bootstrap_servers:
    # SASL / TLS settings from the properties file; they stay in memory, never in an output
    security = read_client_properties(command_config) if command_config else {}
    monitor = LiveMonitor(bootstrap_servers, every_s=every_s, groups=groups, cluster=cluster,
                          record_to=record_to, **security)
else:
    # No cluster given: replay a recording through the same monitor, one snapshot per poll.
    from kbp_notebook.sources import open_source

    recorded = open_source(source, recording=recording, prometheus_url=prometheus_url,
                           prometheus_start=prometheus_start, prometheus_end=prometheus_end,
                           prometheus_step=prometheus_step, cluster=cluster)
    monitor = LiveMonitor(collector=ReplayCollector(recorded), every_s=min(every_s, 0.2),
                          groups=groups, record_to=record_to)'''

LIVE = [
    ("md", """# Live monitor

Consumer lag on a running cluster, read without disturbing it (the monitor never joins a group
and never commits): first the verdict on what it has seen, then the monitor itself."""),
    ("code", """monitor.start()  # headless (kbp report, tests): watch for duration_s, then stop
time.sleep(duration_s)
monitor.stop()
print(f"{monitor.polls} polls; last error: {monitor.last_error}")"""),
    ("code", """found = attempt(lambda: kbp.incidents(monitor.dataset()))  # what the monitor saw
viz.verdict_box(found)"""),
    ("md", TIMELINE_MD),
    ("code", TIMELINE),
    ("md", """## The monitor

Every few seconds it redraws lag per group and topic with the trend line, and gives the **ETA to
drain** of the slowest group. Set `bootstrap_servers` in the parameters cell and, for a secured
cluster, `command_config`: the client properties file you give Kafka's own tools
(`security.protocol`, `sasl.mechanism`, `sasl.jaas.config`, PEM `ssl.*` files). Its secrets stay
in memory: they never appear in this notebook's outputs or in a rendered report. Without a
cluster, the notebook replays a bundled recording through the same monitor.

Press **start**; **stop** when done. The readout line says how far behind the groups are and when
the slowest one drains. If the cluster cannot be reached, it says **"cluster unreachable since
…"** and keeps trying: a red line there during an incident means the brokers (or the network to
them) are part of the problem. Tick *record* (with `record_to` set) to keep the snapshots as a
Dataset you can open later with the post-mortem notebook. In a shared HTML report the figure is
the monitor's last state, without its buttons."""),
    ("code", """monitor"""),
    ("md", """## ETA to drain and trend, as tables

Both need at least three snapshots."""),
    ("code", """viz.human_table(
    monitor.forecast, title="Time to drain at current rates",
    columns=["group", "topic", "lag", "produce_rate", "consume_rate", "eta_s"],
) if monitor.forecast is not None else print("fewer than 3 snapshots so far")"""),
    ("code", """viz.human_table(
    monitor.trend, title="Trend", columns=["group", "topic", "status", "slope_per_s", "onset"],
) if monitor.trend is not None else print("fewer than 3 snapshots so far")"""),
    ("md", """## What to do next

* ETA finite and inside your tolerance: keep watching; nothing to change.
* "does not drain": consumers are slower than producers. Scale the group (see
  `02_capacity_planning` for how many), or pause the heaviest producer if you can.
* Recorded something? Open it with `01_incident_postmortem` (`recording = "<folder>"`) or render
  `kbp report <folder> --out postmortem.html`."""),
    ("md", HOW_TO_USE),
]


def build(out: Path = OUT) -> list[Path]:
    """Write the notebooks into ``out`` (default: notebooks/) and return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    books = {
        "01_incident_postmortem": _notebook("Incident post-mortem", POSTMORTEM),
        "02_capacity_planning": _notebook("Capacity planning", CAPACITY),
        "03_flush_latency_vs_lag": _notebook("Flush latency vs lag", FLUSH),
        "04_live_monitor": _notebook("Live monitor", LIVE, parameters=LIVE_PARAMETERS,
                                     load=LIVE_LOAD),
    }
    paths = []
    for name, nb in books.items():
        nbformat.validate(nb)
        path = out / f"{name}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in build():
        print(written.relative_to(ROOT))
    sys.exit(0)
