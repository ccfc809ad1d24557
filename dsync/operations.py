"""Operator actions behind the `dsync` commands; each works on the local stack and on a deployed one."""

from __future__ import annotations

import json
import random
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.sqs import FAILURE_REASON_ATTRIBUTE
from shared.apply.purge import purge_directory
from shared.ingest.signature import signature_header
from shared.model import lanes
from shared.model.events import KNOWN_EVENT_TYPES
from shared.read.reader import DirectoryReader


def status(target: Target) -> dict[str, Any]:
    """Queues, the Events API tail and each directory, in one document (see `shared.read.status`)."""
    from shared.read.status import directory_status, tail_status

    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    return {
        **queue_status(target),
        "tail": tail_status(table, now=time.time()),
        "directories": directory_status(table),
    }


def queue_status(target: Target) -> dict[str, int]:
    sqs = target.client("sqs")
    main = sqs.get_queue_attributes(
        QueueUrl=target.event_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    dead = sqs.get_queue_attributes(
        QueueUrl=target.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    status = {
        "queued": int(main["ApproximateNumberOfMessages"]),
        "in_flight": int(main["ApproximateNumberOfMessagesNotVisible"]),
        "dead_letters": int(dead["ApproximateNumberOfMessages"]),
    }
    if target.overflow_queue_url:  # throttled directories' events, waiting for their partition (shared.apply.overflow)
        overflow = sqs.get_queue_attributes(
            QueueUrl=target.overflow_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        status["overflow_queued"] = int(overflow["ApproximateNumberOfMessages"])
        status["overflow_in_flight"] = int(overflow["ApproximateNumberOfMessagesNotVisible"])
    return status


def export(target: Target, directory_id: str) -> dict[str, Any]:
    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    return DirectoryReader(table).export(directory_id)


@dataclass
class RedriveReport:
    moved: int
    by_directory: dict[str, int]
    reasons: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"moved": self.moved, "by_directory": self.by_directory, "reasons": self.reasons}


def redrive(target: Target, *, limit: int | None = None, show_progress: bool | None = None) -> RedriveReport:
    """Move dead letters back to the event queue, keeping each group's (a directory's lane's) messages in order.

    Messages are received from the FIFO DLQ (which hands out a group's messages in order and holds the group while
    they are in flight), re-sent to the event queue in the same group, and only then deleted from the DLQ. The
    deduplication id gets a redrive suffix so SQS does not drop a message whose original is still in its 5-minute
    dedup window; applying it twice is harmless (the write rules make it a no-op).
    """
    sqs = target.client("sqs")
    moved: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    started_ms = int(time.time() * 1000)
    # Only what is parked now: a message that fails again is parked again, and must not be moved round in circles.
    waiting = int(
        sqs.get_queue_attributes(QueueUrl=target.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    budget = waiting if limit is None else min(limit, waiting)
    from tqdm import tqdm  # a CLI dependency (requirements-dev), imported by the command only

    enabled = sys.stderr.isatty() if show_progress is None else show_progress
    with tqdm(total=budget, unit="msg", desc="redrive", disable=not enabled, file=sys.stderr) as bar:
        _move(sqs, target, budget=budget, started_ms=started_ms, moved=moved, reasons=reasons, advance=bar.update)
    return RedriveReport(moved=sum(moved.values()), by_directory=dict(moved), reasons=dict(reasons))


def _move(
    sqs: Any,
    target: Target,
    *,
    budget: int,
    started_ms: int,
    moved: Counter[str],
    reasons: Counter[str],
    advance: Callable[[int], object],
) -> None:
    suffix = f"redrive-{started_ms}"
    while sum(moved.values()) < budget:
        batch = sqs.receive_message(
            QueueUrl=target.dead_letter_queue_url,
            MaxNumberOfMessages=max(1, min(10, budget - sum(moved.values()))),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        fresh = [m for m in batch if int(m.get("Attributes", {}).get("SentTimestamp", 0)) >= started_ms]
        for message in fresh:  # parked after we started: leave it for the next redrive
            sqs.change_message_visibility(
                QueueUrl=target.dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        batch = [m for m in batch if m not in fresh]
        if not batch:
            break
        for message in batch:
            attributes = message.get("Attributes", {})
            group = attributes.get("MessageGroupId", "unknown")
            dedup = attributes.get("MessageDeduplicationId") or message["MessageId"]
            carried = {
                name: value
                for name, value in message.get("MessageAttributes", {}).items()
                if name != FAILURE_REASON_ATTRIBUTE
            }
            sqs.send_message(
                QueueUrl=target.event_queue_url,
                MessageBody=message["Body"],
                MessageGroupId=group,
                MessageDeduplicationId=f"{dedup[:100]}-{suffix}",
                MessageAttributes=carried,
            )
            sqs.delete_message(QueueUrl=target.dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
            moved[lanes.directory_of_group(group)] += 1
            advance(1)
            reason = message.get("MessageAttributes", {}).get(FAILURE_REASON_ATTRIBUTE, {}).get("StringValue")
            reasons[(reason or "max receives exceeded").split(":")[0]] += 1


class InlineJobs:
    """The work queue for a synchronous `dsync reconcile`: purges run at once instead of being queued."""

    def __init__(self, table: DirectoryTable) -> None:
        self._table = table
        self.purged: dict[str, int] = {}

    def submit(self, job: Any, delay_seconds: int = 0) -> None:
        if dict(job).get("kind") == "purge":
            directory_id = str(job["directory_id"])
            result = purge_directory(self._table, directory_id, remaining_seconds=lambda: float("inf"))
            self.purged[directory_id] = self.purged.get(directory_id, 0) + result.deleted_items


# --- send-test-event -------------------------------------------------------------------------------------------

SAMPLE_EVENT_TYPES = tuple(sorted(KNOWN_EVENT_TYPES))


def sample_event(event_type: str, *, seed: int | None = None) -> dict[str, Any]:
    """A realistic event of `event_type`, produced by the fake WorkOS model (so it has WorkOS's exact shape)."""
    from dsync.fake_workos import DirectoryModel

    model = DirectoryModel(seed=seed if seed is not None else random.randrange(2**31))  # noqa: S311 - not crypto
    directory = model.create_directory(organization_id=None, name="Example Corp Okta", domain="example.com")["id"]
    user = model.create_user(directory, first_name="Ada", last_name="Lovelace", email="ada.lovelace@example.com")["id"]
    group = model.create_group(directory, name="Engineering")["id"]
    actions: dict[str, Callable[[], object]] = {
        "dsync.user.updated": lambda: model.update_user(user, last_name="King"),
        "dsync.user.deleted": lambda: model.delete_user(user),
        "dsync.group.updated": lambda: model.update_group(group, name="Platform Engineering"),
        "dsync.group.deleted": lambda: model.delete_group(group),
        "dsync.group.user_added": lambda: model.add_user_to_group(group, user),
        "dsync.group.user_removed": lambda: (
            model.add_user_to_group(group, user),
            model.remove_user_from_group(group, user),
        ),
        "dsync.deleted": lambda: model.delete_directory(directory),
        "dsync.deactivated": lambda: model.set_directory_state(directory, "inactive", emit_event=True),
        "dsync.token.created": lambda: model.create_token(directory),
        "dsync.token.revoked": lambda: model.revoke_token(model.create_token(directory)["id"]),
    }
    if event_type in actions:
        actions[event_type]()
    matches = [event for event in model.events if event["event"] == event_type]
    if not matches:
        raise ValueError(f"unknown event type {event_type!r}; choose one of {', '.join(SAMPLE_EVENT_TYPES)}")
    return matches[-1]


@dataclass(frozen=True)
class Delivery:
    status: int
    body: str
    event_id: str


def post_signed(
    url: str, document: dict[str, Any] | bytes, *, secret: str, timeout: float = 15.0, timestamp_ms: int | None = None
) -> Delivery:
    """POST a body signed the way WorkOS signs it (fresh timestamp), as WorkOS would deliver it."""
    body = document if isinstance(document, bytes) else json.dumps(document, separators=(",", ":")).encode()
    stamp = timestamp_ms if timestamp_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
    request = urllib.request.Request(  # noqa: S310 - the operator chooses the URL
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "WorkOS-Signature": signature_header(secret, stamp, body),
            "User-Agent": "dsync-cli",
        },
    )
    event_id = json.loads(body).get("id", "") if body.startswith(b"{") else ""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Delivery(response.status, response.read().decode("utf-8", "replace"), event_id)
    except urllib.error.HTTPError as error:
        return Delivery(error.code, error.read().decode("utf-8", "replace"), event_id)
