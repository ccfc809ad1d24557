"""The tail Lambda on moto against the fake WorkOS: the real handler, SDK, SQS and DynamoDB."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from dsync.fake_workos import DirectoryModel, FakeWorkOS, populate
from dsync.local.provision import LocalResources
from functions.tail import handler as tail
from shared import lanes
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.sqs import SOURCE_ATTRIBUTE
from shared.tail_cursor import CursorStore
from shared.workos_client import workos_api
from tests.support.lambda_context import lambda_context

pytestmark = pytest.mark.integration
SCHEDULE = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


@pytest.fixture
def fake(aws: LocalResources, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWorkOS]:
    tail.dependencies.cache_clear()
    workos_api.cache_clear()
    with FakeWorkOS(DirectoryModel(seed=31), events_hold_back_seconds=0.0) as server:
        boto3.client("secretsmanager").put_secret_value(
            SecretId=aws.workos_api_key_secret_arn, SecretString=json.dumps({"api_key": server.api_key})
        )
        monkeypatch.setenv("WORKOS_BASE_URL", server.base_url)
        monkeypatch.setenv("TAIL_RUN_SECONDS", "1")
        monkeypatch.setenv("TAIL_IDLE_POLL_SECONDS", "0.2")
        yield server
    tail.dependencies.cache_clear()
    workos_api.cache_clear()


def queued(resources: LocalResources) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    found = []
    while messages := sqs.receive_message(
        QueueUrl=resources.event_queue_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        AttributeNames=["MessageGroupId"],
    ).get("Messages"):
        for message in messages:
            found.append(dict(message))
            sqs.delete_message(QueueUrl=resources.event_queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_the_tail_queues_every_dsync_event_in_its_directory_group_and_moves_its_cursor(
    aws: LocalResources, fake: FakeWorkOS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAIL_RUN_SECONDS", "9")  # moto takes about a second per 100 sends
    tail.dependencies.cache_clear()
    directory_id = fake.model.create_directory(organization_id="org_01TAILINT")["id"]
    # Just over one full page: enough to page, little enough for a loaded 2-core machine's moto in 9 s.
    populate(fake.model, directory_id, users=60, groups=3, rng=random.Random(2))
    events = fake.model.drain_events()
    assert len(events) > 100
    result = tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    assert result["status"] == "ok" and result["events_enqueued"] == len(events)
    assert result["full_pages"] >= 1  # 100 a page
    messages = queued(aws)
    assert sorted(json.loads(m["Body"])["id"] for m in messages) == sorted(e["id"] for e in events)
    assert {lanes.directory_of_group(m["Attributes"]["MessageGroupId"]) for m in messages} == {directory_id}
    assert {m["MessageAttributes"][SOURCE_ATTRIBUTE]["StringValue"] for m in messages} == {"events_api"}
    cursor = CursorStore(DirectoryTable(aws.table_name)).load()
    assert cursor is not None and cursor.event_id == events[-1]["id"]
    requests = [r for r in fake.request_log if r.path == "/events"]
    assert all(r.query["order"] == "asc" and r.query["limit"] == "100" for r in requests)
    assert "dsync.token.revoked" in requests[0].query["events"]


def test_a_second_invocation_continues_from_the_cursor(aws: LocalResources, fake: FakeWorkOS) -> None:
    directory_id = fake.model.create_directory(organization_id="org_01TAILNEXT")["id"]
    fake.model.drain_events()
    tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    queued(aws)
    fake.model.create_user(directory_id, first_name="Late", last_name="Joiner", email="late@example.com")
    (created,) = fake.model.drain_events()
    result = tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    assert result["events_enqueued"] == 1
    assert [json.loads(m["Body"])["id"] for m in queued(aws)] == [created["id"]]


def test_a_rejected_key_is_a_clear_result_not_a_crash(aws: LocalResources, fake: FakeWorkOS) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.workos_api_key_secret_arn, SecretString=json.dumps({"api_key": "sk_test_wrong"})
    )
    tail.dependencies.cache_clear()
    result = tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    assert result["status"] == "auth_failed" and "API key" in str(result["error"])
    assert len([r for r in fake.request_log if r.path == "/events"]) == 1


def test_an_unconfigured_key_skips_cleanly(aws: LocalResources) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.workos_api_key_secret_arn, SecretString=json.dumps({"api_key": "", "placeholder": "x"})
    )
    tail.dependencies.cache_clear()
    assert tail.handler(SCHEDULE, lambda_context())["status"] == "not_configured"


def test_a_refused_cursor_queues_a_full_reconcile_and_rereads_by_time(aws: LocalResources, fake: FakeWorkOS) -> None:
    directory_id = fake.model.create_directory(organization_id="org_01TAILREFUSED")["id"]
    fake.model.drain_events()
    store = CursorStore(DirectoryTable(aws.table_name))
    tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    cursor = store.load()
    assert cursor is not None and cursor.event_id is not None
    # WorkOS forgets the cursor's event (past its retention): the fake refuses such a cursor with a 422.
    fake.event_retention_days = 0.0
    result = tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    fake.event_retention_days = 30.0
    assert result["recoveries"] == 1 and result["reconciles_requested"] >= 1
    jobs = [
        json.loads(m["Body"])
        for m in boto3.client("sqs")
        .receive_message(QueueUrl=aws.work_queue_url, MaxNumberOfMessages=10)
        .get("Messages", [])
    ]
    assert {(job["kind"], job["directory_id"]) for job in jobs} >= {("reconcile", directory_id)}
    recovered = store.load()
    assert (
        recovered is not None
        and recovered.recovered_ms > 0
        and "past the event retention" in str(recovered.recovery_reason)
    )
