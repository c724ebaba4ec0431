"""Read-only consumer-lag snapshots and recordings from a live Kafka cluster.

``LagCollector`` talks to the cluster through kafka-python's
``KafkaAdminClient`` only. It never joins a group, never commits, never
creates topics: it sends ListGroups, the describe request of each group's
type, OffsetFetch, Metadata and ListOffsets requests, batched so one snapshot
costs a handful of round trips whatever the number of groups (one request of
each kind per coordinator for all groups, one ListOffsets per partition
leader for all partitions).

Committed offsets are fetched *before* log-end offsets, so lag computed from
one snapshot is never negative on a healthy log.

Group types (``group_type`` column, from ListGroups v5): ``classic`` groups
are described by DescribeGroups, KIP-848 ``consumer`` groups by
ConsumerGroupDescribe, ``share`` groups by ShareGroupDescribe (see
``_groups``), so all three get real owners. A share group commits no
offsets: its ``committed_offset`` is the *share-partition start offset*
(every record before it is acknowledged; what ``kafka-share-groups
--describe`` shows as START-OFFSET), so its ``lag`` counts records not yet
known to be acknowledged -- an upper bound, since records after the start
offset may already be acknowledged one by one. ``streams`` groups are
described by StreamsGroupDescribe: a member owns the input partitions of its
active tasks.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kbp_notebook.collect._group_select import GroupSelection, count_requests, select_groups
from kbp_notebook.collect._groups import (
    GroupMember,
    describe_groups_by_type,
    listed_group_types,
    share_group_start_offsets,
)
from kbp_notebook.collect._kafka import (
    check_client_config,
    connect_admin,
    describe_exception,
    kafka_error_types,
    public_config,
    secret_values,
    translate_kafka_error,
)
from kbp_notebook.collect._progress import make_progress
from kbp_notebook.collect._record_times import FetchStats, read_record_times
from kbp_notebook.collect._recorder import RecordingStats, run_recording
from kbp_notebook.collect.remote_write import RemoteWriter
from kbp_notebook.collect.storage import DatasetAppender, read_dataset
from kbp_notebook.errors import KbpConnectionError, KbpError, KbpInputError
from kbp_notebook.frames import (
    LAG_COLUMNS,
    LAG_OPTIONAL_COLUMNS,
    Dataset,
    validate_lag_frame,
)
from kbp_notebook.units import parse_duration_s

__all__ = ["LagCollector"]

_OWNER_COLUMNS = ("consumer_id", "host", "client_id")
_GROUP_COLUMNS = ("group_type", "group_state")


class LagCollector:
    """Read consumer lag from a Kafka cluster without disturbing it.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,host:port...]`` of any brokers of the cluster.
    cluster
        Your name for the cluster; written into every row.
    log_start_offsets
        Also read each partition's log-start offset (one more ListOffsets
        request per leader) into the optional ``log_start_offset`` column.
    group_pattern
        Big clusters: when snapshots list every group (``groups=None``), track
        only the group ids in which this regular expression matches
        (``re.search``; anchor with ``^``/``$``).
    skip_empty_groups
        When listing, skip groups the broker reports ``Empty`` or ``Dead`` (no
        member). Off by default: a group whose consumers all died is ``Empty``,
        and its lag is the one that grows.
    max_groups
        When listing, track at most this many groups (the first in id order, so
        the same ones every snapshot); the rest are named in ``last_problems``.
    connect
        Connect now, so an unreachable cluster or rejected credentials raise here
        (default). ``False``: connect at the first request (:meth:`snapshot`,
        :meth:`record`); the arguments are still checked here, without a broker.
    **kafka_config
        kafka-python client settings, e.g. ``security_protocol="SASL_SSL"``,
        ``sasl_mechanism="SCRAM-SHA-512"``, ``sasl_plain_username=...``,
        ``sasl_plain_password=...``, ``ssl_cafile=...``,
        ``request_timeout_ms=...``. Secrets are passed to the client and never
        recorded.

    Raises
    ------
    KbpConnectionError
        No broker at ``bootstrap_servers`` answered (the message names the
        address), or the credentials were rejected (with ``connect=True``).
    KbpInputError
        An unknown client setting, an empty address or a bad group option.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> with kbp.LagCollector("127.0.0.1:9092", cluster="prod") as lc:  # doctest: +SKIP
    ...     lag = lc.snapshot()
    ...     ds = lc.record("recordings/incident", every="5s", duration="10m")
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        *,
        cluster: str = "default",
        log_start_offsets: bool = True,
        group_pattern: str | None = None,
        skip_empty_groups: bool = False,
        max_groups: int | None = None,
        connect: bool = True,
        **kafka_config: Any,
    ) -> None:
        if not bootstrap_servers:
            raise KbpInputError(
                "bootstrap_servers is empty; pass 'host:port' of at least one broker.",
                column="bootstrap_servers",
            )
        self.bootstrap_servers = bootstrap_servers
        self.address = (
            bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)
        )
        self.cluster = str(cluster)
        self.log_start_offsets = bool(log_start_offsets)
        self.group_selection = GroupSelection(
            pattern=group_pattern, skip_empty=bool(skip_empty_groups), max_groups=max_groups
        )
        self._selection_notices: list[str] = []
        self._kafka_config = dict(kafka_config)
        self._secrets = secret_values(self._kafka_config)
        self._lock = threading.Lock()
        # Every argument is checked above and here without a broker; then connect
        # (fail fast), or at the first request when connect=False.
        check_client_config(bootstrap_servers, self._kafka_config)
        self._admin: Any = None
        if connect:
            self._admin_client()
        #: Problems met by the last snapshot (partitions without a leader, a broker
        #: that did not answer): ``(kind, text)`` pairs; rows are NA where affected.
        self.last_problems: list[tuple[str, str]] = []
        #: Kafka requests the last snapshot sent, by API (``{"OffsetFetch": 1, ...}``).
        self.last_requests: dict[str, int] = {}
        #: Cost of the last ``snapshot(time_lag=True)``'s record fetches.
        self.last_time_lag_cost: FetchStats | None = None
        self._last_leaders: dict[tuple[str, int], int] = {}
        #: Counts of the last ``record()`` session (snapshots, rows, failed attempts).
        self.last_recording: RecordingStats | None = None

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Close the connections to the cluster."""
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception:  # noqa: BLE001 - closing a broken client must not raise
                pass

    def __enter__(self) -> LagCollector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._admin is not None else "not connected"
        return f"LagCollector({self.address!r}, cluster={self.cluster!r}, {state})"

    @property
    def public_config(self) -> dict[str, Any]:
        """The client settings that are safe to record (no secrets)."""
        return public_config(self._kafka_config)

    def _admin_client(self) -> Any:
        if self._admin is None:
            self._admin = connect_admin(self.bootstrap_servers, self._kafka_config)
        return self._admin

    def _error(self, exc: BaseException, action: str) -> KbpError:
        if isinstance(exc, KbpError):
            return exc
        return translate_kafka_error(exc, self.address, action, self._secrets)

    # -- snapshot ------------------------------------------------------------------

    def snapshot(
        self,
        groups: Iterable[str] | str | None = None,
        *,
        time_lag: bool = False,
        time_lag_max_bytes: int = 16 << 20,
        time_lag_budget_s: float = 5.0,
    ) -> pd.DataFrame:
        """Return the lag of every partition of the given groups, now.

        Parameters
        ----------
        groups
            Group ids to read; ``None`` reads every consumer group on the cluster
            (like ``kafka-consumer-groups --describe --all-groups``).
        time_lag
            Also read, without joining any group, the timestamp of the record at
            each lagging partition's committed offset (one Fetch per partition
            leader, see ``_record_times``) and add ``time_lag_s`` (snapshot time
            minus that timestamp; 0 where the group is caught up),
            ``time_lag_source`` (``record``), ``time_lag_note`` and
            ``timestamp_type``. :func:`kbp_notebook.time_lag` uses these figures
            where present.
        time_lag_max_bytes
            Cap on the record bytes fetched for ``time_lag`` in one snapshot
            (default 16 MiB), shared equally by the lagging partitions (at least
            512 bytes each); a partition whose record batch is larger than its
            share is asked again with a share of what is left.
        time_lag_budget_s
            Time the record fetches may take; partitions not read by then have
            NA ``time_lag_s`` (and a ``collector_notice``).

        Returns
        -------
        pandas.DataFrame
            A validated LAG frame with one ``time`` for the whole snapshot and the
            optional ``log_start_offset``, ``consumer_id``, ``host``, ``client_id``
            columns, and ``group_type`` (``classic``, ``consumer``, ``share``,
            ``streams``) and ``group_state`` (the coordinator's word: ``Stable``,
            ``Empty``, ...). ``committed_offset`` and ``lag`` are NA where the group has no
            commit (for share groups: see the module docstring); offsets are NA
            where a partition has no leader (see ``last_problems``); owner
            columns are NA where no member owns the partition (empty group,
            rebalancing).

        Raises
        ------
        KbpConnectionError
            The cluster could not be reached; the message names the address.
        """
        if groups is not None:
            groups = [groups] if isinstance(groups, str) else [str(g) for g in groups]
            if any(not g for g in groups):
                raise KbpInputError(
                    "groups contains an empty group id; pass the group ids to read, or "
                    "groups=None for every group.",
                    column="groups",
                )
        with self._lock:
            try:
                with count_requests(self._admin_client()) as counts:
                    frame, problems = self._snapshot(groups)
                self.last_requests = dict(sorted(counts.items()))
                if time_lag:
                    frame = self._add_record_time_lag(
                        frame, problems, max_bytes=time_lag_max_bytes, budget_s=time_lag_budget_s
                    )
            except Exception as exc:
                self.close()  # the next call reconnects from scratch
                raise self._error(exc, "taking a lag snapshot") from None
            self.last_problems = problems
            if any(kind == "collector_error" for kind, _ in problems):
                # kafka-python keeps routing by its cached broker list (refreshed every
                # metadata_max_age_ms); after a broker comes back it would stay unknown for
                # minutes. Reconnect on the next snapshot to start from fresh metadata.
                self.close()
            return frame

    def _group_ids(
        self, listing: dict[str, tuple[str, str]], groups: Iterable[str] | str | None
    ) -> list[str]:
        if groups is None:
            entries = [{"group_id": g, "group_state": state} for g, (_, state) in listing.items()]
            chosen, self._selection_notices = select_groups(entries, self.group_selection)
            return chosen
        if isinstance(groups, str):
            groups = [groups]
        ids = list(dict.fromkeys(str(g) for g in groups))
        return ids

    def _committed(self, admin: Any, group_ids: list[str]) -> dict[str, dict[tuple[str, int], int]]:
        try:
            raw = admin.list_group_offsets({g: None for g in group_ids})
        except Exception as exc:
            if len(group_ids) == 1 or _is_connection_error(exc):
                raise
            # One group's error fails the batched request: ask per group to isolate it.
            raw = {}
            for group in group_ids:
                try:
                    raw.update(admin.list_group_offsets({group: None}))
                except Exception as group_exc:
                    if _is_connection_error(group_exc):
                        raise
                    raw[group] = {}
        committed: dict[str, dict[tuple[str, int], int]] = {}
        for group, offsets in raw.items():
            committed[str(group)] = {
                (tp.topic, int(tp.partition)): int(oam.offset)
                for tp, oam in offsets.items()
                if oam is not None and oam.offset is not None and oam.offset >= 0
            }
        return committed

    def _leaders(
        self, admin: Any, topics: list[str]
    ) -> tuple[dict[tuple[str, int], int], list[str]]:
        leaders: dict[tuple[str, int], int] = {}
        problems: list[str] = []
        for topic in admin.describe_topics(topics):
            name = str(topic.get("name"))
            if topic.get("error_code", 0) not in (0, None):
                problems.append(f"topic {name!r} metadata error code {topic.get('error_code')}")
                continue
            for part in topic.get("partitions", ()):
                leaders[(name, int(part["partition_index"]))] = int(part.get("leader_id", -1))
        return leaders, problems

    def _offsets(
        self,
        admin: Any,
        tps: dict[tuple[str, int], int],
        spec: int,
        problems: list[tuple[str, str]],
    ) -> dict[tuple[str, int], int]:
        from kafka import TopicPartition

        if not tps:
            return {}
        timeout_ms = int(self._kafka_config.get("request_timeout_ms", 10_000))
        specs = {TopicPartition(t, p): spec for (t, p) in tps}
        try:
            raw = admin.list_partition_offsets(specs, timeout_ms=timeout_ms)
        except Exception as exc:
            if _is_fatal(exc):
                raise
            # Isolate the failing leader: ask each leader separately.
            by_leader: dict[int, dict[Any, int]] = defaultdict(dict)
            for tp, leader in ((tp, tps[(tp.topic, tp.partition)]) for tp in specs):
                by_leader[leader][tp] = spec
            raw = {}
            for leader, subset in sorted(by_leader.items()):
                try:
                    raw.update(admin.list_partition_offsets(subset, timeout_ms=timeout_ms))
                except Exception as leader_exc:
                    if _is_fatal(leader_exc):
                        raise
                    problems.append(
                        (
                            "collector_error",
                            f"Kafka at {self.address}: broker {leader} did not return offsets "
                            f"for {len(subset)} partition(s) "
                            f"({describe_exception(leader_exc, self._secrets)}); "
                            f"their offsets are NA in this snapshot.",
                        )
                    )
        return {(tp.topic, int(tp.partition)): int(value.offset) for tp, value in raw.items()}

    def _snapshot(
        self, groups: Iterable[str] | str | None
    ) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
        admin = self._admin_client()
        problems: list[tuple[str, str]] = []
        time = pd.Timestamp.now(tz="UTC")
        listing = listed_group_types(admin.list_groups())
        self._selection_notices = []
        group_ids = self._group_ids(listing, groups)
        problems.extend(("collector_notice", text) for text in self._selection_notices)
        if not group_ids:
            return _empty_lag(), problems
        described = describe_groups_by_type(admin, {g: listing.get(g, ("", "")) for g in group_ids})
        share = [g for g in group_ids if described[g].group_type == "share"]
        # Committed offsets first, then log ends: lag is never negative. Share groups
        # commit nothing; their share-partition start offset stands in (see the docstring).
        committed = self._committed(admin, [g for g in group_ids if g not in set(share)])
        committed.update(share_group_start_offsets(admin, share))

        owners, wanted = _wanted_partitions(group_ids, described, committed, groups, problems)
        all_tps = sorted({tp for parts in wanted.values() for tp in parts})
        led = self._led_partitions(admin, all_tps, problems)
        self._last_leaders = led
        log_end = self._offsets(admin, led, -1, problems)
        log_start = self._offsets(admin, led, -2, problems) if self.log_start_offsets else None
        rows = _SnapshotRows(group_ids, wanted, committed, owners, described, log_end, log_start)
        return validate_lag_frame(rows.frame(time, self.cluster)), problems

    def _led_partitions(
        self, admin: Any, all_tps: list[tuple[str, int]], problems: list[tuple[str, str]]
    ) -> dict[tuple[str, int], int]:
        """Leader per partition that has one; metadata and leaderless problems are noted."""
        leaders, metadata_problems = self._leaders(admin, sorted({t for t, _ in all_tps}))
        for text in metadata_problems:
            problems.append(("collector_error", f"Kafka at {self.address}: {text}."))
        leaderless = [tp for tp in all_tps if tp in leaders and leaders[tp] < 0]
        if leaderless:
            shown = ", ".join(f"{t}-{p}" for t, p in leaderless[:10])
            more = f" and {len(leaderless) - 10} more" if len(leaderless) > 10 else ""
            problems.append(
                (
                    "collector_error",
                    f"Kafka at {self.address}: {len(leaderless)} partition(s) have no leader "
                    f"({shown}{more}); their log-end offsets are NA in this snapshot.",
                )
            )
        return {tp: leaders[tp] for tp in all_tps if leaders.get(tp, -1) >= 0}

    def _add_record_time_lag(
        self,
        frame: pd.DataFrame,
        problems: list[tuple[str, str]],
        *,
        max_bytes: int,
        budget_s: float,
    ) -> pd.DataFrame:
        """Add ``time_lag_s`` and friends from the records at the committed offsets."""
        committed = frame["committed_offset"]
        log_start = (
            frame["log_start_offset"]
            if "log_start_offset" in frame
            else pd.Series(pd.NA, index=frame.index)
        )
        behind = (frame["lag"] > 0).fillna(False).to_numpy(bool)
        # retention may have deleted the committed record: read from the log start instead
        fetch_from = committed.where(~(log_start > committed).fillna(False), log_start)
        leaders = self._last_leaders
        targets: dict[tuple[str, int, int], int] = {}
        keys: list[tuple[str, int, int] | None] = []
        for row_behind, topic, partition, offset in zip(
            behind, frame["topic"], frame["partition"], fetch_from, strict=True
        ):
            leader = leaders.get((str(topic), int(partition)))
            if not row_behind or leader is None or pd.isna(offset):
                keys.append(None)
                continue
            key = (str(topic), int(partition), int(offset))
            targets[key] = leader
            keys.append(key)
        found, stats = read_record_times(
            self._admin_client(), targets, max_bytes=max_bytes, time_budget_s=budget_s
        )
        self.last_time_lag_cost = stats
        for text in stats.problems:
            problems.append(
                (
                    "collector_notice",
                    f"Kafka at {self.address}: lag in seconds: {text}; those rows have NA "
                    f"time_lag_s (kbp.time_lag falls back to the offset history).",
                )
            )
        now_ms = frame["time"].iloc[0].value / 1e6 if len(frame) else 0.0
        seconds: list[float] = []
        sources: list[str | None] = []
        notes: list[str | None] = []
        kinds: list[str | None] = []
        for index, target in enumerate(keys):
            if target is None:
                lag_value = frame["lag"].iloc[index]
                caught_up = not pd.isna(lag_value) and int(lag_value) <= 0
                seconds.append(0.0 if caught_up else float("nan"))
                sources.append("record" if caught_up else None)
                notes.append(None)
                kinds.append(None)
                continue
            got = found.get(target)
            if got is None:
                seconds.append(float("nan"))
                sources.append(None)
                notes.append(None)
                kinds.append(None)
                continue
            note = got.note
            if target[2] != committed.iloc[index] and got.timestamp_ms is not None:
                note = "next_available"  # the committed record was deleted by retention
            if got.timestamp_ms is None:
                age = 0.0
            else:
                age = (now_ms - got.timestamp_ms) / 1000.0
                if age < 0:
                    age, note = 0.0, "clock_skew"
            seconds.append(age)
            sources.append("record")
            notes.append(note or None)
            kinds.append(got.timestamp_type or None)
        frame = frame.copy()
        frame["time_lag_s"] = pd.Series(seconds, index=frame.index, dtype="float64")
        frame["time_lag_source"] = pd.Series(sources, index=frame.index, dtype="string")
        frame["time_lag_note"] = pd.Series(notes, index=frame.index, dtype="string")
        frame["timestamp_type"] = pd.Series(kinds, index=frame.index, dtype="string")
        return frame

    # -- recording -----------------------------------------------------------------

    def record(
        self,
        path: str | os.PathLike[str],
        *,
        every: str | float | _dt.timedelta = "5s",
        duration: str | float | _dt.timedelta | None = None,
        groups: Iterable[str] | str | None = None,
        progress: bool = True,
        max_backoff_s: float = 60.0,
        progress_stream: Any = None,
        read_back: bool = True,
        time_lag: bool = False,
        remote_write: RemoteWriter | str | None = None,
    ) -> Dataset | None:
        """Take a snapshot every ``every`` and append it to a Dataset folder.

        The schedule is drift-free (snapshot k is due at ``start + k * every``;
        a late snapshot skips the ticks it missed rather than bunching up).
        Each interval is written as its own crash-safe part, so a process killed
        with ``kill -9`` loses at most the interval in flight. An existing
        folder is resumed. When the cluster cannot be reached the error is
        written as an event (``kind="collector_error"``), the recorder retries
        with exponential backoff up to ``max_backoff_s`` and carries on; no rows
        are invented for the gap.

        Parameters
        ----------
        path
            Dataset folder (created, or resumed if it exists).
        every
            Sampling interval: seconds or text such as ``"5s"``, ``"500ms"``.
        duration
            How long to record (``"10m"``); ``None`` records until interrupted
            (Ctrl-C / the notebook's stop button), which ends the recording cleanly.
        groups
            Group ids to record; ``None`` records every consumer group.
        progress
            Show progress (a widget in Jupyter, a bar or log lines on stderr).
        max_backoff_s
            Longest wait between retries while the cluster is unreachable.
        progress_stream
            Where the text progress goes (default ``sys.stderr``).
        read_back
            Read the folder back and return it (``False``: return None, for long
            recordings whose frames you will read later; counts are in
            ``last_recording``).
        time_lag
            Read record timestamps at the committed offsets in every snapshot
            (see :meth:`snapshot`): ``time_lag_s`` is then exact, not interpolated.
        remote_write
            Also push every snapshot to a Prometheus-compatible store: a
            remote-write URL (kafka_exporter metric names) or a configured
            :class:`~kbp_notebook.collect.remote_write.RemoteWriter`. A store that
            refuses or cannot be reached becomes a ``remote_write_error`` event;
            the recording to disk goes on.

        Returns
        -------
        Dataset or None
            Everything in the folder, read back (None when ``read_back=False``).

        Examples
        --------
        >>> lc = kbp.LagCollector("127.0.0.1:9092")  # doctest: +SKIP
        >>> ds = lc.record("recordings/today", every="5s", duration="10m")  # doctest: +SKIP
        """
        every_s = parse_duration_s(every, name="every")
        duration_s = None if duration is None else parse_duration_s(duration, name="duration")
        total = None if duration_s is None else max(1, math.ceil(duration_s / every_s - 1e-9))
        group_list = (
            None if groups is None else ([groups] if isinstance(groups, str) else list(groups))
        )
        started = pd.Timestamp.now(tz="UTC")
        appender = DatasetAppender(path)
        previous_meta = dict(appender.meta)
        appender.update_meta(
            source="kbp_notebook.LagCollector",
            cluster=self.cluster,
            bootstrap_servers=self.address,
            kafka_config=self.public_config,
            every_s=every_s,
            groups=group_list,
            group_selection={
                "pattern": self.group_selection.pattern,
                "skip_empty": self.group_selection.skip_empty,
                "max_groups": self.group_selection.max_groups,
            },
            started_at=previous_meta.get("started_at", started.isoformat()),
            sessions=[*previous_meta.get("sessions", []), started.isoformat()],
        )
        display = make_progress(progress, total, stream=progress_stream)

        writer = RemoteWriter(remote_write) if isinstance(remote_write, str) else remote_write

        def take() -> tuple[pd.DataFrame, list[tuple[str, str]]]:
            frame = self.snapshot(group_list, time_lag=time_lag)
            problems = list(self.last_problems)
            if writer is not None:
                try:
                    writer.write_lag(frame)
                except KbpError as exc:
                    problems.append(("remote_write_error", str(exc)))
            return frame, problems

        try:
            self.last_recording = run_recording(
                take,
                appender,
                every_s=every_s,
                total=total,
                max_backoff_s=max_backoff_s,
                display=display,
                source=f"Kafka at {self.address}",
            )
        finally:
            display.close()
            appender.update_meta(stopped_at=pd.Timestamp.now(tz="UTC").isoformat())
        if not read_back:
            return None
        return read_dataset(path)


def _wanted_partitions(
    group_ids: list[str],
    described: Mapping[str, Any],
    committed: Mapping[str, Mapping[tuple[str, int], int]],
    groups: Iterable[str] | str | None,
    problems: list[tuple[str, str]],
) -> tuple[dict[tuple[str, str, int], tuple[str, str, str]], dict[str, set[tuple[str, int]]]]:
    """Owners per (group, topic, partition), and each group's partitions (committed or assigned).

    A group asked for by name that has neither is noted as not existing.
    """
    owners: dict[tuple[str, str, int], tuple[str, str, str]] = {}
    wanted: dict[str, set[tuple[str, int]]] = {}
    for group in group_ids:
        description = described[group]
        parts = set(committed.get(group, {}))
        owners.update(_owners(group, description.members))
        for member in description.members:
            parts.update(member.partitions)
        if not parts and groups is not None and description.group_state in ("Dead", ""):
            problems.append(("collector_notice", f"Consumer group {group!r} does not exist."))
        wanted[group] = parts
    return owners, wanted


@dataclass(frozen=True)
class _SnapshotRows:
    """What one snapshot read, to be laid out as LAG rows (one per group and partition)."""

    group_ids: list[str]
    wanted: Mapping[str, set[tuple[str, int]]]
    committed: Mapping[str, Mapping[tuple[str, int], int]]
    owners: Mapping[tuple[str, str, int], tuple[str, str, str]]
    described: Mapping[str, Any]
    log_end: Mapping[tuple[str, int], int]
    log_start: Mapping[tuple[str, int], int] | None  # None: not read

    def frame(self, time: pd.Timestamp, cluster: str) -> pd.DataFrame:
        """Lay the rows out as a LAG frame (not yet validated) with owner and group columns."""
        log_start = self.log_start or {}
        names = ("group", "topic", "partition", "committed_offset", "log_end_offset",
                 "log_start_offset", *_OWNER_COLUMNS, *_GROUP_COLUMNS)  # fmt: skip
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for group in self.group_ids:
            group_committed = self.committed.get(group, {})
            description = self.described[group]
            for topic, partition in sorted(self.wanted[group]):
                key = (topic, partition)
                found = self.owners.get((group, topic, partition))
                columns["group"].append(group)
                columns["topic"].append(topic)
                columns["partition"].append(partition)
                columns["committed_offset"].append(group_committed.get(key))
                columns["log_end_offset"].append(self.log_end.get(key))
                columns["log_start_offset"].append(log_start.get(key))
                for index, name in enumerate(_OWNER_COLUMNS):
                    columns[name].append(found[index] if found else None)
                columns["group_type"].append(description.group_type or None)
                columns["group_state"].append(description.group_state or None)
        n = len(columns["group"])
        frame = pd.DataFrame(
            {
                "time": pd.Series([time] * n, dtype="datetime64[ns, UTC]"),
                "cluster": pd.Series([cluster] * n, dtype="string"),
                "group": pd.Series(columns["group"], dtype="string"),
                "topic": pd.Series(columns["topic"], dtype="string"),
                "partition": pd.Series(columns["partition"], dtype="int32"),
                "committed_offset": pd.Series(columns["committed_offset"], dtype="Int64"),
                "log_end_offset": pd.Series(columns["log_end_offset"], dtype="Int64"),
            }
        )
        frame["lag"] = frame["log_end_offset"] - frame["committed_offset"]
        if self.log_start is not None:
            frame["log_start_offset"] = pd.Series(columns["log_start_offset"], dtype="Int64")
        for name in (*_OWNER_COLUMNS, *_GROUP_COLUMNS):
            frame[name] = pd.Series(columns[name], dtype="string")
        return frame


def _owners(
    group: str, members: Iterable[GroupMember]
) -> dict[tuple[str, str, int], tuple[str, str, str]]:
    """Owner columns per (group, topic, partition).

    A share group's partitions can be assigned to several members at once: their
    ids, hosts and client ids are joined with ``,`` (sorted by member id).
    """
    by_partition: dict[tuple[str, int], list[GroupMember]] = defaultdict(list)
    for member in members:
        for tp in member.partitions:
            by_partition[tp].append(member)
    owners: dict[tuple[str, str, int], tuple[str, str, str]] = {}
    for (topic, partition), found in by_partition.items():
        found = sorted(found, key=lambda m: m.member_id)
        owners[(group, topic, partition)] = (
            ",".join(m.member_id for m in found),
            ",".join(dict.fromkeys(m.host for m in found)),
            ",".join(dict.fromkeys(m.client_id for m in found)),
        )
    return owners


def _empty_lag() -> pd.DataFrame:
    columns = {**LAG_COLUMNS, **LAG_OPTIONAL_COLUMNS}
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def _is_connection_error(exc: BaseException) -> bool:
    connection_types = kafka_error_types(
        "KafkaConnectionError",
        "NoBrokersAvailable",
        "NodeNotReadyError",
        "KafkaTimeoutError",
        "RequestTimedOutError",
    )
    return isinstance(exc, connection_types + (OSError, TimeoutError))


def _is_fatal(exc: BaseException) -> bool:
    """Errors that mean the whole snapshot failed (not one leader)."""
    # kafka-python 3 raises SaslAuthenticationFailedError; older names kept for 2.x.
    auth = kafka_error_types("AuthenticationFailedError", "SaslAuthenticationFailedError")
    return isinstance(exc, (KbpConnectionError, *auth))
