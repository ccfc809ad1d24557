"""Lanes: a directory's events are applied by concurrent appliers, one per FIFO group (`shared.model.lanes`), while a
publisher reads the store's stream as it grows and the work queue's purges run, all in the unkind world
(`tests.support.fake_store.Unkindness`: a lagging index, throttled reads and writes, writes whose response is lost,
Lambdas killed mid-batch and their batches redelivered whole). Whatever the interleaving:

- the readable state is the one in-order delivery gives (and WorkOS's truth);
- no membership row is left present for a user or group that is deleted, in the store itself (not only hidden by
  the reader);
- the change events tell the truth: folding the published `membership.added` / `membership.removed` gives exactly
  the memberships the export has, so no app is left believing in a membership of a deleted user or group; and no
  `membership.added` is published after its group's `group.deleted` or its user's `user.deprovisioned`;
- an app that deduplicates the change events on `event_id` and folds each subject by `version`, whatever order they
  reach it in, ends equal to the export: also when the directory is deleted while its other lanes are busy (then
  the export is empty, and nothing outlives the purge in the store either).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.apply.applier import Applier
from shared.apply.ports import InboundMessage, StoreThrottledError
from shared.changes.derive import (
    DIRECTORY_DELETED,
    GROUP_DELETED,
    MEMBERSHIP_ADDED,
    MEMBERSHIP_REMOVED,
    USER_DEPROVISIONED,
    ChangeEvent,
    changes_from_stream_record,
)
from shared.changes.guard import REMOVALS, untrue_events
from shared.model import lanes, schema
from shared.model.records import ItemKey, StoredVersion
from shared.read.reader import readable_state
from tests.support import streams
from tests.support.fake_store import FakeDeadLetters, FakeDirectoryStore, FakeWorkQueue, Unkindness
from tests.support.histories import batches, build_history, deliveries, project, steps
from tests.support.unkind import apply_until_done, run_purges

pytestmark = pytest.mark.unit


class StreamingStore(FakeDirectoryStore):
    """The fake store plus its stream (old and new image of every write and removal, in write order). Reads yield
    the thread, so another lane's applier often runs between a batch's read and its writes: the race lanes make
    possible."""

    def __init__(self, seed: int = 0, unkindness: Unkindness | None = None) -> None:
        super().__init__(unkindness)
        self.stream: list[dict[str, Any]] = []
        self._pauses = random.Random(seed)
        self.on_write = self._record

    def _record(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if new is None:
            assert old is not None
            self.stream.append(streams.remove(old))
        else:
            self.stream.append(streams.modify(old, new) if old is not None else streams.insert(new))

    def get_versions(self, keys: Collection[ItemKey]) -> dict[ItemKey, StoredVersion]:
        versions = super().get_versions(keys)
        time.sleep(self._pauses.random() * 0.002)  # a read's round trip, during which other lanes move on
        return versions


def lane_sequences(events: list[dict[str, Any]], directory_id: str) -> dict[str, list[dict[str, Any]]]:
    by_lane: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_lane[lanes.message_group_id(directory_id, event["event"], event["data"])].append(event)
    return by_lane


def apply_lane(
    store: StreamingStore, group_id: str, lane_batches: list[list[dict[str, Any]]], jobs: FakeWorkQueue | None = None
) -> None:
    applier = Applier(
        store=store, work_queue=jobs or FakeWorkQueue(), dead_letters=FakeDeadLetters(), clock=lambda: 1e9
    )
    for batch in lane_batches:
        messages = [InboundMessage(f"m{uuid.uuid4().hex}", json.dumps(e), group_id, e["id"]) for e in batch]
        apply_until_done(applier, messages)


class Publisher:
    """Reads the stream as it grows and publishes its change events through the guard, as the publish Lambda does."""

    def __init__(self, store: StreamingStore) -> None:
        self.store = store
        self.published: list[ChangeEvent] = []
        self._read = 0

    def pending(self) -> bool:
        return self._read < len(self.store.stream)

    def publish_new(self) -> None:
        records = self.store.stream[self._read :]
        events = [event for record in records for event in changes_from_stream_record(record)]
        try:
            untrue = untrue_events(events, self.store)
        except StoreThrottledError:
            return  # the batch is retried from the same position, as Lambda retries a stream batch
        self._read += len(records)
        self.published.extend(event for index, event in enumerate(events) if index not in untrue)


def app_fold(published: list[ChangeEvent], rng: random.Random) -> dict[str, set[Any]]:
    """What an app ends up believing: duplicates (on `event_id`) dropped, the events taken in any order, each
    subject (a user, a group, a membership) keeping the event of its highest `version`."""
    unique = list({event.event_id: event for event in published}.values())
    rng.shuffle(unique)
    newest: dict[tuple[str, ...], ChangeEvent] = {}
    for event in unique:
        if event.detail_type in (MEMBERSHIP_ADDED, MEMBERSHIP_REMOVED):
            membership = event.detail["membership"]
            subject: tuple[str, ...] = ("membership", membership["group_id"], membership["user_id"])
        elif event.detail_type.startswith(("user.", "group.")):
            subject = (event.detail_type.partition(".")[0], event.subject_id)
        else:
            continue
        current = newest.get(subject)
        if current is None or (event.detail["version"], event.detail_type in REMOVALS) > (
            current.detail["version"],
            current.detail_type in REMOVALS,
        ):
            newest[subject] = event
    live = {subject: event for subject, event in newest.items() if event.detail_type not in REMOVALS}
    return {
        "users": {s[1] for s in live if s[0] == "user"},
        "groups": {s[1] for s in live if s[0] == "group"},
        "memberships": {(s[1], s[2]) for s in live if s[0] == "membership"},
    }


def export_ids(state: dict[str, Any]) -> dict[str, set[Any]]:
    return {
        "users": {user["id"] for user in state["users"]},
        "groups": {group["id"] for group in state["groups"]},
        "memberships": {(m["group_id"], m["user_id"]) for m in state["memberships"]},
    }


def folded_memberships(published: list[ChangeEvent]) -> set[tuple[str, str]]:
    present: set[tuple[str, str]] = set()
    for event in published:
        if event.detail_type in (MEMBERSHIP_ADDED, MEMBERSHIP_REMOVED):
            pair = (event.detail["membership"]["group_id"], event.detail["membership"]["user_id"])
            (present.add if event.detail_type == MEMBERSHIP_ADDED else present.discard)(pair)
    return present


def additions_after_a_deletion(published: list[ChangeEvent]) -> list[ChangeEvent]:
    """`membership.added` events published after their group's `group.deleted` or user's `user.deprovisioned`."""
    gone: set[tuple[str, str]] = set()
    late = []
    for event in published:
        if event.detail_type == GROUP_DELETED:
            gone.add(("group", event.subject_id))
        elif event.detail_type == USER_DEPROVISIONED:
            gone.add(("user", event.subject_id))
        elif event.detail_type == MEMBERSHIP_ADDED:
            membership = event.detail["membership"]
            if ("group", membership["group_id"]) in gone or ("user", membership["user_id"]) in gone:
                late.append(event)
    return late


def assertions_after_directory_deleted(published: list[ChangeEvent]) -> list[ChangeEvent]:
    """Events published after `directory.deleted` that assert something of that directory exists."""
    deleted = False
    late = []
    for event in published:
        if event.detail_type == DIRECTORY_DELETED:
            deleted = True
        elif deleted and event.detail_type not in REMOVALS:
            late.append(event)
    return late


def present_memberships_of_deleted_entities(store: FakeDirectoryStore, directory_id: str) -> list[dict[str, Any]]:
    items = {item[schema.SORT_KEY]: item for item in store.partition(directory_id)}
    deleted = {sk for sk, item in items.items() if item[schema.DELETED_ATTRIBUTE]}
    return [
        item
        for sk, item in items.items()
        if sk.startswith(schema.MEMBER_PREFIX)
        and not item[schema.DELETED_ATTRIBUTE]
        and (schema.user_sk(item["user_id"]) in deleted or schema.group_sk(item["group_id"]) in deleted)
    ]


def unkind(seed: int) -> Unkindness:
    return Unkindness(seed=seed, throttle_rate=0.03, lost_response_rate=0.03, kill_rate=0.02)


def run_lanes(
    store: StreamingStore, directory_id: str, delivered: list[dict[str, Any]], rng: random.Random
) -> Publisher:
    """Every lane's batches on its own applier thread, while the publisher and the purges run beside them."""
    publisher = Publisher(store)
    jobs = FakeWorkQueue()
    sequences = lane_sequences(delivered, directory_id)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(apply_lane, store, group_id, batches(events, rng, max_size=4), jobs)
            for group_id, events in sequences.items()
        ]
        while not all(future.done() for future in futures):
            publisher.publish_new()
            run_purges(store, jobs)  # a purge may run while other lanes still write into the directory
            time.sleep(0)
        for future in futures:
            future.result()
    while run_purges(store, jobs) or publisher.pending():
        publisher.publish_new()
    return publisher


