"""The scenarios each function runs as its role: the happy paths, and the paths that use a grant of their own (the
DLQ, the overflow lane, a lost write's read-back, cascades, purges, the refused cursor, a parked event, the stream's
on-failure destination). Each creates its own directories, so any subset runs in any order on one deployment, and
each asserts its path was reached: a scenario that silently did nothing would prove nothing about the grants."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.adapters.dynamodb import DirectoryTable
from shared.model import schema
from shared.read.reader import DirectoryReader
from shared.resources import Outputs
from tests.deploy import faults
from tests.deploy.stage import Stage


@dataclass(frozen=True)
class Scenario:
    name: str
    function: str  # the function whose paths it is about (it may run others to set up)
    run: Callable[[Stage], None]


SCENARIOS: dict[str, Scenario] = {}


def scenario(function: str) -> Callable[[Callable[[Stage], None]], Callable[[Stage], None]]:
    def register(run: Callable[[Stage], None]) -> Callable[[Stage], None]:
        name = f"{function}: {(run.__doc__ or run.__name__).strip().splitlines()[0]}"
        SCENARIOS[name] = Scenario(name, function, run)
        return run

    return register


def directory(stage: Stage, *, users: int = 2, deliver: bool = True) -> dict[str, Any]:
    """A directory in WorkOS with users, a group and a membership; delivered and applied unless `deliver=False`."""
    stage.model.drain_events()
    directory_id = stage.model.create_directory(organization_id=f"org_{uuid.uuid4().hex[:12]}")["id"]
    people = [
        stage.model.create_user(directory_id, first_name=f"U{n}", last_name="D", email=f"u{n}.{directory_id}@x.test")
        for n in range(users)
    ]
    group = stage.model.create_group(directory_id, name="Team")
    stage.model.add_user_to_group(group["id"], people[0]["id"])
    if deliver:
        assert set(stage.deliver_workos_events()) == {200}
        assert _no_failures(stage.apply())
    return {"id": directory_id, "users": [p["id"] for p in people], "group": group["id"]}


def export(stage: Stage, directory_id: str) -> dict[str, Any]:
    table = DirectoryTable(stage.url(Outputs.TABLE_NAME), client=stage.client("dynamodb"))
    return DirectoryReader(table).export(directory_id)


def _no_failures(responses: list[Any]) -> bool:
    return bool(responses) and all(not (r or {}).get("batchItemFailures") for r in responses)


@scenario("ingest")
def webhook_queued(stage: Stage) -> None:
    """a signed webhook is verified and queued"""
    stage.model.drain_events()
    stage.model.create_directory(organization_id="org_ingest")
    events = stage.model.drain_events()
    assert stage.deliver(*events) == [200] * len(events)
    assert {json.loads(m["Body"])["id"] for m in stage.peek(Outputs.EVENT_QUEUE_URL)} >= {e["id"] for e in events}


@scenario("apply")
def events_applied(stage: Stage) -> None:
    """a directory's users, group and membership are applied"""
    created = directory(stage)
    state = export(stage, created["id"])
    assert sorted(u["id"] for u in state["users"]) == sorted(created["users"])


@scenario("apply")
def invalid_event_dead_lettered(stage: Stage) -> None:
    """an event that cannot be applied is forwarded to the dead-letter queue"""
    body = f"not an event {uuid.uuid4().hex}"
    stage.put(Outputs.EVENT_QUEUE_URL, body, group=f"d:directory_{uuid.uuid4().hex}")  # its own FIFO group
    assert _no_failures(stage.apply())
    assert body in {m["Body"] for m in stage.peek(Outputs.DEAD_LETTER_QUEUE_URL)}


@scenario("apply")
def throttled_directory_overflows(stage: Stage) -> None:
    """a throttled directory moves to the overflow queue and is applied from there"""
    created = directory(stage, deliver=False)
    with faults.injected(stage.checker, faults.throttled_partition(schema.directory_pk(created["id"]))) as answered:
        stage.deliver_workos_events()
        assert _no_failures(stage.apply())
    assert answered and stage.peek(Outputs.OVERFLOW_QUEUE_URL)
    assert _no_failures(stage.apply_overflow())
    assert sorted(u["id"] for u in export(stage, created["id"])["users"]) == sorted(created["users"])


@scenario("apply")
def lost_write_read_back(stage: Stage) -> None:
    """a write whose response was lost is read back"""
    created = directory(stage, users=1, deliver=False)
    partition = schema.directory_pk(created["id"])
    with faults.injected(stage.checker, faults.lost_write_response(partition, stage.admin)) as answered:
        stage.deliver_workos_events()
        assert _no_failures(stage.apply())
    assert answered
    assert any(d.function == "apply" and d.action == "dynamodb:GetItem" for d in stage.checker.decisions)


@scenario("apply")
def deletions_cascade_and_purge(stage: Stage) -> None:
    """a deleted group ends its memberships; a deleted directory's purge is queued and run"""
    created = directory(stage)
    stage.model.delete_group(created["group"])
    stage.deliver_workos_events()
    assert _no_failures(stage.apply())
    assert not [m for m in export(stage, created["id"])["memberships"] if m.get("group_id") == created["group"]]
    stage.model.delete_directory(created["id"])
    stage.deliver_workos_events()
    assert _no_failures(stage.apply())
    assert any(json.loads(m["Body"])["kind"] == "purge" for m in stage.peek(Outputs.WORK_QUEUE_URL))
    assert _no_failures(stage.work())
    assert export(stage, created["id"])["users"] == []


