"""The ingest answer matrix, with in-memory fakes for the queue and the secret store."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from functions.ingest.handler import (
    IngestDependencies,
    api_gateway_response,
    handle,
    request_from_api_gateway,
)
from shared.ingest.signature import signature_header
from shared.ingest.webhook import (
    EnqueueError,
    IngestLimits,
    IngestResult,
    Outcome,
    QueuedEvent,
    Reason,
    WebhookRequest,
    deduplication_id,
    directory_id_of,
    ingest_webhook,
)
from shared.model import lanes
from shared.observability import MetricsRecorder
from tests.support.webhooks import SECRET, api_gateway_event, compact, now_ms, signed_event, user_created_event

pytestmark = pytest.mark.unit

LIMITS = IngestLimits(max_body_bytes=4096, tolerance_seconds=180)


@dataclass
class FakeQueue:
    fail: bool = False
    sent: list[QueuedEvent] = field(default_factory=list)

    def enqueue(self, event: QueuedEvent) -> None:
        if self.fail:
            raise EnqueueError("SQS is down")
        self.sent.append(event)


@dataclass
class FakeSecrets:
    values: Sequence[str] = (SECRET,)
    fresh: Sequence[str] | None = None
    refreshes: int = 0

    def get(self, *, refresh: bool = False) -> Sequence[str]:
        if refresh:
            self.refreshes += 1
            if self.fresh is not None:
                return self.fresh
        return self.values


def ingest(
    body: bytes,
    *,
    header: str | None = "sign",
    method: str = "POST",
    queue: FakeQueue | None = None,
    secrets: FakeSecrets | None = None,
    secret: str = SECRET,
    timestamp_ms: int | None = None,
) -> tuple[IngestResult, FakeQueue]:
    queue = queue or FakeQueue()
    headers = {}
    if header == "sign":
        headers["workos-signature"] = signature_header(secret, timestamp_ms or now_ms(), body)
    elif header is not None:
        headers["workos-signature"] = header
    result = ingest_webhook(
        WebhookRequest(method=method, headers=headers, body=body),
        secrets=secrets or FakeSecrets(),
        queue=queue,
        limits=LIMITS,
        now_ms=now_ms,
    )
    return result, queue


def test_verified_dsync_event_is_queued_in_its_directorys_lane_and_deduplicated_by_event_id() -> None:
    body = compact(user_created_event(event_id="event_01A", directory_id="directory_01D"))
    result, queue = ingest(body)
    assert (result.status, result.outcome) == (200, Outcome.QUEUED)
    [queued] = queue.sent
    assert queued.body == body.decode()  # unchanged, byte for byte
    assert queued.directory_id == "directory_01D"
    assert queued.group_id == lanes.message_group_id("directory_01D", "dsync.user.created", json.loads(body)["data"])
    assert queued.group_id.startswith("directory_01D:")
    assert queued.deduplication_id == "event_01A"
    assert queued.event_type == "dsync.user.created"
    assert abs(queued.received_at_ms - now_ms()) < 5_000


@pytest.mark.parametrize("event_type", ["dsync.activated", "dsync.deleted"])
def test_directory_events_are_grouped_by_data_id(event_type: str) -> None:
    body = compact({"id": "event_1", "event": event_type, "data": {"id": "directory_9"}, "created_at": "x"})
    result, queue = ingest(body)
    assert result.status == 200
    assert queue.sent[0].group_id == "directory_9:d"  # the directory's own ordered lane


def test_non_dsync_events_are_acknowledged_without_queueing() -> None:
    body = compact({"id": "event_1", "event": "connection.activated", "data": {"id": "conn_1"}})
    result, queue = ingest(body)
    assert (result.status, result.outcome, result.reason) == (200, Outcome.IGNORED, Reason.NOT_DSYNC)
    assert queue.sent == []


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"header": None}, 401, Reason.MISSING_SIGNATURE),
        ({"header": "t=1"}, 401, Reason.MALFORMED_SIGNATURE),
        ({"secret": "whsec_wrong"}, 401, Reason.SIGNATURE_MISMATCH),
        ({"timestamp_ms": 1_000_000}, 401, Reason.STALE_TIMESTAMP),
        ({"method": "GET"}, 405, Reason.METHOD_NOT_ALLOWED),
        ({"queue": FakeQueue(fail=True)}, 503, Reason.ENQUEUE_FAILED),
        ({"secrets": FakeSecrets(values=())}, 503, Reason.NOT_CONFIGURED),
    ],
)
def test_answer_matrix(kwargs: dict[str, object], status: int, reason: Reason) -> None:
    body = compact(user_created_event())
    queue = kwargs.get("queue") if isinstance(kwargs.get("queue"), FakeQueue) else FakeQueue()
    assert isinstance(queue, FakeQueue)
    result, _ = ingest(body, **{**kwargs, "queue": queue})  # type: ignore[arg-type]
    assert (result.status, result.reason) == (status, reason)
    assert queue.sent == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'"string"',
        b'{"id": "e", "event": "dsync.user.created"}',
        b'{"id": "", "event": "dsync.user.created", "data": {}}',
        b'{"id": 5, "event": "dsync.user.created", "data": {}}',
        b'{"id": "e", "event": "dsync.user.created", "data": []}',
        b'{"id": "e", "event": "dsync.user.created", "data": {"id": "u"}}',  # no directory_id
        b'{"id": "e", "event": "dsync.user.created", "data": {"directory_id": "has space"}}',
        b"\xff\xfe not utf-8",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_signed_bodies_that_are_not_events_get_400(body: bytes) -> None:
    result, queue = ingest(body[: LIMITS.max_body_bytes])
    assert (result.status, result.reason) == (400, Reason.MALFORMED_EVENT)
    assert queue.sent == []


def test_oversized_body_gets_413_before_any_verification() -> None:
    secrets = FakeSecrets()
    result, queue = ingest(b"x" * (LIMITS.max_body_bytes + 1), secrets=secrets)
    assert (result.status, result.reason) == (413, Reason.TOO_LARGE)
    assert queue.sent == [] and secrets.refreshes == 0


def test_rotated_secret_is_picked_up_after_one_refresh() -> None:
    body = compact(user_created_event())
    secrets = FakeSecrets(values=("whsec_old",), fresh=("whsec_old", "whsec_new"))
    result, queue = ingest(body, secret="whsec_new", secrets=secrets)
    assert result.status == 200 and len(queue.sent) == 1
    assert secrets.refreshes == 1


def test_mismatch_with_unchanged_secrets_is_refused() -> None:
    secrets = FakeSecrets(values=("whsec_old",), fresh=("whsec_old",))
    result, _ = ingest(compact(user_created_event()), secret="whsec_other", secrets=secrets)
    assert result.reason is Reason.SIGNATURE_MISMATCH


def test_dedup_id_is_the_event_id_or_a_hash_when_sqs_would_refuse_it() -> None:
    assert deduplication_id("event_01ABC") == "event_01ABC"
    hashed = deduplication_id("x" * 200)
    assert hashed.startswith("sha256-") and len(hashed) <= 128
    assert deduplication_id("ünïcode") != deduplication_id("unicode")


def test_directory_id_of() -> None:
    assert directory_id_of("dsync.activated", {"id": "d1", "directory_id": "nope"}) == "d1"
    assert directory_id_of("dsync.user.created", {"id": "u1", "directory_id": "d2"}) == "d2"
    assert directory_id_of("dsync.group.user_added", {"directory_id": "d3", "user": {}, "group": {}}) == "d3"
    assert directory_id_of("dsync.user.created", {"directory_id": 7}) is None


# --- The Lambda glue --------------------------------------------------------------------------------------------


def deps(queue: FakeQueue, secrets: FakeSecrets | None = None) -> IngestDependencies:
    return IngestDependencies(queue=queue, secrets=secrets or FakeSecrets(), limits=LIMITS)


@pytest.mark.parametrize("header_name", ["WorkOS-Signature", "workos-signature", "WORKOS-SIGNATURE"])
def test_handler_finds_the_header_case_insensitively(header_name: str) -> None:
    queue, metrics = FakeQueue(), MetricsRecorder(service="test")
    response = handle(signed_event(user_created_event(), header_name=header_name), deps(queue), metrics)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "queued"}
    assert metrics.total("WebhooksAccepted") == 1


def test_handler_reads_plain_and_base64_bodies_identically() -> None:
    body = compact(user_created_event())
    header = {"WorkOS-Signature": signature_header(SECRET, now_ms(), body)}
    for encoded in (True, False):
        queue = FakeQueue()
        response = handle(
            api_gateway_event(body, headers=header, base64_encoded=encoded),
            deps(queue),
            MetricsRecorder(service="t"),
        )
        assert response["statusCode"] == 200
        assert queue.sent[0].body.encode() == body


def test_handler_keeps_exact_bytes_including_non_ascii_and_whitespace() -> None:
    body = '{ "id":"event_1", "event":"dsync.user.created",\n "data":{"directory_id":"d","first_name":"Zoë"} }'
    raw = body.encode()
    event = api_gateway_event(raw, headers={"workos-signature": signature_header(SECRET, now_ms(), raw)})
    queue = FakeQueue()
    assert handle(event, deps(queue), MetricsRecorder(service="t"))["statusCode"] == 200
    assert queue.sent[0].body == body


def test_handler_rejects_invalid_base64_with_400() -> None:
    event = api_gateway_event(b"{}", headers={"workos-signature": "t=1, v1=" + "a" * 64})
    event["body"] = "***not base64***"
    response = handle(event, deps(FakeQueue()), MetricsRecorder(service="t"))
    assert response["statusCode"] == 400


def test_handler_counts_rejections_by_reason_and_signature_failures() -> None:
    metrics = MetricsRecorder(service="t")
    handle(signed_event(user_created_event(), secret="whsec_wrong"), deps(FakeQueue()), metrics)
    assert metrics.total("WebhooksRejected", Reason="signature_mismatch") == 1
    assert metrics.total("SignatureFailures") == 1


def test_405_carries_allow_header() -> None:
    response = api_gateway_response(IngestResult(405, Outcome.REJECTED, Reason.METHOD_NOT_ALLOWED))
    assert response["headers"]["Allow"] == "POST"


def test_request_from_api_gateway_lowercases_headers_and_tolerates_missing_fields() -> None:
    request = request_from_api_gateway({"httpMethod": "POST", "headers": None, "body": None})
    assert request.body == b"" and dict(request.headers) == {}
    request = request_from_api_gateway(
        {
            "httpMethod": "POST",
            "headers": {"X-A": "1"},
            "body": base64.b64encode(b"\x00\xff").decode(),
            "isBase64Encoded": True,
        }
    )
    assert request.headers == {"x-a": "1"} and request.body == b"\x00\xff"
