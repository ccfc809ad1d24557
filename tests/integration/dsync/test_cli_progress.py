"""Long commands show progress on a terminal and stay quiet when piped: `dsync reconcile` and `dsync redrive`."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import boto3
import pytest

from dsync.commands.reconcile import run_reconcile
from dsync.commands.redrive import redrive
from dsync.fake_workos import DirectoryModel, FakeWorkOS, populate
from dsync.targets import Target
from tests.support import dsync_events as ev

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> Iterator[FakeWorkOS]:
    with FakeWorkOS(DirectoryModel(seed=5)) as server:
        yield server


def test_reconcile_shows_directory_phase_writes_and_requests_with_a_real_total(
    target: Target, fake: FakeWorkOS, capsys: pytest.CaptureFixture[str]
) -> None:
    directory_id = fake.model.create_directory()["id"]
    populate(fake.model, directory_id, users=150, groups=3, rng=random.Random(1))
    report = run_reconcile(target, directory_id=None, api_key=fake.api_key, base_url=fake.base_url, show_progress=True)
    assert report["ok"]
    err = capsys.readouterr().err
    assert "reconcile" in err and "/153" in err  # WorkOS's own counts: 150 users + 3 groups
    assert f"directory={directory_id[-8:]}" in err and "phase=" in err and "requests=" in err and "r429=" in err


def test_reconcile_is_quiet_when_piped(target: Target, fake: FakeWorkOS, capsys: pytest.CaptureFixture[str]) -> None:
    directory_id = fake.model.create_directory()["id"]
    populate(fake.model, directory_id, users=20, groups=1, rng=random.Random(2))
    assert run_reconcile(target, directory_id=directory_id, api_key=fake.api_key, base_url=fake.base_url)["ok"]
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest


def test_redrive_counts_messages_moved(target: Target, capsys: pytest.CaptureFixture[str]) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    for index in range(3):
        sqs.send_message(
            QueueUrl=target.dead_letter_queue_url,
            MessageBody=json.dumps(ev.event("dsync.user.created", ev.user(), created=index, event_id=f"event_{index}")),
            MessageGroupId="directory_1",
            MessageDeduplicationId=f"event_{index}",
        )
    report = redrive(target, show_progress=True)
    assert report.moved == 3
    assert "redrive" in capsys.readouterr().err
    redrive(target)
    assert capsys.readouterr().err == ""
