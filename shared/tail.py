"""The Events API tail: the third source, reading WorkOS's ordered, replayable event stream into the event queue.

Webhooks are fast but unordered and can be lost for good; reconcile is complete but hourly and rate-limited. The
tail reads `GET /events` (every dsync type, 100 a page, oldest first) and puts each event on the FIFO queue exactly
as ingest does (`shared.ingest.queued_event`: same body, group = directory, dedup = event id), so every source
meets the same conditional writes and any interleaving converges. It never writes the store itself.

One invocation polls for most of its minute: back to back while pages are full, every `idle_poll_seconds` while
they are short (WorkOS holds new events back from cursor reads for a few seconds, so a short or empty page is not
"done": the next poll picks up what was held back). A lease keeps a second tail from running at once, and the
cursor's compare-and-set keeps a lagging one from moving it. Failures never crash-loop: a bad API key ends the
invocation with a clear log line (the next minute tries once more), 429s and 5xx back off and retry.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from shared.events import DSYNC_EVENT_TYPES, iso, parse_time
from shared.ingest import BatchEventQueue, EnqueueError, EventSource, QueuedEvent, queued_event
from shared.lease import Lease
from shared.tail_cursor import Cursor, CursorStore

logger = logging.getLogger(__name__)

EVENTS_API_RETENTION_DAYS = 30  # documented as 30 and as 90; production users found ~30 replayable


class EventsPageLike(Protocol):
    @property
    def events(self) -> list[dict[str, Any]]: ...


class EventsApi(Protocol):
    """`GET /events` (implemented by `shared.adapters.workos_api.WorkOSDirectoryApi.list_events`)."""

    def list_events(
        self,
        *,
        events: Sequence[str],
        after: str | None = None,
        range_start: str | None = None,
        range_end: str | None = None,
        limit: int = 100,
    ) -> EventsPageLike: ...


class ReconcileRequester(Protocol):
    def request_full_reconcile(self, reason: str) -> int:
        """Queue a reconcile of every directory; returns how many were queued."""
        ...


@dataclass(frozen=True)
class TailErrors:
    """How the tail tells WorkOS's failures apart: the adapter's exception classes (`shared.workos_client`)."""

    auth: type[Exception]  # 401/403: the key is wrong; retrying within the minute cannot help
    refused: tuple[type[Exception], ...]  # 400/404/422 on a cursor read: the cursor is unknown or expired
    transient: tuple[type[Exception], ...]  # 429, 5xx, timeouts: back off and retry


class TailStatus(StrEnum):
    OK = "ok"  # polled until the end of its window
    BUSY = "busy"  # another tail holds the lease
    SUPERSEDED = "superseded"  # another tail moved the cursor: this one stopped without writing
    AUTH_FAILED = "auth_failed"  # WorkOS rejected the API key


@dataclass(frozen=True)
class TailConfig:
    page_size: int = 100
    idle_poll_seconds: float = 3.0
    run_seconds: float = 50.0  # one invocation's polling window (the schedule starts one a minute)
    reserve_seconds: float = 5.0  # stop this long before the Lambda timeout
    bootstrap_hours: float = 24.0
    recovery_margin_seconds: float = 300.0
    heartbeat_every_seconds: float = 15.0  # how often an idle tail records its poll time in the table
    backoff_seconds: float = 5.0  # after a 429, 5xx or an SQS failure

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 100:
            raise ValueError("page_size must be between 1 and 100")
        if self.idle_poll_seconds <= 0 or self.run_seconds <= 0:
            raise ValueError("idle_poll_seconds and run_seconds must be positive")


@dataclass
class TailReport:
    status: TailStatus = TailStatus.OK
    polls: int = 0
    events_read: int = 0
    events_enqueued: int = 0
    full_pages: int = 0
    rate_limited: int = 0
    unavailable: int = 0
    enqueue_failures: int = 0
    recoveries: int = 0
    reconciles_requested: int = 0
    lag_seconds: list[float] = field(default_factory=list)  # per page with events: now - newest event's time
    cursor: Cursor | None = None
    last_read_at: float | None = None  # epoch seconds of the last successful read (poll age is measured from it)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        hidden = ("cursor", "lag_seconds", "last_read_at")
        document = {name: value for name, value in vars(self).items() if name not in hidden}
        document["status"] = self.status.value
        document["cursor_event_id"] = self.cursor.event_id if self.cursor else None
        document["max_lag_seconds"] = round(max(self.lag_seconds), 3) if self.lag_seconds else None
        return document


def recovery_start(last_event_at: str, now: datetime, config: TailConfig) -> datetime:
    """Where a refused cursor re-reads from: the last processed event's time minus a margin, within retention."""
    since = parse_time(last_event_at) - timedelta(seconds=config.recovery_margin_seconds)
    return max(since, now - timedelta(days=EVENTS_API_RETENTION_DAYS) + timedelta(minutes=5))


