"""The Events API tail: the third source, reading WorkOS's ordered, replayable event stream into the event queue.

Webhooks are fast but unordered and can be lost for good; reconcile is complete but hourly and rate-limited. The
tail reads `GET /events` (every dsync type, 100 a page, oldest first) and puts each event on the FIFO queue exactly
as ingest does (`shared.ingest.webhook.queued_event`: same body, group = directory, dedup = event id), so every source
meets the same conditional writes and any interleaving converges. It never writes the store itself.

One invocation polls for most of its minute: back to back while pages are full, every `idle_poll_seconds` while
they are short (WorkOS holds new events back from cursor reads for a few seconds, so a short or empty page is not
"done": the next poll picks up what was held back). A lease keeps a second tail from running at once, and the
cursor's compare-and-set keeps a lagging one from moving it. Failures never crash-loop: a bad API key ends the
invocation with a clear log line (the next minute tries once more), 429s and 5xx back off and retry.

Reads by time (bootstrap, recovery) are where the cursor could pass an event that is not visible yet: WorkOS
documents its hold-back for cursor reads only. Their start moves forward while nothing arrives (to now minus
`hold_back_margin_seconds`, and never older than the retention, which WorkOS may refuse), and when one returns events
younger than the margin, the window before them is read again by time once the margin has passed (`Cursor.recheck_*`).

A refused cursor is an expiry (recover by time, queue a full reconcile) only if the API key still sees a directory
or organization the mirror holds (`EnvironmentCheck`, `shared.key_check.KeyCheck`). If it sees none, the key is most
likely of another WorkOS environment: the tail stops (`ENVIRONMENT_CHANGED`, metric `TailEnvironmentChanged`),
queues nothing and leaves its cursor for the right key to continue from.

A page is counted as polled (and poll age reset) only once SQS accepted it. An event whose message cannot fit in SQS
(`shared.ingest.webhook.MessageTooLargeError`) is parked: a reference (ids, type, size, time) in the table and the
`TailEventsParked` metric, and the cursor moves past it; reconcile repairs what it carried.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from shared.ingest.webhook import (
    BatchEventQueue,
    EnqueueError,
    EventSource,
    MessageTooLargeError,
    QueuedEvent,
    directory_id_of,
    queued_event,
)
from shared.key_check import WRONG_ENVIRONMENT
from shared.lease import Lease
from shared.model.events import DSYNC_EVENT_TYPES, iso, parse_time
from shared.tail.cursor import Cursor, CursorStore, ParkedEvent

logger = logging.getLogger(__name__)

EVENTS_API_RETENTION_DAYS = 30  # documented as 30 and as 90; production users found ~30 replayable
RETENTION_SAFETY = timedelta(minutes=5)  # a time-range start this much inside the retention, never at its edge


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


class EnvironmentCheck(Protocol):
    """Asked when WorkOS refuses the cursor (implemented by `shared.key_check.KeyCheck`)."""

    def known_directories_visible(self) -> bool:
        """Whether the API key sees a directory or organization the mirror holds (or the mirror holds none)."""
        ...

    def mirror_knows_any(self, directory_ids: Collection[str]) -> bool:
        """Whether the mirror holds one of these directories (or has never held any): no WorkOS call."""
        ...


class ReconcileRequester(Protocol):
    def request_full_reconcile(self, reason: str) -> int:
        """Queue a reconcile of every directory; returns how many were queued."""
        ...


@dataclass(frozen=True)
class TailErrors:
    """How the tail tells WorkOS's failures apart: the adapter's exception classes (`shared.adapters.workos_client`)."""

    auth: type[Exception]  # 401/403: the key is wrong; retrying within the minute cannot help
    refused: tuple[type[Exception], ...]  # 400/404/422 on a cursor read: the cursor is unknown or expired
    transient: tuple[type[Exception], ...]  # 429, 5xx, timeouts: back off and retry


class TailStatus(StrEnum):
    OK = "ok"  # polled until the end of its window
    BUSY = "busy"  # another tail holds the lease
    SUPERSEDED = "superseded"  # another tail moved the cursor: this one stopped without writing
    AUTH_FAILED = "auth_failed"  # WorkOS rejected the API key
    # WorkOS refused the cursor and the key sees none of the mirror's directories: a key of another environment
    ENVIRONMENT_CHANGED = "environment_changed"


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
    # How long after its creation an event is surely visible to every read: WorkOS holds events back from cursor
    # reads "for a few seconds" (../shared/docs/events-api-and-2026-facts.md); time-range reads are trusted only
    # this far back.
    hold_back_margin_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 100:
            raise ValueError("page_size must be between 1 and 100")
        if self.idle_poll_seconds <= 0 or self.run_seconds <= 0:
            raise ValueError("idle_poll_seconds and run_seconds must be positive")
        if self.hold_back_margin_seconds < 0:
            raise ValueError("hold_back_margin_seconds must not be negative")


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
    events_parked: int = 0  # events no SQS message can hold: a reference kept in the table, the cursor moved on
    parked_event_ids: list[str] = field(default_factory=list)
    recoveries: int = 0
    reconciles_requested: int = 0
    lag_seconds: list[float] = field(default_factory=list)  # per page with events: now - newest event's time
    cursor: Cursor | None = None
    last_read_at: float | None = None  # epoch seconds of the last read whose page SQS accepted (poll age's base)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        hidden = ("cursor", "lag_seconds", "last_read_at")
        document = {name: value for name, value in vars(self).items() if name not in hidden}
        document["status"] = self.status.value
        document["cursor_event_id"] = self.cursor.event_id if self.cursor else None
        document["max_lag_seconds"] = round(max(self.lag_seconds), 3) if self.lag_seconds else None
        return document


def retention_floor(now: datetime) -> datetime:
    """The oldest time-range start the tail sends: inside WorkOS's event retention, which may refuse older ones."""
    return now - timedelta(days=EVENTS_API_RETENTION_DAYS) + RETENTION_SAFETY


