"""The apply handler on real SQS FIFO and DynamoDB (moto): batches as the event source mapping builds them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from dsync.local.lambda_events import sqs_event
from dsync.local.provision import LocalResources
from functions.apply import handler as apply
from functions.ingest import handler as ingest
from shared.adapters.dynamodb import DirectoryTable, dynamodb_client
from shared.apply.applier import Applier
from shared.apply.ports import TransientStoreError
from shared.model import lanes
from shared.model.records import Record, Replaced
from shared.read.reader import DirectoryReader
from tests.support import dsync_events as ev
from tests.support.lambda_context import lambda_context
from tests.support.webhooks import signed_event

pytestmark = pytest.mark.integration

OTHER = "directory_01OTHER000000000000000000"


@pytest.fixture(autouse=True)
def fresh_dependencies() -> Iterator[None]:
    apply.dependencies.cache_clear()
    apply.overflow_dependencies.cache_clear()
    apply.settings.cache_clear()
    ingest.dependencies.cache_clear()
    yield
    apply.dependencies.cache_clear()
    apply.overflow_dependencies.cache_clear()
    apply.settings.cache_clear()
    ingest.dependencies.cache_clear()


def deliver(*documents: dict[str, Any]) -> None:
    for document in documents:
        assert ingest.handler(signed_event(document), lambda_context())["statusCode"] == 200


def receive(resources: LocalResources, queue_url: str | None = None) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    response = sqs.receive_message(
        QueueUrl=queue_url or resources.event_queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=60,
    )
    return [dict(message) for message in response.get("Messages", [])]


def run_apply(
    resources: LocalResources, messages: list[dict[str, Any]], *, delete: bool = True, queue_url: str | None = None
) -> dict[str, Any]:
    """Invoke the handler as the event source mapping does, deleting the messages it did not report failed."""
    sqs = boto3.client("sqs")
    url = queue_url or resources.event_queue_url
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    response: dict[str, Any] = dict(
        apply.handler(sqs_event(messages, queue_arn=queue_arn, region="us-east-1"), lambda_context())
    )
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    for message in messages:
        if delete and message["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return response


def throttling_client(directory_id: str, throttled: dict[str, bool], **options: Any) -> Any:
    """The table's real client, answering ProvisionedThroughputExceeded to writes into `directory_id` while
    `throttled["on"]`: a directory's partition over its 1,000 WCU/s."""
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    client = dynamodb_client(**options)

    def throttle(params: dict[str, Any], **_: Any) -> Any:
        item = json.loads(params["body"]).get("Item", {})  # the serialized request
        if throttled["on"] and item.get("pk", {}).get("S") == f"DIR#{directory_id}":
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds"}
            response = AWSResponse("", 400, HTTPHeaders(), None)
            return response, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    client.meta.events.register("before-call.dynamodb.PutItem", throttle)
    return client


