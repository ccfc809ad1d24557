"""Directory data is personal data: it never reaches logs or metrics, and a deleted user is erased from the store.

A user with distinctive personal data goes through all four handlers (ingest, apply, publish, reconcile) on moto,
with every byte the process writes to stdout/stderr captured; then the user is deleted and the item is inspected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from dsync.fake_workos import DirectoryModel, FakeWorkOS
from dsync.local.lambda_events import sqs_event
from dsync.local.provision import LocalResources
from functions.apply import handler as apply
from functions.ingest import handler as ingest
from functions.publish import handler as publish
from functions.reconcile import handler as reconcile
from shared import resources
from shared.adapters.dynamodb import DirectoryTable
from shared.model import records
from shared.settings import ApplySettings
from tests.support.lambda_context import lambda_context
from tests.support.streams import from_streams_api, read_stream
from tests.support.webhooks import signed_event

pytestmark = pytest.mark.integration

FIRST, LAST, EMAIL = "Zephyrine", "Quillfeather", "zephyrine.quillfeather@privacy.test"
PERSONAL = (FIRST, LAST, EMAIL, "Chief Secrets Officer")


@pytest.fixture(autouse=True)
def fresh_dependencies() -> Iterator[None]:
    for module in (apply, ingest, publish, reconcile):
        module.dependencies.cache_clear()
    yield
    for module in (apply, ingest, publish, reconcile):
        module.dependencies.cache_clear()


def drain_into_apply(resources: LocalResources) -> dict[str, Any]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=resources.event_queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    response = dict(
        apply.handler(sqs_event(messages, queue_arn="arn:aws:sqs:us-east-1:1:q", region="us-east-1"), lambda_context())
    )
    for message in messages:
        sqs.delete_message(QueueUrl=resources.event_queue_url, ReceiptHandle=message["ReceiptHandle"])
    return response


def test_personal_data_stays_out_of_logs_and_metrics_and_is_erased_on_delete(
    aws: LocalResources, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = DirectoryModel(seed=8)
    directory_id = model.create_directory(organization_id="org_01PRIVACY")["id"]
    user = model.create_user(
        directory_id,
        first_name=FIRST,
        last_name=LAST,
        email=EMAIL,
        job_title="Chief Secrets Officer",
        custom_attributes={"manager": EMAIL},
    )
    group = model.create_group(directory_id, name="Secret Keepers")
    model.add_user_to_group(group["id"], user["id"])
    model.update_user(user["id"], state="inactive")
    events = model.drain_events()

    # ingest: accepted, rejected (wrong secret) and malformed deliveries, all carrying the personal data
    for event in events:
        assert ingest.handler(signed_event(event), lambda_context())["statusCode"] == 200
    assert ingest.handler(signed_event(events[1], secret="whsec_wrong"), lambda_context())["statusCode"] == 401
    poison = {
        "id": "event_poison",
        "event": "dsync.user.created",
        "data": {"directory_id": directory_id, "email": EMAIL, "first_name": FIRST},
    }
    assert ingest.handler(signed_event(poison), lambda_context())["statusCode"] == 200

    # apply: applied, noop and dead-lettered outcomes
    assert drain_into_apply(aws) == {"batchItemFailures": []}

    # publish: the stream's change events (provisioned, suspended, membership...) published on the bus
    stream_arn = boto3.client("dynamodb").describe_table(TableName=aws.table_name)["Table"]["LatestStreamArn"]
    stream = [from_streams_api(record, stream_arn=stream_arn) for record in read_stream(stream_arn)]
    assert publish.handler({"Records": stream}, lambda_context()) == {"batchItemFailures": []}

    # reconcile: a run against WorkOS (the user is gone there by now), through the Lambda handler
    model.delete_user(user["id"])
    model.drain_events()
    with FakeWorkOS(model, api_key="sk_test_privacy") as fake:
        boto3.client("secretsmanager").put_secret_value(
            SecretId=aws.workos_api_key_secret_arn, SecretString=json.dumps({"api_key": fake.api_key})
        )
        monkeypatch.setenv("WORKOS_BASE_URL", fake.base_url)
        job = {"kind": "reconcile", "directory_id": directory_id, "requested_at_ms": 1}
        sqs_job = {
            "Records": [
                {
                    "messageId": "job-1",
                    "body": json.dumps(job),
                    "receiptHandle": "r",
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                }
            ]
        }
        assert reconcile.handler(sqs_job, lambda_context(timeout_seconds=300)) == {"batchItemFailures": []}

    captured = capfd.readouterr()
    output = captured.out + captured.err
    assert "WebhooksAccepted" in output and "EventsApplied" in output and "ReconcileRuns" in output  # it did log
    for value in PERSONAL:
        assert value not in output, f"{value!r} leaked into logs or metrics"

    # The user is deleted (WorkOS said 404): the item keeps ids and a version, and expires.
    item = DirectoryTable(aws.table_name).get_item(records.user_key(directory_id, user["id"]))
    assert item is not None and item["deleted"] is True
    assert set(item) == {"pk", "sk", "vkey", "deleted", "kind", "id", "directory_id", "expires_at"}
    assert not any(value in json.dumps(item) for value in PERSONAL)
    assert item["expires_at"] > item["vkey"] // 2 // 1_000_000  # in the future of the deletion


def test_tombstones_outlive_every_way_a_stale_event_can_still_arrive() -> None:
    """WorkOS retries for 3 days; then the events queue (4 d), the overflow queue (14 d), the DLQ (14 d, counted in
    full: a FIFO dead-letter move may restart the clock) and one redrive to the events queue (4 d)."""
    days = 3 + 4 + 14 + 14 + 4
    assert days == resources.LONGEST_EVENT_LIFE_DAYS == resources.MIN_TOMBSTONE_TTL_DAYS
    assert ApplySettings.model_fields["tombstone_ttl_days"].default > days
    with pytest.raises(ValueError, match=f"greater than or equal to {days}"):
        ApplySettings(table_name="t", dead_letter_queue_url="q", work_queue_url="w", tombstone_ttl_days=days - 1)
