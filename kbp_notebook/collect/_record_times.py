"""Read the timestamp of the next record each group will consume (private).

Lag in seconds the exact way: the record at a partition's committed offset
is the oldest one its group has not processed; ``now - its timestamp`` is
how stale the data downstream is. No history needed.

One Fetch request per partition leader for all partitions (sent to every
leader at once), never joining a group and never committing:
``max_wait_ms=0`` (the broker answers at once with what it has), a byte cap
per partition and per request, and a time budget (the request timeout).
More rounds only for partitions read at several offsets (several groups) and
for batches larger than their first share (below).

What comes back is read like this:

* The record at the committed offset: its timestamp (CreateTime: the
  producer's clock; LogAppendTime: the broker's, for the whole batch).
* The committed offset no longer exists (compacted away, or deleted by
  retention: the fetch starts at the log start offset instead): the next
  available record's timestamp, note ``next_available``.
* Only transaction markers (control batches) between the committed offset
  and the log end: nothing left to consume, note ``only_markers`` (0 s).
  Markers before a data record are skipped.
* A batch larger than the partition's share of the byte cap: the broker
  sends nothing for that partition (only the first partition of a response
  may exceed its share, by one batch), so it is asked again with an even
  split of the bytes left, until it fits, 1 MiB is reached or the cap is
  spent. Should a response still end inside the batch holding the
  record, its header tells when the batch's first record was written: that
  time, note ``batch_start`` (too old by at most the batch's time span).
"""

from __future__ import annotations

import struct
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FetchStats", "RecordTime", "read_record_times"]

#: Record batch v2 header: base offset (0), attributes (21), last offset delta (23),
#: first timestamp (27), max timestamp (35); 61 bytes in all.
_HEADER = struct.Struct(">qiibIhiqqqhii")
_TIMESTAMP_TYPE_BIT = 0x08
_CONTROL_BIT = 0x20
#: Bytes a partition may get in one Fetch: at least a small batch, at most 1 MiB
#: (Kafka's default max.message.bytes is about 1 MiB).
_MIN_SHARE = 512
_MAX_SHARE = 1 << 20
#: Fetch v12 is the last version that names topics (v13+ wants topic ids); Kafka
#: 2.7 to 4.x all serve it.
_FETCH_MAX_VERSION = 12


@dataclass(frozen=True)
class RecordTime:
    """When the next record to consume was written."""

    #: Milliseconds since the epoch; None when nothing is left to consume.
    timestamp_ms: int | None
    #: ``CreateTime`` or ``LogAppendTime`` (``""`` when no record).
    timestamp_type: str
    #: Offset of the record whose timestamp this is.
    offset: int
    #: ``""``, ``next_available``, ``only_markers`` or ``batch_start`` (see module).
    note: str = ""


@dataclass
class FetchStats:
    """What reading record times cost."""

    requests: int = 0
    partitions: int = 0
    answered: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def _header(buffer: bytes) -> tuple[int, int, int, int, int] | None:
    """Return (base offset, attributes, last offset delta, first ts, max ts) of a v2 batch."""
    if len(buffer) < _HEADER.size:
        return None
    fields = _HEADER.unpack_from(buffer, 0)
    if fields[3] != 2:  # magic
        return None
    return fields[0], fields[5], fields[6], fields[7], fields[8]


def _timestamp_type(attributes: int) -> str:
    return "LogAppendTime" if attributes & _TIMESTAMP_TYPE_BIT else "CreateTime"


