"""The tail Lambda on moto against the fake WorkOS: the real handler, SDK, SQS and DynamoDB."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from dsync.fake_workos import DirectoryModel, FakeWorkOS, populate
from dsync.local.provision import LocalResources
from functions.tail import handler as tail
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.sqs import (
    MAX_MESSAGE_BYTES,
    SOURCE_ATTRIBUTE,
    SqsEventQueue,
    event_message_bytes,
    send_batches,
)
from shared.adapters.workos_api import WorkOSDirectoryApi, WorkOSInvalidRequestError
from shared.adapters.workos_client import workos_api
from shared.apply.applier import Applier
from shared.apply.ports import InboundMessage, Status
from shared.ingest.webhook import EventSource, MessageTooLargeError, QueuedEvent
from shared.key_check import WRONG_ENVIRONMENT
from shared.model import lanes
from shared.model.events import DSYNC_EVENT_TYPES, iso, parse_time
from shared.model.records import ItemKey
from shared.tail.cursor import TAIL_PK, Cursor, CursorStore
from tests.support.fake_store import FakeDeadLetters
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
    assert [(r.path, r.status) for r in fake.request_log] == [("/events", 401)]  # one request, refused


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


def test_a_large_non_ascii_event_is_queued_as_compact_utf8_and_one_too_large_for_sqs_is_parked(
    aws: LocalResources, fake: FakeWorkOS
) -> None:
    """Issue #17, defect 7, through the real adapter: the body is WorkOS's compact UTF-8 (a user whose name is 22,000
    CJK characters, in `first_name` and `name`: 132 KB, not 264 KB escaped), and an event no SQS message can hold is
    parked with a reference in the table while everything around it is queued and the cursor moves past it."""
    directory_id = fake.model.create_directory(organization_id="org_01TAILBIG")["id"]
    wide = fake.model.create_user(directory_id, first_name="名" * 22_000, last_name="Wide", email="wide@example.com")
    huge = fake.model.create_user(
        directory_id,
        first_name="Huge",
        last_name="Blob",
        email="huge@example.com",
        custom_attributes={"b": "x" * 300_000},
    )
    fake.model.create_user(directory_id, first_name="Last", last_name="One", email="last@example.com")
    events = fake.model.drain_events()
    (huge_event,) = [e for e in events if e["data"]["id"] == huge["id"]]
    (wide_event,) = [e for e in events if e["data"]["id"] == wide["id"]]
    result = tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    assert result["status"] == "ok" and result["enqueue_failures"] == 0
    assert result["events_parked"] == 1 and result["parked_event_ids"] == [huge_event["id"]]
    bodies = {json.loads(m["Body"])["id"]: m["Body"] for m in queued(aws)}
    assert set(bodies) == {e["id"] for e in events} - {huge_event["id"]}
    wide_body = bodies[wide_event["id"]].encode()
    assert wide_body == json.dumps(wide_event, ensure_ascii=False, separators=(",", ":")).encode()
    assert 132_000 < len(wide_body) < 134_000  # ASCII-escaped, it was over 264,000: over SQS's limit
    assert len(json.dumps(wide_event, separators=(",", ":"))) > 264_000
    table = DirectoryTable(aws.table_name)
    cursor = CursorStore(table).load()
    assert cursor is not None and cursor.event_id == events[-1]["id"]
    reference = table.get_item(ItemKey(TAIL_PK, f"#PARKED#{huge_event['id']}"))
    assert reference is not None and reference["directory_id"] == directory_id
    assert reference["event_type"] == "dsync.user.created" and reference["size_bytes"] > MAX_MESSAGE_BYTES


def test_the_adapter_refuses_exactly_what_sqs_counts_over_the_limit_before_sending(aws: LocalResources) -> None:
    """SQS counts the body's UTF-8 bytes and each attribute's name, type and value; moto counts characters of the
    body only, so the adapter's own check is what keeps the local stack honest."""
    queue = SqsEventQueue(aws.event_queue_url)

    def sized(total: int, event_id: str) -> QueuedEvent:
        event = QueuedEvent(
            body="",
            group_id="g",
            deduplication_id=event_id,
            event_type="dsync.user.created",
            received_at_ms=1,
            event_id=event_id,
            source=EventSource.EVENTS_API,
            directory_id="directory_01SIZE",
        )
        overhead = event_message_bytes(event)
        return replace(event, body="é" * ((total - overhead) // 2) + "x" * ((total - overhead) % 2))

    fits, over = sized(MAX_MESSAGE_BYTES, "event_fits"), sized(MAX_MESSAGE_BYTES + 1, "event_over")
    assert event_message_bytes(fits) == MAX_MESSAGE_BYTES and event_message_bytes(over) == MAX_MESSAGE_BYTES + 1
    assert len(over.body) < MAX_MESSAGE_BYTES  # moto (characters) would have taken it
    with pytest.raises(MessageTooLargeError) as refused:
        queue.enqueue_many([fits, over])
    assert [event.event_id for event, _ in refused.value.oversized] == ["event_over"]
    assert queued(aws) == []  # nothing sent
    queue.enqueue_many([fits])  # the limit itself fits
    assert len(queued(aws)) == 1
    # Batches are cut by what SQS counts (attributes included) at 256 KiB a request, and at 10 entries.
    half, half_and_one = sized(MAX_MESSAGE_BYTES // 2, "event_half"), sized(MAX_MESSAGE_BYTES // 2 + 1, "event_more")
    assert [len(batch) for batch in send_batches([half, half], event_message_bytes)] == [2]
    assert [len(batch) for batch in send_batches([half_and_one, half], event_message_bytes)] == [1, 1]
    assert [len(batch) for batch in send_batches([replace(fits, body="{}")] * 11, event_message_bytes)] == [10, 1]


def test_a_stored_time_range_start_past_retention_is_clamped_when_workos_refuses_old_starts(
    aws: LocalResources, fake: FakeWorkOS
) -> None:
    """A time-range tail that did not run for 31 days: WorkOS (the fake, unkindly) refuses a start older than its
    retention with a 422. The tail reads from within the retention and queues the full reconcile."""
    fake.unkind_events = True
    directory_id = fake.model.create_directory(organization_id="org_01TAILOLDSTART")["id"]
    (activated,) = fake.model.drain_events()
    store = CursorStore(DirectoryTable(aws.table_name))
    long_ago = iso(datetime.now(UTC) - timedelta(days=31))
    assert store.save(Cursor(None, None, 0, 0, read_from=long_ago), expected_event_id=None)
    result = tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    assert result["status"] == "ok" and result["reconciles_requested"] >= 1
    assert [json.loads(m["Body"])["id"] for m in queued(aws)] == [activated["id"]]
    starts = [parse_time(r.query["range_start"]) for r in fake.request_log if "range_start" in r.query]
    assert starts and min(starts) > datetime.now(UTC) - timedelta(days=30)
    jobs = boto3.client("sqs").receive_message(QueueUrl=aws.work_queue_url, MaxNumberOfMessages=10)["Messages"]
    assert {json.loads(m["Body"])["directory_id"] for m in jobs} >= {directory_id}


def test_the_unkind_fake_refuses_old_starts_and_holds_back_time_range_reads(fake: FakeWorkOS) -> None:
    fake.unkind_events = True
    fake.events_hold_back_seconds = 30.0
    api = WorkOSDirectoryApi(api_key=fake.api_key, base_url=fake.base_url)
    try:
        with pytest.raises(WorkOSInvalidRequestError):
            api.list_events(events=DSYNC_EVENT_TYPES, range_start=iso(datetime.now(UTC) - timedelta(days=31)))
        fake.model.create_directory(organization_id="org_01TAILHELD")
        start = iso(datetime.now(UTC) - timedelta(minutes=1))
        assert api.list_events(events=DSYNC_EVENT_TYPES, range_start=start).events == []  # held back
        fake.unkind_events = False
        assert len(api.list_events(events=DSYNC_EVENT_TYPES, range_start=start).events) == 1
    finally:
        api.close()


def test_a_key_of_another_environment_stops_the_tail_without_a_reconcile(aws: LocalResources, fake: FakeWorkOS) -> None:
    """Issue #17, interlock: the key is swapped for a staging key. WorkOS refuses the cursor (its event does not exist
    there) and none of the mirror's directories is listed: the tail stops with `environment_changed`, queues no
    reconcile, keeps its cursor, and continues from it once the right key is back."""
    staging_key = "sk_test_staging"
    fake.add_environment(staging_key).create_directory(organization_id="org_01STAGING")
    directory_id = fake.model.create_directory(organization_id="org_01PRODTAIL")["id"]
    fake.model.drain_events()
    table = DirectoryTable(aws.table_name)
    tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    applier = Applier(store=table, work_queue=_NoJobs(), dead_letters=FakeDeadLetters())
    messages = [InboundMessage(m["MessageId"], m["Body"], "g", m["MessageId"]) for m in queued(aws)]
    assert all(outcome.status is Status.APPLIED for outcome in applier.apply(messages).values())
    assert [directory for directory, _ in table.live_directories()] == [directory_id]  # the mirror holds it
    before = CursorStore(table).load()
    assert before is not None and before.event_id is not None

    _use_key(aws, staging_key)
    result = tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    assert result["status"] == "environment_changed" and WRONG_ENVIRONMENT in str(result["error"])
    assert result["reconciles_requested"] == 0 and result["recoveries"] == 0
    assert "Messages" not in boto3.client("sqs").receive_message(QueueUrl=aws.work_queue_url)
    assert CursorStore(table).load() == before

    _use_key(aws, fake.api_key)
    fake.model.create_user(directory_id, first_name="After", last_name="Fix", email="after@example.com")
    (created,) = fake.model.drain_events()
    result = tail.handler(SCHEDULE, lambda_context(timeout_seconds=30))
    assert result["status"] == "ok" and result["recoveries"] == 0
    assert [json.loads(m["Body"])["id"] for m in queued(aws)] == [created["id"]]


class _NoJobs:
    def submit(self, job: Any, delay_seconds: int = 0) -> None:
        """The activation's initial-sync job is not what this test is about."""


def _use_key(resources: LocalResources, api_key: str) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=resources.workos_api_key_secret_arn, SecretString=json.dumps({"api_key": api_key})
    )
    tail.dependencies.cache_clear()
    workos_api.cache_clear()
