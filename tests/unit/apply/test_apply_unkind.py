"""The applier in the unkind world: each defect the review reproduced, as a specification that failed before.

Every test drives the real `Applier` against `FakeDirectoryStore` with one unkindness of the real services turned
on (`tests.support.fake_store`): a lagging index, a write whose response is lost, a Lambda killed between two
writes (its batch redelivered whole), a throttled partition, a failed job submission.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.apply.applier import Applier
from shared.apply.overflow import OverflowLane, OverflowMessage
from shared.apply.ports import ApplyConfig, MessageOutcome, Status, StoreThrottledError
from shared.changes.derive import GROUP_CREATED, MEMBERSHIP_ADDED, USER_PROVISIONED, changes_from_stream_record
from shared.changes.guard import untrue_events
from shared.model import records, schema
from shared.model.records import ItemKey, Record, Replaced, StoredVersion
from tests.support import dsync_events as ev
from tests.support import streams
from tests.support.fake_store import (
    FakeDeadLetters,
    FakeDirectoryStore,
    FakeWorkQueue,
    LambdaKilledError,
    Unkindness,
)

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
OTHER = "directory_01HT9999999999999999999999"


def applier(store: FakeDirectoryStore, work: FakeWorkQueue | None = None, **kwargs: Any) -> Applier:
    return Applier(
        store=store,
        work_queue=work or FakeWorkQueue(),
        dead_letters=FakeDeadLetters(),
        config=ApplyConfig(tombstone_ttl_seconds=30 * 86_400),
        clock=lambda: NOW,
        **kwargs,
    )


def apply(app: Applier, *documents: dict[str, Any]) -> list[MessageOutcome]:
    messages = [ev.message(document) for document in documents]
    outcomes = app.apply(messages)
    return [outcomes[message.message_id] for message in messages]


def present(store: FakeDirectoryStore, key: ItemKey) -> bool:
    item = store.items.get(key)
    return item is not None and not item[schema.DELETED_ATTRIBUTE]


MEMBER = records.membership_key(ev.DIRECTORY, "directory_group_1", "directory_user_1")


class KillAfter(FakeDirectoryStore):
    """Dies (the Lambda killed) right after writing the first record whose sort key starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__(Unkindness(index_lag=True))
        self.prefix: str | None = prefix

    def replace_if_newer(self, record: Record) -> Replaced:
        replaced = super().replace_if_newer(record)
        if replaced.written and self.prefix and record.key.sk.startswith(self.prefix):
            self.prefix = None
            raise LambdaKilledError(record.key.sk)
        return replaced


# --- 3. The user cascade reads what the lane's previous batch wrote, not a lagging index ----------------------------


def test_a_user_deletion_ends_a_membership_the_index_has_not_caught_up_with() -> None:
    store = FakeDirectoryStore(Unkindness(index_lag=True, seed=1))
    store._index_snapshot = lambda: {}  # type: ignore[method-assign]  # the index has applied nothing yet
    app = applier(store)
    apply(app, ev.membership("dsync.group.user_added", created=1))  # the lane's previous batch
    assert present(store, MEMBER)
    apply(app, ev.event("dsync.user.deleted", ev.user(updated=5), created=5))
    assert not present(store, MEMBER)


# --- 5. A crash between a membership's write and its read-back: the redelivery finishes the read-back -------------


def test_a_redelivered_membership_whose_group_was_deleted_meanwhile_is_ended() -> None:
    store = KillAfter(schema.MEMBER_PREFIX)
    app = applier(store)
    added = ev.membership("dsync.group.user_added", created=1)
    apply(
        app,
        ev.event("dsync.group.created", ev.group(), created=0),
        ev.event("dsync.user.created", ev.user(), created=0),
    )
    original = store.get_versions

    def group_deleted_by_another_lane_after_the_read(keys: Any) -> dict[ItemKey, StoredVersion]:
        versions = original(keys)
        if MEMBER in keys and not present(store, records.group_key(ev.DIRECTORY, "directory_group_1")):
            return versions
        store.get_versions = original  # type: ignore[method-assign]
        apply(applier(FakeDirectoryStoreView(store)), ev.event("dsync.group.deleted", ev.group(updated=3), created=3))
        return versions

    store.get_versions = group_deleted_by_another_lane_after_the_read  # type: ignore[method-assign]
    with pytest.raises(LambdaKilledError):
        apply(app, added)  # the membership is written after the cascade read, then the Lambda dies
    assert present(store, MEMBER)
    [outcome] = apply(app, added)  # SQS redelivers the batch
    assert outcome.status in (Status.APPLIED, Status.NOOP)
    assert not present(store, MEMBER)


