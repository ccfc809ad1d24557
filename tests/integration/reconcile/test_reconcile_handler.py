"""The reconcile Lambda handler: schedule → jobs, jobs → runs and purges, continuations, busy directories."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from dsync.fake_workos import DirectoryModel, FakeWorkOS, populate
from dsync.local.provision import LocalResources
from functions.reconcile import handler as reconcile
from shared.adapters.dynamodb import DirectoryTable
from shared.lease import Lease
from shared.model import records, schema
from shared.model.records import ItemKey
from shared.reconcile.run import LAST_RUN_SK, LEASE_SK
from tests.support.lambda_context import lambda_context

pytestmark = pytest.mark.integration


@pytest.fixture
def fake(aws: LocalResources, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWorkOS]:
    reconcile.dependencies.cache_clear()
    reconcile.workos_api.cache_clear()
    with FakeWorkOS(DirectoryModel(seed=21)) as server:
        boto3.client("secretsmanager").put_secret_value(
            SecretId=aws.workos_api_key_secret_arn, SecretString=json.dumps({"api_key": server.api_key})
        )
        monkeypatch.setenv("WORKOS_BASE_URL", server.base_url)
        yield server
    reconcile.dependencies.cache_clear()
    reconcile.workos_api.cache_clear()


def jobs_on_queue(resources: LocalResources) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    found = []
    while messages := sqs.receive_message(QueueUrl=resources.work_queue_url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=resources.work_queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def job_event(*jobs: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": "r",
                "body": json.dumps(job),
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
            }
            for i, job in enumerate(jobs)
        ]
    }


SCHEDULE = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_schedule_without_an_api_key_skips_cleanly(aws: LocalResources) -> None:
    boto3.client("secretsmanager").put_secret_value(  # the stack's placeholder, as deployed
        SecretId=aws.workos_api_key_secret_arn, SecretString=json.dumps({"api_key": "", "placeholder": "x1"})
    )
    reconcile.dependencies.cache_clear()
    result: dict[str, Any] = dict(reconcile.handler(SCHEDULE, lambda_context()))
    assert result["planned"] == 0 and "not set" in result["skipped"]
    assert jobs_on_queue(aws) == []


def test_schedule_plans_one_job_per_directory_known_to_workos_or_the_store(
    aws: LocalResources, fake: FakeWorkOS
) -> None:
    listed = fake.model.create_directory(organization_id="org_01A")["id"]
    table = DirectoryTable(aws.table_name)
    table.put_if_newer(records.directory_stub("directory_01ONLYHERE", "org_01A"))  # an organization both know
    assert reconcile.handler(SCHEDULE, lambda_context()) == {"planned": 2, "deferred": 0}
    jobs = jobs_on_queue(aws)
    assert sorted(job["directory_id"] for job in jobs) == sorted([listed, "directory_01ONLYHERE"])
    assert all(job["kind"] == "reconcile" and job["requested_at_ms"] > 0 for job in jobs)


def test_a_scheduled_wave_takes_only_what_fits_its_period_neediest_first(
    aws: LocalResources, fake: FakeWorkOS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 60 s period with one function at a time is 54 function-seconds of budget (90%). A directory never
    reconciled comes first (its cost estimated from WorkOS's counts: 23 requests at 4/s plus 2 s), then the least
    recently reconciled (each last took 30 s); the third does not fit and waits for the next wave."""
    monkeypatch.setenv("RECONCILE_PERIOD_SECONDS", "60")
    monkeypatch.setattr(reconcile, "RECONCILE_MAX_CONCURRENCY", 1)
    directories = [fake.model.create_directory(organization_id=f"org_{n}")["id"] for n in range(3)]
    populate(fake.model, directories[2], users=2_000, groups=1, rng=random.Random(2))
    table = DirectoryTable(aws.table_name)
    for finished_at, directory_id in ((100, directories[0]), (50, directories[1])):
        table.put_item(
            {
                "pk": schema.directory_pk(directory_id),
                "sk": LAST_RUN_SK,
                "finished_at": finished_at,
                "status": "complete",
                "duration_seconds": 30.0,
            }
        )
    assert reconcile.handler(SCHEDULE, lambda_context()) == {"planned": 2, "deferred": 1}
    assert sorted(job["directory_id"] for job in jobs_on_queue(aws)) == sorted([directories[2], directories[1]])


def test_a_job_reconciles_and_a_directory_gone_from_workos_is_purged(aws: LocalResources, fake: FakeWorkOS) -> None:
    directory_id = fake.model.create_directory(organization_id="org_01C")["id"]
    populate(fake.model, directory_id, users=10, groups=2, rng=random.Random(1))
    assert reconcile.handler(job_event({"kind": "reconcile", "directory_id": directory_id}), lambda_context()) == {
        "batchItemFailures": []
    }
    table = DirectoryTable(aws.table_name)
    assert len(table.entity_versions(directory_id, "USER#")) == 10

    fake.model.create_directory(organization_id="org_01C")  # listed still: evidence the key is the mirror's
    fake.model.delete_directory(directory_id)  # the dsync.deleted webhook was lost
    reconcile.handler(job_event({"kind": "reconcile", "directory_id": directory_id}), lambda_context())
    [purge] = jobs_on_queue(aws)
    assert purge["kind"] == "purge"
    reconcile.handler(job_event(purge), lambda_context())
    remaining = list(table.query_partition(directory_id, ""))
    assert [item["sk"] for item in remaining] == ["#DIRECTORY"] and remaining[0]["deleted"] is True


