import pandas as pd
import pytest

from kbp_notebook.errors import KbpInputError
from kbp_notebook.frames import (
    Dataset,
    empty_lag_frame,
    validate_events_frame,
    validate_lag_frame,
    validate_metrics_frame,
)


def lag_rows(**overrides):
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"]),
            "cluster": ["prod", "prod"],
            "group": ["billing", "billing"],
            "topic": ["orders", "orders"],
            "partition": [0, 0],
            "committed_offset": [10, 20],
            "log_end_offset": [15, 30],
            "lag": [5, 10],
        }
    )
    for name, value in overrides.items():
        frame[name] = value
    return frame


def metrics_rows(**overrides):
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(["2026-01-01T00:00:00Z"]),
            "cluster": ["prod"],
            "entity": ["broker-1"],
            "metric": ["log_flush_time_ms_p99"],
            "value": [3.5],
        }
    )
    for name, value in overrides.items():
        frame[name] = value
    return frame


def test_valid_lag_frame_is_normalised():
    out = validate_lag_frame(lag_rows())
    assert str(out["time"].dtype) == "datetime64[ns, UTC]"
    assert out["partition"].dtype == "int32"
    assert str(out["committed_offset"].dtype) == "Int64"
    assert out["group"].dtype == "string"
    assert out["lag"].tolist() == [5, 10]


def test_microsecond_times_become_nanoseconds():
    times = pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"]).as_unit("us")
    frame = lag_rows(time=times)
    out = validate_lag_frame(frame)
    assert (out["time"].diff().dt.total_seconds().dropna() == 5).all()
    assert str(out["time"].dtype) == "datetime64[ns, UTC]"


def test_other_timezones_are_converted_to_utc():
    times = pd.to_datetime(["2026-01-01T01:00:00+01:00", "2026-01-01T01:00:05+01:00"])
    out = validate_lag_frame(lag_rows(time=times))
    assert out["time"].iloc[0] == pd.Timestamp("2026-01-01T00:00:00Z")


def test_missing_column_is_named():
    with pytest.raises(KbpInputError, match=r"missing column\(s\) \['log_end_offset'\]") as info:
        validate_lag_frame(lag_rows().drop(columns="log_end_offset"))
    assert info.value.column == "log_end_offset"


def test_naive_timestamps_are_refused_with_a_fix():
    naive = pd.to_datetime(["2026-01-01T00:00:00", "2026-01-01T00:00:05"])
    with pytest.raises(KbpInputError, match="naive timestamps.*tz_localize"):
        validate_lag_frame(lag_rows(time=naive))


def test_negative_offsets_are_refused_with_row():
    message = r"'committed_offset' has a negative value \(-3\) at row 1"
    with pytest.raises(KbpInputError, match=message):
        validate_lag_frame(lag_rows(committed_offset=[10, -3], lag=[5, 33]))


def test_inconsistent_lag_is_refused():
    with pytest.raises(KbpInputError, match="column 'lag' at row 1 is 11 but"):
        validate_lag_frame(lag_rows(lag=[5, 11]))


def test_missing_commit_means_missing_lag():
    out = validate_lag_frame(lag_rows(committed_offset=[None, 20], lag=[None, 10]))
    assert out["lag"].isna().tolist() == [True, False]
    with pytest.raises(KbpInputError, match="column 'lag' at row 0"):
        validate_lag_frame(lag_rows(committed_offset=[None, 20], lag=[0, 10]))


def test_fractional_offsets_are_refused():
    with pytest.raises(KbpInputError, match="'log_end_offset' cannot be read as Int64"):
        validate_lag_frame(lag_rows(log_end_offset=[15.5, 30]))


def test_duplicate_key_time_is_refused():
    frame = pd.concat([lag_rows(), lag_rows().iloc[[0]]], ignore_index=True)
    with pytest.raises(KbpInputError, match="repeats"):
        validate_lag_frame(frame)


def test_not_a_frame():
    with pytest.raises(KbpInputError, match="must be a pandas DataFrame, got list"):
        validate_lag_frame([1, 2])


def test_metrics_frame_valid_and_invalid():
    out = validate_metrics_frame(metrics_rows())
    assert out["value"].dtype == "float64"
    with pytest.raises(KbpInputError, match=r"missing column\(s\) \['value'\]"):
        validate_metrics_frame(metrics_rows().drop(columns="value"))
    with pytest.raises(KbpInputError, match="'value' cannot be read as float64"):
        validate_metrics_frame(metrics_rows(value=["fast"]))
    with pytest.raises(KbpInputError, match="naive timestamps"):
        validate_metrics_frame(metrics_rows(time=pd.to_datetime(["2026-01-01"])))


def test_unparseable_time_strings_name_the_column():
    with pytest.raises(KbpInputError, match="'time' could not be read as timestamps"):
        validate_events_frame(pd.DataFrame({"time": ["yesterday"], "kind": ["x"], "text": ["y"]}))


def test_dataset_validates_and_fills_empty_frames():
    ds = Dataset(lag=lag_rows())
    assert len(ds.metrics) == 0 and list(ds.events.columns) == ["time", "kind", "text"]
    assert "2 lag rows" in repr(ds)
    with pytest.raises(KbpInputError):
        Dataset(lag=lag_rows().drop(columns="lag"))
    assert len(Dataset(lag=empty_lag_frame()).lag) == 0
