"""What a batch's writes depend on, read back after writing: a directory's lanes are applied concurrently.

Between a batch's read and its writes, another lane may delete a membership's user or group, or the whole
directory. Each deletion's cascade reads (strongly consistent) after writing its tombstone; the read-back reads
after our writes. So one of the two always sees the other, and nothing stays present that a deletion ended:
- a present membership whose user or group is now a tombstone is ended at that deletion's version;
- a directory that is now a tombstone has its purge queued again (the purge is idempotent), also when the batch only
  added to its counter item.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from shared.model import records, schema
from shared.model.records import ItemKey, Record, StoredVersion


@dataclass(frozen=True)
class ReadBack:
    memberships: list[Record]  # present memberships the batch wrote
    directory_pks: frozenset[str]  # partitions the batch wrote entities into

    @classmethod
    def of(
        cls, writes: Mapping[ItemKey, Record], written: Collection[ItemKey], *, counted: Collection[str] = ()
    ) -> ReadBack:
        """`counted`: partitions whose counter item the batch added to (`shared.apply.counts`)."""
        memberships = [
            record
            for key, record in writes.items()
            if key in written and key.sk.startswith(schema.MEMBER_PREFIX) and not record.deleted
        ]
        pks = frozenset(key.pk for key in written if key.sk not in (schema.DIRECTORY_SK, schema.APPLIED_SK))
        return cls(memberships, pks | frozenset(counted))

    @property
    def keys(self) -> set[ItemKey]:
        needed = {ItemKey(pk, schema.DIRECTORY_SK) for pk in self.directory_pks}
        for record in self.memberships:
            needed.update(records.membership_parents(record))
        return needed

    def endings(self, stored: Mapping[ItemKey, StoredVersion], *, expires_at: int) -> list[Record]:
        """Tombstones for the memberships whose user or group is deleted now, at that deletion's version."""
        endings = []
        for record in self.memberships:
            deletions = [
                stored[key].vkey for key in records.membership_parents(record) if key in stored and stored[key].deleted
            ]
            if deletions:
                endings.append(records.ended_membership(record, vkey=max(deletions), expires_at=expires_at))
        return endings

    def deleted_directories(self, stored: Mapping[ItemKey, StoredVersion]) -> list[str]:
        return sorted(
            schema.directory_id_of_pk(pk)
            for pk in self.directory_pks
            if (version := stored.get(ItemKey(pk, schema.DIRECTORY_SK))) is not None and version.deleted
        )
