"""Lookups and views an operator expects (issue #20): `dsync user`, `dsync directories`, `dsync changes --follow`,
`dsync logs`.

- `user` goes through the read library (`shared.read.reader`): by email or IdP id, in a directory or across an
  organization's directories; not found is an error.
- `changes --follow` subscribes as an app would: a temporary queue and rule on the change bus, removed on exit.
- `logs` reads a function's CloudWatch log group, found through the stack's own resources (the groups have
  generated names).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from dsync.errors import CommandError
from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
from shared.read.reader import DirectoryReader
from shared.resources import CHANGE_EVENT_SOURCE, FUNCTIONS

FUNCTION_NAMES = tuple(spec.name for spec in FUNCTIONS)


def find_user(
    target: Target,
    *,
    directory_id: str | None,
    organization_id: str | None,
    email: str | None,
    idp_id: str | None,
    user_id: str | None,
) -> dict[str, Any]:
    reader = DirectoryReader(DirectoryTable(target.table_name, client=target.client("dynamodb")))
    where = f"directory {directory_id}" if directory_id else f"organization {organization_id}"
    user: dict[str, Any] | None
    if organization_id:
        if user_id:
            raise CommandError("--id needs --directory (user ids are per directory)")
        user = reader.find_user_in_organization(organization_id, email=email, idp_id=idp_id)
    elif directory_id is not None:
        if reader.directory(directory_id) is None:
            raise CommandError(f"directory {directory_id!r} is unknown or deleted in the mirror")
        if user_id:
            user = reader.get_user(directory_id, user_id)
        elif email:
            user = reader.find_user_by_email(directory_id, email)
        else:
            found = reader.find_users_by_idp_id(directory_id, str(idp_id))
            user = found[0] if found else None
    else:
        raise CommandError("give --directory or --organization")
    if user is None:
        wanted = user_id or email or idp_id
        raise CommandError(f"no live user {wanted!r} in {where}")
    user_directory = str(user.get("directory_id") or directory_id)
    return {**user, "groups": reader.user_groups(user_directory, str(user["id"]))}


def list_directories(
    target: Target, *, organization_id: str | None, unhealthy: bool, drifted: bool
) -> list[dict[str, Any]]:
    """The mirror's live directories, one summary each, from `dsync status`'s batched reads (no partition scan):
    only an organization's, only those with a problem (`unhealthy`), only those whose last reconcile found drift."""
    from shared.model import schema
    from shared.read.status import directory_status

    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    listed = {
        str(item["id"]): item for item in table.query_index(schema.DIRECTORIES_INDEX, schema.DIRECTORY_INDEX_VALUE)
    }
    rows = []
    for entry in directory_status(table, now=time.time()):
        directory = listed.get(entry["id"], {})
        last_run = entry["last_reconcile"] or {}
        row = {
            "id": entry["id"],
            "organization_id": directory.get("organization_id"),
            "name": directory.get("name"),
            "state": entry["state"],
            "health": (entry["health"] or {}).get("state"),
            **{name: entry["mirror_counts"].get(name) for name in ("users_active", "users_inactive", "groups")},
            "last_reconcile": last_run.get("finished_at"),
            "drift": last_run.get("drift_total"),
            "problems": entry["problems"],
        }
        if organization_id and row["organization_id"] != organization_id:
            continue
        if unhealthy and not row["problems"]:
            continue
        if drifted and not row["drift"]:
            continue
        rows.append(row)
    return rows


