"""EventBridge adapter: puts change events (`shared.changes.derive`) on the change bus.

PutEvents takes at most 10 entries and 256 KB per request and may accept some entries of a request while refusing
others (`FailedEntryCount`, a per-entry `ErrorCode`). So events go out in order, in requests of at most 10 entries
and 256 KB; entries refused for a transient reason are retried on their own with jittered backoff; and if some are
still refused, nothing after them is sent and `PublishError` says which events were not published, so the caller
can fail exactly those stream records and the stream redelivers them.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.changes.derive import ChangeEvent
from shared.observability import get_logger

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})
MAX_ENTRIES_PER_REQUEST = 10
# PutEvents: an entry, and all entries of one request together, must stay under 256 KB (sized as AWS documents it,
# see `entry_size`).
MAX_REQUEST_BYTES = 256 * 1024
TIME_FIELD_BYTES = 14
DEFAULT_MAX_ATTEMPTS = 4
# Entry errors that no retry can fix; anything else (InternalFailure, ThrottlingException, ...) is retried.
PERMANENT_ERROR_CODES = frozenset(
    {
        "AccessDeniedException",
        "InvalidArgument",
        "MalformedDetail",
        "NotAuthorizedForDetailTypeException",
        "NotAuthorizedForSourceException",
        "ValidationException",
    }
)

logger = get_logger("dsync-publish")


class PublishError(Exception):
    """Some events were not published. `unpublished` are their positions in the sequence given to `publish`."""

    def __init__(self, message: str, *, unpublished: Iterable[int], error_codes: Mapping[int, str]) -> None:
        super().__init__(message)
        self.unpublished: tuple[int, ...] = tuple(sorted(set(unpublished)))
        self.error_codes: dict[int, str] = dict(error_codes)


def events_client() -> EventBridgeClient:
    return boto3.client("events", config=CLIENT_CONFIG)


def entry_size(entry: PutEventsRequestEntryTypeDef) -> int:
    """An entry's size as EventBridge counts it ("Calculating PutEvents event entry size")."""
    size = TIME_FIELD_BYTES if entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        value = entry.get(name)
        if isinstance(value, str):
            size += len(value.encode())
    return size + sum(len(resource.encode()) for resource in entry.get("Resources", []))


Indexed = tuple[int, "PutEventsRequestEntryTypeDef"]


class ChangeBusPublisher:
    def __init__(
        self,
        bus_name: str,
        source: str,
        client: EventBridgeClient | None = None,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bus_name = bus_name
        self.source = source
        self._client = client
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep

    @property
    def client(self) -> EventBridgeClient:
        if self._client is None:
            self._client = events_client()
        return self._client

    def publish(self, events: Sequence[ChangeEvent]) -> None:
        """Publish in order; raise `PublishError` naming every event that was not (failed or never sent)."""
        entries: list[Indexed] = []
        unsendable: int | None = None
        for index, event in enumerate(events):
            entry = self.entry(event)
            if entry is None:
                unsendable = index  # cannot happen with real ids; stop here so nothing overtakes it
                break
            entries.append((index, entry))

        requests = list(_requests(entries))
        for position, request in enumerate(requests):
            failed = self._put(request)
            if failed:
                later = [index for rest in requests[position + 1 :] for index, _ in rest]
                if unsendable is not None:
                    later.extend(range(unsendable, len(events)))
                codes = sorted(set(failed.values()))
                raise PublishError(
                    f"{len(failed)} change events were refused by EventBridge ({', '.join(codes)}); "
                    f"{len(later)} later events were not sent",
                    unpublished=[*failed, *later],
                    error_codes=failed,
                )
        if unsendable is not None:
            raise PublishError(
                f"change event {events[unsendable].event_id} does not fit in an EventBridge entry",
                unpublished=range(unsendable, len(events)),
                error_codes={unsendable: "EntryTooLarge"},
            )

    def entry(self, event: ChangeEvent) -> PutEventsRequestEntryTypeDef | None:
        """The PutEvents entry of an event, slimmed (and marked truncated) if the full detail is too large."""
        for level, detail in enumerate((event.detail, event.compact_detail(), event.minimal_detail())):
            entry: PutEventsRequestEntryTypeDef = {
                "Source": self.source,
                "DetailType": event.detail_type,
                "Detail": json.dumps(detail, separators=(",", ":"), sort_keys=True),  # ASCII: safe for any text
                "EventBusName": self.bus_name,
                "Resources": [],
            }
            occurred_at = _time(detail.get("occurred_at"))
            if occurred_at is not None:
                entry["Time"] = occurred_at
            size = entry_size(entry)
            if size < MAX_REQUEST_BYTES:
                if level:
                    logger.warning(
                        "change event truncated to fit EventBridge",
                        extra={"event_id": event.event_id, "detail_type": event.detail_type, "bytes": size},
                    )
                return entry
        return None

    def _put(self, request: Sequence[Indexed]) -> dict[int, str]:
        """Send one request, retrying refused entries alone; the entries still refused, with their error codes."""
        pending = list(request)
        failed: dict[int, str] = {}
        for attempt in range(self._max_attempts):
            if attempt:
                self._sleep(_backoff(attempt))
            try:
                response = self.client.put_events(Entries=[entry for _, entry in pending])
            except (ClientError, BotoCoreError) as error:
                # botocore's standard retry mode has already retried throttling and 5xx answers of the whole call.
                failed.update({index: _error_code(error) for index, _ in pending})
                return failed
            results: Sequence[Mapping[str, Any]] = response.get("Entries", [])
            retry: list[Indexed] = []
            for position, (index, entry) in enumerate(pending):
                result = results[position] if position < len(results) else {}
                if result.get("EventId") and not result.get("ErrorCode"):
                    failed.pop(index, None)
                    continue
                failed[index] = code = str(result.get("ErrorCode") or "Unacknowledged")
                if code not in PERMANENT_ERROR_CODES:
                    retry.append((index, entry))
            pending = retry
            if not pending:
                break
        return failed


def _requests(entries: Sequence[Indexed]) -> Iterable[list[Indexed]]:
    """Consecutive entries grouped into requests of at most 10 entries and 256 KB."""
    request: list[Indexed] = []
    size = 0
    for indexed in entries:
        entry_bytes = entry_size(indexed[1])
        if request and (len(request) == MAX_ENTRIES_PER_REQUEST or size + entry_bytes >= MAX_REQUEST_BYTES):
            yield request
            request, size = [], 0
        request.append(indexed)
        size += entry_bytes
    if request:
        yield request


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _backoff(attempt: int) -> float:
    ceiling = min(2.0, 0.1 * 2.0**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


def _error_code(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or "ClientError")
    return type(error).__name__