def test_a_throttled_directory_moves_to_the_overflow_queue_and_is_applied_from_there(
    aws: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    throttled = {"on": True}
    monkeypatch.setattr(apply, "dynamodb_client", lambda **o: throttling_client(ev.DIRECTORY, throttled, **o))
    deliver(
        ev.event("dsync.user.created", ev.user("u1"), created=1),
        ev.event("dsync.user.created", ev.user("u9", directory_id=OTHER), created=1),
    )
    assert run_apply(aws, receive(aws)) == {"batchItemFailures": []}  # nothing left to retry on the events queue
    assert [u["id"] for u in export(aws, OTHER)["users"]] == ["u9"]  # the other directory was applied at once
    assert export(aws)["users"] == []
    [moved] = receive(aws, aws.overflow_queue_url)
    assert json.loads(moved["Body"])["data"]["id"] == "u1"
    assert lanes.directory_of_group(moved["Attributes"]["MessageGroupId"]) == ev.DIRECTORY

    throttled["on"] = False  # the partition has room again: the overflow lane applies it
    assert run_apply(aws, [moved], queue_url=aws.overflow_queue_url) == {"batchItemFailures": []}
    assert [u["id"] for u in export(aws)["users"]] == ["u1"]
    assert receive(aws, aws.overflow_queue_url) == []


def export(resources: LocalResources, directory_id: str = ev.DIRECTORY) -> dict[str, Any]:
    return DirectoryReader(DirectoryTable(resources.table_name)).export(directory_id)


def test_webhooks_through_the_queue_end_in_the_table(aws: LocalResources) -> None:
    deliver(
        ev.event("dsync.activated", ev.directory(), created=0),
        ev.membership("dsync.group.user_added", created=3),
        ev.event("dsync.user.created", ev.user(), created=1),
    )
    messages = receive(aws)
    assert len(messages) == 3
    assert run_apply(aws, messages) == {"batchItemFailures": []}
    state = export(aws)
    assert state["directory"]["state"] == "active"
    assert [u["id"] for u in state["users"]] == ["directory_user_1"]
    assert state["memberships"] == [{"group_id": "directory_group_1", "user_id": "directory_user_1"}]
    # The activation asked the reconcile worker for an initial sync.
    [job] = receive(aws, aws.work_queue_url)
    body = json.loads(job["Body"])
    assert (body["kind"], body["directory_id"], body["reason"]) == ("reconcile", ev.DIRECTORY, "dsync.activated")
    assert body["requested_at_ms"] > 0


class FailingDirectoryStore:
    """Wraps the real table; throttles every write for one directory."""

    def __init__(self, inner: DirectoryTable, failing_directory: str) -> None:
        self._inner, self._failing = inner, f"DIR#{failing_directory}"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def replace_if_newer(self, record: Record) -> Replaced:
        if record.key.pk == self._failing:
            raise TransientStoreError("ProvisionedThroughputExceededException (injected)")
        return self._inner.replace_if_newer(record)


def test_a_throttled_directory_fails_its_group_while_others_proceed(
    aws: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = apply.dependencies()
    failing = Applier(
        store=FailingDirectoryStore(DirectoryTable(aws.table_name), ev.DIRECTORY),
        work_queue=real.work_queue,
        dead_letters=real.dead_letters,
    )
    monkeypatch.setattr(apply, "dependencies", lambda: failing)
    deliver(
        ev.event("dsync.user.created", ev.user("u1"), created=1),
        ev.event("dsync.user.created", ev.user("u9", directory_id=OTHER), created=1),
        ev.event("dsync.user.created", ev.user("u2"), created=2),
    )
    messages = receive(aws)
    by_body = {json.loads(m["Body"])["data"]["id"]: m["MessageId"] for m in messages}
    response = run_apply(aws, messages)
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    assert failed == {by_body["u1"], by_body["u2"]}  # the failing directory's whole group
    assert [u["id"] for u in export(aws, OTHER)["users"]] == ["u9"]  # the other directory was applied


def test_a_poison_message_is_parked_on_the_dlq_without_blocking_its_directory(aws: LocalResources) -> None:
    good = ev.event("dsync.user.created", ev.user("u1"), created=1)
    poison = ev.event("dsync.user.created", {"directory_id": ev.DIRECTORY}, created=2)  # no id/updated_at
    after = ev.event("dsync.user.created", ev.user("u2"), created=3)
    deliver(good, poison, after)
    response = run_apply(aws, receive(aws))
    assert response == {"batchItemFailures": []}
    assert [u["id"] for u in export(aws)["users"]] == ["u1", "u2"]
    [parked] = receive(aws, aws.event_dead_letter_queue_url)
    assert json.loads(parked["Body"])["id"] == poison["id"]
    assert lanes.directory_of_group(parked["Attributes"]["MessageGroupId"]) == ev.DIRECTORY  # its own lane
    assert "invalid event" in parked["MessageAttributes"]["failure_reason"]["StringValue"]


def test_redelivery_of_an_applied_batch_changes_nothing(aws: LocalResources) -> None:
    deliver(
        ev.event("dsync.user.created", ev.user("u1"), created=1), ev.membership("dsync.group.user_added", created=2)
    )
    messages = receive(aws)
    run_apply(aws, messages, delete=False)
    before = export(aws)
    assert run_apply(aws, messages) == {"batchItemFailures": []}  # e.g. after a Lambda timeout
    assert export(aws) == before


def test_directory_deletion_hides_everything_and_queues_a_purge(aws: LocalResources) -> None:
    deliver(ev.event("dsync.user.created", ev.user("u1"), created=1))
    run_apply(aws, receive(aws))
    deliver(ev.event("dsync.deleted", ev.directory(), created=9))
    run_apply(aws, receive(aws))
    assert export(aws) == {"directory": None, "users": [], "groups": [], "memberships": []}
    [job] = receive(aws, aws.work_queue_url)
    assert json.loads(job["Body"])["kind"] == "purge"