def recovery_start(last_event_at: str, now: datetime, config: TailConfig) -> datetime:
    """Where a refused cursor re-reads from: the last processed event's time minus a margin, within retention."""
    since = parse_time(last_event_at) - timedelta(seconds=config.recovery_margin_seconds)
    return max(since, retention_floor(now))


# What SQS refuses in a message body (it accepts #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF: SendMessage
# API reference) that `json.dumps(..., ensure_ascii=False)` would write raw: lone surrogates (not UTF-8 at all) and
# U+FFFE/U+FFFF. Control characters below #x20 are escaped by `json.dumps` itself. They can only occur inside JSON
# strings, where an escape is the same value.
_SQS_REFUSED = re.compile("[\ud800-\udfff\ufffe\uffff]")


def event_body(event: dict[str, Any]) -> bytes:
    """The event as compact UTF-8 JSON, as WorkOS sends it: keys in WorkOS's order, no spaces, no ASCII escaping.

    ASCII escaping (`json.dumps`' default) writes every non-ASCII character as `\\uXXXX` (6 bytes, 12 for an emoji)
    where UTF-8 needs 2-4: a 132 KB webhook body of non-Latin text became 264 KB, over SQS's 256 KiB. Escaped
    here are only the characters SQS would refuse raw."""
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return _SQS_REFUSED.sub(lambda match: f"\\u{ord(match.group()):04x}", text).encode()


def queue_events(events: Sequence[dict[str, Any]], *, now_ms: int, source: EventSource) -> list[QueuedEvent]:
    """The page's dsync events as queue messages (the same builder as ingest); anything else is skipped."""
    queued = []
    for event in events:
        message = queued_event(event_body(event), received_at_ms=now_ms, source=source)
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
        queue: BatchEventQueue,  # raises `MessageTooLargeError` (sending nothing) for what SQS can never take
        cursors: CursorStore,
        lease: Lease,
        reconciles: ReconcileRequester,
        environment: EnvironmentCheck,
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
        self._environment = environment
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

    def read(self, *, after: str | None, range_start: str | None, range_end: str | None = None) -> list[dict[str, Any]]:
        page = self._api.list_events(
            events=DSYNC_EVENT_TYPES,
            after=after,
            range_start=range_start,
            range_end=range_end,
            limit=self._config.page_size,
        )
        return list(page.events)

    def enqueue(self, events: Sequence[dict[str, Any]]) -> tuple[int, list[ParkedEvent]]:
        """Queue the events' messages; those SQS can never take are parked (a reference in the table) instead.
        Returns how many were queued and what was parked; raises `EnqueueError` if SQS refused the rest."""
        now_ms = int(self._clock() * 1000)
        queued = queue_events(events, now_ms=now_ms, source=EventSource.EVENTS_API)
        if not queued:
            return 0, []
        try:
            self._queue.enqueue_many(queued)
        except MessageTooLargeError as error:
            created = {str(event.get("id")): event.get("created_at") for event in events}
            parked = [
                ParkedEvent(
                    event_id=message.event_id,
                    event_type=message.event_type,
                    directory_id=message.directory_id,
                    created_at=str(created[message.event_id]) if created.get(message.event_id) else None,
                    size_bytes=size,
                    limit_bytes=error.limit,
                    parked_ms=now_ms,
                )
                for message, size in error.oversized
            ]
            for reference in parked:
                self._cursors.park(reference)
                logger.error(
                    "an event too large for any SQS message was parked: reconcile its directory "
                    "(docs/runbook.md, 'Tail poll age high')",
                    extra={
                        "event_id": reference.event_id,
                        "event_type": reference.event_type,
                        "directory_id": reference.directory_id,
                        "created_at": reference.created_at,
                        "size_bytes": reference.size_bytes,
                        "limit_bytes": reference.limit_bytes,
                    },
                )
            parked_ids = {reference.event_id for reference in parked}
            rest = [message for message in queued if message.event_id not in parked_ids]
            if rest:
                self._queue.enqueue_many(rest)
            return len(rest), parked
        return len(queued), []

    @property
    def errors(self) -> TailErrors:
        return self._errors

    @property
    def cursors(self) -> CursorStore:
        return self._cursors

    @property
    def reconciles(self) -> ReconcileRequester:
        return self._reconciles

    @property
    def environment(self) -> EnvironmentCheck:
        return self._environment


