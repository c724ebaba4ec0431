"""What every explorer shares: a figure area that works live and in exported HTML."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from kbp_notebook.frames import Dataset
from kbp_notebook.lagdata import lag_totals
from kbp_notebook.viz import choice_figure, figure_mimebundle, report_mode, with_readout

__all__ = ["Explorer", "as_lag_frame", "groups_by_latest_lag"]

ALL = "(all)"


def as_lag_frame(source: Any) -> tuple[pd.DataFrame, pd.DataFrame | None, Dataset | None]:
    """Return ``(lag, events, dataset)`` from a Dataset or a LAG frame."""
    if isinstance(source, Dataset):
        return source.lag, source.events, source
    if isinstance(source, pd.DataFrame):
        return Dataset(lag=source).lag, None, None
    raise TypeError(
        f"expected a kbp_notebook Dataset or a LAG DataFrame, got {type(source).__name__}; "
        "load one with kbp.load_sample(...) or kbp.read_dataset(...)."
    )


class FigureView(widgets.Output):  # type: ignore[misc]
    """An output area holding one plotly figure.

    The figure is written straight into the widget's ``outputs`` (no
    ``display`` context needed, so it works from callbacks, threads and
    without a kernel) as a bundle JupyterLab/Voilà draw interactively and an
    exported report draws offline.
    """

    def show(self, figure: go.Figure) -> None:
        """Replace the shown figure."""
        self.outputs = (
            {"output_type": "display_data", "data": figure_mimebundle(figure), "metadata": {}},
        )


class Explorer(widgets.VBox):  # type: ignore[misc]
    """Base class: controls on top, a one-line readout, the figure below.

    Subclasses build ``controls``, implement ``_build_figure()`` (calling
    analysis and viz only) and call ``refresh()`` when a control changes.
    """

    def __init__(self, controls: list[widgets.Widget], **kwargs: Any) -> None:
        self.readout = widgets.HTML(value="", layout=widgets.Layout(min_height="1.6em"))
        self.view = FigureView(layout=widgets.Layout(width="100%"))
        self.figure: go.Figure = go.Figure()
        self.refreshes = 0
        self._refresh_lock = threading.RLock()
        layout = widgets.Layout(flex_flow="row wrap", grid_gap="4px 12px")
        box = widgets.HBox(controls, layout=layout)
        super().__init__(children=[box, self.readout, self.view], **kwargs)

    def _build_figure(self) -> tuple[go.Figure, str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def refresh(self, *_: Any) -> None:
        """Recompute from the controls' current values and redraw."""
        with self._refresh_lock:
            figure, text = self._build_figure()
            self.figure = figure
            self.readout.value = text
            self.view.show(figure)
            self.refreshes += 1

    def static_figure(self) -> go.Figure:
        """Return the current state as a plain ``go.Figure`` (for exports and reports)."""
        return go.Figure(self.figure)

    def _observe_all(self, controls: list[widgets.Widget]) -> None:
        for control in controls:
            control.observe(self.refresh, names="value")

    # -- without a kernel (exported reports) ---------------------------------------------

    def offline_figure(self) -> go.Figure:
        """Return the explorer as one figure that works without a kernel.

        The default is the current state with its readout and no control;
        explorers override it to put their main control into the figure as
        plotly's own dropdown or slider (:meth:`_choices_figure`).
        """
        return with_readout(self.figure, self.readout.value)

    def _choices_figure(
        self,
        control: widgets.ValueWidget,
        values: Sequence[Any],
        *,
        label: str,
        kind: Literal["dropdown", "slider"],
        name: Callable[[Any], str] = str,
    ) -> go.Figure:
        """Move ``control`` through ``values``, keep what each draws, and merge the figures.

        The control really moves (the same observers run as when a person moves
        it), so every choice of the report is what the live explorer shows. With
        fewer than two values there is nothing to choose: no control is drawn.
        """
        if len(values) < 2:
            return Explorer.offline_figure(self)
        original = control.value
        drawn = []
        try:
            for value in values:
                control.value = value
                drawn.append((name(value), with_readout(self.figure, self.readout.value)))
        finally:
            control.value = original
        active = list(values).index(original) if original in values else 0
        return choice_figure(drawn, label=label, control=kind, active=active)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # An exported report has no kernel: controls that look alive there must be plotly's.
        if report_mode():
            return figure_mimebundle(self.offline_figure())
        return super()._repr_mimebundle_(**kwargs)


def groups_by_latest_lag(lag: pd.DataFrame) -> pd.Series:
    """Total lag per group at the last snapshot, largest first (the widgets' group order).

    Totals follow :func:`kbp_notebook.lagdata.lag_totals`; a group whose last
    snapshot is incomplete has no total (NaN) and sorts last.
    """
    totals = lag_totals(lag, by=("group",))
    last = totals[totals["time"] == lag["time"].max()]
    ranking: pd.Series = last.set_index("group")["lag"]
    return ranking.sort_values(ascending=False, na_position="last")


def message(text: str, *, tone: str = "info") -> str:
    """Return an escaped one-line HTML message for a readout."""
    colour = {"info": "#333333", "warn": "#8a5a00", "error": "#b00020", "ok": "#1a7f37"}[tone]
    return f"<span style='color:{colour}'>{html.escape(text)}</span>"
