"""One planned batch's I/O: read the stored versions per directory, write, queue the jobs, run the cascades and
read back what concurrent lanes may have deleted. Built per batch by `shared.apply.applier.Applier`."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shared.apply import counts
from shared.apply.counts import CountTally
from shared.apply.planning import BatchPlan, EventPlan
from shared.apply.ports import (
    ApplyConfig,
    DirectoryStore,
    JobKind,
    MessageOutcome,
    PermanentStoreError,
    Status,
    StoreThrottledError,
    TransientStoreError,
    WorkQueue,
    _fail,
)
from shared.apply.read_back import ReadBack
from shared.apply.write_rule import Cascade, CascadeResult, WriteResult, end_memberships, write_record
from shared.model import records, schema
from shared.model.records import ItemKey, Record, StoredVersion


@dataclass
class _BatchIO:
    """What a batch's I/O needs (the store, the work queue, the configuration, the clock), and its smallest steps:
    one write (its transition counted in the batch's tally), one job, one write's outcome."""

    store: DirectoryStore
    work_queue: WorkQueue
    config: ApplyConfig
    clock: Callable[[], float]
    tally: CountTally = field(default_factory=CountTally)

    def write(self, record: Record) -> tuple[WriteResult, str | None]:
        return write_record(self.store, record, self.tally)

    def submit(self, kind: JobKind, directory_id: str, waiting: Sequence[MessageOutcome]) -> None:
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

    def record_write(self, outcome: MessageOutcome, result: WriteResult, detail: str | None) -> None:
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


class _BatchReads(_BatchIO):
    """The batch's reads, one per directory (a throttled partition holds back only its own directory): the stored
    versions before writing, and the read-back after."""

    def read_versions(
        self, plans: Sequence[EventPlan], pool: ThreadPoolExecutor
    ) -> tuple[dict[ItemKey, StoredVersion], dict[str, Exception]]:
        """Every key the batch touches, read one directory at a time (in parallel): a partition that is throttled,
        wholly or partly, fails only its own directory's messages, and only that directory is marked hot."""
        keys: set[ItemKey] = set()
        for plan in plans:
            directory_id = plan.event.directory_id
            keys.update(record.key for record in plan.records)
            # The counter too: one that outlived its deleted directory's purge queues the purge again.
            keys.update(
                (
                    records.directory_key(directory_id),
                    records.applied_key(directory_id),
                    records.counts_key(directory_id),
                )
            )
        return self.read_by_directory(keys, pool)

    def read_by_directory(
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

    def read_back(
        self,
        batch: BatchPlan,
        written: set[ItemKey],
        outcomes: dict[str, MessageOutcome],
        pool: ThreadPoolExecutor,
        deadline: float,
        *,
        counted: Collection[str] = (),
    ) -> None:
        """Step 5 of the module docstring (`shared.apply.read_back`), one read per directory: a throttled partition
        fails (and moves) only its own directory's messages. Past the deadline it is left to the redelivery, whose read
        repairs what this one would have (step 3). The `counted` directories' counters were just added to: a
        directory deleted meanwhile has its purge queued again, or a recreated counter would outlive it."""
        read_back = ReadBack.of(batch.writes, written, counted=[schema.directory_pk(d) for d in counted])
        if not read_back.memberships and not read_back.directory_pks:
            return
        if time.monotonic() > deadline:
            stored: dict[ItemKey, StoredVersion] = {}
            unread: dict[str, Exception] = {
                schema.directory_id_of_pk(key.pk): TransientStoreError("out of time before the read-back")
                for key in read_back.keys
            }
        else:
            stored, unread = self.read_by_directory(read_back.keys, pool)
        for directory_id, error in unread.items():
            pk = schema.directory_pk(directory_id)
            for message_id in (m for key in written if key.pk == pk for m in batch.writers.get(key, [])):
                _fail(outcomes[message_id], Status.RETRY, f"read-back failed: {error}")
                outcomes[message_id].throttled |= isinstance(error, StoreThrottledError)
        endings = read_back.endings(stored, expires_at=int(self.clock()) + self.config.tombstone_ttl_seconds)
        for ending, (result, detail) in zip(endings, pool.map(self.write, endings), strict=True):
            if result in (WriteResult.TRANSIENT, WriteResult.THROTTLED, WriteResult.PERMANENT):
                for message_id in batch.writers.get(ending.key, []):
                    _fail(outcomes[message_id], Status.RETRY, f"could not end a deleted entity's membership: {detail}")
        for directory_id in read_back.deleted_directories(stored):
            pk = schema.directory_pk(directory_id)
            waiting = [outcomes[m] for key in written if key.pk == pk for m in batch.writers.get(key, [])]
            self.submit(JobKind.PURGE, directory_id, waiting)


class _BatchWrites(_BatchIO):
    """The batch's writes in parallel, within its deadline, then its jobs and cascades."""

    def write_all(
        self, batch: BatchPlan, outcomes: dict[str, MessageOutcome], pool: ThreadPoolExecutor, deadline: float
    ) -> set[ItemKey]:
        """The batch's writes in parallel. A write not started by the deadline is not sent: the SDK's throttle
        backoff (up to 20 s a retry on the overflow lane) must not run the Lambda into its timeout, which would
        redeliver the whole batch only after the visibility timeout; its message is retried instead."""

        def write(record: Record) -> tuple[WriteResult, str | None]:
            if time.monotonic() > deadline:
                return WriteResult.TRANSIENT, "out of time before this write; redelivery finishes it"
            return self.write(record)

        written: set[ItemKey] = set()
        for key, (result, detail) in zip(batch.writes, pool.map(write, batch.writes.values()), strict=True):
            if result is WriteResult.WRITTEN:
                written.add(key)
            for message_id in batch.writers[key]:
                self.record_write(outcomes[message_id], result, detail)
        return written

    def flush_counts(self, pool: ThreadPoolExecutor, deadline: float) -> list[str]:
        """ADD the batch's count changes, one UpdateItem per directory, in parallel (`shared.apply.counts`): after its
        writes, before its read-back. Returns the directories whose counter was (or may have been) added to."""
        return counts.flush(self.store, self.tally.take(), deadline=deadline, pool=pool)

    def submit_initial_syncs(self, batch: BatchPlan, outcomes: dict[str, MessageOutcome]) -> None:
        """A new activation's initial-sync job is queued *before* its directory is written: if the job cannot be
        queued, the directory is not written either, so the redelivery finds the activation new and queues it then
        (written first, a redelivery would find it stored and queue nothing). A crash in between only queues the job
        twice, which the directory's lease makes harmless."""
        for directory_id, (key, message_ids) in batch.activations.items():
            waiting = [outcomes[m] for m in message_ids]
            self.submit(JobKind.RECONCILE, directory_id, waiting)
            if any(outcome.status is Status.RETRY for outcome in waiting):
                batch.writes.pop(key, None)
                for message_id in batch.writers.pop(key, []):
                    _fail(outcomes[message_id], Status.RETRY, "could not submit the initial-sync job")

    def submit_jobs(self, batch: BatchPlan, written: set[ItemKey], outcomes: dict[str, MessageOutcome]) -> None:
        for directory_id, message_ids in batch.purges.items():
            waiting = [outcomes[m] for m in message_ids if outcomes[m].status is not Status.RETRY]
            if waiting:
                self.submit(JobKind.PURGE, directory_id, waiting)

    def run_cascades(
        self, batch: BatchPlan, outcomes: dict[str, MessageOutcome], pool: ThreadPoolExecutor, deadline: float
    ) -> None:
        for cascade, message_ids in batch.cascades.items():
            result = self.cascade(cascade, pool, deadline)
            for message_id in message_ids:
                outcome = outcomes[message_id]
                outcome.writes += result.ended
                if result.failure is not None:
                    _fail(outcome, Status.RETRY, result.failure)
                    outcome.throttled = outcome.throttled or result.throttled  # moves to the overflow lane
                elif result.ended and outcome.status is Status.NOOP:
                    outcome.status = Status.APPLIED

    def cascade(self, cascade: Cascade, pool: ThreadPoolExecutor, deadline: float) -> CascadeResult:
        if time.monotonic() > deadline:
            return CascadeResult(0, "out of time before cascade; redelivery will finish it")
        expires_at = int(self.clock()) + self.config.tombstone_ttl_seconds
        return end_memberships(self.store, cascade, expires_at=expires_at, pool=pool, deadline=deadline)


class BatchExecution(_BatchReads, _BatchWrites):
    """The execution of one planned batch (`shared.apply.applier.Applier` builds one per batch)."""
