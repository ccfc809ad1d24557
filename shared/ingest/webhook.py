"""Webhook ingest: verify, classify and durably queue one WorkOS delivery. Knows nothing of Lambda or boto3.

The answer WorkOS gets is the contract: 2xx only once the event is safely queued (WorkOS stops retrying on 2xx);
4xx for requests that can never succeed; 5xx when we could not queue, so WorkOS retries for up to 3 days.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from shared.ingest.signature import SIGNATURE_HEADER, SignatureError, verify_signature
from shared.model import lanes
from shared.model.smoke import AmbiguousSmokeTestError, is_smoke_test

DSYNC_PREFIX = "dsync."
DIRECTORY_EVENTS = frozenset({"dsync.activated", "dsync.deleted", "dsync.deactivated"})
# SQS FIFO: group and dedup ids are <= 128 characters of alphanumerics and punctuation.
_SQS_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


class Outcome(StrEnum):
    QUEUED = "queued"
    IGNORED = "ignored"
    REJECTED = "rejected"
    FAILED = "failed"


class Reason(StrEnum):
    """Why a request was not queued; the metric dimension and the body of the answer."""

    METHOD_NOT_ALLOWED = "method_not_allowed"
    TOO_LARGE = "too_large"
    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    STALE_TIMESTAMP = "stale_timestamp"
    SIGNATURE_MISMATCH = "signature_mismatch"
    MALFORMED_EVENT = "malformed_event"
    NOT_DSYNC = "not_dsync"
    NOT_CONFIGURED = "not_configured"
    ENQUEUE_FAILED = "enqueue_failed"


SIGNATURE_REASONS = frozenset(
    {Reason.MISSING_SIGNATURE, Reason.MALFORMED_SIGNATURE, Reason.STALE_TIMESTAMP, Reason.SIGNATURE_MISMATCH}
)


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class IngestResult:
    status: int
    outcome: Outcome
    reason: Reason | None = None
    event_id: str | None = None
    event_type: str | None = None
    directory_id: str | None = None
    smoke_test: bool = False  # a marked test event (`shared.model.smoke`): queued, then acknowledged by apply

    def response_body(self) -> dict[str, str]:
        body = {"status": self.outcome.value}
        if self.reason is not None:
            body["reason"] = self.reason.value
        if self.smoke_test:
            body["smoke_test"] = "acknowledged without touching the mirror"
        return body


class EventSource(StrEnum):
    """Where a queued event came from: a message attribute only; the body and the write rules are the same."""

    WEBHOOK = "webhook"
    EVENTS_API = "events_api"
    REPLAY = "replay"


@dataclass(frozen=True)
class QueuedEvent:
    """What goes on the FIFO queue: the verified body unchanged, in one of its directory's lanes (`shared.model.lanes`),
    deduplicated by event id."""

    body: str
    group_id: str
    deduplication_id: str
    event_type: str
    received_at_ms: int
    event_id: str = ""
    source: EventSource = EventSource.WEBHOOK
    directory_id: str = ""
    smoke_test: bool = False


@dataclass(frozen=True)
class Unqueueable:
    """Why a body cannot go on the event queue (ignored or refused), with what could be read of it."""

    status: int
    reason: Reason
    event_id: str | None = None
    event_type: str | None = None


class EventQueue(Protocol):
    def enqueue(self, event: QueuedEvent) -> None: ...


class BatchEventQueue(EventQueue, Protocol):
    def enqueue_many(self, events: Sequence[QueuedEvent]) -> None:
        """Queue every event or raise `EnqueueError` (some may have been queued: a retry only duplicates)."""
        ...


class WebhookSecrets(Protocol):
    def get(self, *, refresh: bool = False) -> Sequence[str]:
        """Configured signing secrets; `refresh` bypasses the cache (used once after a mismatch, for rotation)."""
        ...


class EnqueueError(Exception):
    """The queue did not accept the message; WorkOS must retry."""


class MessageTooLargeError(EnqueueError):
    """The queue measured these events' messages over its size limit and sent nothing: SQS would refuse them on every
    retry (`shared.adapters.sqs.MAX_MESSAGE_BYTES`). Each comes with the size SQS would count. Here, beside
    `EnqueueError`, so the SQS adapter (in every bundle) needs nothing of the tail's (pydantic)."""

    def __init__(self, oversized: Sequence[tuple[QueuedEvent, int]], *, limit: int) -> None:
        ids = ", ".join(f"{event.event_id} ({size} bytes)" for event, size in oversized)
        super().__init__(f"{len(oversized)} message(s) over SQS's {limit}-byte limit: {ids}")
        self.oversized = list(oversized)
        self.limit = limit


class NotConfiguredError(Exception):
    """No webhook signing secret is configured yet; WorkOS must retry until an operator sets one."""


@dataclass(frozen=True)
class IngestLimits:
    max_body_bytes: int
    tolerance_seconds: int