@settings(max_examples=120, deadline=None)
@given(operations=steps, seed=st.integers(0, 2**32 - 1))
def test_concurrent_lanes_converge_and_their_change_events_tell_the_truth(
    operations: list[tuple[str, int, int]], seed: int
) -> None:
    model, directory_id = build_history(operations)
    rng = random.Random(seed)
    delivered = deliveries(model.events, rng, duplicate_rate=0.3)
    store = StreamingStore(seed, unkind(seed))
    publisher = run_lanes(store, directory_id, delivered, rng)

    state = readable_state(directory_id, store.partition(directory_id))
    in_order = StreamingStore()
    apply_lane(in_order, directory_id, [[event] for event in model.events])
    assert state == readable_state(directory_id, in_order.partition(directory_id))
    truth = model.snapshot(directory_id)
    assert project(state, truth) == truth
    assert present_memberships_of_deleted_entities(store, directory_id) == []
    assert additions_after_a_deletion(publisher.published) == []
    assert assertions_after_directory_deleted(publisher.published) == []
    assert folded_memberships(publisher.published) == export_ids(state)["memberships"]
    assert app_fold(publisher.published, rng) == export_ids(state)
    if state["directory"] is None and truth["directory"] is None:  # deleted: nothing outlives the purge
        assert [item[schema.SORT_KEY] for item in store.partition(directory_id)] in ([], [schema.DIRECTORY_SK])


