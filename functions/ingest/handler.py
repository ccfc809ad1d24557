"""Ingest Lambda: API Gateway (REST, proxy) → verify WorkOS-Signature → SQS FIFO.

Thin by design: turn the proxy event into a `WebhookRequest`, run `shared.ingest.webhook.ingest_webhook` with the
SQS and Secrets Manager adapters, record metrics and answer. Imports stay light (no pydantic, no workos SDK) because
every cold start here delays a WorkOS delivery; see bench/bench_ingest_cold_start.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.secrets import WebhookSecretsStore
from shared.adapters.sqs import SqsEventQueue
from shared.ingest.settings import IngestSettings, SettingsError
from shared.ingest.webhook import (
    SIGNATURE_REASONS,
    EventQueue,
    IngestLimits,
    IngestResult,
    Outcome,
    Reason,
    WebhookRequest,
    WebhookSecrets,
    ingest_webhook,
)
from shared.observability import MetricsRecorder, get_logger

logger = get_logger("dsync-ingest")


class BadRequestEncodingError(ValueError):
    """API Gateway said the body is base64 but it is not."""


@dataclass(frozen=True)
class IngestDependencies:
    queue: EventQueue
    secrets: WebhookSecrets
    limits: IngestLimits


@lru_cache(maxsize=1)
def dependencies() -> IngestDependencies:
    """Built on the first invocation (not at import), so importing needs no environment and makes no AWS call."""
    settings = IngestSettings.from_env()
    return IngestDependencies(
        queue=SqsEventQueue(settings.event_queue_url),
        secrets=WebhookSecretsStore(settings.webhook_secret_id, max_age_seconds=settings.secrets_max_age_seconds),
        limits=IngestLimits(
            max_body_bytes=settings.max_body_bytes, tolerance_seconds=settings.signature_tolerance_seconds
        ),
    )


def request_from_api_gateway(event: dict[str, Any]) -> WebhookRequest:
    """The exact bytes WorkOS sent: base64-decoded when API Gateway flags it (the stack treats */* as binary)."""
    raw_headers = event.get("headers")
    headers = (
        {str(name).lower(): str(value) for name, value in raw_headers.items()} if isinstance(raw_headers, dict) else {}
    )
    raw = event.get("body")
    raw = raw if isinstance(raw, str) else ""
    if event.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BadRequestEncodingError("body is not valid base64") from error
    else:
        body = raw.encode("utf-8", errors="replace")  # unencodable text cannot carry a valid signature
    method = event.get("httpMethod")
    return WebhookRequest(method=method if isinstance(method, str) else "", headers=headers, body=body)


def api_gateway_response(result: IngestResult) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if result.reason is Reason.METHOD_NOT_ALLOWED:
        headers["Allow"] = "POST"
    return {"statusCode": result.status, "headers": headers, "body": json.dumps(result.response_body())}


def record_metrics(metrics: MetricsRecorder, result: IngestResult) -> None:
    if result.outcome is Outcome.QUEUED:
        metrics.count("WebhooksAccepted")
        if result.smoke_test:
            metrics.count("SmokeTestsReceived")
    elif result.outcome is Outcome.IGNORED:
        metrics.count("WebhooksIgnored")
    elif result.reason is Reason.ENQUEUE_FAILED:
        metrics.count("EnqueueFailures")
    elif result.reason is Reason.NOT_CONFIGURED:
        metrics.count("WebhookSecretNotConfigured")
    else:
        reason = result.reason.value if result.reason else "unknown"
        metrics.count("WebhooksRejected")
        metrics.count("WebhooksRejected", Reason=reason)
        if result.reason in SIGNATURE_REASONS:
            metrics.count("SignatureFailures")


def handle(event: dict[str, Any], deps: IngestDependencies, metrics: MetricsRecorder) -> dict[str, Any]:
    try:
        request = request_from_api_gateway(event)
    except BadRequestEncodingError:
        result = IngestResult(400, Outcome.REJECTED, Reason.MALFORMED_EVENT)
    else:
        result = ingest_webhook(
            request,
            secrets=deps.secrets,
            queue=deps.queue,
            limits=deps.limits,
            now_ms=lambda: time.time_ns() // 1_000_000,
        )
    record_metrics(metrics, result)
    log = logger.error if result.status >= 500 else logger.info
    # Ids and reasons only: never the body, the signature header or the secret.
    log(
        "webhook %s",
        result.outcome.value,
        extra={
            "status": result.status,
            "reason": result.reason.value if result.reason else None,
            "event_id": result.event_id,
            "event_type": result.event_type,
            "directory_id": result.directory_id,
            "smoke_test": result.smoke_test,
        },
    )
    return api_gateway_response(result)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics = MetricsRecorder(service="dsync-ingest")
    try:
        try:
            deps = dependencies()
        except SettingsError:
            # A deployment mistake: answer 5xx so WorkOS keeps retrying while it is fixed.
            logger.exception("ingest is misconfigured")
            metrics.count("WebhookSecretNotConfigured")
            return api_gateway_response(IngestResult(503, Outcome.FAILED, Reason.NOT_CONFIGURED))
        return handle(event, deps, metrics)
    finally:
        metrics.flush()
