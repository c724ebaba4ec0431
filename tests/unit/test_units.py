import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from kbp_notebook.errors import KbpInputError
from kbp_notebook.units import (
    format_bytes,
    format_count,
    format_duration,
    format_number,
    format_percent,
    format_rate,
    format_table,
    format_time,
    parse_duration_s,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(5, 5.0), (2.5, 2.5), ("5", 5.0), ("500ms", 0.5), ("10m", 600.0), ("1h30m", 5400.0),
     ("2d", 172800.0), (dt.timedelta(minutes=2), 120.0), (pd.Timedelta("3s"), 3.0),
     (np.int64(7), 7.0)],
)
def test_parse_duration_bare_number_is_seconds(value, seconds):
    assert parse_duration_s(value) == pytest.approx(seconds)


def test_parse_duration_reads_pandas_spellings_and_zero_when_allowed():
    assert parse_duration_s("00:05:00") == 300.0
    assert parse_duration_s("1 days 00:00:01") == 86401.0
    assert parse_duration_s(0, name="max_shift", allow_zero=True) == 0.0
    assert parse_duration_s("0s", name="max_shift", allow_zero=True) == 0.0
    with pytest.raises(KbpInputError, match="non-negative"):
        parse_duration_s("-1s", name="max_shift", allow_zero=True)


@pytest.mark.parametrize("bad", ["soon", "-5s", 0, True, None, math.inf, "5 parsecs"])
def test_parse_duration_rejects_and_names_the_option(bad):
    with pytest.raises(KbpInputError, match="every="):
        parse_duration_s(bad, name="every")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "0.2 s"), (3, "3 s"), (45.2, "45 s"), (134, "2 min 14 s"), (120, "2 min"),
     (3599.6, "60 min"), (11100, "3 h 05 min"), (7200, "2 h"), (3 * 86400, "3.0 days"),
     (-90, "-1 min 30 s")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_format_duration_never_and_missing():
    assert format_duration(math.inf, never="does not drain at current rates") == (
        "does not drain at current rates"
    )
    for missing in (math.nan, None, pd.NA, pd.NaT):
        assert format_duration(missing) == "—"


def test_numbers():
    assert format_count(26177.4) == "26,177"
    assert format_count(math.inf) == "—"
    assert format_number(299.772923) == "300"
    assert format_number(0.012345) == "0.0123"
    assert format_number(12345.6) == "12,346"
    assert format_number(-1.5) == "-1.5"
    assert format_number(0) == "0"
    assert format_rate(449.7) == "450 msg/s"
    assert format_rate(0.1049, unit="MB/s") == "0.105 MB/s"
    assert format_percent(0.256) == "26%"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(12) == "12 B"


def test_format_time():
    stamp = pd.Timestamp("2026-11-26 15:58:37.632445", tz="UTC")
    assert format_time(stamp) == "15:58:37 UTC"
    assert format_time(stamp, date=True) == "2026-11-26 15:58:37 UTC"
    assert format_time(pd.Timestamp("2026-11-26 16:58:37", tz="Europe/Paris")) == "15:58:37 UTC"
    assert format_time(pd.NaT) == "—"


def test_format_table_by_column_meaning():
    frame = pd.DataFrame(
        {
            "group": ["a<b>", None],
            "peak_lag": [26177.0, np.nan],
            "growth_rate_per_s": [449.77, 0.5],
            "eta_s": [134.0, np.inf],
            "start": pd.to_datetime(["2026-11-26 15:58:37.6", None], utc=True),
            "drains": [True, False],
        }
    )
    out = format_table(frame, labels={"eta_s": "drains in"})
    assert out.columns.tolist() == ["group", "peak_lag", "growth_rate_per_s", "drains in",
                                    "start", "drains"]
    assert out.iloc[0].tolist() == ["a<b>", "26,177", "450 msg/s", "2 min 14 s", "15:58:37 UTC",
                                    "yes"]
    assert out.iloc[1].tolist() == ["—", "—", "0.5 msg/s", "never", "—", "no"]
    with pytest.raises(KbpInputError, match="format kind"):
        format_table(frame, kinds={"group": "weird"})
