"""`dsync user`, `dsync changes --follow` and `dsync logs` on moto (issue #20)."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from dsync.commands.views import (
    ChangeFollower,
    find_user,
    follow_changes,
    list_directories,
    log_group_of,
    read_logs,
)
from dsync.errors import CommandError
from dsync.local.provision import LocalResources
from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
from shared.apply.applier import Applier
from shared.resources import CHANGE_EVENT_SOURCE
from tests.support import dsync_events as ev
from tests.support.fake_store import FakeDeadLetters, FakeWorkQueue

pytestmark = pytest.mark.integration


@pytest.fixture
def mirrored(target: Target) -> Target:
    """A directory with one user in the mirror, written by the real applier."""
    applier = Applier(
        store=DirectoryTable(target.table_name), work_queue=FakeWorkQueue(), dead_letters=FakeDeadLetters()
    )
    user = ev.user("directory_user_ada", email="Ada@Example.com", idp_id="ADA-1")
    documents = [
        ev.event("dsync.activated", ev.directory(), created=0),
        ev.event("dsync.user.created", user, created=1),
    ]
    applier.apply([ev.message(document) for document in documents])
    return target


@pytest.mark.parametrize(
    "lookup",
    [
        {"directory_id": ev.DIRECTORY, "email": "ada@example.com"},
        {"directory_id": ev.DIRECTORY, "idp_id": "ADA-1"},
        {"directory_id": ev.DIRECTORY, "user_id": "directory_user_ada"},
        {"organization_id": ev.ORG, "email": "ADA@example.com"},
    ],
)
def test_a_user_is_found_by_email_idp_id_or_id(mirrored: Target, lookup: dict[str, Any]) -> None:
    wanted: dict[str, Any] = {
        "directory_id": None,
        "organization_id": None,
        "email": None,
        "idp_id": None,
        "user_id": None,
    }
    user = find_user(mirrored, **(wanted | lookup))
    assert user["id"] == "directory_user_ada"
    assert user["groups"] == []


def test_an_unknown_user_or_directory_is_an_error(mirrored: Target) -> None:
    none: dict[str, Any] = {"organization_id": None, "idp_id": None, "user_id": None}
    with pytest.raises(CommandError, match=r"no live user 'grace@example\.com'"):
        find_user(mirrored, directory_id=ev.DIRECTORY, email="grace@example.com", **none)
    with pytest.raises(CommandError, match="unknown or deleted"):
        find_user(mirrored, directory_id="directory_typo", email="ada@example.com", **none)


def test_changes_follow_hears_the_bus_and_removes_its_rule_and_queue(target: Target, aws: LocalResources) -> None:
    followed = dataclasses.replace(target, change_bus_name=aws.change_bus_name)
    follower = ChangeFollower(followed, detail_types=["user.created"])
    events = boto3.client("events", region_name="us-east-1")
    for detail_type in ("user.created", "group.created"):  # the second is filtered out by the rule
        events.put_events(
            Entries=[
                {
                    "Source": CHANGE_EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps({"event_id": detail_type}),
                    "EventBusName": aws.change_bus_name,
                }
            ]
        )
    heard: list[dict[str, Any]] = []
    try:
        assert follow_changes(follower, emit=heard.append, max_events=1, seconds=10) == 1
    finally:
        follower.close()
    assert heard[0]["detail-type"] == "user.created" and heard[0]["event_id"] == "user.created"
    rules = events.list_rules(EventBusName=aws.change_bus_name)["Rules"]
    assert follower.name not in [rule["Name"] for rule in rules]
    queues = boto3.client("sqs", region_name="us-east-1").list_queues().get("QueueUrls", [])
    assert not [url for url in queues if follower.name in url]


def test_logs_are_read_from_the_functions_log_group(target: Target) -> None:
    logs = boto3.client("logs", region_name="us-east-1")
    logs.create_log_group(logGroupName="WorkosDsyncPipeline-IngestLogGroupA1B2-xyz")
    logs.create_log_stream(logGroupName="WorkosDsyncPipeline-IngestLogGroupA1B2-xyz", logStreamName="s")
    now_ms = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName="WorkosDsyncPipeline-IngestLogGroupA1B2-xyz",
        logStreamName="s",
        logEvents=[{"timestamp": now_ms - 1000, "message": "webhook queued"}],
    )
    deployed = dataclasses.replace(target, stack_name="WorkosDsyncPipeline")
    lines: list[str] = []
    read_logs(
        deployed,
        "WorkosDsyncPipeline-IngestLogGroupA1B2-xyz",
        since="2000-01-01T00:00:00Z",
        follow=False,
        emit=lines.append,
    )
    assert len(lines) == 1 and lines[0].endswith("webhook queued")


def test_the_log_group_is_found_through_the_stacks_resources(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's log groups have generated names: they are looked up by logical id."""
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    stubber = Stubber(cloudformation)
    summaries = [
        {
            "LogicalResourceId": "ApplyLogGroupC03F133B",
            "PhysicalResourceId": "stack-ApplyLogGroup-1",
            "ResourceType": "AWS::Logs::LogGroup",
            "LastUpdatedTimestamp": "2026-12-01T00:00:00Z",
            "ResourceStatus": "CREATE_COMPLETE",
        },
        {
            "LogicalResourceId": "IngestLogGroup6B4733A3",
            "PhysicalResourceId": "stack-IngestLogGroup-2",
            "ResourceType": "AWS::Logs::LogGroup",
            "LastUpdatedTimestamp": "2026-12-01T00:00:00Z",
            "ResourceStatus": "CREATE_COMPLETE",
        },
    ]
    stubber.add_response("list_stack_resources", {"StackResourceSummaries": summaries}, {"StackName": "S"})
    deployed = dataclasses.replace(target, stack_name="S")
    monkeypatch.setattr(Target, "client", lambda self, service: cloudformation)
    with stubber:
        assert log_group_of(deployed, "ingest") == "stack-IngestLogGroup-2"
    with pytest.raises(CommandError, match="local stack prints"):
        log_group_of(target, "ingest")


def test_directories_lists_the_mirror_with_filters(mirrored: Target) -> None:
    (row,) = list_directories(mirrored, organization_id=None, unhealthy=False, drifted=False)
    assert row["id"] == ev.DIRECTORY and row["organization_id"] == ev.ORG and row["users_active"] == 1
    assert list_directories(mirrored, organization_id=ev.ORG, unhealthy=False, drifted=False) == [row]
    assert list_directories(mirrored, organization_id="org_other", unhealthy=False, drifted=False) == []
    assert list_directories(mirrored, organization_id=None, unhealthy=False, drifted=True) == []  # never reconciled
    unhealthy = list_directories(mirrored, organization_id=None, unhealthy=True, drifted=False)
    assert unhealthy == ([row] if row["problems"] else [])