class _PollingState:
    """What one invocation knows while it polls: its clock, window and report, where it reads from, the cursor it
    last saw in the table, what it queued; and the small steps every read shares (queue a page, save the cursor,
    back off)."""

    def __init__(
        self, tail: EventsTail, report: TailReport, *, deadline: float, remaining: Callable[[], float]
    ) -> None:
        self.tail = tail
        self.config = tail.config
        self.report = report
        self.deadline = deadline
        self.remaining = remaining
        self.margin = timedelta(seconds=self.config.hold_back_margin_seconds)
        self.cursor = tail.cursors.load()
        self.range_start: str | None = None
        # With no event processed yet, read by time: from where the last invocation got to (or a recovery's
        # start), else `bootstrap_hours` back.
        if self.cursor is None or self.cursor.event_id is None:
            if self.cursor is not None and self.cursor.read_from:
                self.range_start = self.cursor.read_from
            else:
                now = self.now()
                self.range_start = iso(now - timedelta(hours=self.config.bootstrap_hours))
        self.recheck_after: str | None = None  # paging through a recheck window
        self.queued_ids: set[str] = set()  # what this invocation queued (or parked) already: not sent twice
        self.last_heartbeat = 0.0
        self.environment_confirmed = False  # the key was seen to be of the mirror's environment this invocation

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.tail.now(), UTC)

    def enqueue(self, events: list[dict[str, Any]]) -> bool:
        """Queue what this invocation has not queued yet; False (after a backoff) if SQS refused the page."""
        fresh = [event for event in events if str(event.get("id")) not in self.queued_ids]
        try:
            enqueued, parked = self.tail.enqueue(fresh)
        except EnqueueError as error:
            self.report.enqueue_failures += 1
            logger.warning("SQS refused the page; it is read again", extra={"error": str(error)})
            self.tail.pause(self.config.backoff_seconds)
            return False
        self.queued_ids.update(str(event.get("id")) for event in fresh)
        self.report.polls += 1
        self.report.last_read_at = self.tail.now()
        self.report.events_read += len(events)
        self.report.events_enqueued += enqueued
        self.report.events_parked += len(parked)
        self.report.parked_event_ids.extend(reference.event_id for reference in parked)
        return True

    def save(self, cursor: Cursor, *, expected: str | None) -> None:
        if self.tail.cursors.save(cursor, expected_event_id=expected):
            self.cursor = cursor
            self.last_heartbeat = self.tail.now()
        else:
            logger.warning("another tail moved the cursor: this one stops without writing")
            self.report.status = TailStatus.SUPERSEDED

    def auth_failed(self, error: Exception) -> None:
        logger.error("WorkOS rejected the API key: the tail stops until the key is fixed", extra={"error": str(error)})
        self.report.status, self.report.error = TailStatus.AUTH_FAILED, str(error)

    def unavailable(self, error: Exception) -> None:
        self.report.rate_limited += int(getattr(error, "status", None) == 429)
        self.report.unavailable += int(getattr(error, "status", None) != 429)
        logger.warning("WorkOS Events API unavailable; retrying", extra={"error": str(error)})
        self.tail.pause(self.config.backoff_seconds)


