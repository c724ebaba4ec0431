"""Collectors: the only code that talks to Kafka, Prometheus or disk.

Every collector returns frames that pass ``kbp_notebook.frames`` validation,
with timezone-aware UTC times. Nothing here computes statistics.
"""

from __future__ import annotations

from kbp_notebook.collect.storage import DatasetAppender, read_dataset, write_dataset

__all__ = ["DatasetAppender", "read_dataset", "write_dataset"]
