"""Group-type helpers of the collector that need no cluster."""

from kbp_notebook.collect._groups import (
    GroupMember,
    _messages,
    _streams_sources,
    _task_partitions,
    listed_group_types,
)
from kbp_notebook.collect.kafka_lag import _owners


def test_listing_keeps_consumer_like_groups_of_every_type():
    def group(group_id, protocol, state=None, group_type=None):
        listed = {"group_id": group_id, "protocol_type": protocol}
        if state is not None:
            listed.update(group_state=state, group_type=group_type)
        return listed

    listed = [
        group("a", "consumer", "Stable", "classic"),
        group("b", "consumer", "Empty", "consumer"),
        group("c", "share", "Stable", "share"),
        group("d", "streams", "Stable", "streams"),
        group("connect-x", "connect", "Stable", "classic"),
        group("old", ""),  # ListGroups < v4: classic, no state
    ]
    assert listed_group_types(listed) == {
        "a": ("classic", "Stable"),
        "b": ("consumer", "Empty"),
        "c": ("share", "Stable"),
        "d": ("streams", "Stable"),
        "old": ("classic", ""),
    }


def test_a_partition_shared_by_share_group_members_names_them_all():
    members = [
        GroupMember("m2", "/10.0.0.2", "app", (("t", 0), ("t", 1))),
        GroupMember("m1", "/10.0.0.1", "app", (("t", 0),)),
    ]
    owners = _owners("g", members)
    assert owners[("g", "t", 0)] == ("m1,m2", "/10.0.0.1,/10.0.0.2", "app")
    assert owners[("g", "t", 1)] == ("m2", "/10.0.0.2", "app")


def test_kip848_and_kip932_requests_encode_with_the_kafka_schemas():
    messages = _messages()
    request = messages["ConsumerGroupDescribeRequest"](
        group_ids=["g"], include_authorized_operations=False
    )
    assert request.API_KEY == 69
    assert messages["ShareGroupDescribeRequest"].API_KEY == 77
    assert messages["DescribeShareGroupOffsetsRequest"].API_KEY == 90
    encoded = request.encode(version=0, header=False)
    assert b"g" in encoded and len(encoded) < 16


def test_streams_active_tasks_own_the_partitions_of_their_subtopology_sources():
    group = {"topology": {"subtopologies": [
        {"subtopology_id": "0", "source_topics": ["in"], "repartition_source_topics": []},
        {"subtopology_id": "1", "source_topics": [],
         "repartition_source_topics": [{"name": "app-repartition"}]},
    ]}}  # fmt: skip
    sources = _streams_sources(group)
    assignment = {
        "active_tasks": [
            {"subtopology_id": "0", "partitions": [0, 1]},
            {"subtopology_id": "1", "partitions": [2]},
        ],
        "standby_tasks": [{"subtopology_id": "0", "partitions": [2]}],
    }
    assert _task_partitions(assignment, sources) == (("in", 0), ("in", 1), ("app-repartition", 2))
    assert _task_partitions(None, sources) == ()
    assert _messages()["StreamsGroupDescribeRequest"].API_KEY == 89
