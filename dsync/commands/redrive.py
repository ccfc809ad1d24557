"""`dsync redrive`: move dead-lettered events back to the event queue, group by group, in order."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dsync.targets import Target
from shared.adapters.sqs import FAILURE_REASON_ATTRIBUTE
from shared.model import lanes
from shared.model.events import InvalidEventError, UnknownEvent, parse_event
from shared.model.smoke import AmbiguousSmokeTestError, is_smoke_test


@dataclass
class RedriveReport:
    moved: int
    by_directory: dict[str, int]
    reasons: dict[str, int]
    # Left in the DLQ: events that can never apply (`permanently_invalid`), by why. Moving them back would only
    # bring them here again seconds later.
    left: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"moved": self.moved, "by_directory": self.by_directory, "reasons": self.reasons, "left": self.left}


def permanently_invalid(body: str) -> str | None:
    """Why an event can never apply (the applier would park it again at once), or None if a retry may succeed."""
    try:
        event = parse_event(body)
    except InvalidEventError as error:
        return f"invalid event: {str(error).splitlines()[0][:200]}"
    if isinstance(event, UnknownEvent):
        return None  # acknowledged as ignored, never parked for its type
    try:
        is_smoke_test(event.id, event.directory_id)
    except AmbiguousSmokeTestError as error:
        return str(error)
    return None


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
    left: Counter[str] = Counter()
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
        _move(
            sqs,
            target,
            budget=budget,
            started_ms=started_ms,
            moved=moved,
            reasons=reasons,
            left=left,
            advance=bar.update,
        )
    return RedriveReport(moved=sum(moved.values()), by_directory=dict(moved), reasons=dict(reasons), left=dict(left))


def _move(
    sqs: Any,
    target: Target,
    *,
    budget: int,
    started_ms: int,
    moved: Counter[str],
    reasons: Counter[str],
    left: Counter[str],
    advance: Callable[[int], object],
) -> None:
    suffix = f"redrive-{started_ms}"
    while sum(moved.values()) + sum(left.values()) < budget:
        batch = sqs.receive_message(
            QueueUrl=target.dead_letter_queue_url,
            MaxNumberOfMessages=max(1, min(10, budget - sum(moved.values()) - sum(left.values()))),
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
            invalid = permanently_invalid(message["Body"])
            if invalid is not None:
                # Back of the DLQ, same group and reason: it stays parked and no longer holds its group's later
                # messages (a FIFO queue delivers a group in order). Its new SentTimestamp keeps it out of this run.
                sqs.send_message(
                    QueueUrl=target.dead_letter_queue_url,
                    MessageBody=message["Body"],
                    MessageGroupId=group,
                    MessageDeduplicationId=f"{dedup[:90]}-kept-{suffix}",
                    MessageAttributes=message.get("MessageAttributes", {}),
                )
                sqs.delete_message(QueueUrl=target.dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
                left[invalid.split(":")[0]] += 1
                advance(1)
                continue
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
