"""A directory's counts (`~COUNTS`: live users active and inactive, groups), kept by the writers' own transitions.

Every write of a user or group is the conditional put of the write rule with ReturnValues=ALL_OLD: when it writes,
DynamoDB answers with the item it replaced, so the transition (absent, tombstone, active or inactive → the new item)
is exact. Two writers of one item each replace what the other left, so their deltas chain and sum to the truth in
any order. A batch (the apply Lambda's, or one reconcile page) sums its transitions per directory (`CountTally`) and
ADDs them in one UpdateItem per directory after its writes (`flush`), not one per write: a giant's onboarding
spends its partition's write capacity on its users, not on its counter.

What a writer cannot see, and what then happens to the counts:

- A redelivered or duplicate event, or a stale one: its put is refused (same or older version), so it adds nothing.
- A put whose response was lost, retried by the adapter: the retry is refused, and a read shows our version stored,
  so it is written, but what the landed attempt replaced is lost with its response. It adds nothing and counts one
  `unobserved` write (guessing "it was absent" would double count every retried update). A put that failed for a
  transient reason may have landed: one `unobserved` write too; if it had, its redelivery's put is refused.
- The counter's UpdateItem throttled or failed: retried with the same change token, which the item keeps as its last;
  a retry whose first attempt landed is refused, so a change is never added twice. Past its attempts, the batch's
  change is lost (logged); its writes are not failed for it, since a redelivery could not recount them.
- The Lambda killed between its writes and the counter's update: that batch's change is lost.

Each leaves the counts off by that batch's transitions (`unobserved` counts only what was seen to be unknown) until
the directory's next reconcile sets them from the partition (`shared.reconcile.counts`); nothing is counted twice.

The counts start from a known basis: the writer that created the directory item (it was absent, so its partition
was empty) marks the counter `directory_created`; a reconcile marks it `reconcile`. A directory mirrored before the
counters existed has changes ADDed to nothing: `dsync status` shows its counts as unknown until its first reconcile.

A deleted directory: its purge deletes the counter with every other item but the directory's tombstone, and the
`directories` index `dsync status` reads holds live directories only. A change ADDed after the purge (a lane that
wrote just before the deletion) recreates it, so the applier ADDs before its read-back (which then sees the
deletion and queues the purge again), and reads the counter with each batch's keys: a counter in a deleted
directory queues the purge again too (`shared.apply.planning`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from shared.apply.ports import DirectoryStore, PermanentStoreError, TransientStoreError
from shared.model import records, schema
from shared.model.records import CountChange, Record, Replaced

logger = logging.getLogger(__name__)

FLUSH_ATTEMPTS = 4


class CountTally:
    """The net count changes of a set of writes, per directory; thread-safe (writes run in parallel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deltas: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._unobserved: Counter[str] = Counter()
        self._created: set[str] = set()

    def observe(self, record: Record, replaced: Replaced) -> None:
        """A write's outcome: its transition, if it wrote and the store said what it replaced."""
        if not replaced.written:
            return
        directory_id = schema.directory_id_of_pk(record.key.pk)
        with self._lock:
            if record.key.sk == schema.DIRECTORY_SK:
                if replaced.old_known and replaced.old is None and not record.deleted:
                    self._created.add(directory_id)
            elif records.counted_key(record.key):
                if replaced.old_known:
                    self._deltas[directory_id].update(records.transition(record, replaced))
                else:
                    self._unobserved[directory_id] += 1

    def uncertain(self, record: Record) -> None:
        """A write that failed for a transient reason: it may have landed, and its transition is unknown."""
        if records.counted_key(record.key):
            with self._lock:
                self._unobserved[schema.directory_id_of_pk(record.key.pk)] += 1

    def take(self) -> list[CountChange]:
        """The changes to add (each with a fresh token), and an empty tally."""
        with self._lock:
            directories = set(self._deltas) | set(self._unobserved) | self._created
            changes = [
                CountChange(
                    directory_id=directory_id,
                    deltas={name: delta for name, delta in sorted(self._deltas[directory_id].items()) if delta},
                    token=uuid.uuid4().hex,
                    unobserved=self._unobserved[directory_id],
                    created=directory_id in self._created,
                )
                for directory_id in sorted(directories)
            ]
            self._deltas.clear()
            self._unobserved.clear()
            self._created.clear()
        return [change for change in changes if change.deltas or change.unobserved or change.created]


def flush(
    store: DirectoryStore,
    changes: list[CountChange],
    *,
    attempts: int = FLUSH_ATTEMPTS,
    deadline: float = float("inf"),
    pool: ThreadPoolExecutor | None = None,
) -> list[str]:
    """ADD each change (retried with its own token while attempts and the monotonic `deadline` last), on `pool` in
    parallel when given (one directory per change); returns the directories whose change was added or may have been
    (a change that failed for good is logged and dropped)."""

    def add(change: CountChange) -> bool:
        return _add(store, change, attempts=attempts, deadline=deadline)

    touched = pool.map(add, changes) if pool is not None and len(changes) > 1 else map(add, changes)
    return sorted({change.directory_id for change, maybe in zip(changes, touched, strict=True) if maybe})


def _add(store: DirectoryStore, change: CountChange, *, attempts: int, deadline: float) -> bool:
    """True if the change was added or may have been (a transient failure may have landed)."""
    touched = False
    for attempt in range(max(1, attempts)):
        try:
            store.add_counts(change)
        except PermanentStoreError as error:
            logger.warning("counts not updated", extra={"directory_id": change.directory_id, "reason": str(error)})
            return touched
        except TransientStoreError as error:  # throttles included; a retry of a landed change adds nothing
            touched = True  # it may have landed: read back as if it had
            if attempt + 1 == attempts or time.monotonic() > deadline:
                logger.warning(
                    "counts not updated; the next reconcile corrects them",
                    extra={"directory_id": change.directory_id, "reason": str(error)},
                )
                return touched
            time.sleep(min(1.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
        else:
            return True
    return touched
