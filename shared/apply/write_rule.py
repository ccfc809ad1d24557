"""The write rule every source and sink shares: a conditional write that wins only when newer (`write_record`),
and the cascade WorkOS sends no events for (`end_memberships`: a deleted group's or user's memberships)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from shared.apply.counts import CountTally
from shared.apply.ports import DirectoryStore, PermanentStoreError, StoreThrottledError, TransientStoreError
from shared.model import records, schema
from shared.model.records import Record


@dataclass(frozen=True)
class Cascade:
    """End the memberships of a deleted group or user."""

    kind: str  # "group" | "user"
    directory_id: str
    entity_id: str
    vkey: int


class WriteResult(StrEnum):
    WRITTEN = "written"
    STALE = "stale"
    TRANSIENT = "transient"
    THROTTLED = "throttled"
    PERMANENT = "permanent"


def write_record(
    store: DirectoryStore, record: Record, tally: CountTally | None = None
) -> tuple[WriteResult, str | None]:
    """`put_if_newer`, with the store's errors folded into a result (for parallel maps); with a `tally`, the write's
    transition is counted (`shared.apply.counts`)."""
    try:
        replaced = store.replace_if_newer(record)
    except StoreThrottledError as error:  # refused by DynamoDB: nothing landed
        return WriteResult.THROTTLED, str(error)
    except TransientStoreError as error:
        if tally is not None:
            tally.uncertain(record)  # a timeout or a 5xx: it may have landed
        return WriteResult.TRANSIENT, str(error)
    except PermanentStoreError as error:
        return WriteResult.PERMANENT, str(error)
    if tally is not None:
        tally.observe(record, replaced)
    return (WriteResult.WRITTEN if replaced.written else WriteResult.STALE), None


@dataclass(frozen=True)
class CascadeResult:
    ended: int
    failure: str | None = None
    throttled: bool = False  # the directory's partition is throttled: the event moves to the overflow lane


def end_memberships(
    store: DirectoryStore,
    cascade: Cascade,
    *,
    expires_at: int,
    pool: ThreadPoolExecutor,
    deadline: float = float("inf"),
) -> CascadeResult:
    """Tombstone every present membership of a deleted group or user at the deletion's version.

    Both reads are strongly consistent, so a membership written a moment ago (by the lane's previous batch) is
    found: a group's rows are one query of the partition; a user's rows are read by key, one per group the directory
    has (the `memberships_by_user` index would be cheaper, but a GSI query cannot be strongly consistent and a row
    it has not indexed yet would outlive its user). Idempotent and resumable: it reads what is still present, so a
    retry after a partial failure finishes the job. It stops at `deadline` (monotonic) and says so.
    """
    try:
        refs = _present_memberships(store, cascade)
    except (TransientStoreError, PermanentStoreError) as error:
        return CascadeResult(0, f"cascade read failed: {error}", isinstance(error, StoreThrottledError))
    tombstones = [
        records.membership_record(
            cascade.directory_id, group_id, user_id, vkey=cascade.vkey, present=False, expires_at=expires_at
        )
        for group_id, user_id in refs
    ]
    changed = 0
    for start in range(0, len(tombstones), CASCADE_CHUNK):
        if time.monotonic() > deadline:
            return CascadeResult(changed, "out of time inside the cascade; redelivery finishes it")
        chunk = tombstones[start : start + CASCADE_CHUNK]
        for result, detail in pool.map(lambda record: write_record(store, record), chunk):
            if result is WriteResult.WRITTEN:
                changed += 1
            elif result in (WriteResult.TRANSIENT, WriteResult.THROTTLED, WriteResult.PERMANENT):
                return CascadeResult(changed, f"cascade write failed: {detail}", result is WriteResult.THROTTLED)
    return CascadeResult(changed)


CASCADE_CHUNK = 100  # writes between two looks at the deadline


def _present_memberships(store: DirectoryStore, cascade: Cascade) -> list[tuple[str, str]]:
    directory_id, entity_id = cascade.directory_id, cascade.entity_id
    if cascade.kind == "group":
        return store.live_group_memberships(directory_id, entity_id)
    groups = store.entity_versions(directory_id, schema.GROUP_PREFIX)  # tombstones too: nothing may stay present
    keys = [records.membership_key(directory_id, group_id, entity_id) for group_id in sorted(groups)]
    stored = store.get_versions(keys) if keys else {}
    return [
        (schema.group_of_membership_sk(key.sk), entity_id)
        for key in keys
        if (version := stored.get(key)) is not None and not version.deleted
    ]
