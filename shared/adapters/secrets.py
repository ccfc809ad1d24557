"""Secrets Manager adapter: webhook signing secrets and the WorkOS API key, cached with Powertools parameters.

Secret values are read at runtime (never from environment variables) and cached for `max_age_seconds`. Accepted
formats, so operators can paste what the WorkOS dashboard shows:
- webhook secret: `{"webhook_secrets": ["s1", "s2"]}`, `["s1", "s2"]`, or plain `s1` / `s1,s2` (rotation: both
  are accepted until the old one is removed);
- API key: `{"api_key": "sk_..."}` or plain `sk_...`.
The stack creates both secrets with a generated placeholder (`{"webhook_secrets": [], "placeholder": ...}`), which
parses as "not configured" so the ingest Lambda answers 503 (WorkOS retries) rather than 401.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


def parse_webhook_secrets(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    text = value.strip()
    if not text:
        return ()
    if text[0] in "[{":
        try:
            document: Any = json.loads(text)
        except ValueError:
            return ()
        if isinstance(document, dict):
            document = document.get("webhook_secrets", document.get("secrets", []))
        if isinstance(document, str):
            document = [document]
        if not isinstance(document, list):
            return ()
        return tuple(item.strip() for item in document if isinstance(item, str) and item.strip())
    return tuple(part.strip() for part in text.replace("\n", ",").split(",") if part.strip())


def _json_text_field(value: str, name: str) -> str | None:
    """A non-empty text field of a JSON object secret; None for anything else."""
    try:
        document = json.loads(value)
    except ValueError:
        return None
    field = document.get(name) if isinstance(document, dict) else None
    return field.strip() if isinstance(field, str) and field.strip() else None


def parse_api_key(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if text.startswith("{"):
        return _json_text_field(text, "api_key")
    return text or None


def parse_api_base_url(value: str | None) -> str | None:
    """`{"api_key": ..., "base_url": ...}`: the WorkOS API the key belongs to, when it is not WorkOS's own (the local
    stack's fake). The Lambdas take theirs from WORKOS_BASE_URL; the operator CLI honours this one."""
    if value is None or not value.strip().startswith("{"):
        return None
    return _json_text_field(value, "base_url")


class _CachedSecret:
    """One secret through Powertools' cache; forced refreshes are rate-limited so bad requests cannot storm it."""

    def __init__(
        self,
        secret_id: str,
        *,
        max_age_seconds: int,
        min_refresh_interval_seconds: float,
        client: SecretsManagerClient | None,
        monotonic: Callable[[], float],
    ) -> None:
        self._secret_id = secret_id
        self._max_age = max_age_seconds
        self._min_refresh_interval = min_refresh_interval_seconds
        self._provider = SecretsProvider(boto3_client=client)
        self._monotonic = monotonic
        self._last_forced: float | None = None

    def value(self, *, refresh: bool = False) -> str | None:
        force = False
        if refresh:
            now = self._monotonic()
            if self._last_forced is None or now - self._last_forced >= self._min_refresh_interval:
                self._last_forced, force = now, True
        raw = self._provider.get(self._secret_id, max_age=self._max_age, force_fetch=force)
        if isinstance(raw, bytes):
            return raw.decode("utf-8")
        return raw if isinstance(raw, str) else None


class WebhookSecretsStore:
    """Implements `shared.ingest.webhook.WebhookSecrets` on Secrets Manager."""

    def __init__(
        self,
        secret_id: str,
        *,
        max_age_seconds: int = 300,
        min_refresh_interval_seconds: float = 30.0,
        client: SecretsManagerClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret = _CachedSecret(
            secret_id,
            max_age_seconds=max_age_seconds,
            min_refresh_interval_seconds=min_refresh_interval_seconds,
            client=client,
            monotonic=monotonic,
        )

    def get(self, *, refresh: bool = False) -> tuple[str, ...]:
        return parse_webhook_secrets(self._secret.value(refresh=refresh))


class ApiKeyStore:
    """The WorkOS API key from Secrets Manager; None while the placeholder is still in place."""

    def __init__(self, secret_id: str, *, max_age_seconds: int = 300, client: SecretsManagerClient | None = None):
        self._secret = _CachedSecret(
            secret_id,
            max_age_seconds=max_age_seconds,
            min_refresh_interval_seconds=30.0,
            client=client,
            monotonic=time.monotonic,
        )

    def get(self, *, refresh: bool = False) -> str | None:
        return parse_api_key(self._secret.value(refresh=refresh))


class SecretText:
    """A secret's text as stored (the SQL sink's connection URL or RDS JSON); a forced refresh after a failed
    connection picks up a rotated password, at most every 30 s."""

    def __init__(self, secret_id: str, *, max_age_seconds: int = 300, client: SecretsManagerClient | None = None):
        self._secret = _CachedSecret(
            secret_id,
            max_age_seconds=max_age_seconds,
            min_refresh_interval_seconds=30.0,
            client=client,
            monotonic=time.monotonic,
        )

    def get(self, *, refresh: bool = False) -> str | None:
        return self._secret.value(refresh=refresh)
