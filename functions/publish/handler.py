"""Publish Lambda: the directory table's stream → normalised change events on the change bus (EventBridge).

A batch comes from one shard, in order. The handler:

1. derives each record's change events (`shared.changes.derive`; most records imply none). A record that cannot be read
   fails, and every later record of the batch fails with it unpublished: Lambda resumes the shard at the first
   failed record anyway, and nothing may overtake it. An event that asserts something of a deleted directory,
   and a `membership.added` whose user or group is already deleted, is dropped (`shared.changes.guard`: one
   consistent read for the batch);
2. publishes all events of the batch in order, in as few PutEvents requests as possible (`ChangeBusPublisher`:
   10 entries per request, refused entries retried alone, nothing sent after an entry that stays refused);
3. maps events that were not published back to their records, and Powertools' `BatchProcessor` reports those
   records' sequence numbers. Lambda retries from the lowest one (the mapping bisects on error and sends records
   that exhaust their retries to the on-failure destination), so delivery is at least once: consumers deduplicate
   on the deterministic `event_id`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.eventbridge import ChangeBusPublisher, PublishError
from shared.changes.derive import ChangeEvent, MalformedStreamRecordError, changes_from_stream_record
from shared.changes.guard import VersionReader, untrue_events
from shared.observability import MetricsRecorder, get_logger
from shared.settings import PublishSettings

logger = get_logger("dsync-publish")
SKIPPED_AFTER_FAILURE = "not published: an earlier record of the shard failed"


class ChangePublisher(Protocol):
    def publish(self, events: Sequence[ChangeEvent]) -> None:
        """Publish in order, or raise `PublishError` naming the events that were not published."""


class RecordNotPublishedError(Exception):
    """The record's change events are not all on the bus: Lambda redelivers it (and the rest of the shard)."""


@lru_cache(maxsize=1)
def settings() -> PublishSettings:
    return PublishSettings()  # fields come from the environment


@lru_cache(maxsize=1)
def guard_reader() -> VersionReader | None:
    """The table, for `shared.changes.guard`; None when no table is configured (the guard is then off)."""
    table_name = settings().table_name
    return DirectoryTable(table_name) if table_name else None


@lru_cache(maxsize=1)
def dependencies() -> ChangePublisher:
    """Built on the first invocation, so importing needs no environment and makes no AWS call."""
    config = settings()
    return ChangeBusPublisher(config.change_bus_name, config.change_event_source)


@dataclass
class BatchOutcome:
    records: int = 0
    published: list[ChangeEvent] = field(default_factory=list)
    dropped: list[ChangeEvent] = field(default_factory=list)  # untrue additions (`shared.changes.guard`)
    unpublished: list[ChangeEvent] = field(default_factory=list)
    failed_records: dict[str, str] = field(default_factory=dict)  # sequence number -> reason (no personal data)


def sequence_number(record: Mapping[str, Any]) -> str:
    stream = record.get("dynamodb")
    return str(stream.get("SequenceNumber") or "") if isinstance(stream, Mapping) else ""


def publish_records(
    records: Sequence[Mapping[str, Any]], publisher: ChangePublisher, reader: VersionReader | None = None
) -> BatchOutcome:
    """Derive and publish the change events of a shard's batch; which records failed, and why."""
    outcome = BatchOutcome(records=len(records))
    events: list[ChangeEvent] = []
    owners: list[str] = []  # the sequence number of each event's record
    for position, record in enumerate(records):
        try:
            derived = changes_from_stream_record(record)
        except Exception as error:  # an unreadable record fails (holding back the rest), never the whole batch
            reason = str(error) if isinstance(error, MalformedStreamRecordError) else type(error).__name__
            outcome.failed_records[sequence_number(record)] = f"unreadable stream record: {reason}"
            for later in records[position + 1 :]:
                outcome.failed_records.setdefault(sequence_number(later), SKIPPED_AFTER_FAILURE)
            break
        events.extend(derived)
        owners.extend(sequence_number(record) for _ in derived)
    if reader is not None and events:
        try:
            untrue = untrue_events(events, reader)
        except Exception as error:  # cannot check: publish nothing, the whole batch is retried
            for record in records:
                outcome.failed_records.setdefault(sequence_number(record), f"guard read failed: {type(error).__name__}")
            return outcome
        outcome.dropped = [event for index, event in enumerate(events) if index in untrue]
        owners = [owner for index, owner in enumerate(owners) if index not in untrue]
        events = [event for index, event in enumerate(events) if index not in untrue]

    unpublished: dict[int, str] = {}
    if events:
        try:
            publisher.publish(events)
        except PublishError as error:
            unpublished = {index: error.error_codes.get(index, "NotSent") for index in error.unpublished}
    for index, event in enumerate(events):
        if index in unpublished:
            outcome.unpublished.append(event)
            reason = f"change events not published ({unpublished[index]})"
            outcome.failed_records.setdefault(owners[index], reason)
        else:
            outcome.published.append(event)
    return outcome


def record_metrics(metrics: MetricsRecorder, outcome: BatchOutcome) -> None:
    metrics.count("ChangeEventsPublished", len(outcome.published))
    for detail_type, count in Counter(event.detail_type for event in outcome.published).items():
        metrics.count("ChangeEventsPublished", count, DetailType=detail_type)
    metrics.count("ChangeEventsFailed", len(outcome.unpublished))
    for detail_type, count in Counter(event.detail_type for event in outcome.unpublished).items():
        metrics.count("ChangeEventsFailed", count, DetailType=detail_type)
    metrics.count("StreamRecordsFailed", len(outcome.failed_records))
    metrics.count("ChangeEventsDropped", len(outcome.dropped))


def log_outcome(outcome: BatchOutcome, started: float) -> None:
    logger.info(
        "stream batch published",
        extra={
            "records": outcome.records,
            "published": len(outcome.published),
            "unpublished": len(outcome.unpublished),
            "failed_records": len(outcome.failed_records),
            "duration_ms": round((time.monotonic() - started) * 1000),
        },
    )
    # Ids, types and reasons only: the events themselves carry names and emails.
    for event in outcome.unpublished:
        logger.warning(
            "change event not published",
            extra={
                "event_id": event.event_id,
                "detail_type": event.detail_type,
                "directory_id": event.directory_id,
                "subject_id": event.subject_id,
            },
        )
    for number, reason in outcome.failed_records.items():
        if reason != SKIPPED_AFTER_FAILURE:
            logger.warning("stream record failed", extra={"sequence_number": number, "reason": reason})


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    started = time.monotonic()
    metrics = MetricsRecorder(service="dsync-publish")
    try:
        records = event.get("Records") or []
        if not records:
            return {"batchItemFailures": []}
        outcome = publish_records(records, dependencies(), guard_reader())
        record_metrics(metrics, outcome)
        metrics.record("BatchDuration", (time.monotonic() - started) * 1000, "Milliseconds")
        log_outcome(outcome, started)

        def record_handler(record: DynamoDBRecord) -> None:
            reason = outcome.failed_records.get(sequence_number(record.raw_event))
            if reason is not None:
                raise RecordNotPublishedError(reason)

        # A fresh processor per invocation: the local stack calls handlers from several threads.
        processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        metrics.flush()
