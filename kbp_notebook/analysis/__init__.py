"""Pure analysis: tidy frames in, frozen result objects out.

Nothing here imports kafka-python, plotly, ipywidgets or ``collect``; a
result's ``.plot()`` imports ``kbp_notebook.viz`` only when called.
"""

from __future__ import annotations

__all__: list[str] = []
