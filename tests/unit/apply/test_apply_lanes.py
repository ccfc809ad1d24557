"""The applier beside other lanes: throttled directories move to the overflow lane, and a read-back after the
writes undoes what a concurrent deletion made untrue."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.apply.applier import Applier
from shared.apply.overflow import HotDirectories, OverflowLane, OverflowMessage
from shared.apply.ports import ApplyConfig, Status, StoreThrottledError
from shared.model import records, schema
from shared.model.records import ItemKey, Record, Replaced, StoredVersion
from tests.support import dsync_events as ev
from tests.support.fake_store import FakeDeadLetters, FakeDirectoryStore, FakeWorkQueue

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


@dataclass
class FakeOverflow:
    moved: list[OverflowMessage] = field(default_factory=list)
    fail: bool = False

    def move(self, messages: Sequence[OverflowMessage]) -> None:
        if self.fail:
            raise RuntimeError("overflow queue unavailable")
        self.moved.extend(messages)


class ThrottlingStore(FakeDirectoryStore):
    """Throttles every write into the directories named in `hot`."""

    def __init__(self, hot: set[str]) -> None:
        super().__init__()
        self.hot = hot

    def replace_if_newer(self, record: Record) -> Replaced:
        if schema.directory_id_of_pk(record.key.pk) in self.hot:
            raise StoreThrottledError("ProvisionedThroughputExceededException")
        return super().replace_if_newer(record)


class RacingStore(FakeDirectoryStore):
    """Runs `between` once, right after the batch's first read: another lane's writes landing meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.between: list[Any] = []

    def get_versions(self, keys: Collection[ItemKey]) -> dict[ItemKey, StoredVersion]:
        versions = super().get_versions(keys)
        while self.between:
            self.between.pop(0)()
        return versions


def applier(
    store: FakeDirectoryStore, overflow: FakeOverflow | None = None, work: FakeWorkQueue | None = None
) -> Applier:
    return Applier(
        store=store,
        work_queue=work or FakeWorkQueue(),
        dead_letters=FakeDeadLetters(),
        config=ApplyConfig(),
        clock=lambda: NOW,
        overflow=OverflowLane(overflow, HotDirectories(clock=lambda: NOW)) if overflow else None,
    )


def test_a_throttled_directory_moves_to_the_overflow_lane_and_other_directories_apply() -> None:
    store, overflow = ThrottlingStore(hot={"directory_big"}), FakeOverflow()
    big = ev.message(ev.event("dsync.user.created", ev.user("u1", directory_id="directory_big"), created=1))
    small = ev.message(ev.event("dsync.user.created", ev.user("u2"), created=1))
    outcomes = applier(store, overflow).apply([big, small])
    assert outcomes[big.message_id].status is Status.MOVED
    assert outcomes[small.message_id].status is Status.APPLIED
    assert [(m.body, m.group_id, m.deduplication_id) for m in overflow.moved] == [
        (big.body, big.group_id, big.deduplication_id)
    ]


def test_a_hot_directory_moves_at_once_without_touching_the_store() -> None:
    store, overflow = ThrottlingStore(hot={"directory_big"}), FakeOverflow()
    lane_applier = applier(store, overflow)
    lane_applier.apply(
        [ev.message(ev.event("dsync.user.created", ev.user("u1", directory_id="directory_big"), created=1))]
    )
    store.calls.clear()
    second = ev.message(ev.event("dsync.user.created", ev.user("u3", directory_id="directory_big"), created=2))
    assert lane_applier.apply([second])[second.message_id].status is Status.MOVED
    assert store.calls == {}  # no read, no write: the directory is known hot
    assert len(overflow.moved) == 2


def test_without_an_overflow_lane_a_throttled_write_is_retried_in_place() -> None:
    store = ThrottlingStore(hot={ev.DIRECTORY})
    message = ev.message(ev.event("dsync.user.created", ev.user("u1"), created=1))
    assert applier(store).apply([message])[message.message_id].status is Status.RETRY


def test_when_the_overflow_queue_refuses_the_message_stays_to_be_retried() -> None:
    store, overflow = ThrottlingStore(hot={ev.DIRECTORY}), FakeOverflow(fail=True)
    message = ev.message(ev.event("dsync.user.created", ev.user("u1"), created=1))
    outcome = applier(store, overflow).apply([message])[message.message_id]
    assert outcome.status is Status.RETRY
    assert "could not move" in (outcome.reason or "")


def test_a_membership_written_after_a_concurrent_group_deletion_is_ended_at_once() -> None:
    store = RacingStore()
    lane = applier(store)
    lane.apply([ev.message(ev.event("dsync.group.created", ev.group(), created=1))])
    deletion = ev.message(ev.event("dsync.group.deleted", ev.group(updated=30), created=30))
    store.between.append(lambda: applier(FakeDirectoryStoreView(store)).apply([deletion]))
    addition = ev.message(ev.membership("dsync.group.user_added", created=20))
    lane.apply([addition])
    membership = list(store.partition(ev.DIRECTORY, schema.MEMBER_PREFIX))
    assert [item[schema.DELETED_ATTRIBUTE] for item in membership] == [True]


def test_a_write_after_a_concurrent_directory_deletion_queues_the_purge_again() -> None:
    store, work = RacingStore(), FakeWorkQueue()
    lane = applier(store, work=work)
    lane.apply([ev.message(ev.event("dsync.activated", ev.directory(), created=1))])
    work.jobs.clear()
    deletion = ev.message(ev.event("dsync.deleted", ev.directory(updated=30), created=30))
    store.between.append(lambda: applier(FakeDirectoryStoreView(store)).apply([deletion]))
    lane.apply([ev.message(ev.event("dsync.user.created", ev.user("u9"), created=20))])
    assert [(job["kind"], job["directory_id"]) for job in work.jobs] == [("purge", ev.DIRECTORY)]
    assert store.items.get(records.user_key(ev.DIRECTORY, "u9")) is not None  # left for that purge to remove


class FakeDirectoryStoreView(FakeDirectoryStore):
    """Another applier's view of the same items (no racing hook of its own)."""

    def __init__(self, store: FakeDirectoryStore) -> None:
        super().__init__()
        self.items = store.items
