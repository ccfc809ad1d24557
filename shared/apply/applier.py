"""Apply a batch of WorkOS events to the directory store so that no delivery order can move it backwards.

WorkOS neither orders nor deduplicates deliveries, and a stale retry may arrive days after newer events. So the
applier never relies on arrival order: every write is the max-register rule of `shared.model.records` (written only if
newer), and everything else is decided from versions read in one batched read per batch:

1. parse each message (unparseable → dead-letter queue at once, so one bad event never blocks its directory);
2. plan the records each event implies (membership events carry full user and group snapshots, so a
   `user_added` that arrives before `user.created` still creates both);
3. read the stored versions of every key the batch touches (one BatchGetItem per directory, so one throttled
   partition holds back only its own directory) and drop writes that are not newer, writes for a directory that
   is deleted, and memberships of users or groups that are deleted. What the read shows is repaired too, so a
   redelivery after a crash finishes what the crashed attempt left: a present membership whose user or group is
   deleted is ended, a live item in a deleted directory queues its purge again, and an activation that is the
   stored state queues its initial sync again;
4. write the rest in parallel (they commute), then run cascades WorkOS sends no events for: a deleted group or
   user ends its memberships; a deleted directory is tombstoned at once (readers see nothing) and its items are
   purged by a job on the work queue;
5. read back what the writes depend on (one more strongly consistent read): a directory's lanes are applied
   concurrently, so a group, a user or the directory may have been deleted by another applier between step 3 and
   step 4. Then the membership just written is ended, or the directory's purge is queued again. Either this read
   sees the deletion, or the deletion's cascade (which reads after writing its tombstone) sees our write;
6. report per message: applied, no-op, ignored, moved to the overflow queue (its directory's partition is
   throttled, `shared.apply.overflow`), forwarded to the DLQ, or retry (transient failure).

Every step is idempotent, so a redelivery after a crash or a Lambda timeout finishes whatever was left.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from shared.apply.overflow import OverflowLane
from shared.apply.read_back import ReadBack
from shared.model import lanes, records, schema
from shared.model.events import DsyncEvent, InvalidEventError, UnknownEvent, parse_event
from shared.model.records import ItemKey, Record, RecordTooLargeError, StoredVersion
from shared.resources import DEFAULT_TOMBSTONE_TTL_DAYS

# --- Ports --------------------------------------------------------------------------------------------------------


class TransientStoreError(Exception):
    """Throttling, 5xx, timeouts, access or configuration problems: worth retrying later."""


class PermanentStoreError(Exception):
    """The store refused the record itself (e.g. validation): retrying can never help."""


class StoreThrottledError(TransientStoreError):
    """The directory's partition is over its throughput: worth retrying, better elsewhere (`shared.apply.overflow`)."""


class DirectoryStore(Protocol):
    def get_versions(self, keys: Collection[ItemKey]) -> dict[ItemKey, StoredVersion]:
        """Stored (vkey, deleted) of each key that exists; strongly consistent."""
        ...

    def put_if_newer(self, record: Record) -> bool:
        """Write `record` iff the key is absent or its stored vkey is lower. True if written."""
        ...

    def live_group_memberships(self, directory_id: str, group_id: str) -> list[tuple[str, str]]:
        """(group_id, user_id) of the group's present membership rows."""
        ...

    def entity_versions(self, directory_id: str, prefix: str) -> dict[str, StoredVersion]:
        """id -> stored version of every user (or group) of the directory, tombstones included; strongly
        consistent (a query of the directory's own partition, never an index)."""
        ...


class WorkQueue(Protocol):
    def submit(self, job: Mapping[str, Any]) -> None: ...


class DeadLetters(Protocol):
    def forward(self, *, body: str, group_id: str, deduplication_id: str, reason: str) -> None: ...


# --- Inputs and outputs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    body: str
    group_id: str
    deduplication_id: str


class Status(StrEnum):
    APPLIED = "applied"  # the store changed
    NOOP = "noop"  # duplicate, stale, or for a deleted directory
    IGNORED = "ignored"  # a well-formed event of a type we do not apply
    FORWARDED = "forwarded"  # can never apply: parked on the dead-letter queue
    MOVED = "moved"  # its directory's partition is throttled: queued on the overflow lane, applied there
    RETRY = "retry"  # transient failure: report it failed so SQS redelivers


@dataclass
class MessageOutcome:
    status: Status
    event_type: str | None = None
    event_id: str | None = None
    directory_id: str | None = None
    created_at: datetime | None = None
    reason: str | None = None
    writes: int = 0
    throttled: bool = False


