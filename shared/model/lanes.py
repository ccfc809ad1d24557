"""Which FIFO message group an event joins: one of its directory's lanes.

SQS FIFO keeps at most one batch of a group in flight, so a directory that is one group drains at about ten events
per apply round trip, and a large backlog in one group blocks every group behind it in SQS's 120,000-message scan
window. The write rules do not need delivery order (every write is a max-register), so a directory is split into
lanes by entity: a user's events (and its memberships) share a lane, a group's events share a lane, and events about
the directory itself (activation, deactivation, deletion, tokens) keep one ordered lane of their own.

A lane is a pure function of the event's body, never of its source: a webhook and the Events API page carrying the
same event land in the same group, so SQS's per-group deduplication (high-throughput mode) still drops the second.
Changing `LANES_PER_DIRECTORY` moves entities to other lanes; events queued across the change may be applied
twice, which the write rules make harmless.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

LANES_PER_DIRECTORY: Final = 16
DIRECTORY_LANE: Final = "d"
_SEPARATOR: Final = ":"
_MEMBERSHIP_EVENTS = frozenset({"dsync.group.user_added", "dsync.group.user_removed"})


def lane_of(event_type: str, data: Mapping[str, Any], *, lanes: int = LANES_PER_DIRECTORY) -> str:
    """The lane name: `d` for directory-level events, else the entity's hash bucket `0`..`lanes-1`."""
    entity = _entity_id(event_type, data)
    if entity is None or lanes <= 1:
        return DIRECTORY_LANE
    digest = hashlib.blake2b(entity.encode(), digest_size=8).digest()
    return str(int.from_bytes(digest, "big") % lanes)


def message_group_id(directory_id: str, event_type: str, data: Mapping[str, Any]) -> str:
    """`<directory id>:<lane>`, within SQS's 128-character limit for the directory ids WorkOS issues."""
    return f"{directory_id}{_SEPARATOR}{lane_of(event_type, data)}"


def directory_of_group(group_id: str) -> str:
    """The directory a message group belongs to (a bare directory id, from before lanes, is its own directory)."""
    head, separator, _ = group_id.rpartition(_SEPARATOR)
    return head if separator else group_id


def _entity_id(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The entity whose events must share a lane: the user for user and membership events, the group for group
    events, none for directory and token events."""
    if event_type in _MEMBERSHIP_EVENTS:
        user = data.get("user")
        value = user.get("id") if isinstance(user, Mapping) else None
    elif event_type.startswith(("dsync.user.", "dsync.group.")):
        value = data.get("id")
    else:
        return None
    return value if isinstance(value, str) and value else None
