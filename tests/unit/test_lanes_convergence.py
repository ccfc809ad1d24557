"""Lanes: a directory's events are applied by concurrent appliers, one per FIFO group (`shared.lanes`), while a
publisher reads the store's stream as it grows. Whatever the interleaving:

- the readable state is the one in-order delivery gives (and WorkOS's truth);
- no membership row is left present for a user or group that is deleted, in the store itself (not only hidden by
  the reader);
- the change events tell the truth: folding the published `membership.added` / `membership.removed` gives exactly
  the memberships the export has, so no app is left believing in a membership of a deleted user or group; and no
  `membership.added` is published after its group's `group.deleted` or its user's `user.deprovisioned`.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import lanes, schema
from shared.apply import Applier, InboundMessage, Status
from shared.change_guard import untrue_additions
from shared.changes import (
    GROUP_DELETED,
    MEMBERSHIP_ADDED,
    MEMBERSHIP_REMOVED,
    USER_DEPROVISIONED,
    ChangeEvent,
    changes_from_stream_record,
)
from shared.reader import readable_state
from shared.records import ItemKey, Record, StoredVersion
from tests.support import streams
from tests.support.fake_store import FakeDeadLetters, FakeDirectoryStore, FakeWorkQueue
from tests.support.histories import batches, build_history, deliveries, project, steps

pytestmark = pytest.mark.unit


class StreamingStore(FakeDirectoryStore):
    """The fake store plus its stream (old and new image of every write, in write order). Reads yield the thread,
    so another lane's applier often runs between a batch's read and its writes: the race lanes make possible."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.stream: list[dict[str, Any]] = []
        self._stream_lock = threading.Lock()
        self._pauses = random.Random(seed)

    def get_versions(self, keys: Collection[ItemKey]) -> dict[ItemKey, StoredVersion]:
        versions = super().get_versions(keys)
        time.sleep(self._pauses.random() * 0.002)  # a read's round trip, during which other lanes move on
        return versions

    def put_if_newer(self, record: Record) -> bool:
        with self._stream_lock:
            old = copy.deepcopy(self.items.get(record.key))
            written = super().put_if_newer(record)
            if written:
                new = copy.deepcopy(self.items[record.key])
                self.stream.append(streams.modify(old, new) if old is not None else streams.insert(new))
        return written


def lane_sequences(events: list[dict[str, Any]], directory_id: str) -> dict[str, list[dict[str, Any]]]:
    by_lane: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_lane[lanes.message_group_id(directory_id, event["event"], event["data"])].append(event)
    return by_lane


def apply_lane(store: StreamingStore, group_id: str, lane_batches: list[list[dict[str, Any]]]) -> None:
    applier = Applier(store=store, work_queue=FakeWorkQueue(), dead_letters=FakeDeadLetters(), clock=lambda: 1e9)
    for batch in lane_batches:
        messages = [InboundMessage(f"m{uuid.uuid4().hex}", json.dumps(e), group_id, e["id"]) for e in batch]
        outcomes = applier.apply(messages)
        assert all(o.status in (Status.APPLIED, Status.NOOP) for o in outcomes.values()), outcomes


class Publisher:
    """Reads the stream as it grows and publishes its change events through the guard, as the publish Lambda does."""

    def __init__(self, store: StreamingStore) -> None:
        self.store = store
        self.published: list[ChangeEvent] = []
        self._read = 0

    def publish_new(self) -> None:
        records = self.store.stream[self._read :]
        self._read += len(records)
        events = [event for record in records for event in changes_from_stream_record(record)]
        untrue = untrue_additions(events, self.store)
        self.published.extend(event for index, event in enumerate(events) if index not in untrue)


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


def present_memberships_of_deleted_entities(store: FakeDirectoryStore, directory_id: str) -> list[dict[str, Any]]:
    items = {item[schema.SORT_KEY]: item for item in store.partition(directory_id)}
    directory = items.get(schema.DIRECTORY_SK)
    if directory is not None and directory[schema.DELETED_ATTRIBUTE]:
        return []  # the whole partition is purged by its job
    deleted = {sk for sk, item in items.items() if item[schema.DELETED_ATTRIBUTE]}
    return [
        item
        for sk, item in items.items()
        if sk.startswith(schema.MEMBER_PREFIX)
        and not item[schema.DELETED_ATTRIBUTE]
        and (schema.user_sk(item["user_id"]) in deleted or schema.group_sk(item["group_id"]) in deleted)
    ]


@settings(max_examples=120, deadline=None)
@given(operations=steps, seed=st.integers(0, 2**32 - 1))
def test_concurrent_lanes_converge_and_their_change_events_tell_the_truth(
    operations: list[tuple[str, int, int]], seed: int
) -> None:
    model, directory_id = build_history(operations)
    rng = random.Random(seed)
    delivered = deliveries(model.events, rng, duplicate_rate=0.3)
    store = StreamingStore(seed)
    publisher = Publisher(store)
    sequences = lane_sequences(delivered, directory_id)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(apply_lane, store, group_id, batches(events, rng, max_size=4))
            for group_id, events in sequences.items()
        ]
        while not all(future.done() for future in futures):
            publisher.publish_new()
            time.sleep(0)
        for future in futures:
            future.result()
    publisher.publish_new()

    state = readable_state(directory_id, store.partition(directory_id))
    in_order = StreamingStore()
    apply_lane(in_order, directory_id, [[event] for event in model.events])
    assert state == readable_state(directory_id, in_order.partition(directory_id))
    truth = model.snapshot(directory_id)
    assert project(state, truth) == truth
    assert present_memberships_of_deleted_entities(store, directory_id) == []
    assert additions_after_a_deletion(publisher.published) == []
    exported = {(m["group_id"], m["user_id"]) for m in state["memberships"]}
    if state["directory"] is not None:
        assert folded_memberships(publisher.published) == exported


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
