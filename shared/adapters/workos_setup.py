"""The two WorkOS setup calls of onboarding (`dsync connect`, `dsync portal-link`), through the same paced, translated
SDK session as the directory reads (`shared.adapters.workos_api`).

- `create_webhook_endpoint`: WorkOS answers the endpoint with its signing secret, the only time it shows it.
- `portal_link`: the Admin Portal link a customer's IT admin opens to connect their directory (intent `dsync`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.adapters.workos_api import _SdkSession


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    secret: str
    events: tuple[str, ...]


class WorkOSSetupApi(_SdkSession):
    def create_webhook_endpoint(self, url: str, events: Sequence[str]) -> WebhookEndpoint:
        with self._call(None):
            created = self._client.webhooks.create_webhook_endpoint(endpoint_url=url, events=list(events))
        return WebhookEndpoint(
            id=created.id, url=created.endpoint_url, secret=created.secret, events=tuple(created.events)
        )

    def portal_link(self, organization_id: str, *, it_contact_emails: Sequence[str] = ()) -> str:
        with self._call(None):
            response = self._client.admin_portal.generate_link(
                organization=organization_id, intent="dsync", it_contact_emails=list(it_contact_emails) or None
            )
        return str(response.link)
