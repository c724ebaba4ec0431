"""History from a Prometheus-compatible server (Prometheus, Thanos, Mimir, VictoriaMetrics).

``PrometheusSource`` pushes the aggregation into PromQL (``rate()``,
``sum by``) so only what a plot needs comes back, and splits long ranges so
no query asks for more than Prometheus's 11,000 points per series.

It speaks the HTTP API through ``kbp_notebook._prometheus_http`` (standard
library ``urllib``): basic auth, bearer tokens, custom headers and TLS (CA
file or ``verify=False``) are supported. Credentials are sent in headers and
never appear in messages.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from kbp_notebook._metric_queries import (
    BROKER_METRIC_QUERIES,
    LAG_EXPORTER_SCHEMES,
    ExporterScheme,
)
from kbp_notebook._prometheus_http import PrometheusHttp
from kbp_notebook.errors import KbpConnectionError, KbpInputError
from kbp_notebook.frames import (
    empty_lag_frame,
    empty_metrics_frame,
    validate_lag_frame,
    validate_metrics_frame,
)
from kbp_notebook.units import parse_duration_s
from kbp_notebook.units import parse_time_utc as _to_timestamp

__all__ = [
    "BROKER_METRIC_QUERIES",
    "DEFAULT_MAX_SAMPLES",
    "MAX_POINTS_PER_QUERY",
    "PrometheusSource",
]

#: Prometheus refuses range queries over 11,000 points per series; stay below it.
MAX_POINTS_PER_QUERY = 10_000

#: Prometheus's default ``--query.max-samples``: samples one query may load.
DEFAULT_MAX_SAMPLES = 50_000_000

# Messages servers give when a query would load more samples than they allow.
_SAMPLE_LIMIT_WORDS = ("too many samples", "maxsamplesperquery", "max_samples", "too many points")

_BROKER_LABELS = ("broker_id", "broker", "kafka_broker_id", "node_id", "instance")


class _Counter:
    """A count kept by the HTTP client (one owner), read and reset through the source."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, source: PrometheusSource, owner: type | None = None) -> int:
        count: int = getattr(source._http, self.name)
        return count

    def __set__(self, source: PrometheusSource, value: int) -> None:
        setattr(source._http, self.name, int(value))


