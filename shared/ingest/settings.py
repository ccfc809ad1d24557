"""Settings of the ingest Lambda, validated once per cold start.

Every other component uses pydantic-settings (`shared.settings`). This one is a stdlib dataclass on purpose:
pydantic-settings costs ~155 ms of import, which would put the ingest cold start at ~2x a bare `import boto3`
(target: 1.5x, measured by bench/bench_ingest_cold_start.py). The fields and error style mirror the others.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from shared.ingest.signature import DEFAULT_TOLERANCE_SECONDS
from shared.resources import MAX_WEBHOOK_BODY_BYTES, Env


class SettingsError(ValueError):
    """A required setting is missing or invalid; the message names every problem at once."""


@dataclass(frozen=True)
class IngestSettings:
    event_queue_url: str
    webhook_secret_id: str
    signature_tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    max_body_bytes: int = MAX_WEBHOOK_BODY_BYTES
    secrets_max_age_seconds: int = 300

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestSettings:
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                problems.append(f"{name} is required")
            return value

        def positive_int(name: str, default: int, maximum: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or not 0 < int(raw) <= maximum:
                problems.append(f"{name} must be an integer in 1..{maximum}, got {raw!r}")
                return default
            return int(raw)

        settings = cls(
            event_queue_url=required(Env.EVENT_QUEUE_URL),
            webhook_secret_id=required(Env.WEBHOOK_SECRET_ID),
            signature_tolerance_seconds=positive_int(Env.SIGNATURE_TOLERANCE_SECONDS, DEFAULT_TOLERANCE_SECONDS, 3600),
            max_body_bytes=positive_int(Env.MAX_BODY_BYTES, MAX_WEBHOOK_BODY_BYTES, MAX_WEBHOOK_BODY_BYTES),
            secrets_max_age_seconds=positive_int(Env.SECRETS_MAX_AGE_SECONDS, 300, 3600),
        )
        if problems:
            raise SettingsError("invalid ingest settings: " + "; ".join(problems))
        return settings
