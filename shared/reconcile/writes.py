"""Reconcile's writes: the apply Lambda's conditional write (`write_record`), plus a cache of stored versions.

Like the applier's, each write's transition moves the directory's counts (`shared.apply.counts`): one UpdateItem ADD
after each page of writes, or after a single write.

Stored versions of a directory's users (or groups) are read once per invocation and kept current with the run's
own writes. Webhooks landing meanwhile can make the cache stale, which is safe: every write is conditional, and a
deletion is only ever made after WorkOS confirms it with a 404.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from shared.apply import counts
from shared.apply.counts import CountTally
from shared.apply.read_back import ReadBack
from shared.apply.write_rule import Cascade, WriteResult, end_memberships, write_record
from shared.model import records, schema
from shared.model.records import Record, StoredVersion
from shared.reconcile.ports import ReconcileTable


class RepairWriter:
    def __init__(
        self,
        table: ReconcileTable,
        directory_id: str,
        *,
        clock: Callable[[], float],
        tombstone_ttl_seconds: int,
        pool: ThreadPoolExecutor,
    ) -> None:
        self._table = table
        self.directory_id = directory_id
        self._clock = clock
        self._ttl = tombstone_ttl_seconds
        self.pool = pool
        self._cache: dict[str, dict[str, StoredVersion]] = {}
        self._tally = CountTally()
        # Writes run on the pool while the run loads the next kind's versions (pages are pipelined): one lock for
        # the cache's shape and its updates, or a writer iterating it meets a new kind mid-iteration.
        self._lock = threading.Lock()

    def versions(self, prefix: str) -> dict[str, StoredVersion]:
        """Stored versions of the directory's users (`schema.USER_PREFIX`) or groups, by id."""
        with self._lock:
            cached = self._cache.get(prefix)
        if cached is None:
            loaded = self._table.entity_versions(self.directory_id, prefix)
            with self._lock:
                cached = self._cache.setdefault(prefix, loaded)
        return cached

    def live_group_memberships(self, group_id: str) -> list[tuple[str, str]]:
        return self._table.live_group_memberships(self.directory_id, group_id)

    def stored(self, key: records.ItemKey) -> StoredVersion | None:
        return self._table.get_versions([key]).get(key)

    def write(self, record: Record) -> bool:
        """True if the store took it (it was newer); raises on a store failure, so the run checkpoints and fails."""
        try:
            return self._write(record)
        finally:
            self.flush_counts()

    def write_many(self, batch: list[Record]) -> list[bool]:
        try:
            return list(self.pool.map(self._write, batch))
        finally:
            self.flush_counts()

    def flush_counts(self) -> None:
        """ADD the counts the writes so far moved (a page's, concurrent pages' too): one UpdateItem per change."""
        counts.flush(self._table, self._tally.take())

    def _write(self, record: Record) -> bool:
        result, detail = write_record(self._table, record, self._tally)
        if result in (WriteResult.TRANSIENT, WriteResult.THROTTLED, WriteResult.PERMANENT):
            raise RuntimeError(f"write of {record.key.sk} failed: {detail}")
        written = result is WriteResult.WRITTEN
        if written:
            with self._lock:
                for prefix, cache in self._cache.items():
                    if record.key.sk.startswith(prefix):
                        cache[record.key.sk.removeprefix(prefix)] = StoredVersion(record.vkey, record.deleted)
        return written

    def write_memberships(self, batch: list[Record]) -> list[bool]:
        """Membership repairs, then the apply Lambda's read-back (`shared.apply.read_back`): a webhook may delete the
        user or group between the run's listing and this write; then the membership just written is ended at once (the
        deletion's cascade read before our write, so only this read can see both)."""
        written = self.write_many(batch)
        done = {record.key for record, ok in zip(batch, written, strict=True) if ok}
        read_back = ReadBack.of({record.key: record for record in batch}, done)
        if read_back.memberships:
            stored = self._table.get_versions(read_back.keys)
            self.write_many(read_back.endings(stored, expires_at=self.expires()))
        return written

    def remove(self, kind: str, entity_id: str, current: StoredVersion) -> tuple[bool, int]:
        """Remove a user or group WorkOS confirmed gone: (tombstoned, memberships ended).

        Its memberships are ended *before* its tombstone is written, then once more after it (for a row written
        meanwhile): a run that fails in between is retried with the entity still live, so it comes back here; ended
        after the tombstone only, a failed cascade would leave rows that no later run visits (deleted groups are not
        listed)."""
        vkey = self.final_vkey(current)
        single = "group" if kind == "groups" else "user"
        cascade = Cascade(single, self.directory_id, entity_id, vkey)
        ended = self.end_memberships(cascade)
        tombstone = records.entity_tombstone(single, self.directory_id, entity_id, vkey=vkey, expires_at=self.expires())
        written = self.write(tombstone)
        return written, ended + self.end_memberships(cascade)

    def end_memberships(self, cascade: Cascade) -> int:
        result = end_memberships(self._table, cascade, expires_at=self.expires(), pool=self.pool)
        if result.failure:
            raise RuntimeError(result.failure)
        return result.ended

    def final_vkey(self, current: StoredVersion | None) -> int:
        """A confirmed deletion is final in WorkOS: version it now, and above anything stored."""
        now = int(self._clock() * 1e6) * 2 + 1
        return max(now, (current.vkey | 1) + 2) if current is not None else now

    def expires(self) -> int:
        return int(self._clock()) + self._ttl


def prefix_of(kind: str) -> str:
    return schema.GROUP_PREFIX if kind == "groups" else schema.USER_PREFIX
