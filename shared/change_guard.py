"""No `membership.added` for a user or group that is already deleted when it would be published.

A directory's lanes are applied concurrently (`shared.lanes`), so a membership can be written a moment after its
group was deleted by another applier; the applier's read-back ends it at once (`shared.apply`, step 5), but the
stream still carries the brief present row. Before publishing, the user and group of every `membership.added` in
the batch are read (one strongly consistent read): if either is a tombstone, the event is dropped. Whatever is
published was true when it was read: the membership was present and both ends were live, and a later deletion of
either publishes its own `membership.removed` through the cascade.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from shared import records
from shared.changes import MEMBERSHIP_ADDED, ChangeEvent
from shared.records import ItemKey, StoredVersion


class VersionReader(Protocol):
    def get_versions(self, keys: Collection[ItemKey]) -> dict[ItemKey, StoredVersion]: ...


def parents(event: ChangeEvent) -> tuple[ItemKey, ItemKey]:
    membership = event.detail["membership"]
    return (
        records.user_key(event.directory_id, str(membership["user_id"])),
        records.group_key(event.directory_id, str(membership["group_id"])),
    )


def untrue_additions(events: Sequence[ChangeEvent], reader: VersionReader) -> set[int]:
    """Positions of the `membership.added` events whose user or group is a tombstone now."""
    additions = [index for index, event in enumerate(events) if event.detail_type == MEMBERSHIP_ADDED]
    if not additions:
        return set()
    keys = {key for index in additions for key in parents(events[index])}
    stored = reader.get_versions(keys)
    return {
        index
        for index in additions
        if any((version := stored.get(key)) is not None and version.deleted for key in parents(events[index]))
    }
