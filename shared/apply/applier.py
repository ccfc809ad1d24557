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
   purged by a job on the work queue. Before them, each directory's counter item is moved by the writes'
   transitions, one UpdateItem per directory, in parallel (`shared.apply.counts`);
5. read back what the writes depend on (one more strongly consistent read): a directory's lanes are applied
   concurrently, so a group, a user or the directory may have been deleted by another applier between step 3 and
   step 4. Then the membership just written is ended, or the directory's purge is queued again. Either this read
   sees the deletion, or the deletion's cascade (which reads after writing its tombstone) sees our write;
6. report per message: applied, no-op, ignored, moved to the overflow queue (its directory's partition is
   throttled, `shared.apply.overflow`), forwarded to the DLQ, or retry (transient failure).

Every step is idempotent, so a redelivery after a crash or a Lambda timeout finishes whatever was left."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shared.apply.execution import BatchExecution
from shared.apply.overflow import OverflowLane
from shared.apply.planning import EventPlan, _outcome, plan_event, progress_records, resolve
from shared.apply.ports import (
    ApplyConfig,
    DeadLetters,
    DirectoryStore,
    InboundMessage,
    MessageOutcome,
    PermanentStoreError,
    Status,
    StoreThrottledError,
    TransientStoreError,
    WorkQueue,
    _fail,
)
from shared.apply.smoke import smoke_test_record
from shared.model import lanes
from shared.model.events import DsyncEvent, InvalidEventError, UnknownEvent, parse_event
from shared.model.records import RecordTooLargeError
from shared.model.smoke import AmbiguousSmokeTestError, is_smoke_test


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
        run = BatchExecution(self.store, self.work_queue, self.config, self.clock)
        with ThreadPoolExecutor(max_workers=self.config.parallelism) as pool:
            stored, unread = run.read_versions(plans, pool)
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
            progress = [pool.submit(run.write, r) for r in progress_records(readable, stored, batch, at_ms=at_ms)]
            run.submit_initial_syncs(batch, outcomes)
            written = run.write_all(batch, outcomes, pool, deadline)
            # The directories' counts move by the writes' transitions (one update per directory, in parallel), before
            # the read-back, which must see a deletion that raced the counter's update.
            counted = run.flush_counts(pool, deadline)
            run.submit_jobs(batch, written, outcomes)
            run.run_cascades(batch, outcomes, pool, deadline)
            run.read_back(batch, written, outcomes, pool, deadline, counted=counted)
            for future in progress:
                future.result()  # best effort: a failed progress write only makes `dsync status` look behind
        self._forward_refused(plans, outcomes)
        self._move_throttled(plans, outcomes)
        return outcomes

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
            if is_smoke_test(event.id, event.directory_id):
                return self._acknowledge_smoke_test(event)
        except AmbiguousSmokeTestError as error:
            return self._forward(message, str(error))
        try:
            return plan_event(message, event, expires_at=expires_at)
        except RecordTooLargeError as error:
            outcome = self._forward(message, str(error))
            outcome.event_type, outcome.event_id, outcome.directory_id = event.type, event.id, event.directory_id
            return outcome

    def _acknowledge_smoke_test(self, event: DsyncEvent) -> MessageOutcome:
        """Nothing of the mirror is written and nothing is published: only when the last smoke test arrived."""
        outcome = MessageOutcome(
            Status.SMOKE_TEST, event_type=event.type, event_id=event.id, directory_id=event.directory_id
        )
        record = smoke_test_record(
            event_id=event.id, event_type=event.type, created_at=event.created_at, at_ms=int(self.clock() * 1000)
        )
        try:
            self.store.put_if_newer(record)
        except (TransientStoreError, PermanentStoreError) as error:
            _fail(outcome, Status.RETRY, f"could not record the smoke test: {error}")
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


def _moved(outcomes: Iterable[MessageOutcome], failure: str | None) -> None:
    for outcome in outcomes:
        if failure is None:
            outcome.status, outcome.reason = Status.MOVED, "directory partition throttled"
        else:
            outcome.reason = failure
