"""`dsync status` and `dsync export`: what the mirror holds and how its queues stand, locally or deployed."""

from __future__ import annotations

import time
from typing import Any

from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
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
    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    return DirectoryReader(table).export(directory_id)
