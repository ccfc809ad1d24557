"""Apply Lambda: a batch from the SQS FIFO queue → conditional writes in the directory table.

The batch is applied as a whole by `shared.apply.applier.Applier` (one read, parallel writes); then Powertools'
`SqsFifoPartialProcessor(skip_group_on_error=True)` reports per message: a message to retry fails, and so do the
later messages of its group (FIFO semantics), while other groups carry on.

One function serves two queues, with the same write rules: the events queue (its applier gives up on a throttled
partition after `EVENT_LANE_DYNAMODB_ATTEMPTS` and moves the directory's messages on) and the overflow queue (its
applier writes at the partition's pace, with the SDK's adaptive retries). The record's source queue decides.
"""

from __future__ import annotations

import time
from collections import Counter
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.dynamodb import DirectoryTable, dynamodb_client
from shared.adapters.sqs import SqsDeadLetterForwarder, SqsOverflow, SqsWorkQueue
from shared.apply.applier import Applier
from shared.apply.overflow import OverflowLane
from shared.apply.ports import ApplyConfig, InboundMessage, MessageOutcome, Status
from shared.model.events import micros
from shared.observability import MetricsRecorder, get_logger
from shared.resources import EVENT_LANE_DYNAMODB_ATTEMPTS, OVERFLOW_LANE_DYNAMODB_ATTEMPTS
from shared.settings import ApplySettings

logger = get_logger("dsync-apply")


class RetryLaterError(Exception):
    """A transient failure: SQS redelivers the message after its visibility timeout."""


@lru_cache(maxsize=1)
def settings() -> ApplySettings:
    return ApplySettings()  # fields come from the environment


@lru_cache(maxsize=1)
def dependencies() -> Applier:
    """The events queue's applier. Built on the first invocation, so importing needs no environment and makes no
    AWS call."""
    return _applier(events_lane=True)


@lru_cache(maxsize=1)
def overflow_dependencies() -> Applier:
    """The overflow queue's applier: patient with a throttled partition, and with nowhere further to move to."""
    return _applier(events_lane=False)


def _applier(*, events_lane: bool) -> Applier:
    config = settings()
    attempts = EVENT_LANE_DYNAMODB_ATTEMPTS if events_lane else OVERFLOW_LANE_DYNAMODB_ATTEMPTS
    client = dynamodb_client(max_attempts=attempts, adaptive=not events_lane)
    return Applier(
        store=DirectoryTable(
            config.table_name,
            client=client,
            unprocessed_attempts=2 if events_lane else 8,
            transient_attempts=3 if events_lane else 1,  # the overflow lane's SDK retries (adaptive mode) itself
        ),
        work_queue=SqsWorkQueue(config.work_queue_url),
        dead_letters=SqsDeadLetterForwarder(config.dead_letter_queue_url),
        config=ApplyConfig(
            tombstone_ttl_seconds=config.tombstone_ttl_days * 86_400, parallelism=config.apply_parallelism
        ),
        overflow=OverflowLane(SqsOverflow(config.overflow_queue_url))
        if events_lane and config.overflow_queue_url
        else None,
    )


def from_overflow_queue(event: dict[str, Any]) -> bool:
    """Whether the batch comes from the overflow queue (its ARN ends with the queue's name, as its URL does)."""
    url = settings().overflow_queue_url
    records = event.get("Records") or []
    if not url or not records:
        return False
    return str(records[0].get("eventSourceARN", "")).endswith(":" + url.rstrip("/").rsplit("/", 1)[-1])


def messages_from_event(event: dict[str, Any]) -> list[InboundMessage]:
    messages = []
    for record in event.get("Records", []):
        attributes = record.get("attributes") or {}
        messages.append(
            InboundMessage(
                message_id=record["messageId"],
                body=record.get("body") or "",
                group_id=attributes.get("MessageGroupId") or "unknown",
                deduplication_id=attributes.get("MessageDeduplicationId") or record["messageId"],
            )
        )
    return messages


def record_metrics(metrics: MetricsRecorder, outcomes: dict[str, MessageOutcome], now_us: int) -> None:
    for outcome in outcomes.values():
        event_type = outcome.event_type or "unparseable"
        if outcome.status is Status.APPLIED:
            metrics.count("EventsApplied", EventType=event_type)
            metrics.count("EventsApplied")
            if outcome.created_at is not None:
                metrics.record("ApplyLag", max(0.0, (now_us - micros(outcome.created_at)) / 1e6), "Seconds")
        elif outcome.status is Status.NOOP:
            metrics.count("EventsNoop", EventType=event_type)
            metrics.count("EventsNoop")
        elif outcome.status is Status.IGNORED:
            metrics.count("EventsIgnored", EventType=event_type)
        elif outcome.status is Status.MOVED:
            metrics.count("EventsMovedToOverflow")
        elif outcome.status is Status.SMOKE_TEST:
            metrics.count("SmokeTestsApplied")
        elif outcome.status is Status.FORWARDED:
            metrics.count("EventsDeadLettered", EventType=event_type)
            metrics.count("EventsDeadLettered")
        else:
            metrics.count("EventsFailed", EventType=event_type)
            metrics.count("EventsFailed")


def log_outcomes(outcomes: dict[str, MessageOutcome], started: float) -> None:
    summary = Counter(outcome.status.value for outcome in outcomes.values())
    logger.info(
        "batch applied",
        extra={"messages": len(outcomes), **summary, "duration_ms": round((time.monotonic() - started) * 1000)},
    )
    for message_id, outcome in outcomes.items():
        if outcome.status in (Status.RETRY, Status.FORWARDED):
            # Ids and the reason only; the event body holds personal data.
            logger.warning(
                "event %s",
                outcome.status.value,
                extra={
                    "message_id": message_id,
                    "event_id": outcome.event_id,
                    "event_type": outcome.event_type,
                    "directory_id": outcome.directory_id,
                    "reason": outcome.reason,
                },
            )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    started = time.monotonic()
    metrics = MetricsRecorder(service="dsync-apply")
    if not event.get("Records"):
        return {"batchItemFailures": []}
    try:
        applier = overflow_dependencies() if from_overflow_queue(event) else dependencies()
        outcomes = applier.apply(
            messages_from_event(event), remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000
        )
        record_metrics(metrics, outcomes, time.time_ns() // 1000)
        metrics.record("BatchDuration", (time.monotonic() - started) * 1000, "Milliseconds")
        log_outcomes(outcomes, started)

        def record_handler(record: SQSRecord) -> None:
            outcome = outcomes[record.message_id]
            if outcome.status is Status.RETRY:
                raise RetryLaterError(outcome.reason or "transient failure")

        # A fresh processor per invocation: the local stack calls handlers from several threads.
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        metrics.flush()
