"""Signed WorkOS deliveries and API Gateway proxy events for tests."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from shared.ingest.signature import signature_header

SECRET = "whsec_test_2sAZJlbjP8Ce3rwkKEv2GfKef"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def compact(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def api_gateway_event(
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    base64_encoded: bool = True,
) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event as API Gateway builds it with binaryMediaTypes */*."""
    return {
        "resource": "/webhooks/workos",
        "path": "/webhooks/workos",
        "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {name: [value] for name, value in (headers or {}).items()},
        "queryStringParameters": None,
        "requestContext": {"stage": "v1", "requestId": "test-request", "httpMethod": method},
        "body": base64.b64encode(body).decode() if base64_encoded else body.decode("utf-8"),
        "isBase64Encoded": base64_encoded,
    }


def signed_event(
    document: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    timestamp_ms: int | None = None,
    header_name: str = "WorkOS-Signature",
    method: str = "POST",
) -> dict[str, Any]:
    body = document if isinstance(document, bytes) else compact(document)
    header = signature_header(secret, now_ms() if timestamp_ms is None else timestamp_ms, body)
    return api_gateway_event(body, headers={header_name: header, "Content-Type": "application/json"}, method=method)


def user_created_event(
    *, event_id: str = "event_01TEST", directory_id: str = "directory_01TEST", user_id: str = "directory_user_01TEST"
) -> dict[str, Any]:
    return {
        "object": "event",
        "id": event_id,
        "event": "dsync.user.created",
        "data": {
            "object": "directory_user",
            "id": user_id,
            "directory_id": directory_id,
            "organization_id": "org_01TEST",
            "idp_id": "idp-1",
            "email": "marcelina.davis@example.com",
            "first_name": "Marcelina",
            "last_name": "Davis",
            "state": "active",
            "raw_attributes": {},
            "custom_attributes": {"department": "Engineering"},
            "created_at": "2026-01-15T12:00:00.000Z",
            "updated_at": "2026-01-15T12:00:00.000Z",
        },
        "created_at": "2026-01-15T12:00:00.000Z",
        "context": {},
    }
