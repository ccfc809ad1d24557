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