@dataclass(frozen=True)
class ApplyConfig:
    tombstone_ttl_seconds: int = DEFAULT_TOMBSTONE_TTL_DAYS * 86_400
    parallelism: int = 10
    # Stop starting cascades when less than this is left before the Lambda timeout; redelivery finishes them.
    safety_margin_seconds: float = 5.0


class JobKind(StrEnum):
    RECONCILE = "reconcile"
    PURGE = "purge"


# --- Planning -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cascade:
    """End the memberships of a deleted group or user."""

    kind: str  # "group" | "user"
    directory_id: str
    entity_id: str
    vkey: int


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
    elif directory_id in gone and any(
        (version := stored.get(record.key)) is not None and not version.deleted
        for record in plan.records
        if record.key != records.directory_key(directory_id)
    ):
        # A live item in a deleted directory outlived its purge (written by another lane meanwhile, and the
        # read-back that would have queued the purge again did not run): queue it again. The purge is idempotent.
        batch.purges[directory_id].append(message_id)
    if plan.cascade is not None and directory_id not in gone:
        batch.cascades[plan.cascade].append(message_id)
    key = records.directory_key(directory_id)
    if key not in stored and key not in newest and directory_id not in gone:
        # A directory first seen through its users or groups: register it (its dsync.activated was missed).
        source = plan.event.user or plan.event.group or plan.event.token
        batch.writes.setdefault(key, records.directory_stub(directory_id, source.organization_id if source else None))
        batch.writers[key].append(message_id)


# --- Execution ----------------------------------------------------------------------------------------------------


class WriteResult(StrEnum):
    WRITTEN = "written"
    STALE = "stale"
    TRANSIENT = "transient"
    THROTTLED = "throttled"
    PERMANENT = "permanent"