class _EnvironmentGuard(_PollingState):
    """Nothing of another WorkOS environment is read into the queue: the key is checked before a read by time is
    queued, and when WorkOS refuses the cursor (then either an environment change stops the tail, or it recovers by
    time and queues a full reconcile)."""

    def page_of_the_mirrors_environment(self, events: Sequence[dict[str, Any]], why: str) -> bool:
        """Before a page read by time is queued: a time range has no cursor WorkOS could refuse, so under another
        environment's key it returns that environment's events, which would be imported. An event of a directory the
        mirror holds (or a mirror that never held one) is evidence enough, and works while WorkOS's list API is down;
        otherwise the key's directory listing decides (`environment_ok`). An empty page imports nothing."""
        if self.environment_confirmed or not events:
            return True
        directories = {directory_id_of(str(event.get("event")), event.get("data") or {}) for event in events}
        if self.tail.environment.mirror_knows_any({d for d in directories if d}):
            self.environment_confirmed = True
            return True
        return self.environment_ok(why)

    def environment_ok(self, why: str, **context: Any) -> bool:
        """Is the key still of the mirror's environment? Asked once per invocation before anything is read by time
        (a time range has no cursor WorkOS could refuse, so another environment's key would read that environment's
        events and import them) and after a refused cursor, unless a cursor read already answered it this
        invocation. False: the tail stopped (ENVIRONMENT_CHANGED, nothing queued, cursor kept), or the check failed
        and the tail backed off."""
        if self.environment_confirmed:
            return True
        errors = self.tail.errors
        try:
            same_environment = self.tail.environment.known_directories_visible()
        except errors.auth as error:
            self.auth_failed(error)
            return False
        except (*errors.refused, *errors.transient) as error:
            self.unavailable(error)
            return False
        if not same_environment:
            logger.error(
                "the tail stops: %s and %s; no reconcile was queued and the cursor is kept",
                why,
                WRONG_ENVIRONMENT,
                extra=context,
            )
            self.report.status, self.report.error = TailStatus.ENVIRONMENT_CHANGED, f"{why} and {WRONG_ENVIRONMENT}"
            return False
        self.environment_confirmed = True
        return True

    def recover(self, reason: str) -> None:
        """WorkOS refused the cursor (expired past retention, or unknown): re-read by time and repair by reconcile,
        unless the key sees none of the mirror's directories (another environment's key): then stop, queue nothing
        and leave the cursor as it is."""
        assert self.cursor is not None and self.cursor.event_created_at is not None
        self.environment_confirmed = False  # a refused cursor is a reason to ask again
        if not self.environment_ok("WorkOS refused the tail's cursor", cursor=self.cursor.event_id, error=reason):
            return  # stopped (no reconcile queued, cursor kept), or backed off: the next read is refused and asks again
        now = self.now()
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


