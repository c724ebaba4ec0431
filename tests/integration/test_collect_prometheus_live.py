"""PrometheusSource against the sandbox's real Prometheus scraping the brokers' JMX exporter."""

import time
import uuid

import numpy as np
import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from kbp_notebook import PrometheusSource
from kbp_notebook.errors import KbpInputError

pytestmark = pytest.mark.integration

RATE_PER_S = 400
SECONDS = 24


@pytest.fixture(scope="module")
def produced(sandbox):
    """Produce RATE_PER_S small messages per second for SECONDS; return the window."""
    topic = f"kbp-prom-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=sandbox.bootstrap_servers)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=sandbox.bootstrap_servers, linger_ms=5)
    start = pd.Timestamp.now(tz="UTC")
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < SECONDS:
        due = int((time.monotonic() - t0) * RATE_PER_S)
        while sent < due:
            producer.send(topic, b"x" * 100)
            sent += 1
        time.sleep(0.01)
    producer.flush()
    end = pd.Timestamp.now(tz="UTC")
    producer.close()
    rate = sent / (end - start).total_seconds()
    time.sleep(3)  # two more scrapes (1 s interval) after the last message
    return {"start": start, "end": end, "rate": rate, "sent": sent}


def test_broker_metrics_have_canonical_names_and_sane_values(sandbox, produced):
    source = PrometheusSource(sandbox.prometheus_url, cluster="sandbox")
    # the middle of the production window, away from the ramps of the rate window
    start = produced["start"] + pd.Timedelta("12s")
    end = produced["end"] - pd.Timedelta("1s")
    # sandbox nodes run broker + controller in one JVM: two pools mark the idle meter
    metrics = source.broker_metrics(start, end, "2s", rate_window="10s", request_handler_pools=2)

    names = set(metrics["metric"])
    assert {
        "messages_in_per_s",
        "bytes_in_per_s",
        "bytes_out_per_s",
        "under_replicated_partitions",
        "produce_total_time_ms_p99",
        "produce_request_queue_time_ms_p99",
        "request_handler_idle_ratio",
        "network_processor_idle_ratio",
        "log_flush_time_ms_p99",
    } <= names
    assert set(metrics["entity"]) == {"broker-1"}
    assert set(metrics["cluster"]) == {"sandbox"}
    assert np.isfinite(metrics["value"]).all()
    assert metrics["time"].between(start.floor("ms"), end + pd.Timedelta("2s")).all()

    def values(name):
        return metrics.loc[metrics["metric"] == name, "value"]

    rate = values("messages_in_per_s")
    assert len(rate) >= 4
    assert rate.median() == pytest.approx(produced["rate"], rel=0.3)
    # ~100-byte values plus record overhead per message
    assert values("bytes_in_per_s").median() > 100 * produced["rate"] * 0.7
    assert (values("under_replicated_partitions") == 0).all()
    for ratio in ("request_handler_idle_ratio", "network_processor_idle_ratio"):
        assert values(ratio).between(0, 1.05).all(), ratio
    assert (values("produce_total_time_ms_p99") >= 0).all()


def test_query_range_returns_labels_and_utc_times(sandbox, produced):
    source = PrometheusSource(sandbox.prometheus_url)
    frame = source.query_range(
        "kafka_server_replicamanager_underreplicatedpartitions",
        produced["start"],
        produced["end"],
        "5s",
    )
    assert {"time", "broker", "instance", "job", "__name__", "value"} <= set(frame.columns)
    assert str(frame["time"].dt.tz) == "UTC"
    assert set(frame["broker"]) == {"1"}
    assert len(frame) >= 4


def test_promql_error_from_real_prometheus_names_query_and_message(sandbox):
    source = PrometheusSource(sandbox.prometheus_url)
    now = pd.Timestamp.now(tz="UTC")
    with pytest.raises(KbpInputError) as info:
        source.query_range("rate(up[1m]", now - pd.Timedelta("1min"), now, "15s")
    message = str(info.value)
    assert "rate(up[1m]" in message
    assert "parse error" in message  # Prometheus's own words
