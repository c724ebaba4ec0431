"""Which groups a collector tracks on a big cluster, and how many requests it sends.

Kept apart from the snapshot code: choosing groups is a pure function of the
ListGroups answer, and counting requests wraps the admin client's send path.
"""

from __future__ import annotations

import collections
import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kbp_notebook.errors import KbpInputError

__all__ = ["GroupSelection", "count_requests", "select_groups"]

#: States in which a group has no member: nobody consumes, so nothing new happens to its lag
#: but the log end moving away from its commits.
_EMPTY_STATES = frozenset({"empty", "dead"})


@dataclass(frozen=True)
class GroupSelection:
    """Options that narrow ``snapshot(groups=None)`` on a cluster with many groups.

    Parameters
    ----------
    pattern
        A regular expression; only group ids in which it matches (``re.search``,
        like ``grep``: anchor it with ``^``/``$`` for whole ids) are tracked.
        ``None`` tracks every group.
    skip_empty
        Skip groups the broker lists as ``Empty`` or ``Dead`` (no member). Off by
        default: a group whose consumers all died is ``Empty`` and is exactly the
        one whose lag grows, so only skip them where many abandoned groups hide
        the live ones.
    max_groups
        Track at most this many groups (the first in id order, so the same ones
        snapshot after snapshot); the rest are named in a ``collector_notice``.
    """

    pattern: str | None = None
    skip_empty: bool = False
    max_groups: int | None = None

    def __post_init__(self) -> None:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise KbpInputError(
                    f"group_pattern {self.pattern!r} is not a regular expression ({exc}); "
                    f"pass e.g. '^billing-' or 'orders|payments'.",
                    column="group_pattern",
                ) from None
        if self.max_groups is not None and (
            not isinstance(self.max_groups, int) or self.max_groups < 1
        ):
            raise KbpInputError(
                f"max_groups={self.max_groups!r}: pass a positive number of groups, or None "
                f"for no cap.",
                column="max_groups",
            )

    @property
    def active(self) -> bool:
        """Whether any option narrows the listing."""
        return self.pattern is not None or self.skip_empty or self.max_groups is not None


def select_groups(
    listed: Sequence[Mapping[str, Any]], selection: GroupSelection
) -> tuple[list[str], list[str]]:
    """Choose the group ids to track from a ListGroups answer.

    Parameters
    ----------
    listed
        ListGroups entries (``group_id``, and ``group_state`` where the broker
        sends it: ListGroups v4+, Kafka 2.6+). Entries must already be consumer
        groups.
    selection
        The options.

    Returns
    -------
    (list of str, list of str)
        The sorted group ids to track, and notices (plain text) about what the
        cap left out.
    """
    matcher = re.compile(selection.pattern) if selection.pattern is not None else None
    chosen: set[str] = set()
    for entry in listed:
        group = str(entry["group_id"])
        if matcher is not None and matcher.search(group) is None:
            continue
        state = str(entry.get("group_state") or "").lower()
        if selection.skip_empty and state in _EMPTY_STATES:
            continue
        chosen.add(group)
    ordered = sorted(chosen)
    notices: list[str] = []
    cap = selection.max_groups
    if cap is not None and len(ordered) > cap:
        left_out = ordered[cap:]
        shown = ", ".join(repr(g) for g in left_out[:5])
        more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
        notices.append(
            f"{len(ordered)} groups match; tracking the first {cap} by id (max_groups) and "
            f"leaving out {shown}{more}. Narrow group_pattern or raise max_groups."
        )
        ordered = ordered[:cap]
    return ordered, notices


@contextlib.contextmanager
def count_requests(admin: Any) -> Iterator[collections.Counter[str]]:
    """Count the Kafka requests an admin client sends inside the block, by API name.

    Wraps ``admin._manager.send`` (kafka-python 3's single send path) for the
    duration of the block; the counter maps ``"OffsetFetch"`` etc. to counts.
    Where the client has no such path, the counter stays empty.
    """
    counts: collections.Counter[str] = collections.Counter()
    manager = getattr(admin, "_manager", None)
    original = getattr(manager, "send", None)
    if manager is None or original is None:
        yield counts
        return

    def counting(request: Any, *args: Any, **kwargs: Any) -> Any:
        counts[type(request).__name__.removesuffix("Request")] += 1
        return original(request, *args, **kwargs)

    manager.send = counting
    try:
        yield counts
    finally:
        manager.send = original
