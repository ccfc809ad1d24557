"""Convergence property: any valid WorkOS history, delivered in any order with any duplicates, in any batching,
yields the same readable state as delivering it in order, and that state is WorkOS's truth.

Every run is in the unkind world (`tests.support.fake_store.Unkindness`): reads and writes throttled at random,
write responses lost after the write landed, Lambdas killed mid-batch, and each failed batch redelivered whole.
"""

from __future__ import annotations

import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.apply.applier import Applier
from shared.apply.ports import InboundMessage
from shared.ingest.webhook import EventSource
from shared.model.events import KNOWN_EVENT_TYPES
from shared.read.reader import readable_state
from shared.tail.poller import queue_events
from tests.support.fake_store import FakeDeadLetters, FakeDirectoryStore, FakeWorkQueue, Unkindness
from tests.support.histories import batches, build_history, deliveries, project, steps
from tests.support.unkind import apply_until_done

pytestmark = pytest.mark.unit


def unkind_store(seed: int = 0) -> FakeDirectoryStore:
    return FakeDirectoryStore(Unkindness(seed=seed, throttle_rate=0.03, lost_response_rate=0.03, kill_rate=0.02))


def apply_all(
    directory_id: str, delivered_batches: list[list[dict[str, Any]]], store: FakeDirectoryStore | None = None
) -> dict[str, Any]:
    store = store or unkind_store(len(delivered_batches))
    applier = Applier(store=store, work_queue=FakeWorkQueue(), dead_letters=FakeDeadLetters(), clock=lambda: 1e9)
    for batch in delivered_batches:
        messages = [
            InboundMessage(f"m{uuid.uuid4().hex}", json.dumps(event), directory_id, event["id"]) for event in batch
        ]
        apply_until_done(applier, messages)
    return readable_state(directory_id, store.partition(directory_id))


@settings(max_examples=250, deadline=None)
@given(operations=steps, seed=st.integers(0, 2**32 - 1))
def test_any_order_any_duplicates_any_batching_converges_to_the_truth(
    operations: list[tuple[str, int, int]], seed: int
) -> None:
    model, directory_id = build_history(operations)
    events = model.events
    rng = random.Random(seed)

    in_order = apply_all(directory_id, [[event] for event in events])
    shuffled = apply_all(directory_id, batches(deliveries(events, rng), rng))

    assert shuffled == in_order
    truth = model.snapshot(directory_id)
    assert project(in_order, truth) == truth


@settings(max_examples=100, deadline=None)
@given(operations=steps, seed=st.integers(0, 2**32 - 1))
def test_concurrent_appliers_on_one_store_converge(operations: list[tuple[str, int, int]], seed: int) -> None:
    """Two consumers racing on one directory (a redelivery overlapping a slow invocation, or reconcile beside
    apply): each one's batched read can be stale, and only the conditional write keeps the store monotonic."""
    model, directory_id = build_history(operations)
    rng = random.Random(seed)
    delivered = deliveries(model.events, rng, duplicate_rate=0.5)
    halves = (batches(delivered[0::2], rng, max_size=3), batches(delivered[1::2], rng, max_size=3))
    store = unkind_store(seed)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(apply_all, directory_id, half, store) for half in halves]:
            future.result()  # re-raises anything a consumer hit
    expected = apply_all(directory_id, [[event] for event in model.events])
    assert readable_state(directory_id, store.partition(directory_id)) == expected


def events_api_reads(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """What the tail queues: the stream in order, in pages of any size, some pages read twice (a crash between the
    enqueue and the cursor write) and a replayed window, each event through the tail's own message builder."""
    read: list[dict[str, Any]] = []
    start = 0
    while start < len(events):
        page = events[start : start + rng.randint(1, 7)]
        for _ in range(2 if rng.random() < 0.25 else 1):
            read += [json.loads(m.body) for m in queue_events(page, now_ms=0, source=EventSource.EVENTS_API)]
        start += len(page)
    if events:
        first = rng.randrange(len(events))
        replayed = events[first : first + rng.randint(1, 10)]
        read += [json.loads(m.body) for m in queue_events(replayed, now_ms=0, source=EventSource.REPLAY)]
    return read


@settings(max_examples=200, deadline=None)
@given(operations=steps, seed=st.integers(0, 2**32 - 1), loss=st.floats(0.0, 1.0))
def test_webhooks_and_events_api_pages_in_any_interleaving_converge(
    operations: list[tuple[str, int, int]], seed: int, loss: float
) -> None:
    """Three sources, one write path: webhooks (any of them lost, duplicated, shuffled) interleaved in any way with
    the Events API tail's pages (duplicated pages, replays) end in WorkOS's state."""
    model, directory_id = build_history(operations)
    events = model.events
    rng = random.Random(seed)
    webhooks = [event for event in deliveries(events, rng) if rng.random() >= loss]
    tail = events_api_reads(events, rng)
    merged: list[dict[str, Any]] = []
    while webhooks or tail:  # a random interleaving; each source keeps its own order
        source = webhooks if webhooks and (not tail or rng.random() < 0.5) else tail
        merged.append(source.pop(0))
    state = apply_all(directory_id, batches(merged, rng))
    truth = model.snapshot(directory_id)
    assert project(state, truth) == truth


def test_a_generated_history_exercises_every_event_type() -> None:
    """Guards the generator: a fixed long history reaches all ten types."""
    rng = random.Random(3)
    operations = [
        (rng.choice(["create_user", "create_group", "add_member"]), rng.randint(0, 999), rng.randint(0, 999))
        for _ in range(30)
    ]
    operations += [
        ("update_user", 1, 1),
        ("deactivate_user", 2, 2),
        ("reactivate_user", 2, 2),
        ("add_member", 3, 3),
        ("remove_member", 3, 3),
        ("rename_group", 4, 4),
        ("delete_group", 5, 5),
        ("delete_user", 6, 6),
        ("map_role", 0, 1),
        ("create_token", 0, 0),
        ("revoke_token", 0, 0),
        ("deactivate_directory", 0, 0),
        ("reactivate_directory", 0, 0),
        ("delete_directory", 0, 0),
    ]
    model, _ = build_history(operations)
    assert {event["event"] for event in model.events} == KNOWN_EVENT_TYPES


def test_generated_histories_change_roles_through_group_mappings() -> None:
    """Guards the generator: role changes (mapped groups, several roles, back to the default) are in the histories."""
    operations = [("add_member", 0, 0), ("add_member", 0, 1), ("map_role", 0, 0), ("map_role", 1, 1)]
    model, directory_id = build_history(operations)
    roles = {tuple(user["roles"]) for user in model.snapshot(directory_id)["users"]}
    assert ("admin", "billing") in roles
    model2, directory_id2 = build_history([*operations, ("map_role", 3, 0), ("map_role", 3, 1)])
    assert {tuple(user["roles"]) for user in model2.snapshot(directory_id2)["users"]} == {("member",)}
