"""Choosing the groups to track on a big cluster (pure: from a ListGroups answer)."""

from __future__ import annotations

import pytest

from kbp_notebook.collect._group_select import GroupSelection, count_requests, select_groups
from kbp_notebook.errors import KbpInputError

LISTED = [
    {"group_id": "billing-2", "group_state": "Stable"},
    {"group_id": "billing-1", "group_state": "Empty"},
    {"group_id": "audit", "group_state": "Dead"},
    {"group_id": "orders", "group_state": "PreparingRebalance"},
    {"group_id": "old-broker"},  # ListGroups < v4 sends no state: kept
]


def test_no_options_keep_every_group_sorted() -> None:
    chosen, notices = select_groups(LISTED, GroupSelection())
    assert chosen == ["audit", "billing-1", "billing-2", "old-broker", "orders"]
    assert notices == []


def test_pattern_searches_ids() -> None:
    assert select_groups(LISTED, GroupSelection(pattern="^billing"))[0] == [
        "billing-1",
        "billing-2",
    ]
    assert select_groups(LISTED, GroupSelection(pattern="r"))[0] == ["old-broker", "orders"]


def test_skip_empty_drops_empty_and_dead_only() -> None:
    chosen, _ = select_groups(LISTED, GroupSelection(skip_empty=True))
    assert chosen == ["billing-2", "old-broker", "orders"]


def test_cap_keeps_the_first_ids_and_names_the_rest() -> None:
    chosen, notices = select_groups(LISTED, GroupSelection(max_groups=2))
    assert chosen == ["audit", "billing-1"]
    assert len(notices) == 1
    assert "5 groups match" in notices[0] and "'billing-2'" in notices[0]
    assert "'orders'" in notices[0]


@pytest.mark.parametrize(
    ("options", "match"),
    [({"pattern": "(open"}, "group_pattern"), ({"max_groups": 0}, "max_groups")],
)
def test_bad_options_say_what_to_pass(options: dict, match: str) -> None:
    with pytest.raises(KbpInputError, match=match):
        GroupSelection(**options)


def test_count_requests_counts_by_api_and_restores_send() -> None:
    class FetchRequest:
        pass

    class OffsetFetchRequest:
        pass

    class Manager:
        def send(self, request: object, node_id: int | None = None) -> str:
            return "sent"

    class Admin:
        _manager = Manager()

    admin = Admin()
    original = admin._manager.send
    with count_requests(admin) as counts:
        assert admin._manager.send(OffsetFetchRequest(), node_id=1) == "sent"
        admin._manager.send(OffsetFetchRequest())
        admin._manager.send(FetchRequest())
    assert counts == {"OffsetFetch": 2, "Fetch": 1}
    assert admin._manager.send == original
