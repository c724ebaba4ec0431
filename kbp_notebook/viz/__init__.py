"""Plotly figure builders: a result (or a LAG frame) in, a ``go.Figure`` out; no I/O.

Every builder shares one look (the ``"kbp"`` plotly template, Burrow status
colours, growing/stable/draining colours) and escapes group ids, topics and
other user-named strings before they reach titles, legends, annotations or
hover labels. Analysis results call these through ``result.plot()``.

Builders
--------
plot_incidents      an ``Incidents`` result: lag per key, episodes shaded by cause, events
plot_lag            lag over time per group/topic (or partition), trend, onset, events
plot_lag_trend      a ``LagTrend`` (with the lag frame: the series; without: slopes)
plot_lag_status     a ``LagStatus``: Burrow status per partition, group roll-ups
plot_status_timeline  statuses over time
plot_time_lag       lag in seconds (lower bounds marked)
plot_drain          a ``DrainForecast`` as a fan chart, with the retention-loss point
plot_retention_risk a ``RetentionRisk``: forecast deletion time per group/topic, interval
plot_capacity       a ``CapacityPlan``: consumers/partitions today vs needed
plot_what_if        a ``CapacityPlan`` scenario: the backlog under the planned consumers
plot_correlation    a ``Correlation``: both series on one axis and r by shift
plot_diagnosis      a ``Diagnosis``: findings by severity and recommendations
choice_figure       precomputed figures behind plotly's own dropdown or slider (reports)
verdict_box         the box a report opens with: verdict, worst figures, cause, action
human_table         a short human table, the full one under <details>
"""

from __future__ import annotations

from kbp_notebook.viz._style import (
    BURROW_COLOURS,
    TREND_COLOURS,
    esc,
    figure_mimebundle,
    report_mode,
    use_report_renderer,
)
from kbp_notebook.viz.controls import choice_figure, with_readout
from kbp_notebook.viz.correlation import plot_correlation, plot_diagnosis
from kbp_notebook.viz.drain import plot_capacity, plot_drain, plot_what_if
from kbp_notebook.viz.incidents import plot_incidents
from kbp_notebook.viz.lag import add_events, plot_lag, plot_lag_trend, plot_time_lag
from kbp_notebook.viz.retention import plot_retention_risk
from kbp_notebook.viz.status import plot_lag_status, plot_status_timeline
from kbp_notebook.viz.summary import HtmlBlock, episode_facts, human_table, verdict_box

__all__ = [
    "BURROW_COLOURS",
    "TREND_COLOURS",
    "HtmlBlock",
    "add_events",
    "choice_figure",
    "episode_facts",
    "esc",
    "figure_mimebundle",
    "human_table",
    "plot_capacity",
    "plot_correlation",
    "plot_diagnosis",
    "plot_drain",
    "plot_incidents",
    "plot_lag",
    "plot_lag_status",
    "plot_lag_trend",
    "plot_retention_risk",
    "plot_status_timeline",
    "plot_time_lag",
    "plot_what_if",
    "report_mode",
    "use_report_renderer",
    "verdict_box",
    "with_readout",
]