def record_time_from_bytes(records: bytes, offset: int, high_watermark: int) -> RecordTime | None:
    """Find the first data record at or after ``offset`` in fetched record bytes.

    Parameters
    ----------
    records
        The ``records`` field of one partition of a Fetch response.
    offset
        The offset asked for (the committed offset, or the log start).
    high_watermark
        The partition's high watermark from the same response.

    Returns
    -------
    RecordTime or None
        None when the bytes say nothing about it (empty, or cut before the
        first batch header).
    """
    from kafka.errors import KafkaError
    from kafka.record import MemoryRecords

    position = 0
    last_seen = offset - 1
    while position < len(records):
        header = _header(records[position:])
        if header is None:
            return None
        base, attributes, last_delta, first_ts, max_ts = header
        batch_length = struct.unpack_from(">i", records, position + 8)[0] + 12
        whole = position + batch_length <= len(records)
        last_offset = base + last_delta
        if last_offset < offset or attributes & _CONTROL_BIT:
            last_seen = max(last_seen, last_offset)
            position += batch_length
            if not whole:
                break
            continue
        kind = _timestamp_type(attributes)
        if whole:
            try:
                batch = MemoryRecords(records[position : position + batch_length]).next_batch()
                for record in batch or ():
                    if record.offset >= offset:
                        note = "next_available" if record.offset > offset else ""
                        return RecordTime(int(record.timestamp), kind, int(record.offset), note)
            except (KafkaError, ValueError, struct.error):
                pass  # e.g. a codec kafka-python lacks: fall back to the header below
        if kind == "LogAppendTime":  # one append time for the whole batch
            start = max(base, offset)
            return RecordTime(int(max_ts), kind, start, "next_available" if start > offset else "")
        return RecordTime(int(first_ts), kind, base, "batch_start")
    if last_seen + 1 >= high_watermark:
        return RecordTime(None, "", high_watermark, "only_markers")
    return None


