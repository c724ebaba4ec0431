"""Hostile and broken input: only KbpError subclasses with a useful message escape.

Property-based (hypothesis) over the text parser, the frame validators,
Dataset folders on disk, Prometheus answers served by a real local HTTP
server, and every analysis function. Each test counts the inputs it really
tried into ``tests.helpers.reliability.TRIED`` (printed at the end of the run).
"""

from __future__ import annotations

import json
import os
import random
import string
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbp_notebook.collect.consumer_groups_text import parse_consumer_groups
from kbp_notebook.collect.storage import DatasetAppender, read_dataset, write_dataset
from kbp_notebook.errors import KbpConnectionError, KbpDataError, KbpError, KbpInputError
from kbp_notebook.frames import (
    Dataset,
    validate_events_frame,
    validate_lag_frame,
    validate_metrics_frame,
)
from tests.helpers.reliability import ROOT, TRIED

SETTINGS = settings(
    deadline=None,
    derandomize=True,  # the same inputs on every CI run; failures reproduce
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def kbp_only(call, *args, **kwargs):
    """Run ``call``; a KbpError must carry a useful message, anything else fails the test.

    Returns ``(result, error)``: exactly one of them is None.
    """
    try:
        return call(*args, **kwargs), None
    except KbpError as exc:
        message = str(exc)
        assert len(message) >= 25, f"{type(exc).__name__} with a terse message: {message!r}"
        assert "Traceback" not in message
        return None, exc


# ---------------------------------------------------------------- consumer-groups text

SEED_OUTPUTS = [
    # Kafka 3.x layout with stderr notices (2>&1) and a member without partitions.
    """
Consumer group 'idle' has no active members.

GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID                                 HOST            CLIENT-ID
idle            orders          0          90              100             10              -                                           -               -
idle            orders          1          -               7               -               -                                           -               -

GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID                                 HOST            CLIENT-ID
busy            orders          0          100             100             0               consumer-1-3f1c2a9e-7d4b-4e55-9a51-0c6a     /10.0.0.7       consumer-1
busy            -               -          -               -               -               consumer-2-aa                               /10.0.0.8       consumer-2
Error: Consumer group 'ghost' does not exist.
""",  # noqa: E501
    # Kafka 4.x --verbose with spaces in ids.
    """
GROUP                TOPIC           PARTITION  LEADER-EPOCH  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID                   HOST            CLIENT-ID
team billing v2      payments        0          3             5               12              7               member 1                      /127.0.0.1      billing app
team billing v2      payments        1          -             -               4               -               -                             -               -
""",  # noqa: E501
    # A log of repeated runs with timestamp lines.
    """2026-03-01T10:00:00+01:00
GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
g     t     0         1              5              4   -           -    -
Sun Mar  1 09:00:30 UTC 2026
GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
g     t     0         2              9              7   -           -    -
Sun, 01 Mar 2026 09:01:00 +0000
GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
g     t     0         3              9              6   -           -    -
""",
]


def _captured_outputs() -> list[str]:
    """Real outputs captured from the sandbox's kafka-consumer-groups, plus the seeds above."""
    folder = ROOT / "tests" / "data" / "consumer_groups"
    texts = []
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.stat().st_size < 2_000_000:
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return SEED_OUTPUTS + texts


REAL_OUTPUTS = _captured_outputs()

HOSTILE_TOKENS = [
    "-", "", " ", "\t", "\r", "\x00", "\u202e", "\ufeff", "é", "😀", "GROUP", "TOPIC",
    "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "9223372036854775807",
    "9223372036854775808", "-9223372036854775808", "99999999999999999999999999", "-1",
    "1e3", "0x10", "NaN", "inf", "2026-02-30T25:61:00Z", "Thu Nov 26 15:30:24 XYZ 2026",
    "Mon, 99 Foo 2026 10:00:00 +0000", "9999-12-31T23:59:59Z", "0001-01-01", "<script>",
    "Consumer group 'x' is rebalancing.", "COORDINATOR (ID)", "STATE",
]  # fmt: skip


@st.composite
def mutated_output(draw: st.DrawFn) -> str:
    """A real output with lines or characters deleted, duplicated, swapped or replaced."""
    text = draw(st.sampled_from(REAL_OUTPUTS))
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            lines = [""]
        op = draw(st.sampled_from(["del_line", "dup_line", "swap", "token", "chars", "trunc"]))
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        if op == "del_line":
            del lines[i]
        elif op == "dup_line":
            lines.insert(i, line)
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "token":
            words = line.split(" ")
            k = draw(st.integers(0, len(words) - 1))
            words[k] = draw(st.sampled_from(HOSTILE_TOKENS) | st.text(max_size=8))
            lines[i] = " ".join(words)
        elif op == "chars" and line:
            k = draw(st.integers(0, len(line) - 1))
            lines[i] = line[:k] + draw(st.text(max_size=4)) + line[k + 1 :]
        elif op == "trunc" and line:
            lines[i] = line[: draw(st.integers(0, len(line)))]
    sep = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n"]))
    return sep.join(lines)


def _check_parsed(frame: pd.DataFrame) -> None:
    assert list(frame.columns)[:8] == [
        "time", "cluster", "group", "topic", "partition",
        "committed_offset", "log_end_offset", "lag",
    ]  # fmt: skip
    assert str(frame["time"].dt.tz) == "UTC"
    expected = frame["log_end_offset"] - frame["committed_offset"]
    assert (frame["lag"].isna() == expected.isna()).all()
    assert (frame["lag"] == expected).fillna(True).all()


@settings(SETTINGS, max_examples=400)
@given(text=st.text(max_size=300) | st.text(alphabet=string.printable, max_size=600))
def test_parse_consumer_groups_random_text(text: str) -> None:
    TRIED["parse_consumer_groups: random text"] += 1
    frame, error = kbp_only(parse_consumer_groups, text, time="2026-01-01T00:00Z")
    if error is not None:
        assert isinstance(error, KbpInputError)
        assert "line" in str(error) or "time" in str(error)
    else:
        _check_parsed(frame)


@settings(SETTINGS, max_examples=300)
@given(text=mutated_output())
def test_parse_consumer_groups_mutated_real_outputs(text: str) -> None:
    TRIED["parse_consumer_groups: mutated real outputs"] += 1
    frame, error = kbp_only(parse_consumer_groups, text, time="2026-01-01T00:00Z")
    if error is not None:
        assert isinstance(error, KbpInputError)
        assert "line" in str(error)
    else:
        _check_parsed(frame)


@pytest.mark.parametrize(
    "bad",
    [None, b"GROUP TOPIC", 42, ["GROUP"], "\x00" * 10_000, "GROUP\n" * 50_000],
    ids=["none", "bytes", "int", "list", "nul-bytes", "many-headers"],
)
def test_parse_consumer_groups_wrong_types_and_sizes(bad: object) -> None:
    TRIED["parse_consumer_groups: wrong types and sizes"] += 1
    frame, error = kbp_only(parse_consumer_groups, bad)
    assert error is not None or len(frame) == 0


@pytest.mark.parametrize("time", ["yesterday", "2026-13-01", float("nan"), object(), "NaT"])
def test_parse_consumer_groups_bad_time_argument(time: object) -> None:
    TRIED["parse_consumer_groups: bad time="] += 1
    _, error = kbp_only(parse_consumer_groups, SEED_OUTPUTS[0], time=time)
    assert isinstance(error, KbpInputError)
    assert "time" in str(error)


# ---------------------------------------------------------------- frame validators

HOSTILE_CELLS = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(-float("inf")),
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1, -(2**63), 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.booleans(),
    st.sampled_from(["1", "1.5", "NaN", "2026-01-01", "2026-01-01T00:00:00Z", pd.NA, pd.NaT]),
    st.just(pd.Timestamp("2026-01-01T00:00:00Z")),
    st.just(pd.Timestamp("2026-01-01T00:00:00")),
    st.just(pd.Timestamp("2026-01-01T00:00:00+05:00")),
    st.just(b"\x00\xff"),
)


