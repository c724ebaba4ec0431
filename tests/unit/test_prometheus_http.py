"""The one HTTP client for Prometheus-compatible servers, against a real local HTTP server."""

from __future__ import annotations

import base64
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from kbp_notebook._prometheus_http import PrometheusHttp
from kbp_notebook.collect.remote_write import RemoteWriter
from kbp_notebook.errors import KbpConnectionError, KbpInputError


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        status, body = self.server.routes.get(self.path, (404, b"404 page not found"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes, httpd.seen = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd, auth: str = "") -> str:
    return f"http://{auth}127.0.0.1:{httpd.server_address[1]}"


def test_text_returns_the_body_and_counts_the_request(server):
    server.routes["/metrics"] = (200, b"kafka_x 1\n")
    client = PrometheusHttp(_url(server), service="JMX exporter of broker 1")
    assert client.text("/metrics") == "kafka_x 1\n"
    assert (client.requests, client.bytes_received) == (1, 10)
    assert server.seen[0][:2] == ("GET", "/metrics")


def test_a_failing_status_names_the_service_and_the_url(server):
    server.routes["/metrics"] = (500, b"boom")
    client = PrometheusHttp(_url(server), service="JMX exporter of broker 2", hint="is it up?")
    with pytest.raises(KbpConnectionError, match="JMX exporter of broker 2 at .* HTTP 500: boom"):
        client.text("/metrics")


def test_credentials_in_the_url_are_sent_but_never_shown(server):
    client = PrometheusHttp(_url(server, "ann:s3cret@"), service="Prometheus")
    assert "s3cret" not in client.url and "s3cret" not in repr(client)
    with pytest.raises(KbpConnectionError) as caught:
        client.instant("up")  # /api/v1/query is not routed: 404
    assert "s3cret" not in str(caught.value) and "has no /api/v1/query (HTTP 404)" in str(
        caught.value
    )
    sent = server.seen[0][2]
    assert base64.b64decode(sent.split()[1]).decode() == "ann:s3cret"


def test_instant_query_returns_the_result_list_and_rejects_non_api_answers(server):
    server.routes["/api/v1/query"] = (
        200,
        b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},'
        b'"value":[1,"1"]}]}}',
    )
    client = PrometheusHttp(_url(server))
    assert client.instant("1") == [{"metric": {}, "value": [1, "1"]}]
    server.routes["/api/v1/query"] = (200, b"<html>login</html>")
    with pytest.raises(KbpInputError, match="not JSON"):
        client.instant("1")


def test_unreachable_names_the_service_and_ends_with_the_hint():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = PrometheusHttp(f"http://127.0.0.1:{port}", service="the sandbox's Prometheus",
                            hint="is the sandbox running?", timeout_s=2)
    with pytest.raises(KbpConnectionError, match=r"Cannot reach the sandbox's Prometheus at "
                       r"http://127\.0\.0\.1:\d+ .*is the sandbox running\?"):
        client.instant("1")


def test_remote_write_404_keeps_the_receiver_hint(server):
    lag = pd.DataFrame({
        "time": pd.to_datetime(["2026-01-01T00:00:00Z"]), "cluster": ["c"], "group": ["g"],
        "topic": ["t"], "partition": [0], "committed_offset": [1], "log_end_offset": [3],
        "lag": [2],
    })
    writer = RemoteWriter(_url(server) + "/api/v1/write")
    with pytest.raises(KbpConnectionError, match="--web.enable-remote-write-receiver"):
        writer.write_lag(lag)
    server.routes["/api/v1/write"] = (400, b"out of order sample")
    with pytest.raises(KbpConnectionError, match=r"was refused \(HTTP 400: out of order sample"):
        writer.write_lag(lag)
    server.routes["/api/v1/write"] = (204, b"")
    assert writer.write_lag(lag) == 3  # committed offset, log end and lag series