class ChangeFollower:
    """A temporary subscription to the change bus: a queue, a rule for the pipeline's events (optionally some
    detail-types only) delivering into it, both removed by `close()`."""

    def __init__(self, target: Target, *, detail_types: Sequence[str] = ()) -> None:
        if not target.change_bus_name:
            raise CommandError("the target has no change bus (stack output ChangeBusName)")
        self._sqs, self._events = target.client("sqs"), target.client("events")
        self._bus = target.change_bus_name
        self.name = f"dsync-follow-{secrets.token_hex(4)}"
        self._url = str(self._sqs.create_queue(QueueName=self.name)["QueueUrl"])
        try:
            queue_arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            pattern: dict[str, Any] = {"source": [CHANGE_EVENT_SOURCE]}
            if detail_types:
                pattern["detail-type"] = list(detail_types)
            rule_arn = self._events.put_rule(
                Name=self.name, EventBusName=self._bus, EventPattern=json.dumps(pattern), State="ENABLED"
            )["RuleArn"]
            # EventBridge may send only for this rule (the queue takes nothing else).
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": queue_arn,
                        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                    }
                ],
            }
            self._sqs.set_queue_attributes(QueueUrl=self._url, Attributes={"Policy": json.dumps(policy)})
            self._events.put_targets(
                Rule=self.name, EventBusName=self._bus, Targets=[{"Id": "dsync-follow", "Arn": queue_arn}]
            )
        except Exception:
            self.close()
            raise

    def events(self, *, wait_seconds: int = 5) -> Iterator[dict[str, Any]]:
        """What arrived (an EventBridge envelope each), deleted from the queue once read; one long poll."""
        response = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds)
        for message in response.get("Messages", []):
            self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
            yield dict(json.loads(message["Body"]))

    def close(self) -> None:
        """Remove the rule's target, the rule and the queue; each step best effort, all of them tried."""
        steps: list[Callable[[], object]] = [
            lambda: self._events.remove_targets(Rule=self.name, EventBusName=self._bus, Ids=["dsync-follow"]),
            lambda: self._events.delete_rule(Name=self.name, EventBusName=self._bus),
            lambda: self._sqs.delete_queue(QueueUrl=self._url),
        ]
        for step in steps:
            try:
                step()
            except Exception:  # noqa: S112 - already gone, or never made: the next step still runs
                continue


def follow_changes(
    follower: ChangeFollower,
    *,
    emit: Callable[[dict[str, Any]], None],
    max_events: int | None,
    seconds: float | None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Emit change events until `max_events` arrived or `seconds` passed (either may be None: until interrupted)."""
    started, seen = clock(), 0
    while (max_events is None or seen < max_events) and (seconds is None or clock() - started < seconds):
        for envelope in follower.events():
            emit({"detail-type": envelope.get("detail-type"), "time": envelope.get("time"), **envelope["detail"]})
            seen += 1
    return seen


def log_group_of(target: Target, function: str) -> str:
    """The physical log group of one of the stack's functions, from the stack's resources."""
    if target.stack_name is None:
        raise CommandError("the local stack prints its functions' logs on its own output (`dsync local`)")
    logical_prefix = f"{function.capitalize()}LogGroup"
    paginator = target.client("cloudformation").get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=target.stack_name):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::Logs::LogGroup" and resource["LogicalResourceId"].startswith(
                logical_prefix
            ):
                return str(resource["PhysicalResourceId"])
    raise CommandError(f"stack {target.stack_name} has no log group for {function!r}")


def read_logs(
    target: Target, log_group: str, *, since: str, follow: bool, emit: Callable[[str], None], poll_seconds: float = 2
) -> None:
    """Print the group's events from `since` (ISO-8601) on; with `follow`, keep polling until interrupted."""
    logs = target.client("logs")
    start_ms = int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() * 1000)
    seen: set[str] = set()
    while True:
        newest = start_ms
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=log_group, startTime=start_ms):
            for event in page.get("events", []):
                if event["eventId"] in seen:
                    continue
                seen.add(event["eventId"])
                newest = max(newest, int(event["timestamp"]))
                moment = datetime.fromtimestamp(event["timestamp"] / 1000, UTC).isoformat(timespec="milliseconds")
                emit(f"{moment} {event['message'].rstrip()}")
        if not follow:
            return
        start_ms = newest  # the same millisecond again: `seen` drops what was printed
        time.sleep(poll_seconds)
