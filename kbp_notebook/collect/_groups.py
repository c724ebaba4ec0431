"""Describe every kind of group Kafka 4 has, batched per coordinator (private).

Kafka 4 has four group types (``ListGroups`` v5 names them):

``classic``
    The original protocol (JoinGroup/SyncGroup). Described by DescribeGroups.
``consumer``
    KIP-848 (``group.protocol=consumer``, GA in Kafka 4.0). Only
    ConsumerGroupDescribe (API key 69) describes it: DescribeGroups answers
    "not a classic group" with no members.
``share``
    KIP-932 share groups (queues). Described by ShareGroupDescribe; they
    commit no offsets: DescribeShareGroupOffsets gives each partition's
    *share-partition start offset* (every record before it is acknowledged).
``streams``
    KIP-1071 streams groups. Described by StreamsGroupDescribe; their
    committed offsets come from OffsetFetch like any group's. A member owns
    *active tasks* (subtopology, partition): task ``(s, p)`` reads partition
    ``p`` of every source topic of subtopology ``s`` (the group's topology
    says which), so that is the partition the member owns here. Standby and
    warm-up tasks read no input and own nothing.

kafka-python 3 ships the request classes for the classic APIs only; the
KIP-848 and KIP-932 ones are declared here from Kafka's own message schemas
(``kafka_schemas/*.json``, copied unchanged from ``kafka-clients`` 4.1.2,
Apache License 2.0) with kafka-python's ``ApiMessage`` machinery, so they go
through the same connections, credentials and version negotiation as every
other request of the collector.

Cost: one batched FindCoordinator for all groups, then per coordinator at
most one request of each describe kind (and one DescribeShareGroupOffsets),
whatever the number of groups.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GROUP_TYPES",
    "GroupDescription",
    "GroupMember",
    "describe_groups_by_type",
    "listed_group_types",
    "share_group_start_offsets",
]

#: The group types ``LagCollector`` reads (a classic group with a non-consumer
#: protocol type, e.g. Kafka Connect's ``connect``, is not a consumer group).
GROUP_TYPES = ("classic", "consumer", "share", "streams")
_CLASSIC_CONSUMER_PROTOCOLS = ("consumer", "")


@dataclass(frozen=True)
class GroupMember:
    """One member of a group and the partitions it owns."""

    member_id: str
    host: str
    client_id: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class GroupDescription:
    """What the group coordinator says about one group."""

    group_id: str
    group_type: str
    group_state: str
    members: tuple[GroupMember, ...]
    #: The coordinator's error for this group (e.g. not found), or None.
    error: str | None = None


@functools.cache
def _messages() -> dict[str, Any]:
    """Declare the request/response classes kafka-python 3 lacks (once)."""
    import types

    from kafka.protocol.api_message import ApiMessage

    from kbp_notebook.collect import kafka_schemas

    classes: dict[str, Any] = {}
    for name in (
        "ConsumerGroupDescribe",
        "ShareGroupDescribe",
        "StreamsGroupDescribe",
        "DescribeShareGroupOffsets",
    ):
        for kind in ("Request", "Response"):
            # the class name picks the schema file; responses register themselves for decoding
            classes[name + kind] = types.new_class(
                name + kind, (ApiMessage,), {"load_json": kafka_schemas}
            )
    return classes


def listed_group_types(listed: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Return ``{group_id: (group_type, group_state)}`` for the consumer-like groups listed.

    Parameters
    ----------
    listed
        ``KafkaAdminClient.list_groups()`` output. ListGroups v5 (Kafka 3.8+)
        carries ``group_type``; older brokers only have classic groups.

    Returns
    -------
    dict
        Classic groups of the consumer protocol, and every ``consumer``,
        ``share`` and ``streams`` group; ``group_state`` is ``""`` when the
        broker does not say.
    """
    types: dict[str, tuple[str, str]] = {}
    for group in listed:
        group_type = str(group.get("group_type") or "classic").lower()
        protocol = str(group.get("protocol_type") or "")
        if group_type not in GROUP_TYPES:
            continue
        if group_type == "classic" and protocol not in _CLASSIC_CONSUMER_PROTOCOLS:
            continue
        types[str(group["group_id"])] = (group_type, str(group.get("group_state") or ""))
    return types


def _assigned(assignment: Any) -> tuple[tuple[str, int], ...]:
    """(topic, partition) pairs of a KIP-848 / KIP-932 member assignment dict."""
    if not assignment:
        return ()
    return tuple(
        (str(entry["topic_name"]), int(p))
        for entry in assignment.get("topic_partitions") or ()
        for p in entry.get("partitions") or ()
    )


def _task_partitions(
    assignment: Any, sources: Mapping[str, list[str]]
) -> tuple[tuple[str, int], ...]:
    """(topic, partition) pairs a streams member's active tasks read."""
    if not assignment:
        return ()
    return tuple(
        (topic, int(p))
        for task in assignment.get("active_tasks") or ()
        for p in task.get("partitions") or ()
        for topic in sources.get(str(task["subtopology_id"]), ())
    )


def _streams_sources(group: Mapping[str, Any]) -> dict[str, list[str]]:
    """Subtopology id -> the topics its tasks read (source and repartition-source topics)."""
    topology = group.get("topology") or {}
    return {
        str(sub["subtopology_id"]): [
            *(str(t) for t in sub.get("source_topics") or ()),
            *(str(t["name"]) for t in sub.get("repartition_source_topics") or ()),
        ]
        for sub in topology.get("subtopologies") or ()
    }