class PrometheusSource:
    """Read Kafka history from a Prometheus-compatible HTTP API.

    Parameters
    ----------
    url
        Base URL, e.g. ``"http://127.0.0.1:9090"`` (a path prefix such as
        ``/prometheus`` is kept).
    cluster
        Your name for the cluster, written into the frames.
    timeout_s
        Timeout of each HTTP request.
    basic_auth
        ``(user, password)`` for HTTP basic auth.
    bearer_token
        A bearer token (sent as ``Authorization: Bearer ...``).
    verify
        Verify the server's TLS certificate (``False`` to skip; avoid).
    ca_file
        CA bundle to verify the server's certificate with.
    headers
        Extra HTTP headers (e.g. ``{"X-Scope-OrgID": "tenant"}`` for Mimir).
    broker_label
        The label naming the broker in the series; default: the first of
        ``broker_id``, ``broker``, ``kafka_broker_id``, ``node_id`` that the
        series carry, else ``instance``.
    max_samples
        The server's limit of samples one query may load (Prometheus
        ``--query.max-samples``, 50 million by default; VictoriaMetrics
        ``-search.maxSamplesPerQuery``). Per-partition pulls are split in time
        to stay under it, and split further if the server still refuses.

    Examples
    --------
    >>> prom = kbp.PrometheusSource("http://127.0.0.1:9090")  # doctest: +SKIP
    >>> m = prom.broker_metrics("2024-05-01T10:00Z", "2024-05-01T12:00Z", "15s")  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        cluster: str = "default",
        timeout_s: float = 10.0,
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        verify: bool = True,
        ca_file: str | None = None,
        headers: Mapping[str, str] | None = None,
        broker_label: str | None = None,
        max_samples: int = DEFAULT_MAX_SAMPLES,
    ) -> None:
        self._http = PrometheusHttp(
            url,
            timeout_s=timeout_s,
            basic_auth=basic_auth,
            bearer_token=bearer_token,
            verify=verify,
            ca_file=ca_file,
            headers=headers,
        )
        self.url = self._http.url
        self.cluster = str(cluster)
        self.timeout_s = float(timeout_s)
        self.broker_label = broker_label
        self.max_samples = int(max_samples)

    def __repr__(self) -> str:
        return f"PrometheusSource({self.url!r}, cluster={self.cluster!r})"

    # -- HTTP -----------------------------------------------------------------

    #: Bytes of answers read and requests sent so far (set them to 0 to measure a call).
    bytes_received = _Counter()
    requests = _Counter()

    def _get(self, endpoint: str, params: Mapping[str, str], query: str) -> Any:
        """POST a form to the API and return its ``data`` (errors become KbpErrors)."""
        return self._http.api(endpoint, params, query=query)

    def check(self) -> None:
        """Ask the server one trivial instant query (``1``): raise if it cannot answer.

        Raises
        ------
        KbpConnectionError
            Unreachable, refused, or failing (the message names the address).
        KbpInputError
            Something answered that is not a Prometheus API.
        """
        self._get("query", {"query": "1"}, "1")

    # -- queries ----------------------------------------------------------------

    def query_range(
        self,
        promql: str,
        start: Any,
        end: Any,
        step: str | float | _dt.timedelta,
        *,
        max_points: int | None = None,
    ) -> pd.DataFrame:
        """Run a PromQL range query and return a long frame.

        Parameters
        ----------
        promql
            The expression.
        start, end
            Time range (timezone-aware, or naive taken as UTC; text accepted).
        step
            Resolution: seconds or text (``"15s"``).
        max_points
            Points per series in one request (default ``MAX_POINTS_PER_QUERY``);
            a request the server refuses for loading too many samples is split in
            two and retried.

        Returns
        -------
        pandas.DataFrame
            One row per (series, time): ``time`` (UTC), one column per label
            (``__name__`` included when present), ``value`` (float64). Long
            ranges are split so no query exceeds ``MAX_POINTS_PER_QUERY`` points
            per series.

        Raises
        ------
        KbpConnectionError
            The server cannot be reached (the message names the URL).
        KbpInputError
            Prometheus rejected the query (its message and the query are given),
            or the answer is not valid JSON.
        """
        t0 = _to_timestamp(start, "start")
        t1 = _to_timestamp(end, "end")
        step_s = parse_duration_s(step, name="step")
        if t1 < t0:
            raise KbpInputError(f"end ({t1}) is before start ({t0}); swap them.", column="end")
        points = min(MAX_POINTS_PER_QUERY, max_points or MAX_POINTS_PER_QUERY)
        chunk_s = step_s * max(points - 1, 0)
        pieces: list[pd.DataFrame] = []
        begin = t0.timestamp()
        stop = t1.timestamp()
        while True:
            finish = min(begin + chunk_s, stop)
            try:
                data = self._get(
                    "query_range",
                    {
                        "query": promql,
                        "start": _fmt(begin),
                        "end": _fmt(finish),
                        "step": _fmt(step_s),
                    },
                    promql,
                )
            except (KbpInputError, KbpConnectionError) as exc:
                if chunk_s < step_s or not _is_sample_limit(exc):
                    raise
                chunk_s = math.floor(chunk_s / step_s / 2) * step_s  # half the points, retry
                continue
            try:
                pieces.append(_matrix_frame(data["result"]))
            except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
                raise KbpInputError(
                    f"Prometheus at {self.url} answered query {promql!r} with a result that is "
                    f"not a matrix of [time, value] samples ({type(exc).__name__}); is the URL a "
                    f"Prometheus-compatible API?",
                    address=self.url,
                    query=promql,
                ) from None
            if finish >= stop:
                break
            begin = finish + step_s
            if begin > stop:
                break
        frames = [p for p in pieces if len(p)]
        if not frames:
            return pd.DataFrame(
                {
                    "time": pd.Series(dtype="datetime64[ns, UTC]"),
                    "value": pd.Series(dtype="float64"),
                }
            )
        out = pd.concat(frames, ignore_index=True)
        labels = [c for c in out.columns if c not in ("time", "value")]
        out = out[["time", *labels, "value"]]
        return out.sort_values([*labels, "time"], kind="stable").reset_index(drop=True)

    def _broker_by(self, start: pd.Timestamp, end: pd.Timestamp) -> str:
        if self.broker_label:
            return self.broker_label
        data = self._get(
            "series",
            {
                "match[]": '{__name__=~"kafka_server_.*|kafka_log_.*|kafka_network_.*"}',
                "start": _fmt(start.timestamp()),
                "end": _fmt(end.timestamp()),
            },
            "series kafka_*",
        )
        seen: set[str] = set()
        for series in data if isinstance(data, list) else []:
            seen.update(series)
        for label in _BROKER_LABELS:
            if label in seen:
                return label
        return "instance"

    def broker_metrics(
        self,
        start: Any,
        end: Any,
        step: str | float | _dt.timedelta,
        *,
        rate_window: str | None = None,
        metrics: Sequence[str] | None = None,
        queries: Mapping[str, Sequence[str]] | None = None,
        request_handler_pools: int = 1,
    ) -> pd.DataFrame:
        """Read the canonical broker metrics over a time range.

        Parameters
        ----------
        start, end
            Time range.
        step
            Resolution (``"15s"``).
        rate_window
            Window of ``rate()``; default four steps, at least ``"1m"``.
        metrics
            Canonical names to read (default: all of ``BROKER_METRIC_QUERIES``).
        queries
            Override or add PromQL candidates per canonical name (``{w}`` is the
            rate window, ``{by}`` the broker label).
        request_handler_pools
            How many request-handler pools mark the ``RequestHandlerAvgIdlePercent``
            meter in one JVM. A KRaft node running broker *and* controller in one
            process (combined mode, as in the sandbox) has two pools marking the same
            meter, so its raw idle ratio reaches 2; pass 2 there. Dedicated brokers: 1.

        Returns
        -------
        pandas.DataFrame
            A validated METRICS frame; ``entity`` is ``broker-<id>`` (from the
            broker label). Metrics for which no series exist are absent.
        """
        t0 = _to_timestamp(start, "start")
        t1 = _to_timestamp(end, "end")
        step_s = parse_duration_s(step, name="step")
        window_s = (
            parse_duration_s(rate_window, name="rate_window")
            if rate_window is not None
            else max(60.0, 4 * step_s)
        )
        window = f"{int(math.ceil(window_s))}s"
        table = {**BROKER_METRIC_QUERIES, **{k: tuple(v) for k, v in (queries or {}).items()}}
        wanted = list(metrics) if metrics is not None else list(table)
        unknown = [name for name in wanted if name not in table]
        if unknown:
            raise KbpInputError(
                f"Unknown broker metric(s) {unknown}; known: {sorted(table)} "
                f"(or pass queries={{name: [promql, ...]}}).",
                column="metrics",
            )
        by = self._broker_by(t0, t1)
        frames = []
        for name in wanted:
            for template in table[name]:
                promql = template.format(w=window, by=by)
                result = self.query_range(promql, t0, t1, step_s)
                if len(result) and by in result.columns:
                    result = result[result["value"].notna()]
                    if name == "request_handler_idle_ratio" and request_handler_pools > 1:
                        result = result.assign(value=result["value"] / request_handler_pools)
                    frames.append(
                        pd.DataFrame(
                            {
                                "time": result["time"],
                                "cluster": self.cluster,
                                "entity": _broker_entity(result[by]),
                                "metric": name,
                                "value": result["value"].astype("float64"),
                            }
                        )
                    )
                    break
        if not frames:
            return empty_metrics_frame()
        return validate_metrics_frame(pd.concat(frames, ignore_index=True))

    def _lag_scheme(
        self, t0: pd.Timestamp, t1: pd.Timestamp, scheme: str | None
    ) -> tuple[str, ExporterScheme, int] | None:
        """Return the first exporter naming with lag series in the range, and its series count."""
        names = [scheme] if scheme is not None else list(LAG_EXPORTER_SCHEMES)
        coarse_s = max(1.0, (t1 - t0).total_seconds() / 50)
        for name in names:
            if name not in LAG_EXPORTER_SCHEMES:
                raise KbpInputError(
                    f"Unknown exporter naming {name!r}; choose one of "
                    f"{sorted(LAG_EXPORTER_SCHEMES)} or None to detect it.",
                    column="scheme",
                )
            spec = LAG_EXPORTER_SCHEMES[name]
            found = self.query_range(f"count({spec.lag})", t0, t1, coarse_s)
            if len(found) and found["value"].notna().any():
                return name, spec, int(found["value"].max())
        return None

    def lag_totals(
        self,
        start: Any,
        end: Any,
        step: str | float | _dt.timedelta,
        *,
        by: str | Sequence[str] = ("group", "topic"),
        groups: Sequence[str] | None = None,
        topics: Sequence[str] | None = None,
        scheme: str | None = None,
    ) -> pd.DataFrame:
        """Total lag per group (and topic) over time, summed by the server (``sum by``).

        One series per key comes back instead of one per partition, so a cluster
        of thousands of partitions costs what a plot of its groups needs.

        Parameters
        ----------
        start, end
            Time range.
        step
            Resolution (``"30s"``).
        by
            ``("group", "topic")`` (default), ``"group"`` or ``"topic"``.
        groups, topics
            Restrict to these group ids / topics (default: all).
        scheme
            Exporter naming (``"kafka_exporter"``, ``"kafka-lag-exporter"``,
            ``"kminion"``); default: the first one with lag series in the range.

        Returns
        -------
        pandas.DataFrame
            ``time`` (UTC), ``cluster``, the ``by`` columns and ``lag`` (Int64;
            the sum over the key's partitions that have a commit).
        """
        keys = (by,) if isinstance(by, str) else tuple(by)
        if not keys or any(k not in ("group", "topic") for k in keys):
            raise KbpInputError(
                f"by={by!r}: total lag by 'group', 'topic' or ('group', 'topic').", column="by"
            )
        t0 = _to_timestamp(start, "start")
        t1 = _to_timestamp(end, "end")
        found = self._lag_scheme(t0, t1, scheme)
        columns = {
            "time": pd.Series(dtype="datetime64[ns, UTC]"),
            "cluster": pd.Series(dtype="string"),
        }
        empty = pd.DataFrame(
            {
                **columns,
                **{k: pd.Series(dtype="string") for k in keys},
                "lag": pd.Series(dtype="Int64"),
            }
        )
        if found is None:
            return empty
        _, spec, _ = found
        label = {"group": spec.group_label, "topic": spec.topic_label}
        selector = spec.lag + _matchers(spec, groups, topics)
        promql = f"sum by ({', '.join(label[k] for k in keys)}) ({selector} >= 0)"
        result = self.query_range(promql, t0, t1, step)
        if not len(result):
            return empty
        out = pd.DataFrame({"time": result["time"], "cluster": self.cluster})
        for key in keys:
            out[key] = result[label[key]].astype("string")
        out["lag"] = result["value"].round().astype("Int64")
        out["cluster"] = out["cluster"].astype("string")
        return out.sort_values([*keys, "time"], kind="stable").reset_index(drop=True)

    def lag(
        self,
        start: Any,
        end: Any,
        step: str | float | _dt.timedelta,
        *,
        groups: Sequence[str] | None = None,
        topics: Sequence[str] | None = None,
        top_k: int | None = None,
        scheme: str | None = None,
    ) -> pd.DataFrame:
        """Read per-partition consumer lag history exported by a lag exporter.

        Parameters
        ----------
        start, end
            Time range.
        step
            Resolution (``"30s"``).
        groups, topics
            Restrict to these group ids / topics (default: all).
        top_k
            Only the ``top_k`` (group, topic) keys with the largest total lag in
            the range: the totals are summed by the server first
            (:meth:`lag_totals`), then partitions are read for those keys only.
        scheme
            Exporter naming: ``"kafka_exporter"`` (``kafka_consumergroup_current_offset``,
            ``kafka_topic_partition_current_offset``), ``"kafka-lag-exporter"``
            (``kafka_consumergroup_group_offset``, ``kafka_partition_latest_offset``)
            or ``"kminion"`` (``kminion_kafka_consumer_group_topic_partition_lag``,
            ``kminion_kafka_topic_partition_high_water_mark``); default: the first
            with lag series in the range.

        Returns
        -------
        pandas.DataFrame
            A validated LAG frame. Where an exporter has no committed-offset
            series (kminion) ``committed_offset`` is the log end minus the lag;
            where it has no log-end series, the committed offset plus the lag.
            Negative offsets (the exporters' "no commit") become NA. Requests are
            split in time to stay under ``max_samples``.
        """
        t0 = _to_timestamp(start, "start")
        t1 = _to_timestamp(end, "end")
        step_s = parse_duration_s(step, name="step")
        found = self._lag_scheme(t0, t1, scheme)
        if found is None:
            return empty_lag_frame()
        name, spec, n_series = found
        wanted: set[tuple[str, str]] | None = None
        if top_k is not None:
            if not isinstance(top_k, int) or top_k < 1:
                raise KbpInputError(f"top_k={top_k!r}: pass a positive number of keys.")
            totals = self.lag_totals(t0, t1, step_s, groups=groups, topics=topics, scheme=name)
            if not len(totals):
                return empty_lag_frame()
            worst = totals.groupby(["group", "topic"])["lag"].max().nlargest(top_k)
            wanted = {(str(g), str(t)) for g, t in worst.index}
            groups = sorted({g for g, _ in wanted})
            topics = sorted({t for _, t in wanted})
            n_series = len(wanted) * max(
                1, n_series // max(1, len(totals[["group", "topic"]].drop_duplicates()))
            )
        # Each of the (up to three) metrics has about n_series series.
        points = max(1, self.max_samples // (2 * max(1, n_series)))
        key_matchers = _matchers(spec, groups, topics)
        committed = (
            self.query_range(spec.committed + key_matchers, t0, t1, step_s, max_points=points)
            if spec.committed is not None
            else None
        )
        log_end = self.query_range(
            spec.log_end + _matchers(spec, None, topics), t0, t1, step_s, max_points=points
        )
        lag_values = None
        if committed is None or not len(log_end):
            lag_values = self.query_range(
                spec.lag + key_matchers, t0, t1, step_s, max_points=points
            )
        frame = _lag_frame(spec, committed, log_end, lag_values, self.cluster)
        if wanted is not None and len(frame):
            pairs = pd.Series(list(zip(frame["group"], frame["topic"], strict=True)))
            frame = frame[pairs.isin(wanted).to_numpy()].reset_index(drop=True)
        return frame


def _matchers(
    spec: ExporterScheme, groups: Sequence[str] | None, topics: Sequence[str] | None
) -> str:
    """``{label=~"a|b",...}`` for the groups and topics asked for ("" when none)."""
    parts = []
    for label, values in ((spec.group_label, groups), (spec.topic_label, topics)):
        if values:
            pattern = "|".join(_regex_literal(str(v)) for v in values)
            parts.append(f'{label}=~"{_promql_string(pattern)}"')
    return "{" + ",".join(parts) + "}" if parts else ""


def _is_sample_limit(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(word in text for word in _SAMPLE_LIMIT_WORDS)


def _regex_literal(text: str) -> str:
    """Escape RE2 metacharacters (not spaces, unlike re.escape)."""
    return re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", text)


def _promql_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}"


def _broker_entity(values: pd.Series) -> pd.Series:
    text = values.astype("string")
    digits = text.str.extract(r"(\d+)$", expand=False)
    is_id = text.str.fullmatch(r"(broker-?)?\d+").fillna(False)
    return ("broker-" + digits).where(is_id, "broker-" + text).astype("string")


def _matrix_frame(result: list[dict[str, Any]]) -> pd.DataFrame:
    """Turn a ``matrix`` result into a long frame (flattened once, not a frame per series)."""
    series_list = [series for series in result if series.get("values")]
    if not series_list:
        return pd.DataFrame()
    lengths = np.array([len(series["values"]) for series in series_list], dtype="int64")
    total = int(lengths.sum())
    seconds = np.fromiter(
        (float(pair[0]) for series in series_list for pair in series["values"]),
        dtype="float64",
        count=total,
    )
    texts = pd.Series(
        [pair[1] for series in series_list for pair in series["values"]], dtype=object
    )
    out = pd.DataFrame(
        {
            "time": pd.to_datetime(np.round(seconds * 1000).astype("int64"), unit="ms", utc=True),
            "value": pd.to_numeric(texts, errors="coerce").to_numpy("float64"),
        }
    )
    labels: dict[str, None] = {}
    for series in series_list:
        labels.update(dict.fromkeys(series.get("metric") or {}))
    for label in labels:
        per_series = np.array(
            [(series.get("metric") or {}).get(label) for series in series_list], dtype=object
        )
        column = f"label_{label}" if label in ("time", "value") else label
        out[column] = pd.array(np.repeat(per_series, lengths), dtype="string")
    out["time"] = out["time"].astype("datetime64[ns, UTC]")
    return out


def _lag_frame(
    spec: ExporterScheme,
    committed: pd.DataFrame | None,
    log_end: pd.DataFrame,
    lag_values: pd.DataFrame | None,
    cluster: str,
) -> pd.DataFrame:
    keys = ["time", "topic", "partition"]
    names = {
        spec.group_label: "group",
        spec.topic_label: "topic",
        spec.partition_label: "partition",
    }
    right = None
    if len(log_end):
        renamed = log_end.rename(columns={**names, "value": "log_end_offset"})
        right = renamed.groupby(keys, as_index=False)["log_end_offset"].max()
    lag_part = None
    if lag_values is not None and len(lag_values):
        lag_part = lag_values.rename(columns={**names, "value": "lag_value"})[
            ["time", "group", "topic", "partition", "lag_value"]
        ]
    if committed is not None and len(committed):
        left = committed.rename(columns={**names, "value": "committed_offset"})
        merged = left[["time", "group", "topic", "partition", "committed_offset"]]
        if right is not None:
            merged = merged.merge(right, on=keys, how="left")
        elif lag_part is not None:
            merged = merged.merge(lag_part, on=["time", "group", "topic", "partition"], how="left")
            merged["log_end_offset"] = merged["committed_offset"] + merged["lag_value"]
            merged = merged.drop(columns=["lag_value"])
        else:
            merged = merged.assign(log_end_offset=np.nan)
    elif lag_part is not None and right is not None:
        # kminion: lag and high water marks only; the commit is the log end minus the lag.
        merged = lag_part.merge(right, on=keys, how="left")
        merged["committed_offset"] = merged["log_end_offset"] - merged["lag_value"]
        merged = merged.drop(columns=["lag_value"])
    else:
        return empty_lag_frame()
    for column in ("committed_offset", "log_end_offset"):
        values = merged[column].astype("float64")
        merged[column] = values.where(values >= 0).round().astype("Int64")
    merged = merged.drop_duplicates(["time", "group", "topic", "partition"], keep="last")
    merged["lag"] = merged["log_end_offset"] - merged["committed_offset"]
    merged["cluster"] = cluster
    merged["partition"] = pd.to_numeric(merged["partition"]).astype("int32")
    return validate_lag_frame(merged)
