"""`dsync status` and `dsync export`: what the mirror holds and how its queues stand, locally or deployed."""

from __future__ import annotations

import time
from typing import Any

from dsync.errors import CommandError
from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
from shared.model import records, schema
from shared.read.reader import DirectoryReader


def status(target: Target) -> dict[str, Any]:
    """Queues, the Events API tail and each directory, in one document (see `shared.read.status`)."""
    from shared.read.status import directory_status, smoke_test_status, tail_status

    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    return {
        **queue_status(target),
        "tail": tail_status(table, now=time.time()),
        "last_smoke_test": smoke_test_status(table),
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
    """A directory's readable state; an id the mirror does not hold (a typo, or deleted) is an error, not `{}`."""
    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    stored = table.get_item(records.directory_key(directory_id))
    if stored is None or stored.get(schema.DELETED_ATTRIBUTE):
        state = "was deleted" if stored is not None else "is unknown"
        raise CommandError(f"directory {directory_id!r} {state} in the mirror (`dsync status` lists the directories)")
    return DirectoryReader(table).export(directory_id)