@st.composite
def hostile_frame(draw: st.DrawFn, columns: list[str], optional: list[str]) -> pd.DataFrame:
    """A frame whose columns are (mostly) the schema's, filled with hostile cells.

    Half the frames start valid and get a few cells replaced, so the checks
    past the first one are reached too.
    """
    n = draw(st.integers(0, 6))
    chosen = [c for c in columns if draw(st.integers(0, 19)) > 0]  # sometimes drop one
    chosen += [c for c in optional if draw(st.booleans())]
    if draw(st.booleans()):
        chosen.append(draw(st.sampled_from(["extra", "time ", "LAG", ""])))
    base = {
        "time": pd.Timestamp("2026-01-01T00:00:00Z"),
        "cluster": "c",
        "group": "g",
        "topic": "t",
        "entity": "broker-1",
        "metric": "m",
        "value": 1.0,
        "kind": "k",
        "text": "x",
        "partition": 0,
        "committed_offset": 5,
        "log_end_offset": 10,
        "lag": 5,
        "log_start_offset": 0,
        "consumer_id": "c1",
        "host": "/h",
        "client_id": "cl",
    }
    start_valid = draw(st.booleans())
    data = {}
    for column in chosen:
        cells = []
        for row in range(n):
            if start_valid and draw(st.integers(0, 4)) > 0:
                value = base.get(column, 1)
                if column == "time":
                    value = value + pd.Timedelta(seconds=row)
                cells.append(value)
            else:
                cells.append(draw(HOSTILE_CELLS))
        data[column] = pd.Series(cells, dtype=object)
    frame = pd.DataFrame(data)
    if draw(st.booleans()) and n:
        # make some columns typed, as real frames are
        for column in frame.columns:
            try:
                frame[column] = pd.to_numeric(frame[column])
            except (ValueError, TypeError):
                pass
    return frame


