"""Retention risk on the real sandbox: a forecast deletion that comes true within its interval.

A topic keeps ``retention.bytes`` = 2 MiB in 1 MiB segments (Kafka 4.1's smallest
``segment.bytes``); a producer writes ~100 KB/s; a group committed offset 0 and
stopped. From 12 s of snapshots and the topic's configs (DescribeConfigs,
DescribeLogDirs), ``retention_risk`` gives a finite time with an interval; we
keep watching until the log start passes offset 0 and check when it did.
"""

import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

import kbp_notebook as kbp
from kbp_notebook import LagCollector

pytestmark = pytest.mark.integration

MESSAGE = b"x" * 1000
RATE_PER_S = 100


class SteadyProducer:
    def __init__(self, bootstrap, topic):
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
        self.topic = topic
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        started, sent = time.monotonic(), 0
        while not self.stop_event.is_set():
            due = int((time.monotonic() - started) * RATE_PER_S)
            for _ in range(due - sent):
                self.producer.send(self.topic, MESSAGE, partition=0)
            sent = max(sent, due)
            self.stop_event.wait(0.02)

    def stop(self):
        self.stop_event.set()
        self.thread.join(10)
        self.producer.close(timeout=10)


def test_retention_bytes_forecast_comes_true_within_its_interval(sandbox):
    bootstrap = sandbox.bootstrap_servers
    prefix = f"kbp-ret-{uuid.uuid4().hex[:6]}"
    topic, group = f"{prefix}-topic", f"{prefix}-stopped"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={
        "retention.bytes": str(2 << 20), "segment.bytes": str(1 << 20),
    })])  # fmt: skip
    admin.close()
    member = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    member.commit({TopicPartition(topic, 0): OffsetAndMetadata(0, "", -1)})
    member.close()
    producer = SteadyProducer(bootstrap, topic)
    frames = []
    try:
        with LagCollector(bootstrap, cluster="sandbox") as collector:
            for _ in range(7):
                frames.append(collector.snapshot([group]))
                time.sleep(2)
            configs = kbp.topic_configs(bootstrap, [topic], cluster="sandbox")
            history = pd.concat(frames, ignore_index=True)
            risk = kbp.retention_risk(history, configs)
            row = risk.table.iloc[0]
            forecast_at = row["time"]
            assert row["limit"] == "retention.bytes", risk
            assert row["at_risk"] and np.isfinite(row["loss_high_s"])
            assert (history["log_start_offset"] == 0).all()  # nothing deleted yet
            deleted_at = None
            deadline = time.monotonic() + row["loss_high_s"] + 30
            while time.monotonic() < deadline:
                snap = collector.snapshot([group])
                if int(snap["log_start_offset"].iloc[0]) > 0:
                    deleted_at = snap["time"].iloc[0]
                    break
                time.sleep(1)
    finally:
        producer.stop()
    assert deleted_at is not None, f"no deletion within the interval's slow end: {risk}"
    came_true_s = (deleted_at - forecast_at).total_seconds()
    print(f"forecast {row['loss_s']:.1f} s [{row['loss_low_s']:.1f}, {row['loss_high_s']:.1f}], "
          f"log start moved after {came_true_s:.1f} s")  # fmt: skip
    # seen within one polling second of the interval
    assert row["loss_low_s"] - 1 <= came_true_s <= row["loss_high_s"] + 1, (came_true_s, risk)
    assert configs.loc[0, "retention_bytes"] == 2 << 20
    assert configs.loc[0, "retention_check_ms"] == 30_000  # the sandbox's broker setting
    assert configs.loc[0, "size_bytes"] > 0
