"""Security tests of the ingest handler: the signature matrix, hostile bodies, and fuzzing.

Two promises are checked: garbage never gets a 5xx (WorkOS would retry it for days, and a 5xx is our alarm for
"we are losing events"), and nothing unverified is ever enqueued.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from functions.ingest.handler import IngestDependencies, handle
from shared.ingest.signature import compute_signature, parse_signature_header, signature_header
from shared.ingest.webhook import IngestLimits, QueuedEvent
from shared.observability import MetricsRecorder
from tests.support.webhooks import SECRET, api_gateway_event, compact, now_ms, user_created_event

pytestmark = pytest.mark.unit

LIMITS = IngestLimits(max_body_bytes=64 * 1024, tolerance_seconds=180)


@dataclass
class RecordingQueue:
    sent: list[QueuedEvent] = field(default_factory=list)

    def enqueue(self, event: QueuedEvent) -> None:
        self.sent.append(event)


@dataclass
class StaticSecrets:
    values: Sequence[str] = (SECRET,)

    def get(self, *, refresh: bool = False) -> Sequence[str]:
        return self.values


def send(event: dict[str, Any]) -> tuple[int, RecordingQueue, MetricsRecorder]:
    queue, metrics = RecordingQueue(), MetricsRecorder(service="test")
    response = handle(event, IngestDependencies(queue=queue, secrets=StaticSecrets(), limits=LIMITS), metrics)
    return int(response["statusCode"]), queue, metrics


def signed(body: bytes, *, secret: str = SECRET, timestamp_ms: int | None = None, **headers: str) -> dict[str, Any]:
    header = signature_header(secret, timestamp_ms if timestamp_ms is not None else now_ms(), body)
    return api_gateway_event(body, headers={"WorkOS-Signature": header, **headers})


BODY = compact(user_created_event())


def tampered(body: bytes) -> dict[str, Any]:
    """`body`, with the signature WorkOS made for the original BODY."""
    return api_gateway_event(body, headers={"WorkOS-Signature": signature_header(SECRET, now_ms(), BODY)})


@pytest.mark.parametrize(
    ("make_event", "expected"),
    [
        (lambda: signed(BODY), 200),
        (lambda: signed(BODY, secret="whsec_wrong"), 401),
        (lambda: tampered(BODY.replace(b"Marcelina", b"Marcelinb")), 401),  # one byte changed after signing
        (lambda: tampered(BODY + b" "), 401),  # one byte appended after signing
        (lambda: signed(BODY, timestamp_ms=now_ms() - 10 * 60_000), 401),  # a replay of a 10-minute-old delivery
        (lambda: signed(BODY, timestamp_ms=now_ms() + 10 * 60_000), 401),  # a timestamp from the future
        (lambda: signed(BODY, timestamp_ms=(now_ms() // 1000)), 401),  # seconds instead of milliseconds
        (lambda: api_gateway_event(BODY, headers={}), 401),
        (lambda: api_gateway_event(BODY, headers={"WorkOS-Signature": ""}), 401),
        (
            lambda: api_gateway_event(BODY, headers={"WorkOS-Signature": "t=1, v1=" + "0" * 64 + ", " + "x" * 10_000}),
            401,
        ),
        (lambda: api_gateway_event(BODY, headers={"WorkOS-Signature": "v1=" + "ab" * 32 + ",t=" + str(now_ms())}), 401),
    ],
)
def test_signature_matrix(make_event: Callable[[], dict[str, Any]], expected: int) -> None:
    # Signed when the test runs, not when it is collected: a slow suite would otherwise make the good one stale.
    status, queue, _ = send(make_event())
    assert status == expected
    assert len(queue.sent) == (1 if expected == 200 else 0)


def test_header_variants_that_carry_a_valid_signature_are_accepted() -> None:
    stamp = now_ms()
    good = compute_signature(SECRET, stamp, BODY)
    for header in (
        f"t={stamp},v1={good}",
        f"  t={stamp} ,  v1={good}  ",
        f"v1={good}, t={stamp}",
        f"t={stamp}, v1={'0' * 64}, v1={good}",  # one of several signatures matches
    ):
        status, queue, _ = send(api_gateway_event(BODY, headers={"workos-signature": header}))
        assert status == 200 and len(queue.sent) == 1, header


def test_a_validly_signed_non_utf8_body_is_refused_as_malformed() -> None:
    status, queue, _ = send(signed(b"\xff\xfe\x00garbage"))
    assert status == 400 and queue.sent == []


def test_a_validly_signed_deeply_nested_document_is_refused_without_crashing() -> None:
    nested = b"[" * 30_000 + b"]" * 30_000
    status, queue, _ = send(signed(nested))
    assert status == 400 and queue.sent == []
    deep_object = b'{"id":"e","event":"dsync.user.created","data":' + b'{"a":' * 9_000 + b"1" + b"}" * 9_001
    status, queue, _ = send(signed(deep_object))
    assert status == 400 and queue.sent == []


def test_an_oversized_body_is_refused_before_verification() -> None:
    status, queue, metrics = send(signed(b"x" * (LIMITS.max_body_bytes + 1)))
    assert status == 413 and queue.sent == []
    assert metrics.total("WebhooksRejected", Reason="too_large") == 1


# --- Fuzzing -------------------------------------------------------------------------------------------------------

header_names = st.sampled_from(["WorkOS-Signature", "workos-signature", "Content-Type", "X-Forwarded-For", "Host"])
header_values = st.one_of(
    st.text(max_size=200),
    st.builds(lambda t, v: f"t={t}, v1={v}", st.integers(-(10**15), 10**15), st.text(max_size=80)),
)
raw_bodies = st.one_of(
    st.binary(max_size=2_000),
    st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(st.text(max_size=10), st.text(max_size=20))),
    st.just(BODY),
)


@st.composite
def api_gateway_events(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(raw_bodies)
    encoded = draw(st.booleans())
    event: dict[str, Any] = {
        "httpMethod": draw(
            st.one_of(st.sampled_from(["POST", "GET", "PUT", "DELETE", "OPTIONS"]), st.text(max_size=8))
        ),
        "headers": draw(st.one_of(st.none(), st.dictionaries(header_names, header_values, max_size=4))),
        "body": base64.b64encode(body).decode() if encoded else body.decode("utf-8", "replace"),
        "isBase64Encoded": encoded,
    }
    if draw(st.booleans()):  # sometimes not even valid base64
        event["body"] = draw(st.text(max_size=100))
    return event


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=api_gateway_events())
def test_garbage_never_gets_a_5xx_and_is_never_enqueued(event: dict[str, Any]) -> None:
    status, queue, _ = send(event)
    assert status < 500
    assert queue.sent == []  # nothing in this space carries a valid signature by our secret


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255), in_header=st.booleans())
@example(position=16, flip=0x3C, in_header=True)  # the space after the comma becomes \x1c: harmless whitespace
def test_any_single_byte_tampering_of_a_signed_delivery_is_refused(position: int, flip: int, in_header: bool) -> None:
    stamp = now_ms()
    original_header = signature_header(SECRET, stamp, BODY)
    header, body = original_header.encode(), BODY
    if in_header:
        index = position % len(header)
        header = header[:index] + bytes([header[index] ^ flip]) + header[index + 1 :]
    else:
        index = position % len(body)
        body = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    tampered_header = header.decode("latin-1")
    status, queue, _ = send(api_gateway_event(body, headers={"WorkOS-Signature": tampered_header}))
    assert status < 500
    if queue.sent:
        # Only a flip in ignorable separators (e.g. a space turned into another whitespace character) may pass,
        # and then what was signed is exactly what WorkOS signed: same body, same timestamp, same signature.
        assert body == BODY
        assert parse_signature_header(tampered_header) == parse_signature_header(original_header)