def queue_events(events: Sequence[dict[str, Any]], *, now_ms: int, source: EventSource) -> list[QueuedEvent]:
    """The page's dsync events as queue messages (the same builder as ingest); anything else is skipped."""
    queued = []
    for event in events:
        message = queued_event(json.dumps(event, separators=(",", ":")).encode(), received_at_ms=now_ms, source=source)
        if isinstance(message, QueuedEvent):
            queued.append(message)
        else:
            logger.warning(
                "skipped an unqueueable event", extra={"event_id": event.get("id"), "reason": message.reason}
            )
    return queued


class EventsTail:
    """One invocation of the tail: take the lease, poll until the window closes, release it."""

    def __init__(
        self,
        *,
        api: EventsApi,
        errors: TailErrors,
        queue: BatchEventQueue,
        cursors: CursorStore,
        lease: Lease,
        reconciles: ReconcileRequester,
        config: TailConfig | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._errors = errors
        self._queue = queue
        self._cursors = cursors
        self._lease = lease
        self._reconciles = reconciles
        self._config = config or TailConfig()
        self._clock = clock
        self._sleep = sleep
        self.monotonic = monotonic

    def run(self, remaining_seconds: Callable[[], float] = lambda: float("inf")) -> TailReport:
        report = TailReport()
        window = min(self._config.run_seconds, remaining_seconds() - self._config.reserve_seconds)
        if not self._lease.acquire(max(window, 0) + 60):
            report.status = TailStatus.BUSY
            return report
        try:
            _Polling(self, report, deadline=self.monotonic() + window, remaining=remaining_seconds).run()
        finally:
            self._lease.release()
        return report

    # The polling loop reads these through a small public surface.
    @property
    def config(self) -> TailConfig:
        return self._config

    def now(self) -> float:
        return self._clock()

    def pause(self, seconds: float) -> None:
        self._sleep(seconds)

    def read(self, *, after: str | None, range_start: str | None) -> list[dict[str, Any]]:
        page = self._api.list_events(
            events=DSYNC_EVENT_TYPES, after=after, range_start=range_start, limit=self._config.page_size
        )
        return list(page.events)

    def enqueue(self, events: Sequence[dict[str, Any]]) -> int:
        queued = queue_events(events, now_ms=int(self._clock() * 1000), source=EventSource.EVENTS_API)
        if queued:
            self._queue.enqueue_many(queued)
        return len(queued)

    @property
    def errors(self) -> TailErrors:
        return self._errors

    @property
    def cursors(self) -> CursorStore:
        return self._cursors

    @property
    def reconciles(self) -> ReconcileRequester:
        return self._reconciles


class _Polling:
    """The loop of one invocation: where it reads from, and the cursor it last saw in the table."""

    def __init__(
        self, tail: EventsTail, report: TailReport, *, deadline: float, remaining: Callable[[], float]
    ) -> None:
        self.tail = tail
        self.config = tail.config
        self.report = report
        self.deadline = deadline
        self.remaining = remaining
        self.cursor = tail.cursors.load()
        self.range_start: str | None = None
        if self.cursor is None or self.cursor.event_id is None:
            # No event processed yet (or a refused cursor): read by time, from where the last invocation started.
            if self.cursor is not None and self.cursor.read_from:
                self.range_start = self.cursor.read_from
            else:
                now = datetime.fromtimestamp(tail.now(), UTC)
                self.range_start = iso(now - timedelta(hours=self.config.bootstrap_hours))
        self.last_heartbeat = 0.0

    def run(self) -> None:
        while self.polling():
            full = self.poll_once()
            if not full and self.polling():
                self.tail.pause(max(0.0, min(self.config.idle_poll_seconds, self.deadline - self.tail.monotonic())))
        self.report.cursor = self.cursor

    def polling(self) -> bool:
        return (
            self.tail.monotonic() < self.deadline
            and self.remaining() > self.config.reserve_seconds
            and self.report.status is TailStatus.OK
        )

    def poll_once(self) -> bool:
        """One read, its enqueue and the cursor move; True to read again at once (a full page, or after a backoff)."""
        after = self.cursor.event_id if self.cursor else None
        errors = self.tail.errors
        try:
            events = self.tail.read(after=after, range_start=self.range_start if after is None else None)
        except errors.auth as error:
            logger.error(
                "WorkOS rejected the API key: the tail stops until the key is fixed", extra={"error": str(error)}
            )
            self.report.status, self.report.error = TailStatus.AUTH_FAILED, str(error)
            return False
        except errors.refused as error:
            if after is None:
                raise  # a time-range read refused: nothing to fall back to
            self.recover(str(error))
            return True
        except errors.transient as error:
            self.report.rate_limited += int(getattr(error, "status", None) == 429)
            self.report.unavailable += int(getattr(error, "status", None) != 429)
            logger.warning("WorkOS Events API unavailable; retrying", extra={"error": str(error)})
            self.tail.pause(self.config.backoff_seconds)
            return True  # backed off already: read again now
        self.report.polls += 1
        self.report.last_read_at = self.tail.now()
        self.report.events_read += len(events)
        try:
            self.report.events_enqueued += self.tail.enqueue(events)
        except EnqueueError as error:
            self.report.enqueue_failures += 1
            logger.warning("SQS refused the page; it is read again", extra={"error": str(error)})
            self.tail.pause(self.config.backoff_seconds)
            return True
        now = self.tail.now()
        if events:
            newest = events[-1]
            self.report.lag_seconds.append(max(0.0, now - parse_time(str(newest["created_at"])).timestamp()))
            moved = Cursor(
                event_id=str(newest["id"]),
                event_created_at=str(newest["created_at"]),
                moved_ms=int(now * 1000),
                polled_ms=int(now * 1000),
                recovered_ms=self.cursor.recovered_ms if self.cursor else 0,
                recovery_reason=self.cursor.recovery_reason if self.cursor else None,
                read_from=None,
            )
            self.save(moved, expected=after)
            self.range_start = None
        elif now - self.last_heartbeat >= self.config.heartbeat_every_seconds:
            base = self.cursor or Cursor(event_id=None, event_created_at=None, moved_ms=0, polled_ms=0)
            read_from = self.range_start if after is None else None
            self.save(replace(base, polled_ms=int(now * 1000), read_from=read_from), expected=after)
        full = len(events) >= self.config.page_size
        self.report.full_pages += int(full)
        return full

    def save(self, cursor: Cursor, *, expected: str | None) -> None:
        if self.tail.cursors.save(cursor, expected_event_id=expected):
            self.cursor = cursor
            self.last_heartbeat = self.tail.now()
        else:
            logger.warning("another tail moved the cursor: this one stops without writing")
            self.report.status = TailStatus.SUPERSEDED

    def recover(self, reason: str) -> None:
        """WorkOS refused the cursor (expired past retention, or unknown): re-read by time and repair by reconcile."""
        assert self.cursor is not None and self.cursor.event_created_at is not None
        now = datetime.fromtimestamp(self.tail.now(), UTC)
        since = recovery_start(self.cursor.event_created_at, now, self.config)
        logger.error(
            "WorkOS refused the tail's cursor: re-reading by time and queuing a full reconcile",
            extra={"cursor": self.cursor.event_id, "range_start": iso(since), "error": reason},
        )
        self.report.recoveries += 1
        self.report.reconciles_requested += self.tail.reconciles.request_full_reconcile("events cursor refused")
        fallback = replace(
            self.cursor,
            event_id=None,
            recovered_ms=int(now.timestamp() * 1000),
            recovery_reason=reason[:500],
            read_from=iso(since),
        )
        self.save(fallback, expected=self.cursor.event_id)
        self.range_start = fallback.read_from
