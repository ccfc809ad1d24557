"""Planning a batch before any write: the records each event implies (`plan_event`), then, once the stored
versions are read, which writes, cascades and jobs the batch needs (`resolve`), and the progress records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.apply.ports import InboundMessage, MessageOutcome, Status
from shared.apply.write_rule import Cascade
from shared.model import records, schema
from shared.model.events import DsyncEvent
from shared.model.records import ItemKey, Record, StoredVersion


@dataclass
class EventPlan:
    message: InboundMessage
    event: DsyncEvent
    records: list[Record] = field(default_factory=list)
    membership_needs: tuple[ItemKey, ItemKey] | None = None  # (user, group) that must be live for an add
    cascade: Cascade | None = None
    directory_deleted: bool = False


def plan_event(message: InboundMessage, event: DsyncEvent, *, expires_at: int) -> EventPlan:
    """The records one event implies, before looking at the store."""
    plan = EventPlan(message=message, event=event)
    directory_id = event.directory_id
    if event.type in ("dsync.activated", "dsync.deactivated"):
        # Deactivation is a state of the directory (kept, not purged): the same max-register as its activation.
        assert event.directory is not None
        vkey = records.live_version(event.directory.updated_at or event.created_at)
        plan.records.append(records.directory_record(event.directory, vkey=vkey))
    elif event.type in ("dsync.token.created", "dsync.token.revoked"):
        assert event.token is not None
        revoked = event.type == "dsync.token.revoked"
        token = records.token_record(
            event.token, event_created_at=event.created_at, revoked=revoked, expires_at=expires_at
        )
        plan.records.append(token)
    elif event.type == "dsync.deleted":
        assert event.directory is not None
        vkey = records.tombstone_version(event.directory.updated_at, event.created_at)
        plan.records.append(
            records.directory_tombstone(directory_id, event.directory.organization_id, vkey=vkey, expires_at=expires_at)
        )
        plan.directory_deleted = True
    elif event.type in ("dsync.user.created", "dsync.user.updated"):
        assert event.user is not None
        plan.records.append(records.user_record(event.user))
    elif event.type in ("dsync.user.deleted", "dsync.group.deleted"):
        kind = "user" if event.type == "dsync.user.deleted" else "group"
        entity = event.user if kind == "user" else event.group
        assert entity is not None
        vkey = records.tombstone_version(entity.updated_at, event.created_at)
        plan.records.append(records.entity_tombstone(kind, directory_id, entity.id, vkey=vkey, expires_at=expires_at))
        plan.cascade = Cascade(kind, directory_id, entity.id, vkey)
    elif event.type in ("dsync.group.created", "dsync.group.updated"):
        assert event.group is not None
        plan.records.append(records.group_record(event.group))
    else:  # dsync.group.user_added / user_removed
        assert event.user is not None and event.group is not None
        removed = event.type == "dsync.group.user_removed"
        plan.records.append(records.user_record(event.user))
        plan.records.append(records.group_record(event.group))
        plan.records.append(
            records.membership_record(
                directory_id,
                event.group.id,
                event.user.id,
                vkey=records.membership_version(event.created_at, removed=removed),
                present=not removed,
                expires_at=expires_at,
            )
        )
        if not removed:
            plan.membership_needs = (
                records.user_key(directory_id, event.user.id),
                records.group_key(directory_id, event.group.id),
            )
    return plan


@dataclass
class BatchPlan:
    """Which writes, cascades and jobs a batch needs once the stored versions are known."""

    writes: dict[ItemKey, Record] = field(default_factory=dict)
    writers: dict[ItemKey, list[str]] = field(default_factory=lambda: defaultdict(list))  # message ids per write
    cascades: dict[Cascade, list[str]] = field(default_factory=lambda: defaultdict(list))
    purges: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # directory -> message ids
    activations: dict[str, tuple[ItemKey, list[str]]] = field(default_factory=dict)  # directory -> (key, messages)


def resolve(plans: Sequence[EventPlan], stored: Mapping[ItemKey, StoredVersion], *, expires_at: int) -> BatchPlan:
    """Drop every write that would not change the store; keep the newest eligible candidate per key."""
    newest = _newest(record for plan in plans for record in plan.records)

    def deleted(key: ItemKey) -> bool:
        """Whether the key ends up a tombstone: as stored, or as this batch will write it."""
        candidate, existing = newest.get(key), stored.get(key)
        if candidate is not None and (existing is None or candidate.vkey > existing.vkey):
            return candidate.deleted
        return existing is not None and existing.deleted

    gone = {plan.event.directory_id for plan in plans if deleted(records.directory_key(plan.event.directory_id))}
    eligible = [
        (plan, record)
        for plan in plans
        for record in plan.records
        if _eligible(plan, record, gone=gone, deleted=deleted)
    ]
    best = _newest(record for _, record in eligible)
    batch = BatchPlan()
    for plan, record in eligible:
        chosen, existing = best[record.key], stored.get(record.key)
        if existing is not None and existing.vkey >= chosen.vkey:
            continue
        batch.writes[record.key] = chosen
        batch.writers[record.key].append(plan.message.message_id)
        if plan.event.type == "dsync.activated" and chosen is record:
            _, waiting = batch.activations.setdefault(plan.event.directory_id, (record.key, []))
            waiting.append(plan.message.message_id)
    for plan in plans:
        _add_directory_tasks(batch, plan, stored=stored, newest=newest, gone=gone)
        _end_orphaned_memberships(batch, plan, stored=stored, deleted=deleted, expires_at=expires_at)
    return batch


def _end_orphaned_memberships(
    batch: BatchPlan,
    plan: EventPlan,
    *,
    stored: Mapping[ItemKey, StoredVersion],
    deleted: Callable[[ItemKey], bool],
    expires_at: int,
) -> None:
    """A membership the read shows present while its user or group is deleted is ended at that deletion's version
    (a crash between a membership's write and its read-back left it so; the redelivery finishes the read-back)."""
    for record in plan.records:
        existing = stored.get(record.key)
        if not record.key.sk.startswith(schema.MEMBER_PREFIX) or existing is None or existing.deleted:
            continue
        deletions = [
            version.vkey
            for key in records.membership_parents(record)
            if (version := stored.get(key)) is not None and deleted(key)
        ]
        planned = batch.writes.get(record.key)
        if deletions and max(deletions) > max(existing.vkey, planned.vkey if planned else -1):
            batch.writes[record.key] = records.ended_membership(record, vkey=max(deletions), expires_at=expires_at)
            batch.writers[record.key].append(plan.message.message_id)


def _newest(candidates: Iterable[Record]) -> dict[ItemKey, Record]:
    newest: dict[ItemKey, Record] = {}
    for record in candidates:
        if record.key not in newest or record.vkey > newest[record.key].vkey:
            newest[record.key] = record
    return newest


def _eligible(plan: EventPlan, record: Record, *, gone: set[str], deleted: Callable[[ItemKey], bool]) -> bool:
    if plan.event.directory_id in gone and record.key != records.directory_key(plan.event.directory_id):
        return False  # nothing lives on in a deleted directory
    is_membership = record.key.sk.startswith(schema.MEMBER_PREFIX)
    # No membership for a deleted user or group (removals are always fine to record).
    return not (is_membership and plan.membership_needs and any(deleted(k) for k in plan.membership_needs))


def _add_directory_tasks(
    batch: BatchPlan,
    plan: EventPlan,
    *,
    stored: Mapping[ItemKey, StoredVersion],
    newest: Mapping[ItemKey, Record],
    gone: set[str],
) -> None:
    directory_id, message_id = plan.event.directory_id, plan.message.message_id
    if plan.directory_deleted:
        batch.purges[directory_id].append(message_id)
    elif directory_id in gone and (
        records.counts_key(directory_id) in stored
        or any(
            (version := stored.get(record.key)) is not None and not version.deleted
            for record in plan.records
            if record.key != records.directory_key(directory_id)
        )
    ):
        # A live item (or the counter, `shared.apply.counts`) in a deleted directory outlived its purge (written by
        # another lane meanwhile, and the read-back that would have queued the purge again did not run): queue it
        # again. The purge is idempotent.
        batch.purges[directory_id].append(message_id)
    if plan.cascade is not None and directory_id not in gone:
        batch.cascades[plan.cascade].append(message_id)
    key = records.directory_key(directory_id)
    if key not in stored and key not in newest and directory_id not in gone:
        # A directory first seen through its users or groups: register it (its dsync.activated was missed).
        source = plan.event.user or plan.event.group or plan.event.token
        batch.writes.setdefault(key, records.directory_stub(directory_id, source.organization_id if source else None))
        batch.writers[key].append(message_id)


def progress_records(
    plans: Sequence[EventPlan], stored: Mapping[ItemKey, StoredVersion], batch: BatchPlan, *, at_ms: int
) -> list[Record]:
    """Per directory, the newest event of the batch (for `dsync status`), if newer than the stored progress and the
    directory is not being purged (nothing new may appear in a deleted directory's partition)."""
    newest: dict[str, DsyncEvent] = {}
    for plan in plans:
        current = newest.get(plan.event.directory_id)
        if current is None or plan.event.created_at > current.created_at:
            newest[plan.event.directory_id] = plan.event
    return [
        records.applied_record(
            directory_id, event_id=event.id, event_type=event.type, created_at=event.created_at, at_ms=at_ms
        )
        for directory_id, event in newest.items()
        if _newer_than(stored.get(records.applied_key(directory_id)), event.created_at)
        and not _directory_gone(directory_id, stored, batch)
    ]


def _directory_gone(directory_id: str, stored: Mapping[ItemKey, StoredVersion], batch: BatchPlan) -> bool:
    """A deleted directory's partition is being purged: nothing new may appear in it."""
    directory = stored.get(records.directory_key(directory_id))
    return directory_id in batch.purges or (directory is not None and directory.deleted)


def _newer_than(stored: StoredVersion | None, created_at: datetime) -> bool:
    return stored is None or stored.vkey < records.live_version(created_at)


def _outcome(event: DsyncEvent, status: Status) -> MessageOutcome:
    return MessageOutcome(
        status, event_type=event.type, event_id=event.id, directory_id=event.directory_id, created_at=event.created_at
    )
