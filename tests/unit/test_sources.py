"""The notebooks' data loader (kbp_notebook.sources), and the old import path in report."""

from __future__ import annotations

import pytest

import kbp_notebook as kbp
from kbp_notebook import report, sources
from kbp_notebook.errors import KbpDataError, KbpInputError


def test_old_report_names_are_the_sources_functions():
    for name in ("open_source", "attempt", "check_source", "source_parameters"):
        assert getattr(report, name) is getattr(sources, name)


def test_open_source_reads_a_sample_or_a_recording(tmp_path):
    sample = sources.open_source("producer-burst")
    assert len(sample.lag) and sample.lag.equals(kbp.load_sample("producer-burst").lag)
    kbp.write_dataset(sample, tmp_path / "rec")
    again = sources.open_source(None, recording=str(tmp_path / "rec"))
    assert len(again.lag) == len(sample.lag)


def test_open_source_needs_a_source_and_a_prometheus_time_range():
    with pytest.raises(KbpInputError, match="no source given"):
        sources.open_source()
    with pytest.raises(KbpInputError, match="needs a time range") as caught:
        sources.open_source(prometheus_url="http://user:s3cret@127.0.0.1:9/")
    assert "s3cret" not in str(caught.value)


def test_attempt_says_not_enough_data_and_returns_none(capsys):
    def too_short() -> int:
        raise KbpDataError("3 snapshots; need 5")

    assert sources.attempt(too_short) is None
    assert "Not enough data: 3 snapshots; need 5" in capsys.readouterr().out
    assert sources.attempt(lambda: 7) == 7
