"""The fake's setup endpoints, the two that `dsync connect` and `dsync portal-link` call: creating a webhook endpoint
and generating an Admin Portal link.

What they model, from the pinned SDK (workos 10.8.0, `webhooks/_resource.py`, `admin_portal/_resource.py`, whose
docstrings list the answers): `POST /webhook_endpoints {endpoint_url, events}` answers the endpoint with its signing
`secret` (the only time WorkOS shows it), 409 when an endpoint for that URL exists already, 422 for an unknown event
name (the fake knows the `dsync.*` names the pipeline applies) or a URL that is not
http(s); `POST /portal/generate_link {organization, intent, it_contact_emails}` answers an
ephemeral `link`, 404 for an unknown organization, 422 for an unknown intent or more than 20 IT contacts. Every
environment (API key) has endpoints of its own.
"""

from __future__ import annotations

import json
import secrets
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

JsonDict = dict[str, Any]
PORTAL_INTENTS = frozenset(
    {"sso", "dsync", "audit_logs", "log_streams", "domain_verification", "certificate_renewal", "bring_your_own_key"}
)
MAX_IT_CONTACTS = 20


class SetupError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class SetupEndpoints:
    def __init__(self, *, known_events: frozenset[str], base_url: str) -> None:
        self._known_events = known_events
        self.base_url = base_url
        self._lock = threading.Lock()
        self.webhook_endpoints: dict[str, list[JsonDict]] = {}  # environment key -> its endpoints
        self.portal_links: dict[str, list[JsonDict]] = {}

    def post(self, environment: str, path: list[str], body: bytes, organizations: set[str]) -> JsonDict:
        try:
            document = json.loads(body or b"{}")
        except ValueError:
            raise SetupError(400, "Invalid JSON body", "invalid_request") from None
        if not isinstance(document, dict):
            raise SetupError(400, "Invalid JSON body", "invalid_request")
        if path == ["webhook_endpoints"]:
            return self._create_webhook_endpoint(environment, document)
        if path == ["portal", "generate_link"]:
            return self._generate_link(environment, document, organizations)
        raise SetupError(404, "Not Found", "not_found")

    def _create_webhook_endpoint(self, environment: str, document: JsonDict) -> JsonDict:
        url, events = document.get("endpoint_url"), document.get("events")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise SetupError(422, "endpoint_url must be a URL", "invalid_request_parameters")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise SetupError(422, "events must be a non-empty list", "invalid_request_parameters")
        unknown = sorted(set(events) - self._known_events)
        if unknown:
            raise SetupError(422, f"Unknown events: {', '.join(unknown)}", "invalid_request_parameters")
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._lock:
            existing = self.webhook_endpoints.setdefault(environment, [])
            if any(endpoint["endpoint_url"] == url for endpoint in existing):
                raise SetupError(409, "A webhook endpoint with this URL already exists", "conflict")
            endpoint = {
                "object": "webhook_endpoint",
                "id": "we_" + secrets.token_hex(13).upper(),
                "endpoint_url": url,
                "secret": "whsec_" + secrets.token_urlsafe(24),
                "status": "enabled",
                "events": list(events),
                "created_at": now,
                "updated_at": now,
            }
            existing.append(endpoint)
        return endpoint

    def _generate_link(self, environment: str, document: JsonDict, organizations: set[str]) -> JsonDict:
        organization, intent = document.get("organization"), document.get("intent")
        contacts = document.get("it_contact_emails") or []
        if not isinstance(organization, str) or organization not in organizations:
            raise SetupError(404, f"Organization not found: '{organization}'", "entity_not_found")
        if intent is not None and intent not in PORTAL_INTENTS:
            raise SetupError(422, f"Unknown intent: {intent}", "invalid_request_parameters")
        if not isinstance(contacts, list) or len(contacts) > MAX_IT_CONTACTS:
            raise SetupError(422, f"At most {MAX_IT_CONTACTS} IT contacts", "invalid_request_parameters")
        link = {"link": f"{self.base_url}/portal/launch?secret={secrets.token_urlsafe(16)}"}
        with self._lock:
            self.portal_links.setdefault(environment, []).append(
                {"organization": organization, "intent": intent, "it_contact_emails": contacts, **link}
            )
        return link