def test_a_directory_deleted_while_its_other_lanes_are_busy_leaves_nothing_and_no_ghost() -> None:
    """The case the skipped check hid: lanes keep writing users, groups and memberships while `dsync.deleted` is
    applied and its purge runs; with lost responses and killed Lambdas, nothing outlives the purge and the app's
    fold of the change events is empty."""
    for seed in range(25):
        operations = [("create_user", n, n) for n in range(12)] + [("add_member", n, n % 3) for n in range(12)]
        model, directory_id = build_history([*operations, ("delete_directory", 0, 0)], seed=seed)
        rng = random.Random(seed)
        store = StreamingStore(seed, unkind(seed))
        publisher = run_lanes(store, directory_id, deliveries(model.events, rng, duplicate_rate=0.3), rng)
        assert [item[schema.SORT_KEY] for item in store.partition(directory_id)] == [schema.DIRECTORY_SK]
        assert app_fold(publisher.published, rng) == {"users": set(), "groups": set(), "memberships": set()}
        assert assertions_after_directory_deleted(publisher.published) == []


def test_a_users_events_and_its_memberships_share_a_lane_and_directory_events_keep_their_own() -> None:
    user = {"id": "directory_user_1", "directory_id": "directory_1"}
    membership = {"user": {"id": "directory_user_1"}, "group": {"id": "directory_group_9"}}
    lane = lanes.lane_of("dsync.user.created", user)
    assert lanes.lane_of("dsync.user.deleted", user) == lane
    assert lanes.lane_of("dsync.group.user_added", membership) == lane
    assert lanes.lane_of("dsync.group.user_removed", membership) == lane
    assert lanes.lane_of("dsync.activated", {"id": "directory_1"}) == lanes.DIRECTORY_LANE
    assert lanes.lane_of("dsync.token.created", {"id": "token_1", "directory_id": "directory_1"}) == "d"
    spread = {lanes.lane_of("dsync.user.created", {"id": f"directory_user_{n}"}) for n in range(500)}
    assert spread == {str(n) for n in range(lanes.LANES_PER_DIRECTORY)}
    assert lanes.directory_of_group(lanes.message_group_id("directory_1", "dsync.user.created", user)) == "directory_1"
    assert lanes.directory_of_group("directory_1") == "directory_1"  # a group from before lanes
