"""`dsync status` at 10,000 directories: DynamoDB calls and items read, on the real code path (issue #20).

The real `shared.read.status` functions and `DirectoryTable` adapter run against moto (in-process); a botocore hook
counts every call by operation and the items each returned. The store is seeded the way the pipeline leaves it:
each directory's item (in the `directories` index), its health, last event applied, last reconcile and counter items,
and its users and groups. Seeding writes straight into moto's backend (fast; it is not measured).

1. 10,000 directories of 3 users and 1 group: the current status, measured; against the one it replaces (two
   partition queries per directory, one after another; a copy of it is kept below as `previous_directory_status`),
   measured at 200 directories and extrapolated linearly (moto answers a Query by reading its whole table, so that
   pattern would take hours on moto at 10,000; its calls are linear in directories by construction).
2. Does it grow with users per directory? 20 directories of 10 users, then of 1,000 users: the current status's
   calls and items read are the same; the previous one's items read grow with the users. Its figures at 10,000
   directories of 1,000 users are extrapolated from (2), and say so.

Moto's wall time is not DynamoDB's (moto answers a BatchGetItem of 100 keys in tens of ms, DynamoDB in a few); the
calls are the figure to read.

    python bench/bench_status.py [--directories 10000]
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from shared.adapters.dynamodb import DirectoryTable, to_wire
from shared.model import records, schema
from shared.model.records import ItemKey
from shared.read.status import PARALLEL_READS, Limits, attention, directory_status, summary
from shared.reconcile.health import mirror_counts
from shared.reconcile.run import LAST_RUN_SK

TABLE = "dsync-directory"
PREVIOUS_SAMPLE = 200  # directories the previous pattern is measured at (see main)
SIZE_SAMPLE = 20
REGION = "us-east-1"
NOW = time.time()


def previous_directory_status(table: DirectoryTable) -> list[dict[str, Any]]:
    """The call pattern `dsync status` had before issue #20 (shared/read/status.py at f5f24c2): the directory ids,
    one batched read of four items each, then the mirror's counts as two partition queries per directory."""
    directory_ids = table.list_directory_ids()
    keys = [
        ItemKey(schema.directory_pk(directory_id), sk)
        for directory_id in directory_ids
        for sk in (schema.DIRECTORY_SK, schema.HEALTH_SK, schema.APPLIED_SK, LAST_RUN_SK)
    ]
    table.batch_get(keys)
    return [{"id": d, "mirror_counts": mirror_counts(table, d).as_dict()} for d in directory_ids]


def current_status(table: DirectoryTable) -> list[dict[str, Any]]:
    """What `dsync status` reads from the table now (`dsync.commands.mirror.status` without its SQS reads)."""
    directories = directory_status(table, now=NOW)
    summary(directories, now=NOW)
    attention(queues={"dead_letters": 0}, tail=None, directories=directories, now=NOW, limits=Limits())
    return directories


class Meter:
    """DynamoDB calls by operation and the items they returned (a Query's items are those it read before its
    filter: ScannedCount)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()  # moto's time per operation, summed over threads
        self.items = 0
        self._started = threading.local()

    def before(self, event_name: str, **_: Any) -> None:
        self.calls[event_name.rsplit(".", 1)[-1]] += 1
        self._started.at = time.perf_counter()

    def after(self, event_name: str, parsed: dict[str, Any], **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.seconds[operation] += time.perf_counter() - self._started.at
        if operation == "Query":
            self.items += int(parsed.get("ScannedCount", parsed.get("Count", 0)))
        elif operation == "BatchGetItem":
            self.items += sum(len(found) for found in parsed.get("Responses", {}).values())
        elif operation == "GetItem":
            self.items += 1 if parsed.get("Item") else 0


@contextmanager
def metered(client: Any) -> Iterator[Meter]:
    meter = Meter()
    client.meta.events.register("before-call.dynamodb", meter.before)
    client.meta.events.register("after-call.dynamodb", meter.after)
    try:
        yield meter
    finally:
        client.meta.events.unregister("before-call.dynamodb", meter.before)
        client.meta.events.unregister("after-call.dynamodb", meter.after)


def seed(directories: int, *, users: int, groups: int, prefix: str) -> None:
    """Straight into moto's backend: what the pipeline leaves per directory, users and groups included."""
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    for n in range(directories):
        directory_id = f"directory_01{prefix}{n:020d}"
        pk = schema.directory_pk(directory_id)
        items: list[dict[str, Any]] = [
            records.directory_stub(directory_id, "org_01BENCH").item(),
            records.health_record(
                records.DirectoryHealth(
                    directory_id,
                    "org_01BENCH",
                    "linked",
                    observed_at=_now(),
                    since=_now(),
                    users_active=users,
                    users_inactive=0,
                    groups=groups,
                )
            ).item(),
            records.applied_record(
                directory_id, event_id=f"event_{n}", event_type="dsync.user.updated", created_at=_now(), at_ms=1
            ).item(),
            {schema.PARTITION_KEY: pk, schema.SORT_KEY: LAST_RUN_SK, "status": "complete", "finished_at": 1},
            records.counts_item(
                directory_id, {"users_active": users, "groups": groups}, seq=1, last_token=None, reconciled_at=_now()
            ),
        ]
        items += [
            records.Record(records.user_key(directory_id, f"u{u}"), 2, False, {"id": f"u{u}", "state": "active"}).item()
            for u in range(users)
        ]
        items += [
            records.Record(records.group_key(directory_id, f"g{g}"), 2, False, {"id": f"g{g}"}).item()
            for g in range(groups)
        ]
        for item in items:
            backend.put_item(TABLE, to_wire(item))


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(NOW, UTC)


