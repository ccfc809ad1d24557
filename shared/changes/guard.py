"""Change events never assert what is already gone: the publisher's guard, one strongly consistent read per batch.

A directory's lanes are applied concurrently (`shared.model.lanes`), so another lane can write a user, a group or a
membership a moment after `dsync.deleted` tombstoned its directory, or a membership a moment after its group was
deleted. The applier repairs the store at once (its read-back ends the membership and queues the purge again), but
the stream still carries the brief live rows. Before publishing, the guard reads the directory of every event that
asserts something exists (provisioned, updated, created, added, activated, ...), and the user and group of every
`membership.added`:

- an event whose directory is a tombstone is dropped: the directory's purge publishes the removals of whatever it
  erases, and an app that folded a late `user.provisioned` after `directory.deleted` would keep a ghost;
- a `membership.added` whose user or group is a tombstone is dropped.

Whatever is published was true when it was read, and a later deletion publishes its own removal. Removals
(`*.deprovisioned`, `*.deleted`, `*.removed`, `directory.token_revoked`) always pass.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from shared.changes.derive import (
    DIRECTORY_DELETED,
    DIRECTORY_TOKEN_REVOKED,
    GROUP_DELETED,
    MEMBERSHIP_ADDED,
    MEMBERSHIP_REMOVED,
    USER_DEPROVISIONED,
    ChangeEvent,
)
from shared.model import records
from shared.model.records import ItemKey, StoredVersion

REMOVALS = frozenset(
    {USER_DEPROVISIONED, GROUP_DELETED, MEMBERSHIP_REMOVED, DIRECTORY_DELETED, DIRECTORY_TOKEN_REVOKED}
)


class VersionReader(Protocol):
    def get_versions(self, keys: Collection[ItemKey]) -> dict[ItemKey, StoredVersion]: ...


def parents(event: ChangeEvent) -> tuple[ItemKey, ItemKey]:
    membership = event.detail["membership"]
    return (
        records.user_key(event.directory_id, str(membership["user_id"])),
        records.group_key(event.directory_id, str(membership["group_id"])),
    )


def depends_on(event: ChangeEvent) -> tuple[ItemKey, ...]:
    """The keys that must not be tombstones for the event to be true; none for a removal."""
    if event.detail_type in REMOVALS:
        return ()
    directory = (records.directory_key(event.directory_id),)
    return directory + parents(event) if event.detail_type == MEMBERSHIP_ADDED else directory


def untrue_events(events: Sequence[ChangeEvent], reader: VersionReader) -> set[int]:
    """Positions of the events that assert something whose directory (or, for an addition, user or group) is a
    tombstone now."""
    needs = [depends_on(event) for event in events]
    keys = {key for keys in needs for key in keys}
    if not keys:
        return set()
    stored = reader.get_versions(keys)
    return {
        index
        for index, keys in enumerate(needs)
        if any((version := stored.get(key)) is not None and version.deleted for key in keys)
    }
