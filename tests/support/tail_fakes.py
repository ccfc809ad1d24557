"""Fakes for the Events API tail's ports: a table with the conditions the lease and the cursor use, an Events API
with WorkOS's ordering, hold-back and refusals, and a batch queue that can refuse (and refuses what SQS would)."""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.sqs import MAX_MESSAGE_BYTES, too_large
from shared.ingest.webhook import EnqueueError, MessageTooLargeError, QueuedEvent
from shared.model.events import parse_time
from shared.model.records import ItemKey


class ManualClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeItemTable:
    """get/put/delete with exactly the condition expressions of `shared.lease` and `shared.tail.cursor`."""

    def __init__(self) -> None:
        self.items: dict[ItemKey, dict[str, Any]] = {}
        self.fail_puts = 0  # raise on the next N puts, as a crash would

    def get_item(self, key: ItemKey) -> dict[str, Any] | None:
        item = self.items.get(key)
        return copy.deepcopy(item) if item is not None else None

    def put_item(
        self,
        item: dict[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool:
        if self.fail_puts:
            self.fail_puts -= 1
            raise RuntimeError("injected crash")
        key = ItemKey(item["pk"], item["sk"])
        if not self._holds(self.items.get(key), condition, values or {}):
            return False
        self.items[key] = copy.deepcopy(item)
        return True

    def delete_item(
        self,
        key: ItemKey,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool:
        if not self._holds(self.items.get(key), condition, values or {}):
            return False
        self.items.pop(key, None)
        return True

    @staticmethod
    def _holds(existing: dict[str, Any] | None, condition: str | None, values: dict[str, Any]) -> bool:
        if condition is None:
            return True
        if condition == "attribute_not_exists(#pk) OR lease_until_ms < :now OR #owner = :owner":
            return (
                existing is None or existing["lease_until_ms"] < values[":now"] or existing["owner"] == values[":owner"]
            )
        if condition == "#owner = :owner":
            return existing is not None and existing["owner"] == values[":owner"]
        if condition == "attribute_not_exists(event_id)":
            return existing is None or "event_id" not in existing
        if condition == "event_id = :expected":
            return existing is not None and existing.get("event_id") == values[":expected"]
        raise AssertionError(f"the fake does not know the condition {condition!r}")


@dataclass
class EventsPage:
    events: list[dict[str, Any]]
    after: str | None


@dataclass
class FakeEventsApi:
    """WorkOS's `GET /events` over a list of events: oldest first, cursor reads held back, refusals on demand.

    An event may become visible only some seconds after its creation (`add(..., visible_after_seconds=...)`), as a
    write committed late would: that is why WorkOS holds cursor reads back. Time-range reads are not held back here
    (the docs say nothing of them), so such an event is missing from a time-range read made before it is visible.
    With `retention_days`, a `range_start` older than the retention is refused (422), as WorkOS may do."""

    clock: ManualClock
    events: list[dict[str, Any]] = field(default_factory=list)
    hold_back_seconds: float = 3.0
    failures: deque[Exception] = field(default_factory=deque)
    refused_cursors: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    retention_days: float | None = None
    visible_at: dict[str, float] = field(default_factory=dict)  # event id -> when it becomes visible (if late)

    def add(
        self,
        event_type: str,
        directory_id: str,
        *,
        age_seconds: float = 60.0,
        visible_after_seconds: float = 0.0,
        **data: Any,
    ) -> dict[str, Any]:
        created = datetime.fromtimestamp(self.clock() - age_seconds, UTC)
        event: dict[str, Any] = {
            "object": "event",
            "id": f"event_{len(self.events) + 1:026d}",
            "event": event_type,
            "data": {"id": data.pop("id", f"obj_{len(self.events) + 1}"), "directory_id": directory_id, **data},
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        assert visible_after_seconds <= self.hold_back_seconds, "WorkOS's hold-back covers late commits"
        if visible_after_seconds:
            self.visible_at[event["id"]] = parse_time(event["created_at"]).timestamp() + visible_after_seconds
        self.events.append(event)
        return event

    def list_events(
        self,
        *,
        events: Sequence[str],
        after: str | None = None,
        range_start: str | None = None,
        range_end: str | None = None,
        limit: int = 100,
    ) -> EventsPage:
        self.requests.append(
            {
                "events": tuple(events),
                "after": after,
                "range_start": range_start,
                "range_end": range_end,
                "limit": limit,
            }
        )
        assert not (after and range_start), "after and range_start are mutually exclusive"
        if self.failures:
            raise self.failures.popleft()
        if after is not None and after in self.refused_cursors:
            raise RefusedError(f"cursor {after} expired")
        if range_start is not None and self.retention_days is not None:
            oldest = self.clock() - self.retention_days * 86_400
            if parse_time(range_start).timestamp() < oldest:
                raise RefusedError(f"range_start {range_start} is past the event retention")
        now = self.clock()
        selected = [
            event
            for event in self.events
            if event["event"] in events and self.visible_at.get(event["id"], float("-inf")) <= now
        ]
        if after is not None:
            ids = [event["id"] for event in selected]
            selected = selected[ids.index(after) + 1 :]
            visible_until = datetime.fromtimestamp(self.clock(), UTC) - timedelta(seconds=self.hold_back_seconds)
            selected = [event for event in selected if parse_time(event["created_at"]) <= visible_until]
        if range_start is not None:
            selected = [event for event in selected if parse_time(event["created_at"]) >= parse_time(range_start)]
        if range_end is not None:
            selected = [event for event in selected if parse_time(event["created_at"]) <= parse_time(range_end)]
        page = copy.deepcopy(selected[:limit])
        return EventsPage(page, page[-1]["id"] if page else after)


class AuthError(Exception):
    status = 401


class RefusedError(Exception):
    status = 422


class TransientError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"status {status}")
        self.status = status


@dataclass
class FakeBatchQueue:
    """The event queue as `shared.adapters.sqs.SqsEventQueue` presents it, SQS's size limit included.

    SQS refuses a message over the queue's MaximumMessageSize (262,144 bytes here, `shared.resources`), counting the
    body's UTF-8 bytes plus every message attribute's name, data type and value (AWS, SQS quotas for messages and
    the SendMessage / MessageAttributeValue API reference). The fake measures the exact message the adapter would
    send (`shared.adapters.sqs.event_message`) and raises what the adapter raises, before queuing anything."""

    messages: list[QueuedEvent] = field(default_factory=list)
    fail_next: int = 0
    refused_for_size: int = 0

    def enqueue(self, event: QueuedEvent) -> None:
        self.enqueue_many([event])

    def enqueue_many(self, events: Sequence[QueuedEvent]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise EnqueueError("injected SQS failure")
        oversized = too_large(events)
        if oversized:
            self.refused_for_size += 1
            raise MessageTooLargeError(oversized, limit=MAX_MESSAGE_BYTES)
        self.messages.extend(events)

    @property
    def event_ids(self) -> list[str]:
        return [message.event_id for message in self.messages]


@dataclass
class FakeEnvironment:
    """`shared.key_check.KeyCheck` as the tail asks it: does the key still see a directory the mirror holds?"""

    visible: bool = True
    failures: deque[Exception] = field(default_factory=deque)
    checks: int = 0

    def known_directories_visible(self) -> bool:
        self.checks += 1
        if self.failures:
            raise self.failures.popleft()
        return self.visible

    def mirror_knows_any(self, directory_ids: Collection[str]) -> bool:
        """The mirror holds none of them: every page read by time goes to the listing check."""
        return False


@dataclass
class FakeReconciles:
    reasons: list[str] = field(default_factory=list)

    def request_full_reconcile(self, reason: str) -> int:
        self.reasons.append(reason)
        return 3
