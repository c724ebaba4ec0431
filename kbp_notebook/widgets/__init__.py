"""ipywidgets explorers: state and callbacks only (maths in ``analysis``, figures in ``viz``).

Every explorer is an ``ipywidgets.VBox`` (controls, a one-line readout, the
figure) that can be built and driven without a kernel: set a control's
``.value`` and its ``figure`` and readout follow. ``static_figure()`` returns
the current state as a plain ``go.Figure`` for exported reports.

Explorers
---------
LagExplorer          cluster / group / topic / partition pickers, time range, trend, breakdown
DrainPlanner         consumers, per-consumer rate, produce growth, target: ETA and what is needed
CorrelationExplorer  metric, target, shift window, method: r by shift and the honest p-value
LiveMonitor          polls a live cluster every N s: live figure, trend, ETA, start/stop, record
"""

from __future__ import annotations

from kbp_notebook.widgets._base import Explorer, FigureView
from kbp_notebook.widgets.correlation_explorer import CorrelationExplorer
from kbp_notebook.widgets.drain_planner import DrainPlanner
from kbp_notebook.widgets.lag_explorer import LagExplorer
from kbp_notebook.widgets.live_monitor import LiveMonitor

__all__ = [
    "CorrelationExplorer",
    "DrainPlanner",
    "Explorer",
    "FigureView",
    "LagExplorer",
    "LiveMonitor",
]