@dataclass
class Applier:
    store: DirectoryStore
    work_queue: WorkQueue
    dead_letters: DeadLetters
    config: ApplyConfig = field(default_factory=ApplyConfig)
    clock: Callable[[], float] = time.time
    overflow: OverflowLane | None = None  # set on the events queue's applier; None on the overflow lane's own

    def apply(
        self, messages: Sequence[InboundMessage], *, remaining_seconds: Callable[[], float] = lambda: 900.0
    ) -> dict[str, MessageOutcome]:
        outcomes = self._move_hot(messages)
        outcomes.update(self._apply([m for m in messages if m.message_id not in outcomes], remaining_seconds))
        return outcomes

    def _apply(
        self, messages: Sequence[InboundMessage], remaining_seconds: Callable[[], float]
    ) -> dict[str, MessageOutcome]:
        outcomes, plans = self._plan_all(messages)
        if not plans:
            return outcomes
        deadline = time.monotonic() + remaining_seconds() - self.config.safety_margin_seconds
        with ThreadPoolExecutor(max_workers=self.config.parallelism) as pool:
            stored, unread = self._read_versions(plans, pool)
            for plan in plans:
                if (error := unread.get(plan.event.directory_id)) is not None:
                    outcome = outcomes[plan.message.message_id]
                    _fail(outcome, Status.RETRY, f"read failed: {error}")
                    outcome.throttled = isinstance(error, StoreThrottledError)
            readable = [plan for plan in plans if plan.event.directory_id not in unread]
            expires_at = int(self.clock()) + self.config.tombstone_ttl_seconds
            batch = resolve(readable, stored, expires_at=expires_at)
            # Progress (for `dsync status`) is written beside the batch's own writes, not after them: no extra wait.
            at_ms = int(self.clock() * 1000)
            progress = [pool.submit(self._write, r) for r in progress_records(readable, stored, batch, at_ms=at_ms)]
            self._submit_initial_syncs(batch, outcomes)
            written = self._write_all(batch, outcomes, pool, deadline)
            self._submit_jobs(batch, written, outcomes)
            self._run_cascades(batch, outcomes, pool, deadline)
            self._read_back(batch, written, outcomes, pool, deadline)
            for future in progress:
                future.result()  # best effort: a failed progress write only makes `dsync status` look behind
        self._forward_refused(plans, outcomes)
        self._move_throttled(plans, outcomes)
        return outcomes

    def _read_versions(
        self, plans: Sequence[EventPlan], pool: ThreadPoolExecutor
    ) -> tuple[dict[ItemKey, StoredVersion], dict[str, Exception]]:
        """Every key the batch touches, read one directory at a time (in parallel): a partition that is throttled,
        wholly or partly, fails only its own directory's messages, and only that directory is marked hot."""
        keys: set[ItemKey] = set()
        for plan in plans:
            directory_id = plan.event.directory_id
            keys.update(record.key for record in plan.records)
            keys.update((records.directory_key(directory_id), records.applied_key(directory_id)))
        return self._read_by_directory(keys, pool)

    def _read_by_directory(
        self, keys: Collection[ItemKey], pool: ThreadPoolExecutor
    ) -> tuple[dict[ItemKey, StoredVersion], dict[str, Exception]]:
        """One strongly consistent read per directory, in parallel: (what was read, why a directory was not)."""
        by_directory: dict[str, set[ItemKey]] = defaultdict(set)
        for key in keys:
            by_directory[schema.directory_id_of_pk(key.pk)].add(key)

        def read(directory_keys: set[ItemKey]) -> dict[ItemKey, StoredVersion] | Exception:
            try:
                return self.store.get_versions(directory_keys)
            except (TransientStoreError, PermanentStoreError) as error:
                return error

        stored: dict[ItemKey, StoredVersion] = {}
        unread: dict[str, Exception] = {}
        for directory_id, result in zip(by_directory, pool.map(read, by_directory.values()), strict=True):
            if isinstance(result, Exception):
                unread[directory_id] = result
            else:
                stored.update(result)
        return stored, unread

    def _move_hot(self, messages: Sequence[InboundMessage]) -> dict[str, MessageOutcome]:
        """Messages of directories this instance saw throttled moments ago go to the overflow lane unread."""
        if self.overflow is None:
            return {}
        hot = [message for message in messages if self.overflow.is_hot(message.group_id)]
        outcomes = {
            m.message_id: MessageOutcome(
                Status.RETRY, throttled=True, directory_id=lanes.directory_of_group(m.group_id)
            )
            for m in hot
        }
        _moved(outcomes.values(), self.overflow.move(hot))
        return outcomes

    def _move_throttled(self, plans: Sequence[EventPlan], outcomes: dict[str, MessageOutcome]) -> None:
        """A throttled directory's messages that are still to retry are moved to the overflow lane instead."""
        if self.overflow is None:
            return
        throttled = [p for p in plans if outcomes[p.message.message_id].throttled]
        throttled = [p for p in throttled if outcomes[p.message.message_id].status is Status.RETRY]
        failure = self.overflow.move(
            [p.message for p in throttled], throttled={p.event.directory_id for p in throttled}
        )
        _moved([outcomes[p.message.message_id] for p in throttled], failure)

    def _read_back(
        self,
        batch: BatchPlan,
        written: set[ItemKey],
        outcomes: dict[str, MessageOutcome],
        pool: ThreadPoolExecutor,
        deadline: float,
    ) -> None:
        """Step 5 of the module docstring (`shared.apply.read_back`), one read per directory: a throttled partition
        fails (and moves) only its own directory's messages. Past the deadline it is left to the redelivery, whose read
        repairs what this one would have (step 3)."""
        read_back = ReadBack.of(batch.writes, written)
        if not read_back.memberships and not read_back.directory_pks:
            return
        if time.monotonic() > deadline:
            stored: dict[ItemKey, StoredVersion] = {}
            unread: dict[str, Exception] = {
                schema.directory_id_of_pk(key.pk): TransientStoreError("out of time before the read-back")
                for key in read_back.keys
            }
        else:
            stored, unread = self._read_by_directory(read_back.keys, pool)
        for directory_id, error in unread.items():
            pk = schema.directory_pk(directory_id)
            for message_id in (m for key in written if key.pk == pk for m in batch.writers.get(key, [])):
                _fail(outcomes[message_id], Status.RETRY, f"read-back failed: {error}")
                outcomes[message_id].throttled |= isinstance(error, StoreThrottledError)
        endings = read_back.endings(stored, expires_at=int(self.clock()) + self.config.tombstone_ttl_seconds)
        for ending, (result, detail) in zip(endings, pool.map(self._write, endings), strict=True):
            if result in (WriteResult.TRANSIENT, WriteResult.THROTTLED, WriteResult.PERMANENT):
                for message_id in batch.writers.get(ending.key, []):
                    _fail(outcomes[message_id], Status.RETRY, f"could not end a deleted entity's membership: {detail}")
        for directory_id in read_back.deleted_directories(stored):
            pk = schema.directory_pk(directory_id)
            waiting = [outcomes[m] for key in written if key.pk == pk for m in batch.writers.get(key, [])]
            self._submit(JobKind.PURGE, directory_id, waiting)

    def _plan_all(self, messages: Sequence[InboundMessage]) -> tuple[dict[str, MessageOutcome], list[EventPlan]]:
        outcomes: dict[str, MessageOutcome] = {}
        plans: list[EventPlan] = []
        expires_at = int(self.clock()) + self.config.tombstone_ttl_seconds
        for message in messages:
            plan_or_outcome = self._plan(message, expires_at)
            if isinstance(plan_or_outcome, MessageOutcome):
                outcomes[message.message_id] = plan_or_outcome
            else:
                plans.append(plan_or_outcome)
                outcomes[message.message_id] = _outcome(plan_or_outcome.event, Status.NOOP)
        return outcomes, plans

    def _write_all(
        self, batch: BatchPlan, outcomes: dict[str, MessageOutcome], pool: ThreadPoolExecutor, deadline: float
    ) -> set[ItemKey]:
        """The batch's writes in parallel. A write not started by the deadline is not sent: the SDK's throttle
        backoff (up to 20 s a retry on the overflow lane) must not run the Lambda into its timeout, which would
        redeliver the whole batch only after the visibility timeout; its message is retried instead."""

        def write(record: Record) -> tuple[WriteResult, str | None]:
            if time.monotonic() > deadline:
                return WriteResult.TRANSIENT, "out of time before this write; redelivery finishes it"
            return self._write(record)

        written: set[ItemKey] = set()
        for key, (result, detail) in zip(batch.writes, pool.map(write, batch.writes.values()), strict=True):
            if result is WriteResult.WRITTEN:
                written.add(key)
            for message_id in batch.writers[key]:
                self._record_write(outcomes[message_id], result, detail)
        return written

    def _submit_jobs(self, batch: BatchPlan, written: set[ItemKey], outcomes: dict[str, MessageOutcome]) -> None:
        for directory_id, message_ids in batch.purges.items():
            waiting = [outcomes[m] for m in message_ids if outcomes[m].status is not Status.RETRY]
            if waiting:
                self._submit(JobKind.PURGE, directory_id, waiting)

    def _submit_initial_syncs(self, batch: BatchPlan, outcomes: dict[str, MessageOutcome]) -> None:
        """A new activation's initial-sync job is queued *before* its directory is written: if the job cannot be
        queued, the directory is not written either, so the redelivery finds the activation new and queues it then
        (written first, a redelivery would find it stored and queue nothing). A crash in between only queues the job
        twice, which the directory's lease makes harmless."""
        for directory_id, (key, message_ids) in batch.activations.items():
            waiting = [outcomes[m] for m in message_ids]
            self._submit(JobKind.RECONCILE, directory_id, waiting)
            if any(outcome.status is Status.RETRY for outcome in waiting):
                batch.writes.pop(key, None)
                for message_id in batch.writers.pop(key, []):
                    _fail(outcomes[message_id], Status.RETRY, "could not submit the initial-sync job")

    def _run_cascades(
        self, batch: BatchPlan, outcomes: dict[str, MessageOutcome], pool: ThreadPoolExecutor, deadline: float
    ) -> None:
        for cascade, message_ids in batch.cascades.items():
            result = self._cascade(cascade, pool, deadline)
            for message_id in message_ids:
                outcome = outcomes[message_id]
                outcome.writes += result.ended
                if result.failure is not None:
                    _fail(outcome, Status.RETRY, result.failure)
                    outcome.throttled = outcome.throttled or result.throttled  # moves to the overflow lane
                elif result.ended and outcome.status is Status.NOOP:
                    outcome.status = Status.APPLIED

    def _forward_refused(self, plans: Sequence[EventPlan], outcomes: dict[str, MessageOutcome]) -> None:
        """The store refused one of an event's records outright: park the event, never block its directory."""
        for plan in plans:
            outcome = outcomes[plan.message.message_id]
            if outcome.status is Status.FORWARDED:
                forwarded = self._forward(plan.message, outcome.reason or "refused by the store")
                outcome.status, outcome.reason = forwarded.status, forwarded.reason

    def _plan(self, message: InboundMessage, expires_at: int) -> EventPlan | MessageOutcome:
        try:
            event = parse_event(message.body)
        except InvalidEventError as error:
            return self._forward(message, f"invalid event: {error}")
        if isinstance(event, UnknownEvent):
            return MessageOutcome(Status.IGNORED, event_type=event.type, event_id=event.id)
        try:
            return plan_event(message, event, expires_at=expires_at)
        except RecordTooLargeError as error:
            outcome = self._forward(message, str(error))
            outcome.event_type, outcome.event_id, outcome.directory_id = event.type, event.id, event.directory_id
            return outcome

    def _forward(self, message: InboundMessage, reason: str) -> MessageOutcome:
        try:
            self.dead_letters.forward(
                body=message.body,
                group_id=message.group_id,
                deduplication_id=message.deduplication_id,
                reason=reason,
            )
        except Exception as error:  # any failure to park it means: keep it queued and retry
            return MessageOutcome(Status.RETRY, reason=f"could not forward to the DLQ: {error}")
        return MessageOutcome(Status.FORWARDED, reason=reason)

    def _write(self, record: Record) -> tuple[WriteResult, str | None]:
        return write_record(self.store, record)

    def _record_write(self, outcome: MessageOutcome, result: WriteResult, detail: str | None) -> None:
        if result is WriteResult.WRITTEN:
            outcome.writes += 1
            if outcome.status is Status.NOOP:
                outcome.status = Status.APPLIED
        elif result is WriteResult.TRANSIENT:
            _fail(outcome, Status.RETRY, detail)
        elif result is WriteResult.THROTTLED:
            outcome.throttled = True
            _fail(outcome, Status.RETRY, detail)
        elif result is WriteResult.PERMANENT:
            _fail(outcome, Status.FORWARDED, detail)

    def _submit(self, kind: JobKind, directory_id: str, waiting: Sequence[MessageOutcome]) -> None:
        try:
            self.work_queue.submit(
                {
                    "kind": kind.value,
                    "directory_id": directory_id,
                    "reason": waiting[0].event_type,
                    "requested_at_ms": int(self.clock() * 1000),
                }
            )
        except Exception as error:  # the job is part of applying these events: retry them
            for outcome in waiting:
                _fail(outcome, Status.RETRY, f"could not submit {kind.value} job: {error}")

    def _cascade(self, cascade: Cascade, pool: ThreadPoolExecutor, deadline: float) -> CascadeResult:
        if time.monotonic() > deadline:
            return CascadeResult(0, "out of time before cascade; redelivery will finish it")
        expires_at = int(self.clock()) + self.config.tombstone_ttl_seconds
        return end_memberships(self.store, cascade, expires_at=expires_at, pool=pool, deadline=deadline)


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


