"""`dsync connect` and `dsync portal-link`: onboarding in one command each.

`connect` takes a stack from nothing to receiving: it checks what the API key sees against the mirror (a key of
another environment stops it before anything changes), creates the WorkOS webhook endpoint for the stack's URL
subscribed to every `dsync.*` type the pipeline applies, stores the endpoint's signing secret and the API key in
the stack's secrets (the key is read from $WORKOS_API_KEY or prompted without echo, never taken as an argument that
would land in shell history), then sends a marked smoke test signed with the new secret and waits until apply has
acknowledged it. `portal-link` prints the Admin Portal link a customer's IT admin opens to connect their directory.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from typing import Any

from dsync.commands.reconcile import check_key
from dsync.commands.webhooks import post_signed, sample_event
from dsync.errors import CLI_WORKOS_TIMEOUT_SECONDS, CLI_WORKOS_UNAVAILABLE_RETRIES, CommandError
from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.secrets import parse_webhook_secrets
from shared.key_check import WRONG_ENVIRONMENT
from shared.model.events import DSYNC_EVENT_TYPES
from shared.read.status import smoke_test_status

# A rotation keeps the previous secret valid beside the new one (ingest accepts either).
KEPT_PREVIOUS_SECRETS = 1


def read_api_key() -> str:
    """$WORKOS_API_KEY, else a prompt that does not echo; never an argument (shell history, `ps`)."""
    key = os.environ.get("WORKOS_API_KEY", "").strip()
    if key:
        return key
    if not sys.stdin.isatty():
        raise CommandError("no WorkOS API key: set WORKOS_API_KEY, or run on a terminal to be asked for it")
    key = getpass.getpass("WorkOS API key (sk_..., not echoed): ").strip()
    if not key:
        raise CommandError("no WorkOS API key given")
    return key


def connect(
    target: Target,
    *,
    api_key: str,
    webhook_url: str | None,
    base_url: str | None,
    wait_seconds: float = 90.0,
) -> dict[str, Any]:
    from shared.adapters.workos_api import WorkOSError
    from shared.adapters.workos_setup import WorkOSSetupApi

    url = webhook_url or target.webhook_url
    if not url:
        raise CommandError("the target has no webhook URL: pass --webhook-url (the local stack prints it)")
    if not target.webhook_secret_id or not target.workos_api_key_secret_id:
        raise CommandError("the target has no secrets to store the credentials in: is it this project's stack?")
    key_view = check_key(target, api_key=api_key, base_url=base_url)  # before anything changes
    if not key_view["same_environment"]:
        raise CommandError(WRONG_ENVIRONMENT)
    where = base_url or "https://api.workos.com"
    try:
        with WorkOSSetupApi(
            api_key=api_key,
            base_url=base_url,
            request_timeout_seconds=CLI_WORKOS_TIMEOUT_SECONDS,
            unavailable_retries=CLI_WORKOS_UNAVAILABLE_RETRIES,
        ) as setup:
            endpoint = setup.create_webhook_endpoint(url, DSYNC_EVENT_TYPES)
    except WorkOSError as error:
        hint = (
            " (an endpoint for this URL exists: delete it in the WorkOS dashboard first)" if error.status == 409 else ""
        )
        raise CommandError(f"WorkOS ({where}) did not create the webhook endpoint: {error}{hint}") from error
    secrets = target.client("secretsmanager")
    previous = _current_secrets(secrets, target.webhook_secret_id)
    kept = [secret for secret in previous if secret != endpoint.secret][:KEPT_PREVIOUS_SECRETS]
    secrets.put_secret_value(
        SecretId=target.webhook_secret_id, SecretString=json.dumps({"webhook_secrets": [endpoint.secret, *kept]})
    )
    stored_key = {"api_key": api_key, **({"base_url": base_url} if base_url else {})}
    secrets.put_secret_value(SecretId=target.workos_api_key_secret_id, SecretString=json.dumps(stored_key))
    smoke = _smoke_test(target, url, endpoint.secret, wait_seconds=wait_seconds)
    return {
        "target": target.description,
        "webhook_url": url,
        "workos": where,
        "endpoint_id": endpoint.id,
        "events": list(endpoint.events),
        "key": {name: key_view[name] for name in ("known", "missing", "unknown", "same_environment")},
        "smoke_test": smoke,
    }


def _current_secrets(client: Any, secret_id: str) -> tuple[str, ...]:
    try:
        value = client.get_secret_value(SecretId=secret_id).get("SecretString")
    except client.exceptions.ResourceNotFoundException:
        return ()
    return parse_webhook_secrets(value)


def _smoke_test(target: Target, url: str, secret: str, *, wait_seconds: float) -> dict[str, Any]:
    """A marked test event signed with the new secret; done when apply has acknowledged it (`dsync status`)."""
    delivery = post_signed(url, sample_event("dsync.user.created"), secret=secret)
    if not 200 <= delivery.status < 300:
        raise CommandError(f"the smoke test was answered {delivery.status} {delivery.body.strip()[:200]} by {url}")
    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    started = time.monotonic()
    while time.monotonic() - started < wait_seconds:
        seen = smoke_test_status(table)
        if seen is not None and seen["event_id"] == delivery.event_id:
            return {"event_id": delivery.event_id, "applied_after_seconds": round(time.monotonic() - started, 1)}
        time.sleep(0.5)
    raise CommandError(
        f"the smoke test {delivery.event_id} was accepted ({delivery.status}) but not applied within "
        f"{wait_seconds:g} s: see `dsync status` (queues, dead letters) and docs/runbook.md"
    )


def portal_link(api_key: str, *, organization_id: str, it_contacts: list[str], base_url: str | None) -> str:
    from shared.adapters.workos_api import WorkOSError
    from shared.adapters.workos_setup import WorkOSSetupApi

    try:
        with WorkOSSetupApi(
            api_key=api_key,
            base_url=base_url,
            request_timeout_seconds=CLI_WORKOS_TIMEOUT_SECONDS,
            unavailable_retries=CLI_WORKOS_UNAVAILABLE_RETRIES,
        ) as setup:
            return setup.portal_link(organization_id, it_contact_emails=it_contacts)
    except WorkOSError as error:
        raise CommandError(f"WorkOS ({base_url or 'https://api.workos.com'}) gave no portal link: {error}") from error