@scenario("reconcile")
def first_wave(stage: Stage) -> None:
    """a new deployment's first wave reads the empty mirror consistently (the key check's Scan)"""
    stage.empty_table()
    directory(stage, deliver=False)
    assert stage.reconcile_schedule()["planned"] >= 1
    assert any(d.function == "reconcile" and d.action == "dynamodb:Scan" for d in stage.checker.decisions)


@scenario("reconcile")
def wave_planned(stage: Stage) -> None:
    """the schedule plans a job per directory"""
    created = directory(stage, deliver=False)
    assert stage.reconcile_schedule()["planned"] >= 1
    jobs = [json.loads(m["Body"]) for m in stage.peek(Outputs.WORK_QUEUE_URL)]
    assert {"reconcile"} <= {job["kind"] for job in jobs if job["directory_id"] == created["id"]}


@scenario("reconcile")
def directory_reconciled(stage: Stage) -> None:
    """a job mirrors a directory, records a silent deletion, and purges a directory gone from WorkOS"""
    created = directory(stage, users=6, deliver=False)
    stage.model.drain_events()  # every webhook was lost
    job = json.dumps({"kind": "reconcile", "directory_id": created["id"]})
    stage.put(Outputs.WORK_QUEUE_URL, job)
    assert _no_failures(stage.work())
    assert len(export(stage, created["id"])["users"]) == 6
    stage.model.delete_user(created["users"][-1])
    stage.put(Outputs.WORK_QUEUE_URL, job)
    assert _no_failures(stage.work())
    assert len(export(stage, created["id"])["users"]) == 5
    stage.model.delete_directory(created["id"])
    stage.model.drain_events()
    stage.put(Outputs.WORK_QUEUE_URL, job)
    assert _no_failures(stage.work())  # the reconcile, then the purge it queued
    assert export(stage, created["id"])["users"] == []


def tail_until(stage: Stage, reached: Callable[[list[dict[str, Any]]], bool], *, runs: int = 4) -> list[dict[str, Any]]:
    """Scheduled runs of the tail (half a second each here) until `reached` holds for their results: a loaded
    machine may need more than one run to read what one run reads on AWS."""
    results: list[dict[str, Any]] = []
    while len(results) < runs and not (results and reached(results)):
        results.append(stage.tail())
    assert reached(results), results
    return results


def enqueued(results: list[dict[str, Any]]) -> int:
    return sum(int(result["events_enqueued"]) for result in results)


@scenario("tail")
def events_tailed(stage: Stage) -> None:
    """the tail queues WorkOS's events and moves its cursor"""
    directory(stage, deliver=False)
    tail_until(stage, lambda results: enqueued(results) >= 5)


@scenario("tail")
def first_tail(stage: Stage) -> None:
    """a new deployment's first run reads by time, its key check reading the empty mirror (the Scan)"""
    stage.empty_table()
    directory(stage, deliver=False)
    tail_until(stage, lambda results: enqueued(results) >= 5)
    assert any(d.function == "tail" and d.action == "dynamodb:Scan" for d in stage.checker.decisions)


@scenario("tail")
def refused_cursor(stage: Stage) -> None:
    """a cursor WorkOS refuses plans a full reconcile"""
    created = directory(stage, deliver=False)
    # Caught up (the cursor is the newest event): after many scenarios, a loaded machine takes several runs.
    tail_until(stage, lambda results: results[-1]["events_read"] == 0, runs=12)
    stage.fake.event_retention_days = 0.0  # the cursor's event is past WorkOS's retention: a 422
    try:
        result = stage.tail()
    finally:
        stage.fake.event_retention_days = 30.0
    assert result["recoveries"] == 1 and result["reconciles_requested"] >= 1, result
    jobs = [json.loads(m["Body"]) for m in stage.peek(Outputs.WORK_QUEUE_URL)]
    assert created["id"] in {job["directory_id"] for job in jobs}


@scenario("tail")
def oversized_event_parked(stage: Stage) -> None:
    """an event too large for SQS is parked in the tail's partition"""
    created = directory(stage, users=1, deliver=False)
    huge = {"blob": "x" * 300_000}
    stage.model.create_user(created["id"], first_name="H", last_name="B", email="h@x.test", custom_attributes=huge)
    tail_until(stage, lambda results: sum(int(r["events_parked"]) for r in results) >= 1)


@scenario("publish")
def changes_published(stage: Stage) -> None:
    """the stream's changes reach the bus; the guard reads a membership's user and group"""
    stage.stream.skip(stage.admin)
    directory(stage)
    assert _no_failures(stage.publish())
    made = {(d.function, d.action) for d in stage.checker.decisions}
    assert {("publish", "events:PutEvents"), ("publish", "dynamodb:BatchGetItem")} <= made


@scenario("publish")
def refused_batch_on_failure(stage: Stage) -> None:
    """a batch the bus keeps refusing goes to the on-failure destination"""
    stage.stream.skip(stage.admin)
    directory(stage, users=1)
    with faults.injected(stage.checker, faults.refusing_bus()) as answered:
        stage.publish()
    assert answered
    destination = stage.deployment.resources.queue_by_arn(stage.stream.source.on_failure_arn or "")
    assert stage.client("sqs").receive_message(QueueUrl=destination.url).get("Messages")
