"""The ingest handler against SQS FIFO and Secrets Manager on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest

from dsync.local.provision import LocalResources
from functions.ingest import handler as ingest
from shared.model import lanes
from tests.support.lambda_context import lambda_context
from tests.support.webhooks import signed_event, user_created_event

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def fresh_dependencies() -> Iterator[None]:
    ingest.dependencies.cache_clear()
    yield
    ingest.dependencies.cache_clear()


def receive_all(queue_url: str) -> list[dict[str, object]]:
    sqs = boto3.client("sqs")
    messages: list[dict[str, object]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=30,
    ).get("Messages", []):
        messages.extend(batch)  # type: ignore[arg-type]
    return messages


def test_verified_event_lands_on_the_fifo_queue_unchanged(aws: LocalResources) -> None:
    event = signed_event(user_created_event(event_id="event_01A", directory_id="directory_01D"))
    response = ingest.handler(event, lambda_context())
    assert response["statusCode"] == 200
    [message] = receive_all(aws.event_queue_url)
    assert message["Body"] == user_created_event_body("event_01A", "directory_01D")
    attributes = message["Attributes"]
    assert isinstance(attributes, dict)
    assert lanes.directory_of_group(attributes["MessageGroupId"]) == "directory_01D"
    assert attributes["MessageDeduplicationId"] == "event_01A"
    message_attributes = message["MessageAttributes"]
    assert isinstance(message_attributes, dict)
    assert int(message_attributes["received_at"]["StringValue"]) > 0
    assert message_attributes["event_type"]["StringValue"] == "dsync.user.created"


def user_created_event_body(event_id: str, directory_id: str) -> str:
    return json.dumps(user_created_event(event_id=event_id, directory_id=directory_id), separators=(",", ":"))


def test_retries_of_one_event_are_deduplicated_by_event_id(aws: LocalResources) -> None:
    document = user_created_event(event_id="event_dup")
    for _ in range(3):  # WorkOS retries re-sign with a fresh timestamp; the event id stays the same
        assert ingest.handler(signed_event(document), lambda_context())["statusCode"] == 200
    assert len(receive_all(aws.event_queue_url)) == 1


def test_events_are_grouped_per_directory(aws: LocalResources) -> None:
    for index, directory in enumerate(["directory_A", "directory_B", "directory_A"]):
        document = user_created_event(event_id=f"event_{index}", directory_id=directory, user_id=f"u{index}")
        assert ingest.handler(signed_event(document), lambda_context())["statusCode"] == 200
    groups = sorted(m["Attributes"]["MessageGroupId"] for m in receive_all(aws.event_queue_url))  # type: ignore[index]
    assert [lanes.directory_of_group(group) for group in groups] == ["directory_A", "directory_A", "directory_B"]


def test_unverified_requests_enqueue_nothing(aws: LocalResources) -> None:
    response = ingest.handler(signed_event(user_created_event(), secret="whsec_wrong"), lambda_context())
    assert response["statusCode"] == 401
    assert receive_all(aws.event_queue_url) == []


def test_queue_failure_answers_5xx_so_workos_retries(aws: LocalResources, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_QUEUE_URL", aws.event_queue_url.replace("dsync-events", "missing-queue"))
    response = ingest.handler(signed_event(user_created_event()), lambda_context())
    assert response["statusCode"] == 503
    assert json.loads(response["body"]) == {"status": "failed", "reason": "enqueue_failed"}


def test_placeholder_secret_answers_503_until_configured(aws: LocalResources) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.webhook_secret_arn, SecretString=json.dumps({"webhook_secrets": [], "placeholder": "x"})
    )
    response = ingest.handler(signed_event(user_created_event()), lambda_context())
    assert (response["statusCode"], json.loads(response["body"])["reason"]) == (503, "not_configured")


def test_missing_configuration_answers_503(aws: LocalResources, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_QUEUE_URL")
    response = ingest.handler(signed_event(user_created_event()), lambda_context())
    assert response["statusCode"] == 503
