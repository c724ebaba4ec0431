"""Which Kafka errors end a whole snapshot instead of blanking one leader's partitions."""

from __future__ import annotations

import kafka.errors as kerr

from kbp_notebook.collect.kafka_lag import _is_fatal
from kbp_notebook.errors import KbpConnectionError


def test_rejected_credentials_end_the_snapshot() -> None:
    # kafka-python 3's name for a SASL refusal; asking leader by leader cannot help.
    assert _is_fatal(kerr.SaslAuthenticationFailedError("bad password"))
    assert _is_fatal(KbpConnectionError("cluster unreachable"))


def test_one_slow_leader_does_not_end_the_snapshot() -> None:
    assert not _is_fatal(kerr.KafkaTimeoutError("leader 2 timed out"))
    assert not _is_fatal(kerr.NotLeaderForPartitionError())