def measure(
    table: DirectoryTable, client: Any, read: Callable[[DirectoryTable], list[dict[str, Any]]]
) -> dict[str, Any]:
    with metered(client) as meter:
        started = time.perf_counter()
        listed = read(table)
        seconds = time.perf_counter() - started
    return {
        "directories": len(listed),
        "calls": dict(meter.calls),
        "items": meter.items,
        "seconds": seconds,
        "by_operation": {operation: round(value, 1) for operation, value in sorted(meter.seconds.items())},
    }


def show(label: str, result: dict[str, Any], *, note: str = "") -> None:
    calls = ", ".join(f"{operation} {count:,}" for operation, count in sorted(result["calls"].items()))
    total = sum(result["calls"].values())
    timing = note or f"{result['seconds']:.1f} s on moto"
    print(
        f"  {label:<13} {result['directories']:>6,} directories: {total:>7,} calls ({calls}), "
        f"{result['items']:>10,} items read, {timing}"
    )


def fresh_table() -> tuple[DirectoryTable, Any]:
    client = boto3.client("dynamodb", region_name=REGION)
    if TABLE in client.list_tables()["TableNames"]:
        client.delete_table(TableName=TABLE)
    client.create_table(**schema.create_table_request(TABLE))
    return DirectoryTable(TABLE, client=client), client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directories", type=int, default=10_000)
    args = parser.parse_args()
    with mock_aws():
        print(f"1. {args.directories:,} directories of 3 users and 1 group (moto, in-process):")
        table, client = fresh_table()
        started = time.perf_counter()
        seed(args.directories, users=3, groups=1, prefix="A")
        print(f"  (seeded in {time.perf_counter() - started:.0f} s)")
        new = measure(table, client, current_status)
        show("now", new)
        rounds = 1 + math.ceil(new["calls"].get("BatchGetItem", 0) / PARALLEL_READS)
        print(
            f"  (moto's seconds by operation: {new['by_operation']}; on DynamoDB the same calls are "
            f"{new['calls'].get('Query', 0)} index pages then {rounds - 1} rounds of {PARALLEL_READS} parallel batch "
            f"reads: ~{(new['calls'].get('Query', 0) + rounds - 1) * 15 / 1000:.1f} s at ~15 ms a call [inference])"
        )
        # Moto answers a Query by reading its whole table, so the previous pattern (a Query per directory and kind)
        # takes hours on moto at this size: measured on a smaller table of the same shape, extrapolated linearly.
        table, client = fresh_table()
        seed(PREVIOUS_SAMPLE, users=3, groups=1, prefix="B")
        sample = measure(table, client, previous_directory_status)
        show("before", sample)
        old = extrapolate(sample, args.directories / PREVIOUS_SAMPLE, index_pages=new["calls"].get("Query", 1))
        show("before", old, note=f"extrapolated x{args.directories / PREVIOUS_SAMPLE:g}")
        new_calls, old_calls = sum(new["calls"].values()), sum(old["calls"].values())
        print(
            f"  ratio before / now: {old_calls / new_calls:.0f}x the calls, {old['items'] / new['items']:.1f}x the "
            f"items read; now {new_calls / args.directories * 100:.1f} calls per 100 directories"
        )

        print(f"2. Users per directory: {SIZE_SAMPLE} directories of 10 users, then of 1,000 users (20 groups each):")
        per_size = {}
        for users in (10, 1_000):
            table, client = fresh_table()
            seed(SIZE_SAMPLE, users=users, groups=20, prefix=f"U{users}")
            per_size[users] = (
                measure(table, client, current_status),
                measure(table, client, previous_directory_status),
            )
            show(f"now x{users}", per_size[users][0])
            show(f"before x{users}", per_size[users][1])
        now_small, now_large = per_size[10][0], per_size[1_000][0]
        same = now_small["calls"] == now_large["calls"] and now_small["items"] == now_large["items"]
        print(f"  now: the same calls and items at 10 and at 1,000 users per directory: {same}")
        scale = args.directories / SIZE_SAMPLE
        before = extrapolate(per_size[1_000][1], scale, index_pages=new["calls"].get("Query", 1))
        print(
            f"  before at {args.directories:,} directories of 1,000 users (extrapolated x{scale:g}, linear in "
            f"directories): {sum(before['calls'].values()):,.0f} calls, {before['items']:,.0f} items read; DynamoDB "
            "pages a Query at 1 MB, so with ~1.5 KB users each users query is 2 pages: ~30,000 calls"
        )
        print(
            f"  now at {args.directories:,} directories (measured in 1.): {sum(new['calls'].values()):,} calls, "
            f"{new['items']:,} items read, whatever their users"
        )


def extrapolate(result: dict[str, Any], factor: float, *, index_pages: int) -> dict[str, Any]:
    """Per-directory calls and items times `factor`; the directory list's index Query is `index_pages` pages at the
    larger size (what the current status measured there: both read the same index)."""
    calls = {operation: round(count * factor) for operation, count in result["calls"].items()}
    calls["Query"] = round((result["calls"].get("Query", 1) - 1) * factor) + index_pages
    return {
        "directories": round(result["directories"] * factor),
        "calls": calls,
        "items": round(result["items"] * factor),
    }


if __name__ == "__main__":
    main()
