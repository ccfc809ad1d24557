"""The publish handler against EventBridge (a rule on the change bus → an SQS queue) and the table's stream, on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from dsync.local.provision import LocalResources
from functions.publish import handler as publish
from shared.adapters.dynamodb import DirectoryTable, to_wire
from shared.changes.derive import changes_from_stream_record
from shared.model import schema
from shared.resources import CHANGE_EVENT_SOURCE
from tests.support import dsync_events as ev
from tests.support import streams as s
from tests.support.lambda_context import lambda_context

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def fresh_dependencies() -> Iterator[None]:
    publish.dependencies.cache_clear()
    publish.guard_reader.cache_clear()
    publish.settings.cache_clear()
    yield
    publish.dependencies.cache_clear()
    publish.guard_reader.cache_clear()
    publish.settings.cache_clear()


@pytest.fixture
def tap(aws: LocalResources) -> str:
    """A queue subscribed to everything the pipeline puts on the change bus, like a consumer's rule would be."""
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="change-tap")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    events.put_rule(
        Name="change-tap",
        EventBusName=aws.change_bus_name,
        EventPattern=json.dumps({"source": [CHANGE_EVENT_SOURCE]}),
        State="ENABLED",
    )
    events.put_targets(Rule="change-tap", EventBusName=aws.change_bus_name, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return queue_url


def delivered(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
        "Messages", []
    ):
        bodies.extend(json.loads(message["Body"]) for message in batch)
    return bodies


def test_change_events_reach_a_bus_subscriber(aws: LocalResources, tap: str) -> None:
    user = s.user_item()
    records = [
        s.insert(user),
        s.modify(user, s.user_item(updated=10, state="inactive")),
        s.insert(s.membership_item()),
        s.modify(s.directory_stub(), s.directory_item()),
    ]
    expected = [event for record in records for event in changes_from_stream_record(record)]

    assert publish.handler(s.stream_event(*records), lambda_context()) == {"batchItemFailures": []}

    received = {body["detail"]["event_id"]: body for body in delivered(tap)}
    assert set(received) == {event.event_id for event in expected}
    for event in expected:
        body = received[event.event_id]
        assert body["source"] == CHANGE_EVENT_SOURCE
        assert body["detail-type"] == event.detail_type
        assert body["detail"] == event.detail
        assert body["resources"] == []
    assert sorted(body["detail-type"] for body in received.values()) == [
        "directory.activated",
        "membership.added",
        "user.provisioned",
        "user.suspended",
    ]


def test_table_writes_flow_through_the_stream_to_the_bus(aws: LocalResources, tap: str) -> None:
    """End to end on moto: conditional writes → DynamoDB stream → publish handler → EventBridge → subscriber."""
    table = DirectoryTable(aws.table_name)
    writes = [
        (s.directory_stub(), True),  # registered by an early user event: no event
        (s.user_item(updated=10), True),
        (s.user_item(updated=5, first_name="Stale"), False),  # refused by the version condition: no stream record
        (s.user_item(updated=10), False),  # a duplicate delivery: refused too
        (s.user_item(updated=20, state="inactive"), True),
        (s.group_item(updated=1), True),
        (s.membership_item(at=15), True),
        (s.user_item(updated=25, state="inactive"), True),  # version bump, nothing readable changed: no event
        (s.directory_item(updated=2), True),
        (s.membership_item(at=30, present=False), True),
        (s.user_tombstone(deleted=40), True),
    ]
    for record, expected_written in writes:
        assert table.put_if_newer(record) is expected_written
    boto3.client("dynamodb").put_item(TableName=aws.table_name, Item=to_wire(s.reconcile_item()))  # ignored

    stream_records = s.read_stream(aws.table_stream_arn)
    assert len(stream_records) == sum(written for _, written in writes) + 1
    response = publish.handler({"Records": stream_records}, lambda_context())
    assert response == {"batchItemFailures": []}

    bodies = delivered(tap)
    by_type = {body["detail-type"]: body["detail"] for body in bodies}
    # The user is deleted by the time the stream is read: its membership's addition is not published any more
    # (shared.changes.guard), while the removal and the deprovisioning are.
    assert sorted(by_type) == [
        "directory.activated",
        "group.created",
        "membership.removed",
        "user.deprovisioned",
        "user.provisioned",
        "user.suspended",
    ]
    assert len(bodies) == len(by_type)
    user_versions = [by_type[t]["version"] for t in ("user.provisioned", "user.suspended", "user.deprovisioned")]
    assert user_versions == sorted(user_versions)
    assert by_type["user.provisioned"]["user"]["first_name"] == "Ada"
    deprovisioned = json.dumps(by_type["user.deprovisioned"])
    assert "Ada" not in deprovisioned and "example.com" not in deprovisioned
    assert by_type["directory.activated"]["directory"]["id"] == ev.DIRECTORY
    assert all(detail["directory_id"] == ev.DIRECTORY and detail["occurred_at"] for detail in by_type.values())

    # A redelivered batch (stream retry) republishes the same event ids: consumers can drop the duplicates.
    assert publish.handler({"Records": stream_records}, lambda_context()) == {"batchItemFailures": []}
    again = delivered(tap)
    assert sorted(body["detail"]["event_id"] for body in again) == sorted(body["detail"]["event_id"] for body in bodies)


def test_a_missing_bus_fails_the_whole_batch_for_a_retry(
    aws: LocalResources, tap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANGE_BUS_NAME", "no-such-bus")
    event = s.stream_event(s.insert(s.user_item()), s.insert(s.group_item()))
    with pytest.raises(BatchProcessingError):
        publish.handler(event, lambda_context())
    assert delivered(tap) == []


def test_the_table_schema_streams_new_and_old_images(aws: LocalResources) -> None:
    request = schema.create_table_request("any")
    assert request["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    description = boto3.client("dynamodb").describe_table(TableName=aws.table_name)["Table"]
    assert description["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