def _classic_partitions(member: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """(topic, partition) pairs of a classic member's decoded assignment."""
    assignment = member.get("member_assignment")
    if assignment is None or isinstance(assignment, bytes | bytearray | str):
        return ()
    if isinstance(assignment, dict):  # kafka-python 3 hands back to_dict() output
        return tuple(
            (str(entry["topic"]), int(p))
            for entry in assignment.get("assigned_partitions") or ()
            for p in entry.get("partitions") or ()
        )
    partitions = getattr(assignment, "partitions", None)
    if callable(partitions):
        return tuple((tp.topic, int(tp.partition)) for tp in partitions())
    pairs = getattr(assignment, "assigned_partitions", None) or []
    return tuple((str(topic), int(p)) for topic, parts in pairs for p in parts)


def _member(raw: Mapping[str, Any], partitions: tuple[tuple[str, int], ...]) -> GroupMember:
    return GroupMember(
        member_id=str(raw.get("member_id") or ""),
        host=str(raw.get("client_host") or ""),
        client_id=str(raw.get("client_id") or ""),
        partitions=partitions,
    )


def _error_text(code: int, message: str | None) -> str | None:
    if not code:
        return None
    import kafka.errors as kerr

    return str(kerr.for_code(code)(message or ""))


def describe_groups_by_type(
    admin: Any, group_types: Mapping[str, tuple[str, str]]
) -> dict[str, GroupDescription]:
    """Describe groups of every type, one request per coordinator and type.

    Parameters
    ----------
    admin
        A connected ``kafka.KafkaAdminClient``.
    group_types
        ``{group_id: (group_type, listed_state)}``; a group of unknown type
        (``""``) is described as classic, as kafka-python would.

    Returns
    -------
    dict
        ``{group_id: GroupDescription}`` for every group asked about.
    """
    if not group_types:
        return {}
    messages = _messages()

    async def describe() -> dict[str, GroupDescription]:
        coordinators = await admin._find_coordinator_ids(list(group_types))
        buckets: dict[tuple[int, str], list[str]] = defaultdict(list)
        for group, (group_type, _) in group_types.items():
            buckets[(coordinators[group], group_type or "classic")].append(group)
        found: dict[str, GroupDescription] = {}
        for (node, group_type), ids in sorted(buckets.items()):
            if group_type == "classic":
                response = await admin._manager.send(
                    admin._describe_groups_request(ids), node_id=node
                )
                for group, raw in admin._describe_groups_process_response(response).items():
                    found[str(group)] = GroupDescription(
                        group_id=str(group),
                        group_type="classic",
                        group_state=str(raw.get("group_state") or ""),
                        members=tuple(
                            _member(m, _classic_partitions(m)) for m in raw.get("members") or ()
                        ),
                        error=raw.get("error"),
                    )
            elif group_type in ("consumer", "share", "streams"):
                name = {
                    "consumer": "ConsumerGroupDescribe",
                    "share": "ShareGroupDescribe",
                    "streams": "StreamsGroupDescribe",
                }[group_type]
                request = messages[name + "Request"](
                    group_ids=ids, include_authorized_operations=False
                )
                response = await admin._manager.send(request, node_id=node)
                for raw in response.to_dict()["groups"]:
                    sources = _streams_sources(raw) if group_type == "streams" else {}
                    found[str(raw["group_id"])] = GroupDescription(
                        group_id=str(raw["group_id"]),
                        group_type=group_type,
                        group_state=str(raw.get("group_state") or ""),
                        members=tuple(
                            _member(
                                m,
                                _task_partitions(m.get("assignment"), sources)
                                if group_type == "streams"
                                else _assigned(m.get("assignment")),
                            )
                            for m in raw.get("members") or ()
                        ),
                        error=_error_text(raw.get("error_code", 0), raw.get("error_message")),
                    )
            else:  # a type this module does not know: listed state only
                for group in ids:
                    found[group] = GroupDescription(
                        group_id=group,
                        group_type=group_type,
                        group_state=group_types[group][1],
                        members=(),
                    )
        return found

    result: dict[str, GroupDescription] = admin._manager.run(describe)
    return result


def share_group_start_offsets(
    admin: Any, group_ids: Iterable[str]
) -> dict[str, dict[tuple[str, int], int]]:
    """Return each share group's share-partition start offsets, one request per coordinator.

    Parameters
    ----------
    admin
        A connected ``kafka.KafkaAdminClient``.
    group_ids
        Share group ids.

    Returns
    -------
    dict
        ``{group_id: {(topic, partition): start_offset}}``; partitions with
        an error or no start offset yet (``-1``) are left out.
    """
    ids = list(dict.fromkeys(group_ids))
    if not ids:
        return {}
    request_class = _messages()["DescribeShareGroupOffsetsRequest"]
    group_entry = request_class.DescribeShareGroupOffsetsRequestGroup

    async def fetch() -> dict[str, dict[tuple[str, int], int]]:
        coordinators = await admin._find_coordinator_ids(ids)
        buckets: dict[int, list[str]] = defaultdict(list)
        for group in ids:
            buckets[coordinators[group]].append(group)
        offsets: dict[str, dict[tuple[str, int], int]] = {}
        for node, bucket in sorted(buckets.items()):
            request = request_class(groups=[group_entry(group_id=g, topics=None) for g in bucket])
            response = await admin._manager.send(request, node_id=node)
            for group in response.to_dict()["groups"]:
                offsets[str(group["group_id"])] = {
                    (str(topic["topic_name"]), int(part["partition_index"])): int(
                        part["start_offset"]
                    )
                    for topic in group.get("topics") or ()
                    for part in topic.get("partitions") or ()
                    if not part.get("error_code") and int(part["start_offset"]) >= 0
                }
        return offsets

    result: dict[str, dict[tuple[str, int], int]] = admin._manager.run(fetch)
    return result
