"""Replay: re-read a window of WorkOS's Events API into the event queue, never touching the tail's cursor.

For after a table restore, or to re-apply a directory once a bug is fixed. The events go through the same builder
and queue as every source (`shared.tail.poller.queue_events`), so the write rules make already-applied events no-ops and
subscribers hear nothing twice: the change bus is fed by real store changes only.

WorkOS keeps events for about 30 days and answers at most 30 days per request, so the window may start at most
30 days back and is read in windows of at most 30 days: `range_start` + `range_end` for the first page, then
`after` + `range_end` (`after` and `range_start` are mutually exclusive).

An event whose message can never fit in SQS (`shared.ingest.webhook.MessageTooLargeError`: the tail parks those)
cannot be replayed either: it is listed in the report's `too_large` and the rest of the window is queued. What it
carried is repaired by reconciling its directory (`dsync reconcile --directory ID`), which reads WorkOS's state, not
events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from shared.ingest.webhook import BatchEventQueue, EventSource, MessageTooLargeError, QueuedEvent, directory_id_of
from shared.model.events import DSYNC_EVENT_TYPES, iso, parse_time
from shared.tail.poller import EVENTS_API_RETENTION_DAYS, EventsApi, queue_events

MAX_WINDOW = timedelta(days=30)


class ReplayWindowError(ValueError):
    """The window is empty, reversed, or starts before WorkOS's event retention."""


@dataclass
class ReplayReport:
    since: str
    until: str
    directory_id: str | None
    windows: int = 0
    requests: int = 0
    events_read: int = 0
    events_enqueued: int = 0
    other_directories: int = 0
    # Events no SQS message can hold, not queued: {event_id, event_type, directory_id, size_bytes} each.
    too_large: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def windows(since: datetime, until: datetime) -> Iterator[tuple[datetime, datetime]]:
    start = since
    while start < until:
        end = min(until, start + MAX_WINDOW)
        yield start, end
        start = end


def check_window(since: datetime, until: datetime, *, now: datetime) -> None:
    if since >= until:
        raise ReplayWindowError(f"--since ({iso(since)}) must be before --until ({iso(until)})")
    if since < now - timedelta(days=EVENTS_API_RETENTION_DAYS):
        raise ReplayWindowError(
            f"--since {iso(since)} is more than {EVENTS_API_RETENTION_DAYS} days ago: WorkOS no longer has those "
            "events (run `dsync reconcile` to repair state instead)"
        )


def replay(
    api: EventsApi,
    queue: BatchEventQueue,
    *,
    since: datetime,
    until: datetime,
    now: datetime,
    directory_id: str | None = None,
    page_size: int = 100,
    progress: Callable[[datetime], None] = lambda _: None,
) -> ReplayReport:
    """Queue every dsync event created in [since, until] (of one directory, if given); `progress` gets the time
    reached so far, for a progress bar."""
    until = min(until, now)
    check_window(since, until, now=now)
    report = ReplayReport(since=iso(since), until=iso(until), directory_id=directory_id)
    for start, end in windows(since, until):
        report.windows += 1
        after: str | None = None
        while True:
            page = api.list_events(
                events=DSYNC_EVENT_TYPES,
                after=after,
                range_start=iso(start) if after is None else None,
                range_end=iso(end),
                limit=page_size,
            )
            report.requests += 1
            events = [event for event in page.events if parse_time(str(event["created_at"])) <= end]
            report.events_read += len(events)
            wanted = [event for event in events if directory_id is None or _directory_of(event) == directory_id]
            report.other_directories += len(events) - len(wanted)
            queued = queue_events(wanted, now_ms=int(now.timestamp() * 1000), source=EventSource.REPLAY)
            report.events_enqueued += _enqueue(queue, queued, report)
            if events:
                progress(parse_time(str(events[-1]["created_at"])))
            if len(page.events) < page_size or len(events) < len(page.events) or not page.events:
                break
            after = str(page.events[-1]["id"])
        progress(end)
    return report


def _enqueue(queue: BatchEventQueue, queued: list[QueuedEvent], report: ReplayReport) -> int:
    """Queue the page; what SQS can never take goes to `report.too_large` instead. Returns how many were queued."""
    if not queued:
        return 0
    try:
        queue.enqueue_many(queued)
    except MessageTooLargeError as error:
        oversized = {event.event_id for event, _ in error.oversized}
        report.too_large.extend(
            {
                "event_id": event.event_id,
                "event_type": event.event_type,
                "directory_id": event.directory_id,
                "size_bytes": size,
            }
            for event, size in error.oversized
        )
        queued = [event for event in queued if event.event_id not in oversized]
        if queued:
            queue.enqueue_many(queued)
    return len(queued)


def _directory_of(event: dict[str, object]) -> str | None:
    data = event.get("data")
    return directory_id_of(str(event.get("event")), data) if isinstance(data, dict) else None