def write_record(store: DirectoryStore, record: Record) -> tuple[WriteResult, str | None]:
    """`put_if_newer`, with the store's errors folded into a result (for parallel maps)."""
    try:
        return (WriteResult.WRITTEN if store.put_if_newer(record) else WriteResult.STALE), None
    except StoreThrottledError as error:
        return WriteResult.THROTTLED, str(error)
    except TransientStoreError as error:
        return WriteResult.TRANSIENT, str(error)
    except PermanentStoreError as error:
        return WriteResult.PERMANENT, str(error)


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


def _outcome(event: DsyncEvent, status: Status) -> MessageOutcome:
    return MessageOutcome(
        status, event_type=event.type, event_id=event.id, directory_id=event.directory_id, created_at=event.created_at
    )


_SEVERITY = {
    Status.APPLIED: 0,
    Status.NOOP: 0,
    Status.IGNORED: 0,
    Status.MOVED: 0,
    Status.FORWARDED: 1,
    Status.RETRY: 2,
}


def _directory_gone(directory_id: str, stored: Mapping[ItemKey, StoredVersion], batch: BatchPlan) -> bool:
    """A deleted directory's partition is being purged: nothing new may appear in it."""
    directory = stored.get(records.directory_key(directory_id))
    return directory_id in batch.purges or (directory is not None and directory.deleted)


def _newer_than(stored: StoredVersion | None, created_at: datetime) -> bool:
    return stored is None or stored.vkey < records.live_version(created_at)


def _moved(outcomes: Iterable[MessageOutcome], failure: str | None) -> None:
    for outcome in outcomes:
        if failure is None:
            outcome.status, outcome.reason = Status.MOVED, "directory partition throttled"
        else:
            outcome.reason = failure


def _fail(outcome: MessageOutcome, status: Status, reason: str | None) -> None:
    """Keep the most severe failure: a retry beats a forward (the retry may still succeed as a whole)."""
    if _SEVERITY[status] >= _SEVERITY[outcome.status]:
        outcome.status, outcome.reason = status, reason