def read_record_times(
    admin: Any,
    targets: Mapping[tuple[str, int, int], int],
    *,
    max_bytes: int,
    time_budget_s: float,
) -> tuple[dict[tuple[str, int, int], RecordTime], FetchStats]:
    """Read the timestamp of the record at each given offset, one Fetch per leader.

    Parameters
    ----------
    admin
        A connected ``kafka.KafkaAdminClient``.
    targets
        ``{(topic, partition, offset): leader_id}``. A partition read by several
        groups at different offsets needs one round per distinct offset (a Fetch
        names each partition once); every round is one request per leader.
    max_bytes
        Cap on the record bytes of all responses together; each target first
        gets an equal share (at least 512 bytes, at most 1 MiB), and on a
        retry, when its batch did not fit, an even split of what is left.
    time_budget_s
        The time all rounds may take; what has not been answered by then gets
        no time (a problem is noted).

    Returns
    -------
    tuple
        ``{(topic, partition, offset): RecordTime}`` for the targets answered,
        and the cost (:class:`FetchStats`).
    """
    stats = FetchStats(partitions=len(targets))
    if not targets:
        return {}, stats
    share = dict.fromkeys(targets, int(min(_MAX_SHARE, max(_MIN_SHARE, max_bytes // len(targets)))))
    pending: dict[tuple[str, int], list[int]] = defaultdict(list)
    for topic, partition, offset in sorted(targets):
        pending[(topic, partition)].append(offset)
    deadline = time.monotonic() + time_budget_s
    started = time.perf_counter()
    found: dict[tuple[str, int, int], RecordTime] = {}
    too_big = 0
    while pending:
        wanted = {(*tp, offsets[0]): targets[(*tp, offsets[0])] for tp, offsets in pending.items()}
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            left = sum(len(offsets) for offsets in pending.values())
            stats.problems.append(
                f"time budget of {time_budget_s:g} s spent; {left} partition offset(s) not read"
            )
            break
        before = stats.bytes
        empty = _fetch_round(admin, wanted, share, remaining_s, stats, found)
        max_bytes -= stats.bytes - before
        for target in wanted:
            bigger = int(min(_MAX_SHARE, max(max_bytes, 0) // max(len(empty), 1)))
            if target in empty and bigger > share[target]:
                # the broker sends nothing for a partition whose batch exceeds its share:
                # ask again with an even split of the bytes left (never past the cap)
                share[target] = bigger
                continue
            too_big += target in empty
            offsets = pending[target[:2]]
            offsets.pop(0)
            if not offsets:
                del pending[target[:2]]
    if too_big:
        stats.problems.append(
            f"{too_big} partition offset(s) sit in record batches larger than the byte cap "
            f"allows (time_lag_max_bytes)"
        )
    stats.seconds = time.perf_counter() - started
    stats.answered = len(found)
    return found, stats


_Targets = dict[str, list[tuple[int, int]]]  # topic -> [(partition, offset)] for one leader


def _fetch_round(
    admin: Any,
    wanted: Mapping[tuple[str, int, int], int],
    share: Mapping[tuple[str, int, int], int],
    timeout_s: float,
    stats: FetchStats,
    found: dict[tuple[str, int, int], RecordTime],
) -> set[tuple[str, int, int]]:
    """One Fetch per leader (sent to all leaders at once) for partitions named once each.

    Returns the targets the broker answered with no bytes although records are
    there (their batch is larger than their share).
    """
    by_leader: dict[int, _Targets] = defaultdict(lambda: defaultdict(list))
    for (topic, partition, offset), leader in wanted.items():
        by_leader[leader][topic].append((partition, offset))
    answers = _send_to_leaders(admin, by_leader, share, timeout_s)
    stats.requests += len(by_leader)
    empty: set[tuple[str, int, int]] = set()
    for leader, response in answers:
        if isinstance(response, BaseException):
            count = sum(len(parts) for parts in by_leader[leader].values())
            stats.problems.append(
                f"broker {leader} did not return records for {count} partition(s) "
                f"({type(response).__name__}: {response})"
            )
            continue
        empty |= _read_answer(response, by_leader[leader], stats, found)
    return empty


def _fetch_request(topics: Mapping[str, list[tuple[int, int]]], share: Mapping[Any, int]) -> Any:
    """Build a Fetch for these (partition, offset)s, each allowed its share of bytes."""
    from kafka.protocol.consumer import FetchRequest

    fetch_topic = FetchRequest.FetchTopic
    fetch_partition = fetch_topic.FetchPartition
    total = sum(share[(topic, p, offset)] for topic, parts in topics.items() for p, offset in parts)
    return FetchRequest(
        replica_id=-1,
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=total,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            fetch_topic(
                topic=topic,
                partitions=[
                    fetch_partition(
                        partition=p,
                        current_leader_epoch=-1,
                        fetch_offset=offset,
                        last_fetched_epoch=-1,
                        log_start_offset=-1,
                        partition_max_bytes=share[(topic, p, offset)],
                    )
                    for p, offset in sorted(parts)
                ],
            )
            for topic, parts in sorted(topics.items())
        ],
        forgotten_topics_data=[],
        rack_id="",
        max_version=_FETCH_MAX_VERSION,
    )


def _send_to_leaders(
    admin: Any, by_leader: Mapping[int, _Targets], share: Mapping[Any, int], timeout_s: float
) -> list[tuple[int, Any]]:
    """Send every leader its Fetch at once; return (leader, response or the exception)."""
    timeout_ms = max(1, int(timeout_s * 1000))

    async def fetch_all() -> list[tuple[int, Any]]:
        futures = [
            (
                leader,
                admin._manager.send(
                    _fetch_request(topics, share), node_id=leader, request_timeout_ms=timeout_ms
                ),
            )
            for leader, topics in sorted(by_leader.items())
        ]
        answers: list[tuple[int, Any]] = []
        for leader, future in futures:
            try:
                answers.append((leader, await future))
            except Exception as exc:  # noqa: BLE001 - one leader's failure leaves the rest
                answers.append((leader, exc))
        return answers

    answers: list[tuple[int, Any]] = admin._manager.run(fetch_all)
    return answers


def _read_answer(
    response: Any,
    targets: _Targets,
    stats: FetchStats,
    found: dict[tuple[str, int, int], RecordTime],
) -> set[tuple[str, int, int]]:
    """Put the record times of one leader's answer into ``found``; return the empty targets."""
    asked = {(topic, p): offset for topic, parts in targets.items() for p, offset in parts}
    empty: set[tuple[str, int, int]] = set()
    for topic_data in response.responses:
        for part in topic_data.partitions:
            tp = (str(topic_data.topic), int(part.partition_index))
            if part.error_code or tp not in asked:
                continue
            records = bytes(part.records or b"")
            stats.bytes += len(records)
            if not records and int(part.high_watermark) > asked[tp]:
                empty.add((*tp, asked[tp]))
                continue
            got = record_time_from_bytes(records, asked[tp], int(part.high_watermark))
            if got is not None:
                found[(*tp, asked[tp])] = got
    return empty
