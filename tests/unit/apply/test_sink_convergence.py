"""The SQL sink converges like the store: for every generated history, applied by concurrent lanes in the unkind
world (`test_lanes_convergence`), the table's stream delivered to the sink in any order, with any duplicates, in
any batching, by one or two concurrent feeds, ends with the sink's live views equal to the export, field by field.
A real PostgreSQL (tests/support/postgres.py), never a mock; each example writes under an environment label of its
own in one migrated schema.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.read.reader import readable_state
from shared.sql.feed import feed_stream_records
from shared.sql.reader import SinkReader, comparable
from shared.sql.writer import SqlSink
from tests.support.histories import batches, build_history, deliveries, steps
from tests.unit.apply.test_lanes_convergence import StreamingStore, run_lanes, unkind

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def sink_schema(postgres_url: str) -> Iterator[tuple[str, str]]:
    from tests.support.postgres import drop_schema, fresh_schema_name

    name = fresh_schema_name()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        from shared.sql.migrate import migrate

        migrate(conn, name)
    yield postgres_url, name
    drop_schema(postgres_url, name)


def feed(url: str, schema: str, environment: str, stream_batches: list[list[dict[str, Any]]]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        sink = SqlSink(conn, schema=schema, environment=environment)
        for batch in stream_batches:
            feed_stream_records(sink, batch)


def sink_export(url: str, schema: str, environment: str, directory_id: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        return SinkReader(conn, schema=schema, environment=environment).export(directory_id)


@settings(max_examples=60, deadline=None)
@given(operations=steps, seed=st.integers(0, 2**32 - 1), feeds=st.sampled_from([1, 2]))
def test_the_sinks_live_views_equal_the_export_whatever_the_order(
    sink_schema: tuple[str, str], operations: list[tuple[str, int, int]], seed: int, feeds: int
) -> None:
    url, schema = sink_schema
    model, directory_id = build_history(operations)
    rng = random.Random(seed)
    store = StreamingStore(seed, unkind(seed))
    run_lanes(store, directory_id, deliveries(model.events, rng, duplicate_rate=0.3), rng)
    export = comparable(readable_state(directory_id, store.partition(directory_id)))

    # The stream, each record at least once (Lambda's retries), shuffled, in batches of any size.
    delivered = deliveries(store.stream, rng, duplicate_rate=0.3)
    environment = f"p{uuid.uuid4().hex[:12]}"
    halves = [delivered[index::feeds] for index in range(feeds)]
    with ThreadPoolExecutor(max_workers=feeds) as pool:
        for future in [pool.submit(feed, url, schema, environment, batches(half, rng)) for half in halves]:
            future.result()

    assert sink_export(url, schema, environment, directory_id) == export


class SnapshotMirror:
    """The mirror as a backfill sees it: its partition read at one moment of the stream (`items`), its consistent
    single reads answered by the store as it is later (`now`)."""

    def __init__(self, items: dict[tuple[str, str], dict[str, Any]], now: StreamingStore) -> None:
        self._items = items
        self._now = now

    def query_index(self, index: Any, partition_value: str) -> Iterator[dict[str, Any]]:
        for item in self._items.values():
            if item.get("directory_index") == partition_value and not item.get("deleted"):
                yield item

    def query_partition(self, directory_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        pk = f"DIR#{directory_id}"
        yield from (item for (p, sk), item in sorted(self._items.items()) if p == pk and sk.startswith(prefix))

    def get_item(self, key: Any) -> dict[str, Any] | None:
        return self._now.get_item(key)


def snapshot(stream: list[dict[str, Any]], upto: int) -> dict[tuple[str, str], dict[str, Any]]:
    """The table after the first `upto` records of its stream (the stream is the table's history, in order)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for record in stream[:upto]:
        image = record["dynamodb"]
        keys = {k: deserializer.deserialize(v) for k, v in image["Keys"].items()}
        key = (keys["pk"], keys["sk"])
        if record["eventName"] == "REMOVE":
            items.pop(key, None)
        else:
            items[key] = {k: deserializer.deserialize(v) for k, v in image["NewImage"].items()}
    return items


@settings(max_examples=40, deadline=None)
@given(
    operations=steps,
    seed=st.integers(0, 2**32 - 1),
    lost=st.sampled_from([0.0, 0.0, 0.2, 0.5]),
    read_at=st.floats(0.0, 1.0),
)
def test_a_backfill_racing_the_feed_and_a_sink_that_lost_batches_converge(
    sink_schema: tuple[str, str], operations: list[tuple[str, int, int]], seed: int, lost: float, read_at: float
) -> None:
    """The sink was down long enough to lose some batches for good (past the stream's retention); a backfill, which
    read the mirror at any moment of its history, runs while the feed delivers the rest, shuffled and duplicated:
    the live views still equal the export."""
    from shared.sql.backfill import backfill

    url, schema = sink_schema
    model, directory_id = build_history(operations)
    rng = random.Random(seed)
    store = StreamingStore(seed, unkind(seed))
    run_lanes(store, directory_id, deliveries(model.events, rng, duplicate_rate=0.3), rng)
    store.unkindness = None  # the lanes' unkind world is over; the backfill reads through the adapter's retries
    export = comparable(readable_state(directory_id, store.partition(directory_id)))
    mirror = SnapshotMirror(snapshot(store.stream, round(read_at * len(store.stream))), store)

    delivered = batches(deliveries(store.stream, rng), rng)
    kept = [batch for batch in delivered if rng.random() >= lost]
    environment = f"b{uuid.uuid4().hex[:12]}"

    def run_backfill() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            backfill(mirror, SqlSink(conn, schema=schema, environment=environment), directory_id=directory_id)

    with ThreadPoolExecutor(max_workers=2) as pool:
        feeding = pool.submit(feed, url, schema, environment, kept)
        backfilling = pool.submit(run_backfill)
        feeding.result()
        backfilling.result()
    # Racing alone converges; what lost batches held and the backfill's snapshot predates needs the next backfill.
    if len(kept) < len(delivered):
        with psycopg.connect(url, autocommit=True) as conn:
            backfill(
                SnapshotMirror(snapshot(store.stream, len(store.stream)), store),
                SqlSink(conn, schema=schema, environment=environment),
                directory_id=directory_id,
            )
    assert sink_export(url, schema, environment, directory_id) == export