def ingest_webhook(
    request: WebhookRequest,
    *,
    secrets: WebhookSecrets,
    queue: EventQueue,
    limits: IngestLimits,
    now_ms: Callable[[], int],
) -> IngestResult:
    if request.method.upper() != "POST":
        return IngestResult(405, Outcome.REJECTED, Reason.METHOD_NOT_ALLOWED)
    if len(request.body) > limits.max_body_bytes:
        return IngestResult(413, Outcome.REJECTED, Reason.TOO_LARGE)
    header = request.headers.get(SIGNATURE_HEADER)
    if header is None or not header.strip():
        return IngestResult(401, Outcome.REJECTED, Reason.MISSING_SIGNATURE)
    try:
        _verify(request.body, header, secrets=secrets, limits=limits, now_ms=now_ms())
    except SignatureError as error:
        return IngestResult(401, Outcome.REJECTED, Reason(error.failure.value))
    except NotConfiguredError:
        return IngestResult(503, Outcome.FAILED, Reason.NOT_CONFIGURED)

    queued = queued_event(request.body, received_at_ms=now_ms(), source=EventSource.WEBHOOK)
    if isinstance(queued, Unqueueable):
        outcome = Outcome.IGNORED if queued.status < 300 else Outcome.REJECTED
        return IngestResult(queued.status, outcome, queued.reason, queued.event_id, queued.event_type)
    event_id, event_type, directory_id = queued.event_id, queued.event_type, queued.directory_id
    try:
        queue.enqueue(queued)
    except EnqueueError:
        return IngestResult(503, Outcome.FAILED, Reason.ENQUEUE_FAILED, event_id, event_type, directory_id)
    return IngestResult(200, Outcome.QUEUED, None, event_id, event_type, directory_id, smoke_test=queued.smoke_test)


def _verify(body: bytes, header: str, *, secrets: WebhookSecrets, limits: IngestLimits, now_ms: int) -> None:
    configured = secrets.get()
    if not configured:
        configured = secrets.get(refresh=True)
        if not configured:
            raise NotConfiguredError
    try:
        verify_signature(
            body=body, header=header, secrets=configured, now_ms=now_ms, tolerance_seconds=limits.tolerance_seconds
        )
    except SignatureError as error:
        if error.failure.value != Reason.SIGNATURE_MISMATCH:
            raise
        # The secret may have just been rotated: look once more past the cache before refusing.
        fresh = secrets.get(refresh=True)
        if not fresh or list(fresh) == list(configured):
            raise
        verify_signature(
            body=body, header=header, secrets=fresh, now_ms=now_ms, tolerance_seconds=limits.tolerance_seconds
        )


def queued_event(body: bytes, *, received_at_ms: int, source: EventSource) -> QueuedEvent | Unqueueable:
    """The one way an event becomes a queue message, for every source: webhook bodies and Events API pages alike."""
    envelope = parse_envelope(body)
    if envelope is None:
        return Unqueueable(400, Reason.MALFORMED_EVENT)
    event_id, event_type, data = envelope
    if not event_type.startswith(DSYNC_PREFIX):
        return Unqueueable(200, Reason.NOT_DSYNC, event_id, event_type)
    directory_id = directory_id_of(event_type, data)
    if directory_id is None or not _SQS_ID.match(directory_id):
        return Unqueueable(400, Reason.MALFORMED_EVENT, event_id, event_type)
    group_id = lanes.message_group_id(directory_id, event_type, data)
    if not _SQS_ID.match(group_id):
        return Unqueueable(400, Reason.MALFORMED_EVENT, event_id, event_type)
    try:
        smoke_test = is_smoke_test(event_id, directory_id)
    except AmbiguousSmokeTestError:
        return Unqueueable(400, Reason.MALFORMED_EVENT, event_id, event_type)
    return QueuedEvent(
        body=body.decode("utf-8"),
        group_id=group_id,
        directory_id=directory_id,
        deduplication_id=deduplication_id(event_id),
        event_type=event_type,
        received_at_ms=received_at_ms,
        event_id=event_id,
        source=source,
        smoke_test=smoke_test,
    )


def parse_envelope(body: bytes) -> tuple[str, str, dict[str, Any]] | None:
    """(id, event, data) of a WorkOS event body, or None if it is not a JSON event object."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    event_id, event_type, data = document.get("id"), document.get("event"), document.get("data")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or not event_type:
        return None
    if not isinstance(data, dict):
        return None
    return event_id, event_type, data


def directory_id_of(event_type: str, data: Mapping[str, Any]) -> str | None:
    """`data.id` for directory events, `data.directory_id` for everything else."""
    value = data.get("id") if event_type in DIRECTORY_EVENTS else data.get("directory_id")
    return value if isinstance(value, str) and value else None


def deduplication_id(event_id: str) -> str:
    """The WorkOS event id (stable across retries); hashed only if SQS would refuse it as an id."""
    if _SQS_ID.match(event_id):
        return event_id
    return "sha256-" + hashlib.sha256(event_id.encode()).hexdigest()
