import os

import pandas as pd
import pytest

from kbp_notebook.collect.storage import DatasetAppender, read_dataset, write_dataset
from kbp_notebook.errors import KbpInputError
from kbp_notebook.frames import Dataset


def snapshot(seconds, committed=10):
    return pd.DataFrame(
        {
            "time": [pd.Timestamp("2026-01-01T00:00:00Z") + pd.Timedelta(seconds=seconds)],
            "cluster": ["c"],
            "group": ["g"],
            "topic": ["t"],
            "partition": [0],
            "committed_offset": [committed],
            "log_end_offset": [committed + 5],
            "lag": [5],
        }
    )


def test_round_trip_keeps_dtypes_and_meta(tmp_path):
    ds = Dataset(lag=pd.concat([snapshot(0), snapshot(5, 20)]), meta={"scenario": "x"})
    write_dataset(ds, tmp_path / "ds")
    back = read_dataset(tmp_path / "ds")
    pd.testing.assert_frame_equal(back.lag, ds.lag)
    assert back.meta == {"scenario": "x"}
    with pytest.raises(KbpInputError, match="already holds a Dataset"):
        write_dataset(ds, tmp_path / "ds")


def test_appender_resumes_and_ignores_leftover_tmp(tmp_path):
    folder = tmp_path / "rec"
    appender = DatasetAppender(folder, meta={"cluster": "c"})
    appender.append(lag=snapshot(0))
    appender.append(lag=snapshot(5, 20))
    # a crash mid-write leaves a .tmp part behind: it must be ignored, then cleaned on resume
    (folder / "lag" / "part-00000009-1.parquet.tmp").write_bytes(b"half a parquet file")
    assert len(read_dataset(folder).lag) == 2
    resumed = DatasetAppender(folder)
    assert resumed.last_time() == pd.Timestamp("2026-01-01T00:00:05Z")
    resumed.append(lag=snapshot(10, 30))
    assert not list((folder / "lag").glob("*.tmp"))
    assert read_dataset(folder).lag["committed_offset"].tolist() == [10, 20, 30]
    assert read_dataset(folder).meta == {"cluster": "c"}


def test_unreadable_part_is_named(tmp_path):
    folder = tmp_path / "rec"
    DatasetAppender(folder).append(lag=snapshot(0))
    bad = folder / "lag" / "part-00000001-1.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(KbpInputError, match=f"{bad.name} cannot be read"):
        read_dataset(folder)


def test_missing_folder_and_non_dataset(tmp_path):
    with pytest.raises(KbpInputError, match="No Dataset folder"):
        read_dataset(tmp_path / "nope")
    os.mkdir(tmp_path / "empty")
    with pytest.raises(KbpInputError, match="is not a Dataset folder"):
        read_dataset(tmp_path / "empty")