class _TimeRange(_EnvironmentGuard):
    """Reads by time: where a time range may start (within WorkOS's retention, moving while nothing arrives), and the
    re-read of a window a time-range read may have seen only in part."""

    def start_within_retention(self) -> str:
        """The time-range start to send: never older than WorkOS keeps events (it may refuse such a start)."""
        assert self.range_start is not None
        now = self.now()
        floor = retention_floor(now)
        start = parse_time(self.range_start)
        if start >= floor:
            return self.range_start
        if start < now - timedelta(days=EVENTS_API_RETENTION_DAYS):
            # The tail read nothing from its stored start for longer than WorkOS keeps events (it did not run): what
            # was created before the retention can no longer be read. Reconcile repairs it, as after a refusal.
            logger.error(
                "the tail's time-range start is past WorkOS's event retention: reading from the oldest start it "
                "keeps and queuing a full reconcile",
                extra={"read_from": self.range_start, "range_start": iso(floor)},
            )
            requested = self.tail.reconciles.request_full_reconcile("events time range past retention")
            self.report.reconciles_requested += requested
        self.range_start = iso(floor)
        return self.range_start

    def with_recheck(self, cursor: Cursor, *, range_start: str, read_at: datetime, newest: dict[str, Any]) -> Cursor:
        """After a time-range read: the window in which an event not yet visible may be missing from it, to be read
        again once older than the margin (events older than the margin were visible; later ones come by cursor)."""
        window_from = max(parse_time(range_start), read_at - self.margin)
        window_until = parse_time(str(newest["created_at"]))
        if window_until <= read_at - self.margin:
            return cursor  # every event up to the newest was older than the margin: all were visible
        if cursor.recheck_from and cursor.recheck_until:  # one still pending (a recovery in between): cover both
            window_from = min(window_from, parse_time(cursor.recheck_from))
            window_until = max(window_until, parse_time(cursor.recheck_until))
        return replace(cursor, recheck_from=iso(window_from), recheck_until=iso(window_until))

    def recheck_due(self) -> bool:
        cursor = self.cursor
        if cursor is None or not cursor.recheck_from or not cursor.recheck_until:
            return False
        return self.now() >= parse_time(cursor.recheck_until) + self.margin

    def recheck_once(self) -> bool:
        """One page of the recheck window, by time (then `after` within it); the cursor does not move."""
        assert self.cursor is not None and self.cursor.recheck_from and self.cursor.recheck_until
        if not self.environment_confirmed and self.cursor.event_id is not None:
            return self.poll_once()  # a cursor read first: if WorkOS answers it, the key is of the mirror's environment
        until = self.cursor.recheck_until
        errors = self.tail.errors
        try:
            page = self.tail.read(
                after=self.recheck_after,
                range_start=self.cursor.recheck_from if self.recheck_after is None else None,
                range_end=until,
            )
        except errors.auth as error:
            self.auth_failed(error)
            return False
        except errors.refused as error:
            logger.warning("WorkOS refused the tail's recheck window; it is dropped", extra={"error": str(error)})
            page = []
        except errors.transient as error:
            self.unavailable(error)
            return True
        events = [event for event in page if parse_time(str(event["created_at"])) <= parse_time(until)]
        if not self.page_of_the_mirrors_environment(events, "the tail re-reads a window by time"):
            return True
        if not self.enqueue(events):
            return True
        if len(page) >= self.config.page_size and len(events) == len(page):
            self.recheck_after = str(page[-1]["id"])
            return True
        self.recheck_after = None
        done = replace(self.cursor, recheck_from=None, recheck_until=None)
        self.save(done, expected=self.cursor.event_id)
        return True

    def poll_once(self) -> bool:
        """One read by cursor (or by time); `_Polling` implements it."""
        raise NotImplementedError


class _Polling(_TimeRange):
    """The loop of one invocation: poll by cursor (or by time while there is none) until the window closes."""

    def run(self) -> None:
        while self.polling():
            full = self.recheck_once() if self.recheck_due() else self.poll_once()
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
        range_start = None if after is not None else self.start_within_retention()
        read_at = self.now()
        errors = self.tail.errors
        try:
            events = self.tail.read(after=after, range_start=range_start)
        except errors.auth as error:
            self.auth_failed(error)
            return False
        except errors.refused as error:
            if after is None:
                raise  # a time-range read refused, though within the retention: nothing to fall back to
            self.recover(str(error))
            return True
        except errors.transient as error:
            self.unavailable(error)
            return True  # backed off already: read again now
        if after is not None:
            # WorkOS answered a read after an event id of the mirror's own stream: events belong to one environment,
            # so the key is of the mirror's, and no listing is needed to know it (the list API may be down).
            self.environment_confirmed = True
        elif not self.page_of_the_mirrors_environment(events, "the tail reads by time"):
            return True  # stopped (nothing queued), or backed off: `polling()` decides
        if not self.enqueue(events):
            return True  # backed off already: the same read again
        now = self.tail.now()
        if events:
            newest = events[-1]
            self.report.lag_seconds.append(max(0.0, now - parse_time(str(newest["created_at"])).timestamp()))
            base = self.cursor or Cursor(event_id=None, event_created_at=None, moved_ms=0, polled_ms=0)
            moved = replace(
                base,
                event_id=str(newest["id"]),
                event_created_at=str(newest["created_at"]),
                moved_ms=int(now * 1000),
                polled_ms=int(now * 1000),
                read_from=None,
            )
            if range_start is not None:
                moved = self.with_recheck(moved, range_start=range_start, read_at=read_at, newest=newest)
            self.save(moved, expected=after)
            self.range_start = None
        else:
            if range_start is not None:
                # Nothing was visible from the start to the read; anything older than the margin was visible.
                self.range_start = max(range_start, iso(read_at - self.margin), key=parse_time)
            if now - self.last_heartbeat >= self.config.heartbeat_every_seconds:
                base = self.cursor or Cursor(event_id=None, event_created_at=None, moved_ms=0, polled_ms=0)
                read_from = self.range_start if after is None else None
                self.save(replace(base, polled_ms=int(now * 1000), read_from=read_from), expected=after)
        full = len(events) >= self.config.page_size
        self.report.full_pages += int(full)
        return full