LAG_COLUMNS = ["time", "cluster", "group", "topic", "partition", "committed_offset",
               "log_end_offset", "lag"]  # fmt: skip
LAG_OPTIONAL = ["log_start_offset", "consumer_id", "host", "client_id"]
METRICS_COLUMNS = ["time", "cluster", "entity", "metric", "value"]


@settings(SETTINGS, max_examples=300)
@given(frame=hostile_frame(LAG_COLUMNS, LAG_OPTIONAL))
def test_validate_lag_frame_hostile(frame: pd.DataFrame) -> None:
    TRIED["validate_lag_frame"] += 1
    out, error = kbp_only(validate_lag_frame, frame)
    if error is not None:
        assert isinstance(error, KbpInputError)
        return
    assert str(out["time"].dtype) == "datetime64[ns, UTC]"
    assert str(out["partition"].dtype) == "int32"
    for name in ("committed_offset", "log_end_offset", "lag"):
        assert str(out[name].dtype) == "Int64"
        assert not (out[name] < 0).fillna(False).any() or name == "lag"
    expected = out["log_end_offset"] - out["committed_offset"]
    assert ((out["lag"] == expected).fillna(True)).all()
    assert (out["lag"].isna() == expected.isna()).all()
    assert not out.duplicated(["cluster", "group", "topic", "partition", "time"]).any()


@settings(SETTINGS, max_examples=200)
@given(frame=hostile_frame(METRICS_COLUMNS, []))
def test_validate_metrics_frame_hostile(frame: pd.DataFrame) -> None:
    TRIED["validate_metrics_frame"] += 1
    out, error = kbp_only(validate_metrics_frame, frame)
    if error is not None:
        assert isinstance(error, KbpInputError)
        return
    assert str(out["time"].dtype) == "datetime64[ns, UTC]"
    assert str(out["value"].dtype) == "float64"
    assert not out[["cluster", "entity", "metric"]].isna().any().any()