class FakeDirectoryStoreView(FakeDirectoryStore):
    """Another lane's applier on the same items (no kill)."""

    def __init__(self, base: FakeDirectoryStore) -> None:
        super().__init__()
        self.items = base.items
        self._lock = base._lock
        self._index_log = base._index_log


# --- 2. A write that raced dsync.deleted is purged even when the re-queue failed once -----------------------------


def test_a_live_item_in_a_deleted_directory_queues_its_purge_again_on_redelivery() -> None:
    store = FakeDirectoryStore()
    work = FakeWorkQueue()
    app = applier(store, work)
    created = ev.event("dsync.user.created", ev.user(), created=1)
    work.fail = True
    apply(app, ev.event("dsync.activated", ev.directory(), created=0))
    work.fail = False
    apply(app, ev.event("dsync.activated", ev.directory(), created=0))
    apply(app, created)
    # dsync.deleted is applied by another lane and its purge runs before our user landed: simulate the order
    # "purge ran, then the user was written, then the re-queue failed".
    store.put_if_newer(records.directory_tombstone(ev.DIRECTORY, ev.ORG, vkey=10**18, expires_at=int(NOW) + 99))
    work.jobs.clear()
    [outcome] = apply(app, created)  # the redelivery of the user's batch
    assert outcome.status in (Status.APPLIED, Status.NOOP)
    assert {"kind": "purge", "directory_id": ev.DIRECTORY} in [
        {"kind": job["kind"], "directory_id": job["directory_id"]} for job in work.jobs
    ]


# --- 4. No change event asserts anything of a deleted directory ---------------------------------------------------


def test_the_guard_drops_what_another_lane_wrote_after_dsync_deleted() -> None:
    store = FakeDirectoryStore()
    user = records.user_record(records_user())
    group = records.group_record(records_group())
    membership = records.membership_record(
        ev.DIRECTORY, "directory_group_1", "directory_user_1", vkey=4, present=True, expires_at=0
    )
    store.put_if_newer(records.directory_tombstone(ev.DIRECTORY, ev.ORG, vkey=9, expires_at=0))
    stream = [streams.insert(user), streams.insert(group), streams.insert(membership)]
    events = [event for record in stream for event in changes_from_stream_record(record)]
    assert {event.detail_type for event in events} == {USER_PROVISIONED, GROUP_CREATED, MEMBERSHIP_ADDED}
    assert untrue_events(events, store) == {0, 1, 2}


def records_user() -> Any:
    from shared.model.events import DirectoryUser

    return DirectoryUser.model_validate(ev.user())


def records_group() -> Any:
    from shared.model.events import DirectoryGroup

    return DirectoryGroup.model_validate(ev.group())


# --- 8. A throttled cascade moves to the overflow lane ------------------------------------------------------------


class RecordingOverflow:
    def __init__(self) -> None:
        self.moved: list[OverflowMessage] = []

    def move(self, messages: Any) -> None:
        self.moved.extend(messages)


def test_a_cascade_throttled_by_its_partition_moves_to_the_overflow_lane() -> None:
    store = FakeDirectoryStore()
    seed = applier(store)
    apply(seed, ev.membership("dsync.group.user_added", created=1))
    overflow = RecordingOverflow()
    app = applier(store, overflow=OverflowLane(overflow))
    original = store.replace_if_newer

    def throttled_memberships(record: Record) -> Replaced:
        if record.key.sk.startswith(schema.MEMBER_PREFIX):
            raise StoreThrottledError("ThrottlingException")
        return original(record)

    store.replace_if_newer = throttled_memberships  # type: ignore[method-assign]
    [outcome] = apply(app, ev.event("dsync.group.deleted", ev.group(updated=5), created=5))
    assert outcome.status is Status.MOVED and len(overflow.moved) == 1


