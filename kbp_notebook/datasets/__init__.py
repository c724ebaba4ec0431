"""Synthetic data with known answers, shared by the tests, the benchmarks and the docs.

Built in code (nothing is read from disk), deterministic for a given ``seed``,
and vectorised across partitions where the size can be large:

* :func:`make_lag` -- a LAG frame: every group reads every topic; per
  partition a producer at ``produce_rate`` and a consumer able to commit at
  ``consume_rate`` (numbers or steps), with optional random-walk noise,
  measurement noise, stalls, rewinds, spikes, owners and retention.
  Columns: ``time``, ``cluster``, ``group``, ``topic``, ``partition``,
  ``committed_offset``, ``log_end_offset``, ``lag`` (+ ``consumer_id``,
  ``log_start_offset`` on request). ``partitions x n`` rows per (group, topic).
* :func:`simulate` -- the same simulation as (P, T) offset arrays
  (:class:`Simulation`), for benchmarks that build frames of 10^5 partitions.
* :func:`drain_case` -- a recorded history and the true drain time of
  each partition (the consumer's real position, before measurement noise).
* :func:`incident_case` -- a :class:`~kbp_notebook.frames.Dataset` of one
  group whose incident of a known cause (``KINDS``: the incident model's
  vocabulary) starts at ``ONSET_S``: 6 partitions, a snapshot every 5 s for
  7 minutes, broker latency metrics.

The sample recordings of real scenarios are elsewhere:
:func:`kbp_notebook.load_sample`.

Examples
--------
>>> from kbp_notebook.datasets import make_lag
>>> lag = make_lag(groups=("a", "b"), partitions=3, n=10)
>>> len(lag)
60
"""

from __future__ import annotations

from kbp_notebook.datasets.incidents import KINDS, ONSET_S, incident_case
from kbp_notebook.datasets.lag import Simulation, drain_case, make_lag, simulate

__all__ = ["KINDS", "ONSET_S", "Simulation", "drain_case", "incident_case", "make_lag", "simulate"]
