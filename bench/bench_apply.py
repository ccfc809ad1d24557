"""Apply benchmarks, on the real applier and DynamoDB adapter against moto (in-process):

1. DynamoDB round trips per event over a realistic initial-sync stream (users, then groups, then memberships, with
   20% duplicates arriving later, as WorkOS retries do), in FIFO batches of 10. Target <= 1.5; a naive
   read-then-write applier, measured on the same stream, needs >= 2.
2. Batch latency with a fixed delay injected into every DynamoDB call (a botocore hook): a 10-message batch of
   independent items, timed, divided by 10 sequential calls. Target <= 0.5.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3
from moto import mock_aws

from dsync.fake_workos import DirectoryModel, populate
from dsync.local.provision import provision
from shared.adapters.dynamodb import DirectoryTable
from shared.apply.applier import Applier
from shared.apply.planning import plan_event
from shared.apply.ports import ApplyConfig, InboundMessage
from shared.model import records
from shared.model.events import DsyncEvent, parse_event

USERS, GROUPS, DUPLICATE_RATE = 500, 40, 0.20
INJECTED_LATENCY = 0.025


class NullQueue:
    def submit(self, job: Any) -> None: ...

    def forward(self, **kwargs: Any) -> None: ...


def initial_sync_stream(rng: random.Random) -> list[dict[str, Any]]:
    model = DirectoryModel(seed=7)
    directory_id = model.create_directory(organization_id="org_01BENCH")["id"]
    populate(model, directory_id, users=USERS, groups=GROUPS, rng=rng)
    by_type = {"dsync.activated": 0, "dsync.user.created": 1, "dsync.group.created": 2, "dsync.group.user_added": 3}
    stream = sorted(model.events, key=lambda event: by_type[event["event"]])  # WorkOS's usual initial-sync order
    for event in [event for event in stream if rng.random() < DUPLICATE_RATE]:
        stream.insert(rng.randrange(stream.index(event) + 1, len(stream) + 1), event)  # retries arrive later
    return stream


def messages(events: list[dict[str, Any]]) -> list[InboundMessage]:
    return [InboundMessage(f"m{i}", json.dumps(e), "g", e["id"]) for i, e in enumerate(events)]


def count_calls(client: Any) -> dict[str, int]:
    calls: dict[str, int] = {}

    def hook(event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        calls[operation] = calls.get(operation, 0) + 1

    client.meta.events.register("before-call.dynamodb", hook)
    return calls


def naive_apply(table: DirectoryTable, client: Any, stream: list[dict[str, Any]]) -> None:
    """The usual hand-written receiver: read each item, write it if the event is newer."""
    for document in stream:
        event = parse_event(json.dumps(document))
        assert isinstance(event, DsyncEvent)
        for record in plan_event(messages([document])[0], event, expires_at=0).records:
            item = table.get_item(record.key)
            if item is None or int(item["vkey"]) < record.vkey:
                client.put_item(TableName=table.table_name, Item=_wire(record))


def _wire(record: records.Record) -> dict[str, Any]:
    from shared.adapters.dynamodb import to_wire

    return to_wire(record.item())


def round_trips() -> tuple[float, float, int]:
    stream = initial_sync_stream(random.Random(11))
    results = []
    for naive in (False, True):
        with mock_aws():
            resources = provision()
            client = boto3.client("dynamodb")
            calls = count_calls(client)
            table = DirectoryTable(resources.table_name, client=client)
            if naive:
                naive_apply(table, client, stream)
            else:
                applier = Applier(store=table, work_queue=NullQueue(), dead_letters=NullQueue())
                for start in range(0, len(stream), 10):
                    applier.apply(messages(stream[start : start + 10]))
            results.append(sum(calls.values()) / len(stream))
    return results[0], results[1], len(stream)


def batch_latency(parallelism: int) -> float:
    with mock_aws():
        resources = provision()
        client = boto3.client("dynamodb")
        model = DirectoryModel(seed=3)
        directory_id = model.create_directory(organization_id="org_01BENCH")["id"]
        applier = Applier(
            store=DirectoryTable(resources.table_name, client=client),
            work_queue=NullQueue(),
            dead_letters=NullQueue(),
            config=ApplyConfig(parallelism=parallelism),
        )
        applier.apply(messages(model.drain_events()))  # the directory exists: only the users are new
        client.meta.events.register("before-send.dynamodb", lambda **_: time.sleep(INJECTED_LATENCY))
        timings = []
        for round_number in range(5):
            for index in range(10):
                model.create_user(
                    directory_id,
                    first_name="U",
                    last_name=f"{round_number}-{index}",
                    email=f"u{round_number}.{index}@bench.test",
                )
            batch = messages(model.drain_events())
            started = time.perf_counter()
            outcomes = applier.apply(batch)
            timings.append(time.perf_counter() - started)
            assert all(outcome.writes == 1 for outcome in outcomes.values())  # every item really written
        return statistics.median(timings) / (10 * INJECTED_LATENCY)


def main() -> None:
    ours, naive, events = round_trips()
    print(f"initial-sync stream: {events} events ({USERS} users, {GROUPS} groups, {DUPLICATE_RATE:.0%} duplicates)")
    print(f"DynamoDB round trips per event: {ours:.2f} (target <= 1.5); naive read-then-write applier: {naive:.2f}")
    print(f"ratio ours / naive: {ours / naive:.2f}")
    parallel = batch_latency(parallelism=10)
    sequential = batch_latency(parallelism=1)
    print(f"10-message batch with {INJECTED_LATENCY * 1000:.0f} ms per DynamoDB call:")
    print(
        f"  batch time / (10 x one call): {parallel:.2f} (target <= 0.5); with writes made one by one: {sequential:.2f}"
    )


if __name__ == "__main__":
    main()