# --- 9. One throttled partition in a mixed batch holds back only its own directory --------------------------------


def test_a_partly_throttled_batch_read_fails_only_the_throttled_directory() -> None:
    store = FakeDirectoryStore()
    overflow = RecordingOverflow()
    app = applier(store, overflow=OverflowLane(overflow))
    original = store.get_versions

    def giant_throttled(keys: Any) -> dict[ItemKey, StoredVersion]:
        if any(key.pk == schema.directory_pk(OTHER) for key in keys):
            raise StoreThrottledError("BatchGetItem left keys unprocessed")
        return original(keys)

    store.get_versions = giant_throttled  # type: ignore[method-assign]
    small = ev.event("dsync.user.created", ev.user(), created=1)
    giant = ev.event("dsync.user.created", ev.user("directory_user_9", directory_id=OTHER), created=1)
    small_outcome, giant_outcome = apply(app, small, giant)
    assert small_outcome.status is Status.APPLIED
    assert giant_outcome.status is Status.MOVED
    assert app.overflow is not None and app.overflow.hot.is_hot(OTHER) and not app.overflow.hot.is_hot(ev.DIRECTORY)


# --- 11. The activation's initial sync survives a failed submit --------------------------------------------------


def test_an_activation_whose_initial_sync_could_not_be_queued_queues_it_on_redelivery() -> None:
    store = FakeDirectoryStore()
    work = FakeWorkQueue(fail=True)
    app = applier(store, work)
    activated = ev.event("dsync.activated", ev.directory(), created=0)
    [first] = apply(app, activated)
    assert first.status is Status.RETRY
    work.fail = False
    [second] = apply(app, activated)
    assert second.status is Status.APPLIED
    assert [job["kind"] for job in work.jobs] == ["reconcile"]
    apply(app, activated)  # a duplicate after success queues nothing more
    assert [job["kind"] for job in work.jobs] == ["reconcile"]


# --- Examined: a batch never runs into the Lambda timeout behind the SDK's throttle backoff ------------------------


def test_no_write_starts_past_the_batchs_deadline() -> None:
    """The overflow lane's SDK backs off up to 20 s a retry; writes not started by the deadline are not sent, and
    their messages are retried, instead of the Lambda being killed at its timeout (then redelivered only after the
    six-minute visibility timeout)."""
    store = FakeDirectoryStore()
    app = applier(store)
    messages = [ev.message(ev.event("dsync.user.created", ev.user(f"directory_user_{n}"), created=1)) for n in range(3)]
    outcomes = app.apply(messages, remaining_seconds=lambda: app.config.safety_margin_seconds - 1)
    assert {outcome.status for outcome in outcomes.values()} == {Status.RETRY}
    assert not any(key.sk.startswith(schema.USER_PREFIX) for key in store.items)


def test_a_throttled_read_back_fails_and_moves_only_its_own_directory() -> None:
    """Issue #17 review: the read-back read every directory's keys in one request, so a giant's throttled partition
    failed the small tenants of the batch too, as a plain retry (six minutes), and the giant was not moved."""
    store = FakeDirectoryStore()
    overflow = RecordingOverflow()
    app = applier(store, overflow=OverflowLane(overflow))
    original = store.get_versions
    reads: dict[str, int] = {}

    def giant_throttled_on_its_read_back(keys: Any) -> dict[ItemKey, StoredVersion]:
        pks = {key.pk for key in keys}
        if schema.directory_pk(OTHER) in pks:
            reads[OTHER] = reads.get(OTHER, 0) + 1
            if reads[OTHER] == 2:
                raise StoreThrottledError("ThrottlingException")
        return original(keys)

    store.get_versions = giant_throttled_on_its_read_back  # type: ignore[method-assign]
    small = ev.event("dsync.user.created", ev.user(), created=1)
    giant = ev.event("dsync.user.created", ev.user("directory_user_9", directory_id=OTHER), created=1)
    small_outcome, giant_outcome = apply(app, small, giant)
    assert small_outcome.status is Status.APPLIED
    assert giant_outcome.status is Status.MOVED
