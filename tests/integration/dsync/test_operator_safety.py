"""Operator commands on moto refuse to act on a wrong id and never move what cannot apply (issue #20)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import boto3
import pytest

from dsync.commands.mirror import export
from dsync.commands.reconcile import run_reconcile
from dsync.commands.redrive import permanently_invalid, redrive
from dsync.errors import CommandError
from dsync.fake_workos import DirectoryModel, FakeWorkOS
from dsync.targets import Target
from shared.adapters.sqs import FAILURE_REASON_ATTRIBUTE
from shared.resources import LOCAL_NAMES
from tests.support import dsync_events as ev

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> Iterator[FakeWorkOS]:
    with FakeWorkOS(DirectoryModel(seed=7)) as server:
        yield server


def park(target: Target, body: str, *, dedup: str, reason: str) -> None:
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=target.dead_letter_queue_url,
        MessageBody=body,
        MessageGroupId=f"{ev.DIRECTORY}:0",
        MessageDeduplicationId=dedup,
        MessageAttributes={FAILURE_REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason}},
    )


def bodies(target: Target, url: str) -> list[str]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    found: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        found += [message["Body"] for message in messages]
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_redrive_leaves_what_can_never_apply_and_moves_the_rest_in_order(target: Target) -> None:
    """Issue #20: permanently invalid events went back and returned to the DLQ seconds later."""
    first = json.dumps(ev.event("dsync.user.created", ev.user(), created=1, event_id="event_first"))
    broken = json.dumps({"id": "event_broken", "event": "dsync.user.created", "data": {"directory_id": ev.DIRECTORY}})
    last = json.dumps(ev.event("dsync.user.updated", ev.user(updated=2), created=2, event_id="event_last"))
    park(target, first, dedup="1", reason="max receives exceeded")
    park(target, broken, dedup="2", reason="invalid event: missing fields")
    park(target, last, dedup="3", reason="max receives exceeded")
    report = redrive(target)
    assert report.moved == 2
    assert report.left == {"invalid event": 1}
    assert bodies(target, target.event_queue_url) == [first, last]  # the group's order, the broken one skipped
    assert bodies(target, target.dead_letter_queue_url) == [broken]  # still parked, reason kept


def test_what_redrive_calls_permanently_invalid() -> None:
    assert permanently_invalid("not json") is not None
    assert permanently_invalid(json.dumps(ev.event("dsync.user.created", ev.user(), created=1))) is None
    assert permanently_invalid(json.dumps(ev.event("dsync.future.thing", {}, created=1))) is None  # ignored, not parked


def test_export_of_a_directory_the_mirror_does_not_hold_is_an_error(target: Target) -> None:
    with pytest.raises(CommandError, match="unknown in the mirror"):
        export(target, "directory_typo")


def test_reconcile_of_an_id_nobody_knows_is_an_error_and_changes_nothing(target: Target, fake: FakeWorkOS) -> None:
    """Issue #20: a typo'd --directory reported a deletion."""
    with pytest.raises(CommandError, match=r"neither WorkOS .* nor the mirror knows directory 'directory_typo'"):
        run_reconcile(target, directory_id="directory_typo", api_key=fake.api_key, base_url=fake.base_url)


def test_reconcile_of_a_local_stack_reaches_the_fake_its_secret_names(target: Target, fake: FakeWorkOS) -> None:
    """Issue #20: the local stack's secret kept the key but not the base URL, so `dsync reconcile` on a stack started
    beside a fake WorkOS went to the real one. It stores both now, and the CLI honours the stored URL."""
    from dsync.local.provision import provision

    provision(webhook_secrets=["whsec_x"], workos_api_key=fake.api_key, workos_base_url=fake.base_url)
    directory_id = fake.model.create_directory()["id"]
    fake.model.create_user(directory_id, first_name="A", last_name="B", email="a@b.test")
    secret_target = dataclasses.replace(target, workos_api_key_secret_id=LOCAL_NAMES.workos_api_key_secret)
    report = run_reconcile(secret_target, directory_id=None, api_key=None, base_url=None)
    assert report["ok"] and directory_id in [d["directory_id"] for d in report["directories"]]
