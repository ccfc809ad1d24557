"""Replay: a window of the Events API back into the queue, by the same builder, never touching the tail's cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.ingest.webhook import EventSource
from shared.model import lanes
from shared.tail.replay import MAX_WINDOW, ReplayWindowError, replay, windows
from tests.support.tail_fakes import FakeBatchQueue, FakeEventsApi, ManualClock

pytestmark = pytest.mark.unit


def world(count: int, *, other: int = 0) -> tuple[FakeEventsApi, FakeBatchQueue, datetime]:
    clock = ManualClock()
    api = FakeEventsApi(clock, hold_back_seconds=0)
    for index in range(count):
        api.add("dsync.user.created", "directory_01A", age_seconds=3600 - index)
    for index in range(other):
        api.add("dsync.user.created", "directory_01B", age_seconds=1800 - index)
    return api, FakeBatchQueue(), datetime.fromtimestamp(clock(), UTC)


def test_a_window_is_read_page_by_page_by_time_then_cursor_and_queued_as_replay() -> None:
    api, queue, now = world(250)
    report = replay(api, queue, since=now - timedelta(hours=2), until=now, now=now)
    assert report.events_enqueued == 250 and report.requests == 3
    first, second = api.requests[0], api.requests[1]
    assert first["range_start"] and first["after"] is None and first["range_end"]
    assert second["range_start"] is None and second["after"] == api.events[99]["id"] and second["range_end"]
    assert {message.source for message in queue.messages} == {EventSource.REPLAY}
    assert [message.event_id for message in queue.messages] == [event["id"] for event in api.events]


def test_only_the_requested_directory_is_queued() -> None:
    api, queue, now = world(5, other=7)
    report = replay(api, queue, since=now - timedelta(hours=2), until=now, now=now, directory_id="directory_01B")
    assert (report.events_read, report.events_enqueued, report.other_directories) == (12, 7, 5)
    assert {lanes.directory_of_group(message.group_id) for message in queue.messages} == {"directory_01B"}


def test_until_bounds_the_window_and_progress_reaches_its_end() -> None:
    api, queue, now = world(10)
    reached: list[datetime] = []
    until = now - timedelta(seconds=3600 - 4.5)  # the first five events
    report = replay(api, queue, since=now - timedelta(hours=2), until=until, now=now, progress=reached.append)
    assert report.events_enqueued == 5 and reached[-1] == until


@pytest.mark.parametrize(
    ("since", "until"),
    [(timedelta(days=31), timedelta(0)), (timedelta(hours=1), timedelta(hours=2))],
    ids=["past retention", "reversed"],
)
def test_windows_past_retention_or_reversed_are_refused(since: timedelta, until: timedelta) -> None:
    api, queue, now = world(1)
    with pytest.raises(ReplayWindowError):
        replay(api, queue, since=now - since, until=now - until, now=now)
    assert api.requests == []


def test_long_spans_are_cut_into_windows_of_at_most_thirty_days() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cut = list(windows(start, start + timedelta(days=70)))
    assert len(cut) == 3 and all(end - begin <= MAX_WINDOW for begin, end in cut)
    assert cut[0][0] == start and cut[-1][1] == start + timedelta(days=70)
