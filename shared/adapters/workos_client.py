"""The paced WorkOS client the reconcile and tail Lambdas share: one per API key, kept warm across invocations.

The workos SDK costs ~1 s to import, so it is imported only when a client is first needed, never at import time.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from shared.tail.poller import TailErrors

if TYPE_CHECKING:
    from shared.adapters.workos_api import WorkOSDirectoryApi


class NotConfiguredError(Exception):
    """The WorkOS API key secret still holds its placeholder."""


class ApiKeys(Protocol):
    def get(self) -> str | None: ...


class PacingSettings(Protocol):
    @property
    def workos_base_url(self) -> str | None: ...
    @property
    def requests_per_second_per_directory(self) -> float: ...
    @property
    def requests_per_second_total(self) -> float: ...


@lru_cache(maxsize=2)
def workos_api(api_key: str, base_url: str | None, per_directory: float, total: float) -> WorkOSDirectoryApi:
    """One paced client per key (a rotated key gets a new one)."""
    from shared.adapters.workos_api import WorkOSDirectoryApi

    return WorkOSDirectoryApi(
        api_key=api_key,
        base_url=base_url,
        requests_per_second_per_directory=per_directory,
        requests_per_second_total=total,
        # One request waits out at most 3 x 10 s of 429s, inside a reconcile's 45 s reserve, so a throttled run still
        # checkpoints before the Lambda timeout; then a follow-up job retries a minute later.
        max_rate_limit_retries=3,
        max_retry_after_seconds=10.0,
    )


def api_from_secret(api_keys: ApiKeys, settings: PacingSettings) -> WorkOSDirectoryApi:
    api_key = api_keys.get()
    if not api_key:
        raise NotConfiguredError("the WorkOS API key secret is not set; see README 'Configure secrets'")
    return workos_api(
        api_key,
        settings.workos_base_url,
        settings.requests_per_second_per_directory,
        settings.requests_per_second_total,
    )


def tail_errors() -> TailErrors:
    """The adapter's errors as the Events API tail tells them apart (the SDK itself is not imported here)."""
    from shared.adapters import workos_api as errors

    return TailErrors(
        auth=errors.WorkOSAuthError,
        refused=(errors.WorkOSInvalidRequestError, errors.WorkOSNotFoundError),
        transient=(errors.WorkOSRateLimitedError, errors.WorkOSUnavailableError, errors.WorkOSError),
    )
