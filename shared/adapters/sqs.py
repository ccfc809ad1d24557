"""SQS adapter: the FIFO event queue, its dead-letter queue and the work queue for reconcile/purge jobs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.apply.overflow import OverflowMessage
from shared.ingest.webhook import EnqueueError, MessageTooLargeError, QueuedEvent
from shared.resources import EVENT_QUEUE

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# Ingest must answer WorkOS quickly: fail fast and let WorkOS retry rather than hang on a slow SQS call.
FAST_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
RECEIVED_AT_ATTRIBUTE = "received_at"
EVENT_TYPE_ATTRIBUTE = "event_type"
FAILURE_REASON_ATTRIBUTE = "failure_reason"
SOURCE_ATTRIBUTE = "source"
SEND_BATCH_LIMIT = 10  # SQS SendMessageBatch: at most 10 entries...
SEND_BATCH_BYTES = 256 * 1024  # ...and 256 KiB of bodies and attributes in all (SQS now allows 1 MiB: kept lower)
# The most one message may weigh: the event queues' MaximumMessageSize (`shared.resources`, 262,144 bytes = 256 KiB,
# set explicitly; SQS's own ceiling has been 1 MiB since 2025). SQS counts the body's UTF-8 bytes and every message
# attribute's name, data type and value: "All parts of the message attribute, including Name, Type, and Value, are
# part of the message size restriction (256 KB or 262,144 bytes)" (SQS API reference, MessageAttributeValue).
# Group and deduplication ids are not attributes and do not count. A message over it is refused whatever the retry.
MAX_MESSAGE_BYTES = EVENT_QUEUE.max_message_bytes


class _HasBody(Protocol):
    @property
    def body(self) -> str: ...


_Sendable = TypeVar("_Sendable", bound=_HasBody)


def event_message(event: QueuedEvent) -> dict[str, Any]:
    """The SQS message for a queued event, the same for `send_message` and `send_message_batch` (minus QueueUrl)."""
    return {
        "MessageBody": event.body,
        "MessageGroupId": event.group_id,
        "MessageDeduplicationId": event.deduplication_id,
        "MessageAttributes": {
            RECEIVED_AT_ATTRIBUTE: {"DataType": "Number", "StringValue": str(event.received_at_ms)},
            EVENT_TYPE_ATTRIBUTE: {"DataType": "String", "StringValue": event.event_type[:256]},
            SOURCE_ATTRIBUTE: {"DataType": "String", "StringValue": event.source.value},
        },
    }


def message_bytes(message: Mapping[str, Any]) -> int:
    """What SQS counts against the size limit for a `send_message` message (or batch entry): the body's UTF-8 bytes
    plus each message attribute's name, data type and value (binary values by their length)."""
    size = len(str(message["MessageBody"]).encode())
    for name, attribute in (message.get("MessageAttributes") or {}).items():
        size += len(name.encode()) + len(str(attribute["DataType"]).encode())
        if "BinaryValue" in attribute:
            size += len(attribute["BinaryValue"])
        else:
            size += len(str(attribute.get("StringValue", "")).encode())
    return size


def event_message_bytes(event: QueuedEvent) -> int:
    """The exact size SQS counts for `event`'s message (`event_message`)."""
    return message_bytes(event_message(event))


def too_large(events: Sequence[QueuedEvent]) -> list[tuple[QueuedEvent, int]]:
    """The events whose message is over `MAX_MESSAGE_BYTES`, each with its size: SQS would refuse them for ever."""
    sized = [(event, event_message_bytes(event)) for event in events]
    return [(event, size) for event, size in sized if size > MAX_MESSAGE_BYTES]


def _body_bytes(message: _HasBody) -> int:
    return len(message.body.encode())


def send_batches(
    messages: Sequence[_Sendable], size_of: Callable[[_Sendable], int] = _body_bytes
) -> list[list[_Sendable]]:
    """Split messages, in order, into SendMessageBatch requests within SQS's count and size limits; `size_of` is
    what SQS counts for one message (body only by default: messages without attributes)."""
    batches: list[list[_Sendable]] = []
    size = 0
    for message in messages:
        message_size = size_of(message)
        if not batches or len(batches[-1]) >= SEND_BATCH_LIMIT or size + message_size > SEND_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(message)
        size += message_size
    return batches


def sqs_client(config: Config | None = None) -> SQSClient:
    return boto3.client("sqs", config=config or FAST_CLIENT_CONFIG)


class SqsEventQueue:
    """Implements `shared.ingest.webhook.EventQueue`: one FIFO message per verified WorkOS event."""

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._client = client or sqs_client()

    def enqueue(self, event: QueuedEvent) -> None:
        oversized = too_large([event])
        if oversized:
            raise MessageTooLargeError(oversized, limit=MAX_MESSAGE_BYTES)
        try:
            self._client.send_message(QueueUrl=self._queue_url, **event_message(event))
        except (ClientError, BotoCoreError) as error:
            raise EnqueueError(str(error)) from error

    def enqueue_many(self, events: Sequence[QueuedEvent]) -> None:
        """Queue all of `events` (in order, per group) or raise `EnqueueError`; the Events API tail's path.

        A message over SQS's size limit raises `MessageTooLargeError` naming every such event before anything is
        sent: SQS would refuse it on every retry, and the caller decides what becomes of it."""
        oversized = too_large(events)
        if oversized:
            raise MessageTooLargeError(oversized, limit=MAX_MESSAGE_BYTES)
        for batch in send_batches(events, event_message_bytes):
            entries = [{"Id": str(index), **event_message(event)} for index, event in enumerate(batch)]
            try:
                response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)  # type: ignore[arg-type]
            except (ClientError, BotoCoreError) as error:
                raise EnqueueError(str(error)) from error
            failed = response.get("Failed") or []
            if failed:
                codes = sorted({str(entry.get("Code")) for entry in failed})
                raise EnqueueError(f"{len(failed)} of {len(entries)} messages refused: {', '.join(codes)}")


class SqsDeadLetterForwarder:
    """Parks a message that can never apply on the FIFO DLQ, in its directory's group, with the reason attached."""

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._client = client or sqs_client(Config(retries={"mode": "standard", "max_attempts": 5}))

    def forward(self, *, body: str, group_id: str, deduplication_id: str, reason: str) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=body,
            MessageGroupId=group_id,
            MessageDeduplicationId=deduplication_id,
            MessageAttributes={FAILURE_REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:1024]}},
        )


class SqsOverflow:
    """Implements `shared.apply.overflow.Overflow`: moves messages to the overflow FIFO queue in batches of 10."""

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._client = client or sqs_client(Config(retries={"mode": "standard", "max_attempts": 5}))

    def move(self, messages: Sequence[OverflowMessage]) -> None:
        for chunk in send_batches(messages):
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": message.body,
                    "MessageGroupId": message.group_id,
                    "MessageDeduplicationId": message.deduplication_id,
                }
                for index, message in enumerate(chunk)
            ]
            response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)  # type: ignore[arg-type]
            failed = response.get("Failed") or []
            if failed:
                raise EnqueueError(f"{len(failed)} of {len(entries)} messages refused by the overflow queue")


class SqsWorkQueue:
    """Directory jobs (reconcile, purge) as JSON messages on a standard queue."""

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._client = client or sqs_client(Config(retries={"mode": "standard", "max_attempts": 5}))

    def submit(self, job: Mapping[str, Any], *, delay_seconds: int = 0) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url, MessageBody=json.dumps(dict(job), sort_keys=True), DelaySeconds=delay_seconds
        )
