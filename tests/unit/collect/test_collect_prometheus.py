"""PrometheusSource response handling against a local HTTP server with canned answers.

The real Prometheus is exercised in tests/integration/test_collect_prometheus.py;
here a loopback server returns exactly the documents (and failures) we need.
"""

import base64
import json
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from kbp_notebook import PrometheusSource
from kbp_notebook.collect.prometheus import MAX_POINTS_PER_QUERY
from kbp_notebook.errors import KbpConnectionError, KbpInputError

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


class FakePrometheus:
    """Serve ``answer(params) -> (status, body_bytes)`` and remember every request."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                params = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                params["_path"] = self.path
                params["_auth"] = self.headers.get("Authorization")
                params["_tenant"] = self.headers.get("X-Scope-OrgID")
                fake.requests.append(params)
                status, body = fake.answer(params)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(answer):
        fake = FakePrometheus(answer)
        servers.append(fake)
        return fake

    yield start
    for fake in servers:
        fake.close()


def ok(result, result_type="matrix"):
    return 200, json.dumps(
        {"status": "success", "data": {"resultType": result_type, "result": result}}
    ).encode()


def matrix_for(params, series_labels, value_of):
    """A matrix answer covering the requested start/end/step for each label set."""
    start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
    times = np.arange(start, end + step / 2, step)
    return ok(
        [
            {"metric": labels, "values": [[t, str(value_of(labels, t))] for t in times]}
            for labels in series_labels
        ]
    )


def test_query_range_returns_a_long_frame_with_labels(serve):
    fake = serve(
        lambda p: matrix_for(
            p,
            [{"__name__": "up", "instance": "a"}, {"__name__": "up", "instance": "b"}],
            lambda labels, t: 1 if labels["instance"] == "a" else 0,
        )
    )
    frame = PrometheusSource(fake.url).query_range("up", T0, T0 + pd.Timedelta("1min"), "15s")
    assert list(frame.columns) == ["time", "__name__", "instance", "value"]
    assert len(frame) == 10
    assert str(frame["time"].dt.tz) == "UTC"
    assert frame["time"].iloc[0] == T0
    assert frame.loc[frame["instance"] == "a", "value"].eq(1.0).all()
    assert fake.requests[0]["query"] == "up"


def test_long_ranges_are_split_under_the_points_limit(serve):
    fake = serve(lambda p: matrix_for(p, [{"job": "kafka"}], lambda labels, t: t))
    step_s = 1.0
    points = 25_000
    end = T0 + pd.Timedelta(seconds=(points - 1) * step_s)
    frame = PrometheusSource(fake.url).query_range("x", T0, end, step_s)
    assert len(fake.requests) == 3
    for request in fake.requests:
        count = (float(request["end"]) - float(request["start"])) / step_s + 1
        assert count <= MAX_POINTS_PER_QUERY < 11_000
    # every point exactly once, no gap and no overlap at the chunk borders
    assert len(frame) == points
    assert frame["time"].is_unique
    assert (frame["time"].diff().dropna() == pd.Timedelta(seconds=1)).all()
    assert frame["value"].iloc[-1] == end.timestamp()


def test_promql_error_is_an_input_error_with_query_and_message(serve):
    body = json.dumps(
        {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    ).encode()
    fake = serve(lambda p: (400, body))
    with pytest.raises(KbpInputError) as info:
        PrometheusSource(fake.url).query_range("rate(x[5m]}", T0, T0, "15s")
    message = str(info.value)
    assert "rate(x[5m]}" in message and 'parse error: unexpected "}"' in message
    assert info.value.query == "rate(x[5m]}"


def test_malformed_json_is_an_input_error(serve):
    fake = serve(lambda p: (200, b"<html>login</html>"))
    with pytest.raises(KbpInputError, match="not JSON"):
        PrometheusSource(fake.url).query_range("up", T0, T0, "15s")


def test_json_without_status_is_an_input_error(serve):
    fake = serve(lambda p: (200, b'{"hello": 1}'))
    with pytest.raises(KbpInputError, match="status"):
        PrometheusSource(fake.url).query_range("up", T0, T0, "15s")


def test_server_side_failure_is_a_connection_error(serve):
    body = json.dumps({"status": "error", "errorType": "timeout", "error": "query timed out"})
    fake = serve(lambda p: (503, body.encode()))
    with pytest.raises(KbpConnectionError, match="query timed out"):
        PrometheusSource(fake.url).query_range("up", T0, T0, "15s")


def test_unreachable_server_names_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(KbpConnectionError) as info:
        PrometheusSource(url, timeout_s=2).query_range("up", T0, T0, "15s")
    assert url in str(info.value)


def test_credentials_are_sent_but_never_shown(serve):
    fake = serve(lambda p: (401, b'{"status":"error","error":"unauthorized"}'))
    source = PrometheusSource(
        fake.url, bearer_token="s3cr3t-token", headers={"X-Scope-OrgID": "t1"}
    )
    with pytest.raises(KbpConnectionError) as info:
        source.query_range("up", T0, T0, "15s")
    assert "s3cr3t-token" not in str(info.value) and "s3cr3t-token" not in repr(source)
    assert fake.requests[0]["_auth"] == "Bearer s3cr3t-token"
    assert fake.requests[0]["_tenant"] == "t1"


def test_basic_auth_from_argument_and_from_url(serve):
    fake = serve(lambda p: ok([]))
    PrometheusSource(fake.url, basic_auth=("ann", "pw1")).query_range("up", T0, T0, "15s")
    host = fake.url.removeprefix("http://")
    source = PrometheusSource(f"http://bob:pw2@{host}")
    source.query_range("up", T0, T0, "15s")
    assert "pw2" not in source.url and "pw2" not in repr(source)
    sent = [base64.b64decode(r["_auth"].split()[1]).decode() for r in fake.requests]
    assert sent == ["ann:pw1", "bob:pw2"]


def test_bad_arguments_are_input_errors(serve):
    fake = serve(lambda p: ok([]))
    source = PrometheusSource(fake.url)
    with pytest.raises(KbpInputError, match="before start"):
        source.query_range("up", T0, T0 - pd.Timedelta("1h"), "15s")
    with pytest.raises(KbpInputError, match="step"):
        source.query_range("up", T0, T0, "fast")
    with pytest.raises(KbpInputError, match="http"):
        PrometheusSource("localhost:9090")


# -- broker_metrics --------------------------------------------------------------------

BROKERS = [{"broker_id": "1"}, {"broker_id": "2"}]


def broker_answer(params):
    if params["_path"].endswith("/series"):
        series = [
            {"__name__": "kafka_server_replicamanager_underreplicatedpartitions", "broker_id": "1"}
        ]
        return 200, json.dumps({"status": "success", "data": series}).encode()
    query = params["query"]
    if "messagesinpersec_count(_total)?" in query and 'topic=""' in query:
        return matrix_for(params, BROKERS, lambda labels, t: 100.0 * int(labels["broker_id"]))
    if "logflushrateandtimems" in query and 'quantile="0.99"' in query:
        return matrix_for(params, BROKERS[:1], lambda labels, t: 12.5)
    if "underreplicatedpartitions)" in query:
        return matrix_for(params, BROKERS, lambda labels, t: 0)
    return ok([])


def test_broker_metrics_map_to_canonical_names_and_entities(serve):
    fake = serve(broker_answer)
    end = T0 + pd.Timedelta("2min")
    metrics = PrometheusSource(fake.url, cluster="prod").broker_metrics(T0, end, "30s")
    assert set(metrics["metric"]) == {
        "messages_in_per_s",
        "log_flush_time_ms_p99",
        "under_replicated_partitions",
    }
    assert set(metrics["entity"]) == {"broker-1", "broker-2"}
    assert set(metrics["cluster"]) == {"prod"}
    rate = metrics[(metrics["metric"] == "messages_in_per_s") & (metrics["entity"] == "broker-2")]
    assert len(rate) == 5 and rate["value"].eq(200.0).all()
    queries = [r.get("query", "") for r in fake.requests]
    rate_query = next(q for q in queries if "messagesinpersec" in q)
    assert "rate(" in rate_query and "sum by (broker_id)" in rate_query
    assert "[120s]" in rate_query  # default window: max(60 s, 4 steps)


def test_broker_metrics_accept_overrides_and_reject_unknown_names(serve):
    fake = serve(lambda p: matrix_for(p, [{"instance": "h:7071"}], lambda labels, t: 3.0))
    source = PrometheusSource(fake.url, broker_label="instance")
    metrics = source.broker_metrics(
        T0, T0 + pd.Timedelta("1min"), "30s", metrics=["custom"], queries={"custom": ["my_q"]}
    )
    assert set(metrics["metric"]) == {"custom"}
    assert set(metrics["entity"]) == {"broker-h:7071"}
    with pytest.raises(KbpInputError, match="Unknown broker metric"):
        source.broker_metrics(T0, T0, "30s", metrics=["nope"])


# -- lag ---------------------------------------------------------------------------------


def test_lag_from_kafka_exporter_names(serve):
    def answer(params):
        query = params["query"]
        if query == "count(kafka_consumergroup_lag)":  # which exporter's names exist
            return matrix_for(params, [{}], lambda labels, t: 2)
        if query.startswith("kafka_consumergroup_current_offset"):
            return matrix_for(
                params,
                [
                    {"consumergroup": "g", "topic": "t", "partition": "0"},
                    {"consumergroup": "g", "topic": "t", "partition": "1"},
                ],
                lambda labels, t: -1 if labels["partition"] == "1" else t - T0.timestamp(),
            )
        if query.startswith("kafka_topic_partition_current_offset"):
            return matrix_for(
                params,
                [{"topic": "t", "partition": "0"}, {"topic": "t", "partition": "1"}],
                lambda labels, t: t - T0.timestamp() + 50,
            )
        return ok([])

    fake = serve(answer)
    lag = PrometheusSource(fake.url).lag(T0, T0 + pd.Timedelta("1min"), "30s")
    assert len(lag) == 6
    p0 = lag[lag["partition"] == 0]
    assert list(p0["lag"]) == [50, 50, 50]
    assert list(p0["committed_offset"]) == [0, 30, 60]
    p1 = lag[lag["partition"] == 1]
    assert p1["committed_offset"].isna().all() and p1["lag"].isna().all()
    assert list(p1["log_end_offset"]) == [50, 80, 110]


def test_lag_from_kafka_lag_exporter_names_with_group_filter(serve):
    def answer(params):
        query = params["query"]
        if query == "count(kafka_consumergroup_group_lag)":
            return matrix_for(params, [{}], lambda labels, t: 1)
        if query.startswith("kafka_consumergroup_group_offset"):
            return matrix_for(
                params,
                [{"group": "orders app", "topic": "t", "partition": "0", "cluster_name": "c"}],
                lambda labels, t: 10,
            )
        if query.startswith("kafka_partition_latest_offset"):
            return matrix_for(params, [{"topic": "t", "partition": "0"}], lambda labels, t: 25)
        return ok([])

    fake = serve(answer)
    lag = PrometheusSource(fake.url).lag(T0, T0 + pd.Timedelta("30s"), "30s", groups=["orders app"])
    assert list(lag["group"].unique()) == ["orders app"]
    assert list(lag["lag"]) == [15, 15]
    sent = [r["query"] for r in fake.requests]
    # kafka_exporter's names are looked for first; none of its series are read.
    assert sent[0] == "count(kafka_consumergroup_lag)"
    assert not any(q.startswith("kafka_consumergroup_current_offset") for q in sent)
    assert 'kafka_consumergroup_group_offset{group=~"orders app"}' in sent


def test_lag_without_exporter_series_is_empty(serve):
    fake = serve(lambda p: ok([]))
    lag = PrometheusSource(fake.url).lag(T0, T0 + pd.Timedelta("1min"), "30s")
    assert lag.empty and "lag" in lag.columns