@settings(SETTINGS, max_examples=150)
@given(frame=hostile_frame(["time", "kind", "text"], []))
def test_validate_events_frame_hostile(frame: pd.DataFrame) -> None:
    TRIED["validate_events_frame"] += 1
    out, error = kbp_only(validate_events_frame, frame)
    if error is None:
        assert str(out["time"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(
    "thing", [None, "lag.csv", 3, {"time": [1]}, [[1, 2]], pd.Series([1.0])],
    ids=["none", "str", "int", "dict", "list", "series"],
)  # fmt: skip
def test_validators_refuse_non_frames(thing: object) -> None:
    TRIED["validators: non-frames"] += 2
    for validate in (validate_lag_frame, validate_metrics_frame):
        _, error = kbp_only(validate, thing)
        assert isinstance(error, KbpInputError)
        assert "DataFrame" in str(error)


# ---------------------------------------------------------------- Dataset folders


def _good_dataset() -> Dataset:
    times = pd.date_range("2026-01-01", periods=4, freq="5s", tz="UTC")
    lag = pd.DataFrame(
        {
            "time": times,
            "cluster": "c",
            "group": "g",
            "topic": "t",
            "partition": 0,
            "committed_offset": [1, 2, 3, 4],
            "log_end_offset": [5, 6, 7, 8],
            "lag": [4, 4, 4, 4],
        }
    )
    metrics = pd.DataFrame(
        {"time": times, "cluster": "c", "entity": "broker-1", "metric": "m", "value": 1.0}
    )
    events = pd.DataFrame({"time": times[:1], "kind": ["note"], "text": ["hello"]})
    return Dataset(lag=lag, metrics=metrics, events=events, meta={"source": "test"})


CORRUPTIONS = [
    "random_bytes_part", "truncated_part", "empty_part", "meta_random_bytes", "meta_not_object",
    "meta_truncated", "meta_nul", "no_lag_folder_no_meta", "part_is_directory",
    "part_wrong_schema", "part_metrics_in_lag", "part_negative_offsets", "part_naive_time",
    "duplicate_part", "stale_tmp", "meta_is_directory", "lag_is_file", "part_bad_lag",
    "unreadable_part", "part_renamed_garbage",
]  # fmt: skip


def _corrupt(root: Path, kind: str, rng: random.Random) -> None:
    lag_parts = sorted((root / "lag").glob("part-*.parquet"))
    part = lag_parts[0]
    if kind == "random_bytes_part":
        data = bytearray(part.read_bytes())
        for _ in range(rng.randint(1, 50)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        part.write_bytes(bytes(data))
    elif kind == "truncated_part":
        data = part.read_bytes()
        part.write_bytes(data[: rng.randrange(len(data))])
    elif kind == "empty_part":
        part.write_bytes(b"")
    elif kind == "meta_random_bytes":
        (root / "meta.json").write_bytes(rng.randbytes(rng.randint(1, 200)))
    elif kind == "meta_not_object":
        (root / "meta.json").write_text(rng.choice(["[1, 2]", "42", '"text"', "null", "true"]))
    elif kind == "meta_truncated":
        text = (root / "meta.json").read_text()
        (root / "meta.json").write_text(text[: rng.randrange(len(text))])
    elif kind == "meta_nul":
        (root / "meta.json").write_bytes(b"\x00" * 10)
    elif kind == "no_lag_folder_no_meta":
        (root / "meta.json").unlink()
        for p in (root / "lag").iterdir():
            p.unlink()
        (root / "lag").rmdir()
    elif kind == "part_is_directory":
        (root / "lag" / "part-00000099-1.parquet").mkdir()
    elif kind == "part_wrong_schema":
        pd.DataFrame({"x": [1, 2]}).to_parquet(root / "lag" / "part-00000099-1.parquet")
    elif kind == "part_metrics_in_lag":
        for p in (root / "metrics").glob("part-*"):
            (root / "lag" / p.name.replace("part-00000000", "part-00000099")).write_bytes(
                p.read_bytes()
            )
    elif kind == "part_negative_offsets":
        frame = pd.read_parquet(part)
        frame["committed_offset"] = -5
        frame["lag"] = frame["log_end_offset"] + 5
        frame.to_parquet(root / "lag" / "part-00000099-1.parquet")
    elif kind == "part_naive_time":
        frame = pd.read_parquet(part)
        frame["time"] = frame["time"].dt.tz_localize(None) + pd.Timedelta("1h")
        frame.to_parquet(root / "lag" / "part-00000099-1.parquet")
    elif kind == "duplicate_part":
        (root / "lag" / "part-00000099-1.parquet").write_bytes(part.read_bytes())
    elif kind == "stale_tmp":
        (root / "lag" / "part-00000099-1.parquet.tmp").write_bytes(part.read_bytes()[:100])
    elif kind == "meta_is_directory":
        (root / "meta.json").unlink()
        (root / "meta.json").mkdir()
    elif kind == "lag_is_file":
        for p in (root / "lag").iterdir():
            p.unlink()
        (root / "lag").rmdir()
        (root / "lag").write_bytes(b"not a folder")
    elif kind == "part_bad_lag":
        frame = pd.read_parquet(part)
        frame["lag"] = frame["lag"] + 1
        frame.to_parquet(root / "lag" / "part-00000099-1.parquet")
    elif kind == "unreadable_part":
        # a part whose bytes are a valid parquet of random columns and types
        pd.DataFrame({"time": ["yesterday"], "group": [3]}).to_parquet(
            root / "lag" / "part-00000099-1.parquet"
        )
    elif kind == "part_renamed_garbage":
        (root / "lag" / "part-x-y.parquet").write_bytes(rng.randbytes(64))


@settings(SETTINGS, max_examples=80)
@given(kind=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 2**32 - 1))
def test_read_dataset_corrupted_folders(tmp_path_factory, kind: str, seed: int) -> None:
    TRIED["read_dataset: corrupted folders"] += 1
    root = tmp_path_factory.mktemp("ds")
    write_dataset(_good_dataset(), root, overwrite=True)
    _corrupt(root, kind, random.Random(seed))
    ds, error = kbp_only(read_dataset, root)
    if error is not None:
        assert isinstance(error, KbpInputError)
        # the message points at the file (or folder) to look at
        assert str(root) in str(error)
        return
    assert isinstance(ds, Dataset)
    assert isinstance(ds.meta, dict)
    assert not ds.lag.duplicated(["cluster", "group", "topic", "partition", "time"]).any()


@settings(SETTINGS, max_examples=30)
@given(kind=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 2**32 - 1))
def test_appender_resumes_corrupted_folders(tmp_path_factory, kind: str, seed: int) -> None:
    """Resuming a recording on a damaged folder fails with a KbpError or carries on."""
    TRIED["DatasetAppender: corrupted folders"] += 1
    root = tmp_path_factory.mktemp("ds")
    write_dataset(_good_dataset(), root, overwrite=True)
    _corrupt(root, kind, random.Random(seed))

    def resume() -> None:
        appender = DatasetAppender(root, meta={"resumed": True})
        appender.last_time()
        appender.append(
            lag=_good_dataset().lag.assign(time=lambda f: f["time"] + pd.Timedelta("1h"))
        )

    _, error = kbp_only(resume)
    if error is None:
        assert json.loads((root / "meta.json").read_text())["resumed"] is True


def test_read_dataset_missing_and_odd_paths(tmp_path: Path) -> None:
    TRIED["read_dataset: odd paths"] += 4
    for path in (tmp_path / "nope", tmp_path / "file.txt", tmp_path / "empty", Path(os.devnull)):
        if path.name == "file.txt":
            path.write_text("x")
        if path.name == "empty":
            path.mkdir()
        _, error = kbp_only(read_dataset, path)
        assert isinstance(error, KbpInputError)
        assert str(path) in str(error)


# ---------------------------------------------------------------- Prometheus answers


class _PromHandler(BaseHTTPRequestHandler):
    """Answers with whatever ``server.behaviour`` says (status, body, or a raw misbehaviour)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        b = self.server.behaviour  # type: ignore[attr-defined]
        mode = b.get("mode", "normal")
        try:
            if mode == "sleep":
                time.sleep(b["seconds"])
            if mode == "close":
                self.close_connection = True
                return
            if mode == "bad_status_line":
                self.wfile.write(b"HTTP/1.1 banana\r\n\r\n")
                self.close_connection = True
                return
            if mode == "short_body":
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 1000\r\n\r\n{"status":'
                )
                self.close_connection = True
                return
            if mode == "trickle":
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n"
                )
                deadline = time.monotonic() + b["seconds"]
                while time.monotonic() < deadline:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
                self.close_connection = True
                return
            if mode == "endless":
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                chunk = b"[" * 65536
                deadline = time.monotonic() + b["seconds"]
                while time.monotonic() < deadline:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.close_connection = True
                return
            body = b.get("body", b"{}")
            self.send_response(b.get("status", 200))
            self.send_header("Content-Type", b.get("content_type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: that is the point of some modes

    do_GET = _answer
    do_POST = _answer


@pytest.fixture(scope="module")
def prom_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PromHandler)
    server.daemon_threads = True
    server.behaviour = {"body": b"{}"}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _query(server: ThreadingHTTPServer, *, timeout_s: float = 5.0, **behaviour):
    from kbp_notebook.collect.prometheus import PrometheusSource

    server.behaviour = behaviour  # type: ignore[attr-defined]
    source = PrometheusSource(_url(server), timeout_s=timeout_s)
    return kbp_only(source.query_range, "up", "2026-01-01T00:00Z", "2026-01-01T00:10Z", "15s")


def _check_prom_error(error: KbpError, server: ThreadingHTTPServer) -> None:
    assert isinstance(error, KbpError)
    assert _url(server) in str(error), "the message names the server"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
SAMPLE_VALUE = st.one_of(
    st.sampled_from(["1", "NaN", "+Inf", "-Inf", "1e308", "abc", "", "0x1"]),
    st.floats(allow_nan=True), st.integers(), st.none(), st.lists(st.integers(), max_size=2),
)  # fmt: skip
SAMPLE_TIME = st.one_of(
    st.floats(-1e12, 1e12), st.integers(-(2**70), 2**70), st.text(max_size=4), st.none(),
    st.just(float("nan")), st.just(float("inf")), st.sampled_from([1767225600, "1767225600"]),
)  # fmt: skip
SAMPLE = st.one_of(
    st.tuples(SAMPLE_TIME, SAMPLE_VALUE).map(list),
    st.lists(SAMPLE_TIME, max_size=3), JSON,
)  # fmt: skip
SERIES = st.one_of(
    st.fixed_dictionaries(
        {"metric": st.dictionaries(st.sampled_from(["__name__", "broker", "time", "value", "a"]),
                                   st.text(max_size=4) | JSON, max_size=3),
         "values": st.lists(SAMPLE, max_size=5) | JSON},
    ),
    JSON,
)  # fmt: skip
MATRIX = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["success", "error", "warning", 1, None]),
        "data": st.one_of(
            st.fixed_dictionaries(
                {"resultType": st.sampled_from(["matrix", "vector", "scalar", 7]),
                 "result": st.lists(SERIES, max_size=4) | JSON},
            ),
            JSON,
        ),
    },
    optional={
        "error": JSON,
        "errorType": st.sampled_from(["bad_data", "execution", "timeout", ""]),
    },
)  # fmt: skip


@settings(SETTINGS, max_examples=500)
@given(document=MATRIX | JSON, status=st.sampled_from([200, 200, 200, 400, 422, 500, 503]))
def test_prometheus_json_answers(prom_server, document: object, status: int) -> None:
    TRIED["PrometheusSource: generated JSON answers"] += 1
    body = json.dumps(document, allow_nan=True).encode()
    frame, error = _query(prom_server, status=status, body=body)
    if error is not None:
        _check_prom_error(error, prom_server)
        return
    assert isinstance(frame, pd.DataFrame)
    assert {"time", "value"} <= set(frame.columns)
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["value"].dtype) == "float64"


@settings(SETTINGS, max_examples=150)
@given(
    body=st.binary(max_size=300) | st.text(max_size=200).map(str.encode),
    status=st.sampled_from([200, 204, 301, 400, 401, 403, 404, 418, 429, 500, 502, 503, 504]),
    content_type=st.sampled_from(["application/json", "text/html", "application/octet-stream"]),
)
def test_prometheus_non_json_answers_and_statuses(
    prom_server, body: bytes, status: int, content_type: str
) -> None:
    TRIED["PrometheusSource: raw bodies x HTTP statuses"] += 1
    frame, error = _query(prom_server, status=status, body=body, content_type=content_type)
    if error is not None:
        _check_prom_error(error, prom_server)
    else:  # only a well-formed success can come back as a frame
        assert json.loads(body)["status"] == "success"


@pytest.mark.parametrize("mode", ["close", "bad_status_line", "short_body"])
def test_prometheus_broken_connections(prom_server, mode: str) -> None:
    TRIED["PrometheusSource: broken connections"] += 1
    _, error = _query(prom_server, mode=mode)
    assert isinstance(error, KbpConnectionError)
    _check_prom_error(error, prom_server)


@pytest.mark.parametrize("mode", ["sleep", "trickle", "endless"])
def test_prometheus_slow_answers_fail_within_the_timeout(prom_server, mode: str) -> None:
    """A server that stalls, trickles bytes or never ends fails at the timeout, not later."""
    TRIED["PrometheusSource: slow answers"] += 1
    timeout_s = 1.0
    started = time.monotonic()
    _, error = _query(prom_server, timeout_s=timeout_s, mode=mode, seconds=30)
    elapsed_s = time.monotonic() - started
    _check_prom_error(error, prom_server)
    message = str(error).lower()
    if mode == "endless" and isinstance(error, KbpInputError):
        # on a quiet machine loopback delivers the 512 MiB cap before the timeout: also bounded
        assert "more than 512 mib" in message
    else:
        assert isinstance(error, KbpConnectionError)
        assert "timeout" in message or "timed out" in message
    # generous bound (2 cores, other jobs): the point is "not 30 s", not precision
    assert elapsed_s < 3 * timeout_s + 3, f"{mode}: took {elapsed_s:.1f}s with timeout_s=1"


def test_prometheus_huge_valid_answer(prom_server) -> None:
    """300,000 points (~8 MB of JSON) come back intact from one query."""
    TRIED["PrometheusSource: huge answers"] += 1
    t0 = 1_767_225_600
    series = [
        {"metric": {"broker": str(i)}, "values": [[t0 + 15 * k, str(k)] for k in range(5000)]}
        for i in range(60)
    ]
    body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": series}})
    frame, error = _query(prom_server, timeout_s=30, body=body.encode())
    assert error is None
    assert len(frame) == 300_000
    assert frame["broker"].nunique() == 60
    assert frame.groupby("broker")["value"].sum().eq(sum(range(5000))).all()


def test_prometheus_huge_garbage_answer(prom_server) -> None:
    TRIED["PrometheusSource: huge answers"] += 1
    _, error = _query(prom_server, timeout_s=30, body=b"<html>" + b"x" * 30_000_000)
    assert isinstance(error, KbpInputError)
    _check_prom_error(error, prom_server)
    assert len(str(error)) < 2000, "the message does not echo the body"


# ---------------------------------------------------------------- analysis functions

ODD_NAMES = ["g", "", " ", "<img src=x onerror=alert(1)>", "ü\u202e", "a" * 300, "0", "nan"]
START_OFFSETS = [0, 1, 1_000_000, 2**53 + 1, 2**62, 2**63 - 10_000]
STEPS_S = [1e-6, 1.0, 5.0, 5.0, 3600.0, 86_400.0 * 365]


@st.composite
def hostile_lag(draw: st.DrawFn) -> pd.DataFrame:
    """A LAG frame that is valid by schema but hostile in content.

    NaN (NA) offsets, empty and single-row frames, duplicate and unsorted
    times, offsets going backwards, counter resets, int64 extremes, odd group
    names, odd timezones and resolutions, irregular and huge sampling steps.
    """
    n_series = draw(st.integers(1, 3))
    n_times = draw(st.sampled_from([0, 1, 2, 3, 5, 12, 40]))
    step_s = draw(st.sampled_from(STEPS_S))
    start = draw(st.sampled_from([
        pd.Timestamp("2026-01-01T00:00:00Z"), pd.Timestamp("1970-01-01T00:00:00Z"),
        pd.Timestamp("2200-01-01T00:00:00Z"), pd.Timestamp("2026-03-29T00:59:59+01:00"),
    ]))  # fmt: skip
    jitter = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    offsets_s = np.arange(n_times) * step_s
    if jitter and n_times:
        offsets_s = offsets_s + rng.uniform(0, step_s, n_times)
        offsets_s.sort()
    if step_s >= 86_400.0 * 365:
        offsets_s = offsets_s[: min(n_times, 150)]  # stay inside pandas' timestamp range
    times = start + pd.to_timedelta(offsets_s, unit="s")
    frames = []
    for s in range(n_series):
        base = draw(st.sampled_from(START_OFFSETS))
        room = 2**63 - 1 - base
        produce = rng.integers(0, 1_000_000, len(times)).cumsum()
        consume = np.minimum(rng.integers(0, 1_000_000, len(times)).cumsum(), produce)
        log_end = np.minimum(base + produce, base + room).astype("int64")
        committed = (base + consume).astype("int64")
        kind = draw(st.sampled_from(["plain", "backwards", "reset", "stall", "ahead", "const"]))
        if kind == "backwards" and len(times) > 1:
            committed = committed[::-1].copy()
        elif kind == "reset" and len(times) > 2:
            cut = len(times) // 2
            log_end[cut:] -= log_end[cut] - 1
            committed[cut:] -= committed[cut]
            committed = np.maximum(committed, 0)
            log_end = np.maximum(log_end, 0)
        elif kind == "stall":
            committed[:] = committed[0] if len(committed) else 0
        elif kind == "ahead":
            committed = log_end + 5  # negative lag: a stale high watermark
        elif kind == "const":
            committed[:] = base
            log_end[:] = base
        committed = np.clip(committed, 0, 2**63 - 1)
        frame = pd.DataFrame(
            {
                "time": times,
                "cluster": "c",
                "group": draw(st.sampled_from(ODD_NAMES)),
                "topic": draw(st.sampled_from(["t", "<t>", "t.1"])),
                "partition": draw(st.sampled_from([0, 1, 2**31 - 1])) if s else s,
                "committed_offset": pd.array(committed, dtype="Int64"),
                "log_end_offset": pd.array(log_end, dtype="Int64"),
            }
        )
        if draw(st.booleans()) and len(frame):
            mask = rng.random(len(frame)) < draw(st.sampled_from([0.1, 0.5, 1.0]))
            column = draw(st.sampled_from(["committed_offset", "log_end_offset"]))
            frame.loc[mask, column] = pd.NA
        frames.append(frame)
    lag = pd.concat(frames, ignore_index=True)
    lag = lag.drop_duplicates(["cluster", "group", "topic", "partition", "time"])
    lag["lag"] = lag["log_end_offset"] - lag["committed_offset"]
    if draw(st.booleans()):
        lag = lag.sample(frac=1.0, random_state=1)  # unsorted
    if draw(st.booleans()) and len(lag):
        lag = lag.drop(lag.index[rng.random(len(lag)) < 0.3])  # missing snapshots
    if draw(st.booleans()):
        lag["log_start_offset"] = pd.array(np.zeros(len(lag), dtype="int64"), dtype="Int64")
    if draw(st.booleans()):
        lag["consumer_id"] = pd.array(rng.choice(["m1", "m2", None], len(lag)), dtype="string")
    resolution = draw(st.sampled_from(["ns", "us", "ms", "s"]))
    lag["time"] = lag["time"].astype(f"datetime64[{resolution}, UTC]")
    return lag


def _check_result(result: object) -> None:
    text = repr(result)
    assert isinstance(text, str) and text
    frame = result.to_frame() if hasattr(result, "to_frame") else result.table
    assert isinstance(frame, pd.DataFrame)
    lines = result.summary_lines() if hasattr(result, "summary_lines") else []
    assert all(isinstance(line, str) for line in lines)


def _analysis_calls(lag: pd.DataFrame):
    from kbp_notebook.analysis import (
        capacity_plan,
        lag_status,
        lag_trend,
        time_lag,
        time_to_drain,
    )

    return [
        ("lag_trend", lambda: lag_trend(lag)),
        ("lag_trend by partition, ols", lambda: lag_trend(lag, by="partition", method="ols")),
        ("lag_trend window", lambda: lag_trend(lag, window="1min")),
        ("lag_status", lambda: lag_status(lag)),
        ("lag_status window=2", lambda: lag_status(lag, window=2, allowed_lag=10)),
        ("time_lag", lambda: time_lag(lag)),
        ("time_to_drain", lambda: time_to_drain(lag)),
        ("time_to_drain by group", lambda: time_to_drain(lag, by="group")),
        ("capacity_plan", lambda: capacity_plan(lag, target_s=600)),
    ]


@settings(SETTINGS, max_examples=40)
@given(lag=hostile_lag())
def test_analysis_functions_on_hostile_lag(lag: pd.DataFrame) -> None:
    """Every analysis returns a result or a KbpError; "not enough data" is a KbpDataError."""
    for name, call in _analysis_calls(lag):
        TRIED[f"analysis: {name}"] += 1
        result, error = kbp_only(call)
        if error is not None:
            assert isinstance(error, KbpInputError | KbpDataError), name
            if len(lag) == 0:
                assert isinstance(error, KbpDataError), f"{name}: empty frame -> {error!r}"
        else:
            _check_result(result)
            if name == "capacity_plan":
                _check_result(result.what_if(consumers=3, produce_growth=0.5))


@settings(SETTINGS, max_examples=30)
@given(lag=hostile_lag(), metric_kind=st.sampled_from(["random", "constant", "nan", "few", "far"]))
def test_correlation_and_diagnosis_on_hostile_datasets(lag: pd.DataFrame, metric_kind: str) -> None:
    from kbp_notebook.analysis import correlate, diagnose, flush_latency_vs_lag

    times = (
        pd.Series(lag["time"].unique()).sort_values()
        if len(lag)
        else pd.Series(pd.date_range("2026-01-01", periods=3, freq="5s", tz="UTC"))
    )
    if metric_kind == "few":
        times = times[:2]
    if metric_kind == "far":
        times = times + pd.Timedelta(days=3000)
    values = {
        "random": np.random.default_rng(0).random(len(times)),
        "constant": np.ones(len(times)),
        "nan": np.full(len(times), np.nan),
        "few": np.arange(len(times), dtype="float64"),
        "far": np.arange(len(times), dtype="float64"),
    }[metric_kind]
    metrics = pd.DataFrame(
        {
            "time": times.to_numpy(),
            "cluster": "c",
            "entity": "broker-1",
            "metric": "log_flush_time_ms_p99",
            "value": values,
        }
    )
    dataset, error = kbp_only(Dataset, lag=lag, metrics=metrics)
    if error is not None:  # e.g. times outside the nanosecond range after shifting
        assert isinstance(error, KbpInputError)
        return
    series = metrics.set_index("time")["value"]
    calls = [
        ("correlate", lambda: correlate(series, lag, max_shift="1min", n_surrogates=20)),
        ("correlate pearson diff", lambda: correlate(
            lag, series, method="pearson", difference=True, n_surrogates=20)),
        ("flush_latency_vs_lag", lambda: flush_latency_vs_lag(dataset, n_surrogates=20)),
        ("flush_latency_vs_lag growth", lambda: flush_latency_vs_lag(
            dataset, target="lag_growth", n_surrogates=20)),
        ("diagnose", lambda: diagnose(dataset)),
    ]  # fmt: skip
    for name, call in calls:
        TRIED[f"analysis: {name}"] += 1
        result, error = kbp_only(call)
        if error is not None:
            assert isinstance(error, KbpInputError | KbpDataError), name
        else:
            _check_result(result)


@settings(SETTINGS, max_examples=8)
@given(lag=hostile_lag())
def test_result_plots_on_hostile_lag(lag: pd.DataFrame) -> None:
    """The figures of results computed on hostile data build (or refuse with a KbpError)."""
    for name, call in _analysis_calls(lag)[::2]:
        TRIED[f"analysis: {name} .plot()"] += 1
        result, error = kbp_only(call)
        if result is not None:
            figure, error = kbp_only(result.plot)
            assert error is None or isinstance(error, KbpDataError | KbpInputError)
            if figure is not None:
                assert figure.to_dict()["data"] is not None


@pytest.mark.parametrize("target_s", [0, -1, float("nan"), float("inf"), 1e-300, "10m", None])
def test_capacity_plan_hostile_targets(target_s: object) -> None:
    from kbp_notebook.analysis import capacity_plan

    TRIED["analysis: capacity_plan target_s"] += 1
    times = pd.date_range("2026-01-01", periods=30, freq="5s", tz="UTC")
    lag = pd.DataFrame(
        {"time": times, "cluster": "c", "group": "g", "topic": "t", "partition": 0,
         "committed_offset": np.arange(30) * 50, "log_end_offset": np.arange(30) * 100}
    )  # fmt: skip
    lag["lag"] = lag["log_end_offset"] - lag["committed_offset"]
    result, error = kbp_only(capacity_plan, lag, target_s=target_s, consumers=2)
    if error is None:
        _check_result(result)
        assert np.isfinite(float(target_s)) and float(target_s) > 0
    else:
        assert isinstance(error, KbpInputError) and "target_s" in str(error)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame(),
        pd.DataFrame({"time": [], "lag": []}),
        pd.DataFrame({"time": pd.date_range("2026-01-01", periods=3, freq="s"), "lag": [1, 2, 3]}),
    ],
    ids=["no-columns", "two-columns", "naive-times"],
)
def test_analysis_functions_on_frames_that_are_not_lag_frames(frame: pd.DataFrame) -> None:
    for name, call in _analysis_calls(frame):
        TRIED[f"analysis: {name} (not a LAG frame)"] += 1
        _, error = kbp_only(call)
        assert isinstance(error, KbpInputError), name
