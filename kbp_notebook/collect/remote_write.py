"""Push LAG frames into a Prometheus-compatible store with the remote-write protocol.

So a recording, or ``kbp collect --remote-write URL`` as it runs, can live in
Prometheus (``--web.enable-remote-write-receiver``, ``/api/v1/write``),
VictoriaMetrics (``/api/v1/write``), Mimir or Thanos Receive, under the
metric names of an exporter people already run:

* ``kafka_exporter``: ``kafka_consumergroup_current_offset``,
  ``kafka_consumergroup_lag`` (labels ``consumergroup``, ``topic``,
  ``partition``) and ``kafka_topic_partition_current_offset``;
* ``kafka-lag-exporter``: ``kafka_consumergroup_group_offset``,
  ``kafka_consumergroup_group_lag`` (``group``, ``topic``, ``partition``,
  ``cluster_name``) and ``kafka_partition_latest_offset``;
* ``kminion``: ``kminion_kafka_consumer_group_topic_partition_lag``
  (``group_id``, ``topic_name``, ``partition_id``) and
  ``kminion_kafka_topic_partition_high_water_mark``.

The body is a Prometheus ``WriteRequest`` protobuf (encoded here: four
message types, no generated code), snappy-compressed with ``cramjam``.
Every sample keeps the snapshot's own time.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from kbp_notebook._metric_queries import LAG_EXPORTER_SCHEMES, ExporterScheme
from kbp_notebook._prometheus_http import PrometheusHttp
from kbp_notebook.errors import KbpConnectionError, KbpInputError

__all__ = ["LAG_EXPORTER_SCHEMES", "RemoteWriter", "encode_write_request", "lag_series"]


_CHECK_RECEIVER = "check the URL (Prometheus needs --web.enable-remote-write-receiver)"

Series = tuple[tuple[tuple[str, str], ...], np.ndarray, np.ndarray]


def _scheme(name: str) -> ExporterScheme:
    try:
        return LAG_EXPORTER_SCHEMES[name]
    except KeyError:
        raise KbpInputError(
            f"Unknown exporter naming {name!r}; choose one of {sorted(LAG_EXPORTER_SCHEMES)}.",
            column="scheme",
        ) from None


def lag_series(
    lag: pd.DataFrame,
    *,
    scheme: str = "kafka_exporter",
    extra_labels: Mapping[str, str] | None = None,
) -> Iterator[Series]:
    """Yield ``(labels, timestamps_ms, values)`` per series of a LAG frame.

    Parameters
    ----------
    lag
        A LAG frame.
    scheme
        Exporter naming: ``"kafka_exporter"``, ``"kafka-lag-exporter"`` or ``"kminion"``.
    extra_labels
        Labels added to every series (e.g. ``{"job": "kbp"}``).

    Yields
    ------
    tuple
        Sorted ``(name, value)`` label pairs (``__name__`` included), int64
        milliseconds and float64 values, in time order; rows with NA values are
        left out (an exporter exports nothing where there is no commit).
    """
    names = _scheme(scheme)
    extra = tuple(sorted((str(k), str(v)) for k, v in dict(extra_labels or {}).items()))
    if not len(lag):
        return
    frame = lag.sort_values("time", kind="stable")
    ms = (frame["time"].astype("datetime64[ns, UTC]").astype("int64") // 1_000_000).to_numpy()
    frame = frame.assign(_ms=ms)
    cluster = names.cluster_label

    def base(row_cluster: object) -> tuple[tuple[str, str], ...]:
        return ((cluster, str(row_cluster)),) if cluster else ()

    partitions = frame.drop_duplicates(["cluster", "topic", "partition", "time"])
    for (c, topic, partition), block in partitions.groupby(
        ["cluster", "topic", "partition"], sort=True, observed=True
    ):
        values = block["log_end_offset"].astype("float64").to_numpy()
        keep = ~np.isnan(values)
        labels = (
            ("__name__", names.log_end),
            *base(c),
            (names.partition_label, str(partition)),
            (names.topic_label, str(topic)),
            *extra,
        )
        yield tuple(sorted(labels)), block["_ms"].to_numpy()[keep], values[keep]
    metrics = [("lag", names.lag)]
    if names.committed is not None:
        metrics.append(("committed_offset", names.committed))
    for (c, group, topic, partition), block in frame.groupby(
        ["cluster", "group", "topic", "partition"], sort=True, observed=True
    ):
        for column, metric in metrics:
            values = block[column].astype("float64").to_numpy()
            keep = ~np.isnan(values)
            labels = (
                ("__name__", metric),
                *base(c),
                (names.group_label, str(group)),
                (names.partition_label, str(partition)),
                (names.topic_label, str(topic)),
                *extra,
            )
            yield tuple(sorted(labels)), block["_ms"].to_numpy()[keep], values[keep]


# -- protobuf (prometheus/prompb: WriteRequest{1: TimeSeries}; TimeSeries{1: Label,
#    2: Sample}; Label{1: name, 2: value}; Sample{1: double value, 2: int64 timestamp}) --


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negatives
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint_length(values: np.ndarray) -> np.ndarray:
    """Bytes of the varint of each non-negative int64."""
    bits = np.zeros(len(values), dtype="int64")
    rest = values.astype("uint64")
    while rest.any():
        bits += rest > 0
        rest = rest >> np.uint64(7)
    return np.maximum(bits, 1)


def _samples(stamps: np.ndarray, values: np.ndarray) -> bytes:
    """Encode ``Sample`` fields (2) of a TimeSeries, vectorised when the stamps allow."""
    ms = np.asarray(stamps, dtype="int64")
    n = len(ms)
    if n == 0:
        return b""
    lengths = _varint_length(ms) if (ms >= 0).all() else np.array([0])
    width = int(lengths[0])
    if width == 0 or (lengths != width).any():  # negative or mixed-width stamps
        return b"".join(
            _field(2, b"\x09" + struct.pack("<d", v) + b"\x10" + _varint(int(t)))
            for t, v in zip(ms.tolist(), np.asarray(values, "float64").tolist(), strict=True)
        )
    body = 1 + 8 + 1 + width  # value tag, double, timestamp tag, varint
    rows = np.empty((n, 2 + body), dtype=np.uint8)
    rows[:, 0] = 2 << 3 | 2  # field 2, length-delimited
    rows[:, 1] = body
    rows[:, 2] = 1 << 3 | 1  # field 1, 64-bit
    rows[:, 3:11] = np.asarray(values, dtype="<f8").view(np.uint8).reshape(n, 8)
    rows[:, 11] = 2 << 3  # field 2, varint
    rest = ms.astype("uint64")
    for i in range(width):
        byte = (rest & np.uint64(0x7F)).astype(np.uint8)
        rows[:, 12 + i] = byte | 0x80 if i < width - 1 else byte
        rest = rest >> np.uint64(7)
    return rows.tobytes()


def encode_write_request(series: Sequence[Series]) -> bytes:
    """Encode series as an (uncompressed) Prometheus remote-write ``WriteRequest``."""
    items = list(series)
    counts = np.array([len(stamps) for _, stamps, _ in items], dtype="int64")
    blob = b""
    size = 0
    if counts.sum():
        # All samples at once: with one varint width (stamps of one era) every sample
        # field has the same size, so each series' samples are a slice of one buffer.
        stamps = np.concatenate([np.asarray(s, dtype="int64") for _, s, _ in items])
        values = np.concatenate([np.asarray(v, dtype="float64") for _, _, v in items])
        if (stamps >= 0).all() and len(set(_varint_length(stamps).tolist())) == 1:
            blob = _samples(stamps, values)
            size = len(blob) // len(stamps)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    out = bytearray()
    for index, (labels, stamps, values) in enumerate(items):
        body = bytearray()
        for name, value in labels:
            body += _field(1, _field(1, name.encode()) + _field(2, value.encode()))
        if size:
            body += blob[int(offsets[index]) * size : int(offsets[index + 1]) * size]
        else:
            body += _samples(stamps, values)
        out += _field(1, bytes(body))
    return bytes(out)


class RemoteWriter:
    """POST LAG frames to a remote-write endpoint.

    Parameters
    ----------
    url
        The endpoint, e.g. ``http://127.0.0.1:9090/api/v1/write`` (Prometheus
        with ``--web.enable-remote-write-receiver``) or
        ``http://127.0.0.1:8428/api/v1/write`` (VictoriaMetrics).
    scheme
        Exporter naming of the series (see the module docstring).
    headers
        Extra HTTP headers (``Authorization``, ``X-Scope-OrgID``...).
    timeout_s
        Timeout of each request.
    max_samples_per_request
        Series are sent in batches of about this many samples.
    extra_labels
        Labels added to every series.
    """

    def __init__(
        self,
        url: str,
        *,
        scheme: str = "kafka_exporter",
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        max_samples_per_request: int = 50_000,
        extra_labels: Mapping[str, str] | None = None,
    ) -> None:
        self._http = PrometheusHttp(
            url,
            service="the remote-write endpoint",
            hint="check that the store runs and the URL",
            missing_hint=_CHECK_RECEIVER,
            timeout_s=timeout_s,
        )
        _scheme(scheme)
        self.url = self._http.url
        self.scheme = scheme
        self.timeout_s = float(timeout_s)
        self.max_samples_per_request = int(max_samples_per_request)
        self.extra_labels = dict(extra_labels or {})
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
            **dict(headers or {}),
        }
        #: Compressed bytes and samples sent so far.
        self.bytes_sent = 0
        self.samples_sent = 0

    def __repr__(self) -> str:
        return f"RemoteWriter({self.url!r}, scheme={self.scheme!r})"

    def write_lag(self, lag: pd.DataFrame) -> int:
        """Send every series of a LAG frame; return the number of samples sent.

        Raises
        ------
        KbpConnectionError
            The endpoint cannot be reached or refused the data (its answer is quoted).
        """
        batch: list[Series] = []
        size = 0
        sent = 0
        for series in lag_series(lag, scheme=self.scheme, extra_labels=self.extra_labels):
            if not len(series[1]):
                continue
            batch.append(series)
            size += len(series[1])
            if size >= self.max_samples_per_request:
                sent += self._post(batch, size)
                batch, size = [], 0
        if batch:
            sent += self._post(batch, size)
        return sent

    def _post(self, batch: list[Series], samples: int) -> int:
        import cramjam

        body = bytes(cramjam.snappy.compress_raw(encode_write_request(batch)))
        status, answer = self._http.send(body=body, headers=self._headers, what="remote write")
        if not 200 <= status < 300:
            detail = answer[:2000].decode("utf-8", "replace").strip()
            raise KbpConnectionError(
                f"Remote write to {self.url} was refused (HTTP {status}: {detail or 'no detail'})"
                f"; {_CHECK_RECEIVER} and that samples are not older than the store accepts.",
                address=self.url,
                status=status,
            )
        self.bytes_sent += len(body)
        self.samples_sent += samples
        return samples
