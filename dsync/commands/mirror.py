"""`dsync status` and `dsync export`: what the mirror holds and how its queues stand, locally or deployed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dsync.errors import CommandError
from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
from shared.model import records, schema
from shared.read.reader import DirectoryReader

if TYPE_CHECKING:
    from shared.read.status import Limits


def status(
    target: Target,
    *,
    directory_id: str | None = None,
    unhealthy_only: bool = False,
    summary_only: bool = False,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """Queues, the Events API tail, each directory, their totals and what needs a human (`attention`), in one
    document (see `shared.read.status`). `directory_id`: that directory only (unknown → an error); `unhealthy_only`:
    only directories with problems; `summary_only`: no per-directory list. Totals and attention cover every
    directory read, whatever the filter."""
    from shared.apply.ports import PermanentStoreError, TransientStoreError
    from shared.read.status import (
        Limits,
        UnknownDirectoryError,
        attention,
        directory_status,
        smoke_test_status,
        summary,
        tail_status,
    )

    limits = limits or Limits()
    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    now = time.time()
    try:
        directories = directory_status(table, now=now, directory_id=directory_id, limits=limits)
        tail, smoke_test = tail_status(table, now=now), smoke_test_status(table)
    except UnknownDirectoryError as error:
        raise CommandError(str(error)) from error
    except (TransientStoreError, PermanentStoreError) as error:  # what the adapter's retries could not absorb
        raise CommandError(f"the directory table did not answer: {error}; try again") from error
    queues = queue_status(target)
    document: dict[str, Any] = {
        **queues,
        "tail": tail,
        "last_smoke_test": smoke_test,
        "summary": summary(directories, now=now, limits=limits),
        "attention": attention(queues=queues, tail=tail, directories=directories, now=now, limits=limits),
    }
    if not summary_only:
        document["directories"] = [d for d in directories if d["problems"]] if unhealthy_only else directories
    return document


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