def test_a_run_out_of_time_queues_its_continuation(aws: LocalResources, fake: FakeWorkOS) -> None:
    directory_id = fake.model.create_directory(organization_id="org_01D")["id"]
    populate(fake.model, directory_id, users=250, groups=3, rng=random.Random(2))
    nearly_out = lambda_context(timeout_seconds=46)  # under the 45 s reserve once the first page is done
    reconcile.handler(job_event({"kind": "reconcile", "directory_id": directory_id}), nearly_out)
    [continuation] = jobs_on_queue(aws)
    assert (continuation["kind"], continuation["reason"]) == ("reconcile", "continuation")
    reconcile.handler(job_event(continuation), lambda_context())
    assert len(DirectoryTable(aws.table_name).entity_versions(directory_id, "USER#")) == 250


@pytest.mark.parametrize(("requested_at_ms", "requeued"), [(2_000, True), (500, False)])
def test_a_busy_directory_requeues_only_requests_newer_than_the_running_reconcile(
    aws: LocalResources, fake: FakeWorkOS, requested_at_ms: int, requeued: bool
) -> None:
    directory_id = fake.model.create_directory(organization_id="org_01E")["id"]
    holder = Lease(
        DirectoryTable(aws.table_name), ItemKey(schema.directory_pk(directory_id), LEASE_SK), acquired_ms=1_000
    )
    assert holder.acquire(600)
    job = {"kind": "reconcile", "directory_id": directory_id, "requested_at_ms": requested_at_ms}
    reconcile.handler(job_event(job), lambda_context())
    delayed = boto3.client("sqs").get_queue_attributes(
        QueueUrl=aws.work_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]["ApproximateNumberOfMessagesDelayed"]
    assert (int(delayed) == 1) is requeued  # comes back after the running reconcile, 30 s later


def test_unknown_and_unparseable_jobs_are_dropped_not_retried(aws: LocalResources, fake: FakeWorkOS) -> None:
    event = job_event({"kind": "explode", "directory_id": "x"})
    event["Records"].append({**event["Records"][0], "messageId": "m9", "body": "not json"})
    assert reconcile.handler(event, lambda_context()) == {"batchItemFailures": []}


def test_a_bad_api_key_fails_the_job_so_it_is_retried_then_dead_lettered(aws: LocalResources, fake: FakeWorkOS) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=aws.workos_api_key_secret_arn, SecretString="sk_bad")
    reconcile.dependencies.cache_clear()
    directory_id = fake.model.create_directory(organization_id="org_01F")["id"]
    # The only record failed: Powertools fails the invocation, so SQS redelivers it (then the work DLQ, alarmed).
    with pytest.raises(BatchProcessingError, match="All records failed"):
        reconcile.handler(job_event({"kind": "reconcile", "directory_id": directory_id}), lambda_context())


def test_each_wave_records_directory_health_and_a_state_change_once(
    aws: LocalResources, fake: FakeWorkOS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WorkOS sends no event when a directory's credentials break: the wave's listing is what notices."""
    directory_id = fake.model.create_directory(organization_id="org_01A")["id"]
    fake.model.create_user(directory_id, first_name="Ada", last_name="L", email="ada@acme.test")
    table = DirectoryTable(aws.table_name)
    reconcile.handler(SCHEDULE, lambda_context())
    first = table.get_item(records.health_key(directory_id))
    assert first is not None
    assert (first["state"], first["users_active"], first["groups"]) == ("linked", 1, 0)
    fake.model.set_directory_state(directory_id, "invalid_credentials")
    reconcile.handler(SCHEDULE, lambda_context())
    broken = table.get_item(records.health_key(directory_id))
    assert broken is not None and broken["state"] == "invalid_credentials"
    assert broken["since"] >= first["since"]
    reconcile.handler(SCHEDULE, lambda_context())
    assert table.get_item(records.health_key(directory_id)) == broken  # unchanged: not rewritten


def test_the_wave_reports_unhealthy_directories_and_count_mismatches_as_metrics(
    aws: LocalResources, fake: FakeWorkOS, capsys: pytest.CaptureFixture[str]
) -> None:
    directory_id = fake.model.create_directory(organization_id="org_01A")["id"]
    fake.model.create_user(directory_id, first_name="Ada", last_name="L", email="ada@acme.test")  # not mirrored yet
    fake.model.set_directory_state(directory_id, "validating")
    reconcile.handler(SCHEDULE, lambda_context())
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    metrics = {
        name: doc[name]
        for doc in emitted
        for name in ("DirectoriesUnhealthy", "DirectoryCountMismatches")
        if name in doc
    }
    assert metrics == {"DirectoriesUnhealthy": [1.0], "DirectoryCountMismatches": [1.0]}


def test_a_request_newer_than_a_continued_run_is_kept_although_the_continuation_holds_a_fresh_lease(
    aws: LocalResources, fake: FakeWorkOS
) -> None:
    """The run in progress started (its checkpoint) before the request; its continuation's lease is newer. The
    request is about changes the run may have listed past already, so it must come back after the run."""
    directory_id = fake.model.create_directory(organization_id="org_01G")["id"]
    table = DirectoryTable(aws.table_name)
    table.put_item(
        {"pk": schema.directory_pk(directory_id), "sk": "~RECONCILE#STATE", "run_id": "r1", "started_at_us": 1_000_000}
    )
    continuation = Lease(table, ItemKey(schema.directory_pk(directory_id), LEASE_SK), acquired_ms=9_000)
    assert continuation.acquire(600)
    job = {"kind": "reconcile", "directory_id": directory_id, "requested_at_ms": 5_000}
    reconcile.handler(job_event(job), lambda_context())
    delayed = boto3.client("sqs").get_queue_attributes(
        QueueUrl=aws.work_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]["ApproximateNumberOfMessagesDelayed"]
    assert int(delayed) == 1
