"""The shape every analysis result shares: a frozen table with a repr and a plot."""

from __future__ import annotations

import html
import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

__all__ = ["Result"]


@dataclass(frozen=True, repr=False)
class Result:
    """Base of analysis results.

    Subclasses are frozen dataclasses whose first field is ``table`` and set
    ``plot_builder`` to the name of the ``kbp_notebook.viz`` function that
    draws them, and ``title`` to a short human heading.
    """

    table: pd.DataFrame

    plot_builder: ClassVar[str] = ""
    title: ClassVar[str] = "Result"

    def to_frame(self) -> pd.DataFrame:
        """Return a copy of ``table``."""
        return self.table.copy()

    def summary_lines(self) -> list[str]:
        """Return one-line facts shown above the table in reprs (override)."""
        return []

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}: {self.title}", *self.summary_lines()]
        with pd.option_context("display.max_rows", 20, "display.width", 120):
            lines.append(self.table.to_string() if len(self.table) else "(no rows)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        facts = "".join(f"<li>{html.escape(line)}</li>" for line in self.summary_lines())
        table = self.table.to_html(escape=True, max_rows=50, index=False, na_rep="—")
        return (
            f"<div class='kbp-result'><strong>{html.escape(self.title)}</strong>"
            f"<ul>{facts}</ul>{table}</div>"
        )

    def plot(self, **options: Any) -> Any:
        """Return a plotly Figure of this result (built in ``kbp_notebook.viz``)."""
        viz = importlib.import_module("kbp_notebook.viz")
        return getattr(viz, self.plot_builder)(self, **options)
