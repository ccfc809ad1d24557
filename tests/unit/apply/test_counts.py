"""A directory's counter item (`~COUNTS`): moved by each write's own transition, added once per batch and directory,
never twice, and set again from the partition by a reconcile (`shared.apply.counts`, `shared.reconcile.counts`).

On the in-memory store, which answers a conditional put with the item it replaced (ReturnValues=ALL_OLD) and can be
made unkind: throttled calls, lost responses, Lambdas killed mid-batch.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from shared.apply.applier import Applier
from shared.apply.counts import CountTally
from shared.apply.ports import ApplyConfig, Status, StoreThrottledError, TransientStoreError
from shared.changes.derive import changes_from_stream_record
from shared.model import records, schema
from shared.model.records import CountChange, Record, Replaced
from shared.reconcile.counts import correct_counts
from tests.support import dsync_events as ev
from tests.support import streams
from tests.support.fake_store import FakeDeadLetters, FakeDirectoryStore, FakeWorkQueue, Unkindness
from tests.support.histories import OPERATIONS, build_history, deliveries
from tests.support.unkind import run_purges
from tests.unit.apply.test_lanes_convergence import StreamingStore, run_lanes

pytestmark = pytest.mark.unit

D = ev.DIRECTORY


class Harness:
    def __init__(self, store: FakeDirectoryStore | None = None) -> None:
        self.store = store or FakeDirectoryStore()
        self.work = FakeWorkQueue()
        self.applier = Applier(
            store=self.store,
            work_queue=self.work,
            dead_letters=FakeDeadLetters(),
            config=ApplyConfig(tombstone_ttl_seconds=86_400),
            clock=lambda: 1_800_000_000.0,
        )

    def apply(self, *documents: dict[str, Any]) -> list[Status]:
        messages = [ev.message(document) for document in documents]
        outcomes = self.applier.apply(messages)
        return [outcomes[message.message_id].status for message in messages]

    def counter(self, directory_id: str = D) -> dict[str, Any]:
        return self.store.items.get(records.counts_key(directory_id)) or {}

    def counts(self, directory_id: str = D) -> dict[str, int | None]:
        counts, _ = records.readable_counts(self.store.items.get(records.counts_key(directory_id)))
        return counts

    def updates(self) -> int:
        return self.store.calls.get("add_counts", 0)


def counts(active: int = 0, inactive: int = 0, groups: int = 0) -> dict[str, int | None]:
    return {"users_active": active, "users_inactive": inactive, "groups": groups}


def truth(store: FakeDirectoryStore, directory_id: str) -> dict[str, int | None]:
    users = store.count_live(directory_id, schema.USER_PREFIX)
    groups = store.count_live(directory_id, schema.GROUP_PREFIX)
    return counts(users["active"], users["inactive"], groups["live"])


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.apply(ev.event("dsync.activated", ev.directory(), created=0))
    return harness


# --- The transitions -------------------------------------------------------------------------------------------------


def test_a_directory_created_by_its_activation_counts_from_an_empty_partition(h: Harness) -> None:
    assert h.counts() == counts()
    assert h.counter()[records.COUNTS_BASIS] == records.BASIS_CREATED


def test_each_transition_of_a_users_life_moves_its_count_once(h: Harness) -> None:
    assert h.apply(ev.event("dsync.user.created", ev.user(updated=1), created=1)) == [Status.APPLIED]
    assert h.counts() == counts(active=1)  # absent -> active
    h.apply(ev.event("dsync.user.updated", ev.user(updated=2, state="inactive"), created=2))
    assert h.counts() == counts(inactive=1)  # active -> inactive
    h.apply(ev.event("dsync.user.deleted", ev.user(updated=3, state="inactive"), created=3))
    assert h.counts() == counts()  # inactive -> tombstone
    updates = h.updates()
    assert h.apply(ev.event("dsync.user.updated", ev.user(updated=2), created=2)) == [Status.NOOP]
    assert h.counts() == counts() and h.updates() == updates  # tombstone -> stale put refused: nothing, no call


def test_a_redelivered_event_adds_nothing(h: Harness) -> None:
    created = ev.event("dsync.user.created", ev.user(updated=1), created=1)
    h.apply(created)
    updates = h.updates()
    assert h.apply(created) == [Status.NOOP]
    assert h.counts() == counts(active=1) and h.updates() == updates


def test_an_update_that_keeps_the_state_moves_nothing_and_costs_no_update(h: Harness) -> None:
    h.apply(ev.event("dsync.user.created", ev.user(updated=1), created=1))
    updates = h.updates()
    h.apply(ev.event("dsync.user.updated", ev.user(updated=2, first_name="Augusta"), created=2))
    assert h.counts() == counts(active=1) and h.updates() == updates


def test_groups_count_while_they_live_and_a_membership_moves_no_count(h: Harness) -> None:
    h.apply(ev.event("dsync.group.created", ev.group(updated=1), created=1))
    h.apply(ev.membership("dsync.group.user_added", created=2, user_data=ev.user(updated=2)))
    assert h.counts() == counts(active=1, groups=1)  # the added user arrived with its membership
    h.apply(ev.event("dsync.group.deleted", ev.group(updated=3), created=3))
    assert h.counts() == counts(active=1)


def test_a_batch_adds_its_transitions_in_one_update_per_directory(h: Harness) -> None:
    other = "directory_01HT0000000000000000000OTHER"
    updates = h.updates()
    h.apply(
        *[ev.event("dsync.user.created", ev.user(f"directory_user_{n}", updated=1), created=1) for n in range(8)],
        ev.event("dsync.user.created", ev.user("directory_user_x", updated=1, directory_id=other), created=1),
    )
    assert h.counts() == counts(active=8)
    assert h.counts(other) == counts(active=1)  # its stub was created with it: counted from an empty partition
    assert h.updates() == updates + 2


def test_a_directory_mirrored_before_the_counters_shows_no_counts_until_a_reconcile_sets_them() -> None:
    h = Harness()
    h.store.put_if_newer(records.directory_stub(D, ev.ORG))  # stored before the counters existed
    h.apply(ev.event("dsync.user.created", ev.user(updated=1), created=1))
    assert h.counts() == {"users_active": None, "users_inactive": None, "groups": None}
    correction = correct_counts(h.store, D, clock=lambda: 1_800_000_000.0)
    assert correction is not None and correction.drift == {"users_active": 1}
    assert h.counts() == counts(active=1) and h.counter()[records.COUNTS_BASIS] == records.BASIS_RECONCILED
    h.apply(ev.event("dsync.user.created", ev.user("directory_user_2", updated=2), created=2))
    assert h.counts() == counts(active=2)  # maintained from there on


def test_the_counter_publishes_no_change_event(h: Harness) -> None:
    h.apply(ev.event("dsync.user.created", ev.user(updated=1), created=1))
    counter = h.counter()
    assert changes_from_stream_record(streams.insert(counter)) == []
    assert changes_from_stream_record(streams.modify(counter, {**counter, "users_active": 2})) == []
    assert changes_from_stream_record(streams.remove(counter)) == []


# --- What a writer cannot see ----------------------------------------------------------------------------------------


class LosesOnePutResponse(FakeDirectoryStore):
    """The first put of a user lands, and its caller hears a timeout."""

    armed = True

    def replace_if_newer(self, record: Record) -> Replaced:
        replaced = super().replace_if_newer(record)
        if self.armed and replaced.written and record.key.sk.startswith(schema.USER_PREFIX):
            self.armed = False
            raise TransientStoreError("read timeout (the write was applied)")
        return replaced


def test_a_lost_put_response_adds_nothing_says_so_and_the_reconcile_sets_the_count() -> None:
    h = Harness(LosesOnePutResponse())
    h.apply(ev.event("dsync.activated", ev.directory(), created=0))
    created = ev.event("dsync.user.created", ev.user(updated=1), created=1)
    assert h.apply(created) == [Status.RETRY]
    assert h.apply(created) == [Status.NOOP]  # the redelivery's put is refused: it landed
    assert h.counts() == counts() and h.counter()[records.COUNTS_UNOBSERVED] == 1  # missed, never guessed
    correction = correct_counts(h.store, D, clock=lambda: 1_800_000_000.0)
    assert correction is not None and correction.drift == {"users_active": 1}
    assert h.counts() == counts(active=1) and h.counter()[records.COUNTS_UNOBSERVED] == 0


def test_an_adapter_retry_that_finds_its_own_write_stored_counts_it_unobserved() -> None:
    tally = CountTally()
    record = records.user_record(ev_user())
    tally.observe(record, Replaced(True, old_known=False))  # a refused retry read our own version back
    [change] = tally.take()
    assert (change.deltas, change.unobserved) == ({}, 1)


def ev_user() -> Any:
    from shared.model.events import DirectoryUser

    return DirectoryUser.model_validate(ev.user(updated=1))


class LosesOneCountsResponse(FakeDirectoryStore):
    """The first counter update lands, and its caller hears a timeout; the next one is throttled."""

    def __init__(self) -> None:
        super().__init__()
        self.script = ["lost", "throttled"]

    def add_counts(self, change: CountChange) -> None:
        step = self.script.pop(0) if self.script and change.deltas else None
        if step == "throttled":
            raise StoreThrottledError("ProvisionedThroughputExceededException")
        super().add_counts(change)
        if step == "lost":
            raise TransientStoreError("read timeout (the counts were added)")


def test_a_counter_update_retried_after_a_lost_response_or_a_throttle_is_added_once() -> None:
    h = Harness(LosesOneCountsResponse())
    h.apply(ev.event("dsync.activated", ev.directory(), created=0))
    assert h.apply(ev.event("dsync.user.created", ev.user(updated=1), created=1)) == [Status.APPLIED]
    assert h.counts() == counts(active=1)  # the retry carried the same token: refused, not added twice
    assert h.apply(ev.event("dsync.user.created", ev.user("directory_user_2", updated=2), created=2)) == [
        Status.APPLIED
    ]
    assert h.counts() == counts(active=2)  # the throttled update was retried


# --- A deleted directory ---------------------------------------------------------------------------------------------


def test_a_deleted_directorys_counter_goes_with_its_purge(h: Harness) -> None:
    h.apply(ev.event("dsync.user.created", ev.user(updated=1), created=1))
    assert records.counts_key(D) in h.store.items
    h.apply(ev.event("dsync.deleted", ev.directory(updated=5), created=5))
    run_purges(h.store, h.work)
    assert [item[schema.SORT_KEY] for item in h.store.partition(D)] == [schema.DIRECTORY_SK]


def test_a_counter_that_outlived_its_directorys_purge_queues_the_purge_again(h: Harness) -> None:
    h.apply(ev.event("dsync.deleted", ev.directory(updated=5), created=5))
    run_purges(h.store, h.work)
    # A lane that wrote just before the deletion adds its counts after the purge (and its Lambda dies before the
    # read-back that would have seen the deletion).
    h.store.add_counts(CountChange(D, {"users_active": 1}, token="late"))
    h.apply(ev.event("dsync.user.updated", ev.user(updated=2), created=2))  # any later event of the directory
    assert [job["kind"] for job in h.work.jobs] == ["purge"]
    run_purges(h.store, h.work)
    assert [item[schema.SORT_KEY] for item in h.store.partition(D)] == [schema.DIRECTORY_SK]


# --- Concurrent lanes in the unkind world ----------------------------------------------------------------------------

LIFE = [operation for operation in OPERATIONS if not operation.endswith("_directory")]  # a directory that lives on


@pytest.mark.parametrize("seed", range(20))
def test_concurrent_lanes_throttled_and_redelivered_keep_exact_counts(seed: int) -> None:
    """Throttles and redeliveries (duplicates, whole batches retried) never move a count twice or miss one."""
    rng = random.Random(seed)
    operations = [(op, rng.randrange(12), rng.randrange(12)) for op in rng.choices(LIFE, k=40)]
    model, directory_id = build_history(operations, seed=seed)
    store = StreamingStore(seed, Unkindness(seed=seed, throttle_rate=0.05))
    run_lanes(store, directory_id, deliveries(model.events, rng, duplicate_rate=0.3), rng)
    store.unkindness = None
    assert Harness(store).counts(directory_id) == truth(store, directory_id)
    assert store.items[records.counts_key(directory_id)].get(records.COUNTS_UNOBSERVED, 0) == 0


@pytest.mark.parametrize("seed", range(20))
def test_lost_responses_and_killed_lambdas_leave_drift_that_the_correction_removes(seed: int) -> None:
    rng = random.Random(seed)
    operations = [(op, rng.randrange(12), rng.randrange(12)) for op in rng.choices(LIFE, k=40)]
    model, directory_id = build_history(operations, seed=seed)
    unkind = Unkindness(seed=seed, throttle_rate=0.03, lost_response_rate=0.05, kill_rate=0.03)
    store = StreamingStore(seed, unkind)
    run_lanes(store, directory_id, deliveries(model.events, rng, duplicate_rate=0.3), rng)
    store.unkindness = None
    assert correct_counts(store, directory_id) is not None
    assert Harness(store).counts(directory_id) == truth(store, directory_id)
