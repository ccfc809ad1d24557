"""The Events API tail: what it reads, what it queues, and when (and only when) its cursor moves."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.sqs import MAX_MESSAGE_BYTES
from shared.ingest.webhook import EventSource, QueuedEvent, queued_event
from shared.key_check import WRONG_ENVIRONMENT
from shared.lease import Lease
from shared.model import lanes
from shared.model.events import DSYNC_EVENT_TYPES, iso, parse_time
from shared.model.records import ItemKey
from shared.observability import MetricsRecorder
from shared.tail.cursor import CURSOR_KEY, LEASE_KEY, TAIL_PK, Cursor, CursorStore
from shared.tail.poller import EventsTail, TailConfig, TailErrors, TailReport, TailStatus, queue_events
from shared.tail.replay import replay
from shared.tail.report import record_tail
from tests.support.tail_fakes import (
    AuthError,
    FakeBatchQueue,
    FakeEnvironment,
    FakeEventsApi,
    FakeItemTable,
    FakeReconciles,
    ManualClock,
    RefusedError,
    TransientError,
)

pytestmark = pytest.mark.unit
ERRORS = TailErrors(auth=AuthError, refused=(RefusedError,), transient=(TransientError,))
DIRECTORY = "directory_01TAIL"


class World:
    def __init__(self, **config: float) -> None:
        self.clock = ManualClock()
        self.api = FakeEventsApi(self.clock)
        self.table = FakeItemTable()
        self.queue = FakeBatchQueue()
        self.reconciles = FakeReconciles()
        self.environment = FakeEnvironment()
        self.config = replace(TailConfig(reserve_seconds=0.0), **config)  # type: ignore[arg-type]

    def tail(self, *, seconds: float = 20.0, cursors: CursorStore | None = None) -> EventsTail:
        """A tail whose one invocation polls for `seconds` of the manual clock."""
        return EventsTail(
            api=self.api,
            errors=ERRORS,
            queue=self.queue,
            cursors=cursors or CursorStore(self.table),
            lease=Lease(self.table, LEASE_KEY, clock=self.clock),
            reconciles=self.reconciles,
            environment=self.environment,
            config=replace(self.config, run_seconds=seconds),
            clock=self.clock,
            sleep=self.clock.sleep,
            monotonic=self.clock,
        )

    def run(self, seconds: float = 20.0) -> TailReport:
        return self.tail(seconds=seconds).run()

    def cursor(self) -> Cursor | None:
        return CursorStore(self.table).load()

    def users(self, count: int, *, age_seconds: float = 60.0) -> list[dict[str, Any]]:
        return [self.api.add("dsync.user.created", DIRECTORY, age_seconds=age_seconds) for _ in range(count)]


def test_with_no_cursor_it_starts_bootstrap_hours_back_by_time_then_follows_the_cursor() -> None:
    world = World(bootstrap_hours=24)
    world.users(3)
    world.run(seconds=5)
    first, second = world.api.requests[0], world.api.requests[1]
    assert first["after"] is None and first["limit"] == 100 and first["events"] == DSYNC_EVENT_TYPES
    assert parse_time(first["range_start"]).timestamp() == pytest.approx(world.clock.now - 5 - 24 * 3600, abs=1)
    assert second["range_start"] is None and second["after"] == world.api.events[-1]["id"]
    cursor = world.cursor()
    assert cursor is not None and cursor.event_id == world.api.events[-1]["id"]


def test_each_event_is_queued_exactly_as_ingest_queues_a_webhook() -> None:
    world = World()
    (event,) = world.users(1)
    world.run(seconds=1)
    (message,) = world.queue.messages
    webhook = queued_event(json.dumps(event).encode(), received_at_ms=0, source=EventSource.WEBHOOK)
    assert isinstance(webhook, QueuedEvent)
    assert json.loads(message.body) == event
    assert (message.group_id, message.deduplication_id) == (webhook.group_id, event["id"])  # the same lane
    assert lanes.directory_of_group(message.group_id) == DIRECTORY
    assert (message.group_id, message.deduplication_id, message.event_type) == (
        webhook.group_id,
        webhook.deduplication_id,
        webhook.event_type,
    )
    assert message.source is EventSource.EVENTS_API


def test_full_pages_are_read_back_to_back_and_short_pages_wait_the_idle_interval() -> None:
    world = World(idle_poll_seconds=3.0)
    world.users(250)
    world.run(seconds=10)
    reads = world.api.requests
    assert [len(world.queue.messages)] == [250]
    # 100 + 100 back to back, then a short page of 50, then one poll every 3 s of the remaining ~10 s.
    assert 3 + 2 <= len(reads) <= 3 + 4
    assert len(set(world.queue.event_ids)) == 250


def test_a_short_or_empty_page_is_not_done_events_held_back_arrive_on_a_later_poll() -> None:
    world = World(idle_poll_seconds=2.0)
    world.users(1)
    world.run(seconds=1)
    late = world.users(2, age_seconds=0)  # just created: WorkOS holds them back from cursor reads for 3 s
    world.run(seconds=1)
    assert late[0]["id"] not in world.queue.event_ids  # held back
    world.run(seconds=6)
    assert {e["id"] for e in late} <= set(world.queue.event_ids)  # the tail polled again and got them


def test_a_crash_between_enqueue_and_cursor_write_rereads_the_page_duplicates_only() -> None:
    world = World()
    world.users(5)
    tail = world.tail(seconds=1)
    original = world.table.put_item
    calls = {"n": 0}

    def crash_on_cursor(item: dict[str, object], **kwargs: object) -> bool:
        if item["sk"] == CURSOR_KEY.sk and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("Lambda timed out")
        return original(item, **kwargs)  # type: ignore[arg-type]

    world.table.put_item = crash_on_cursor  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        tail.run()
    assert world.cursor() is None and len(world.queue.messages) == 5  # queued, cursor not moved
    world.table.put_item = original  # type: ignore[method-assign]
    world.clock.sleep(61)  # the crashed run's lease expires
    world.run(seconds=1)
    assert world.queue.event_ids == [e["id"] for e in world.api.events] * 2  # the page again: duplicates only
    cursor = world.cursor()
    assert cursor is not None and cursor.event_id == world.api.events[-1]["id"]


def test_a_lagging_tail_writes_nothing_when_another_moved_the_cursor() -> None:
    world = World()
    world.users(2)
    world.run(seconds=1)
    before = world.cursor()
    assert before is not None
    newer = world.users(1)[0]
    # Another tail (a stuck earlier invocation whose lease expired, say) moved the cursor meanwhile.
    assert CursorStore(world.table).save(
        Cursor(newer["id"], newer["created_at"], 1, 1), expected_event_id=before.event_id
    )
    stale = CursorStore(world.table)
    stale.load = lambda: before  # type: ignore[method-assign]  # it read the cursor before the other moved it
    report = world.tail(seconds=5, cursors=stale).run()
    assert report.status is TailStatus.SUPERSEDED
    cursor = world.cursor()
    assert cursor is not None and cursor.event_id == newer["id"]


def test_a_second_tail_finds_the_lease_taken_and_reads_nothing() -> None:
    world = World()
    assert Lease(world.table, LEASE_KEY, clock=world.clock).acquire(120)
    report = world.run(seconds=5)
    assert report.status is TailStatus.BUSY and world.api.requests == []


def test_a_refused_cursor_falls_back_to_time_minus_a_margin_queues_a_full_reconcile_and_never_skips() -> None:
    world = World(recovery_margin_seconds=300)
    world.users(2)
    world.run(seconds=1)
    cursor = world.cursor()
    assert cursor is not None and cursor.event_id is not None
    world.api.refused_cursors.add(cursor.event_id)
    world.users(1)
    report = world.run(seconds=5)
    assert report.recoveries == 1 and world.reconciles.reasons == ["events cursor refused"]
    # Once before the first read by time, once for the refused cursor: the key still sees the mirror (an expiry).
    assert world.environment.checks == 2
    fallback = next(r for r in world.api.requests if r["range_start"] and r is not world.api.requests[0])
    assert cursor.event_created_at is not None
    expected = parse_time(cursor.event_created_at).timestamp() - 300
    assert parse_time(fallback["range_start"]).timestamp() == pytest.approx(expected, abs=0.01)
    assert {e["id"] for e in world.api.events} <= set(world.queue.event_ids)
    recovered = world.cursor()
    assert recovered is not None and recovered.recovered_ms > 0 and recovered.event_id == world.api.events[-1]["id"]


def test_a_rejected_api_key_ends_the_invocation_after_one_request_without_raising() -> None:
    world = World()
    world.api.failures.append(AuthError("401 Unauthorized"))
    report = world.run(seconds=20)
    assert report.status is TailStatus.AUTH_FAILED and len(world.api.requests) == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_outages_back_off_and_retry_within_the_invocation(status: int) -> None:
    world = World(backoff_seconds=5)
    world.users(3)
    world.api.failures.extend([TransientError(status), TransientError(status)])
    report = world.run(seconds=15)
    assert report.status is TailStatus.OK and len(set(world.queue.event_ids)) == 3
    assert (report.rate_limited if status == 429 else report.unavailable) == 2


def test_when_sqs_refuses_a_page_the_cursor_stays_and_the_page_is_read_again() -> None:
    world = World(backoff_seconds=1)
    world.users(4)
    world.queue.fail_next = 1
    report = world.run(seconds=5)
    assert report.enqueue_failures == 1
    assert world.api.requests[1]["range_start"] == world.api.requests[0]["range_start"]  # the same read again
    assert len(set(world.queue.event_ids)) == 4


def test_an_idle_tail_records_its_poll_time_so_poll_age_stays_low() -> None:
    world = World(heartbeat_every_seconds=10, idle_poll_seconds=3)
    world.users(1)
    world.run(seconds=1)
    world.run(seconds=30)
    cursor = world.cursor()
    assert cursor is not None and world.clock.now - cursor.polled_ms / 1000 <= 13


def test_webhooks_never_move_the_cursor_so_an_event_held_back_at_read_time_is_not_lost() -> None:
    """The bug a public WorkOS integration shipped: moving the cursor to a webhook's event id. An older event that
    was held back (or whose webhook was lost) is then behind the cursor for ever. The same scenario against such a
    tail must lose it, or this test proves nothing."""
    assert _lost_events(cursor_moved_by_webhooks=False) == set()
    assert _lost_events(cursor_moved_by_webhooks=True) != set()


def _lost_events(*, cursor_moved_by_webhooks: bool) -> set[str]:
    world = World(idle_poll_seconds=2)
    world.users(1)
    world.run(seconds=1)
    older = world.api.add("dsync.user.updated", DIRECTORY, age_seconds=0)  # its webhook is lost
    newer = world.api.add("dsync.user.deleted", DIRECTORY, age_seconds=0)  # its webhook arrives
    if cursor_moved_by_webhooks:
        current = world.cursor()
        assert current is not None
        CursorStore(world.table).save(
            Cursor(newer["id"], newer["created_at"], 0, 0), expected_event_id=current.event_id
        )
    world.run(seconds=10)
    # The webhook that moved the cursor delivered `newer` itself; what matters is whether `older` reached the queue.
    return {older["id"]} - set(world.queue.event_ids)


def test_a_tail_that_has_read_nothing_yet_continues_from_its_first_start_not_a_new_one() -> None:
    """Found by the demo: with no event processed, each invocation recomputed `now - bootstrap`, so events created
    between two invocations could fall before the new start and be skipped."""
    world = World(bootstrap_hours=10 / 3600)  # a 10-second bootstrap window makes the gap easy to hit
    world.run(seconds=2)  # nothing there yet
    world.clock.sleep(30)  # between invocations (a cold start, a throttled minute)
    missed = world.users(1, age_seconds=25)[0]  # created after the first start, 15 s before the next one's
    world.run(seconds=2)
    assert missed["id"] in world.queue.event_ids


# --- Issue #17, defect 7: one event too large for SQS -----------------------------------------------------------


def test_a_non_ascii_event_is_queued_as_compact_utf8_not_ascii_escaped() -> None:
    """A 135 KB webhook body of CJK text (3 UTF-8 bytes a character) is 270 KB once ASCII-escaped (6 bytes a
    character): over SQS's 262,144 bytes. The tail must queue what WorkOS sent, not a body twice its size."""
    world = World()
    event = world.api.add("dsync.user.created", DIRECTORY, first_name="名" * 45_000)
    report = world.run(seconds=1)
    (message,) = world.queue.messages
    assert message.body.encode() == json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    assert 135_000 < len(message.body.encode()) < 136_000
    assert report.enqueue_failures == 0 and world.queue.refused_for_size == 0


def test_characters_sqs_refuses_stay_escaped_and_the_body_is_the_same_json() -> None:
    """SQS accepts #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF (SendMessage reference): a lone surrogate
    or U+FFFF must stay a JSON escape, or the body is not valid UTF-8 / is refused."""
    event = {
        "object": "event",
        "id": "event_01SQSCHARS",
        "event": "dsync.user.updated",
        "data": {"id": "user_1", "directory_id": DIRECTORY, "name": "a\ud800b\uffff\u0001é😀"},
        "created_at": "2026-12-01T00:00:00.000Z",
    }
    (message,) = queue_events([event], now_ms=0, source=EventSource.EVENTS_API)
    assert json.loads(message.body) == event
    assert "\\ud800" in message.body and "\\uffff" in message.body and "é😀" in message.body
    message.body.encode("utf-8")  # no lone surrogate left


def test_an_event_too_large_for_sqs_is_parked_and_the_cursor_moves_past_it() -> None:
    world = World()
    (before,) = world.users(1)
    huge = world.api.add("dsync.user.updated", DIRECTORY, custom_attributes={"blob": "x" * 300_000})
    after = world.users(2)
    report = world.run(seconds=10)
    assert world.queue.event_ids == [before["id"], after[0]["id"], after[1]["id"]]  # the rest of the page, in order
    cursor = world.cursor()
    assert cursor is not None and cursor.event_id == after[-1]["id"]
    assert report.events_parked == 1 and report.parked_event_ids == [huge["id"]] and report.enqueue_failures == 0
    reference = world.table.items[ItemKey(TAIL_PK, f"#PARKED#{huge['id']}")]
    assert {k: reference[k] for k in ("event_id", "event_type", "directory_id", "created_at")} == {
        "event_id": huge["id"],
        "event_type": "dsync.user.updated",
        "directory_id": DIRECTORY,
        "created_at": huge["created_at"],
    }
    assert reference["size_bytes"] > MAX_MESSAGE_BYTES and reference["limit_bytes"] == MAX_MESSAGE_BYTES
    assert "blob" not in json.dumps(reference, default=str)  # a reference, never the payload
    again = world.run(seconds=5)
    assert again.events_parked == 0 and len(world.queue.messages) == 3  # parked once, never re-read


def test_a_poll_counts_only_once_its_page_is_queued_so_poll_age_grows_while_sqs_refuses() -> None:
    world = World(backoff_seconds=1, heartbeat_every_seconds=1)
    world.users(1)
    world.run(seconds=1)
    world.users(2)
    world.queue.fail_next = 1_000_000  # SQS refuses every page from now on
    started = world.clock.now
    report = world.run(seconds=30)
    assert report.enqueue_failures > 1 and report.polls == 0 and report.last_read_at is None
    metrics = MetricsRecorder(service="dsync-tail")
    record_tail(metrics, report, now=world.clock.now)
    assert metrics.total("TailPollAgeSeconds") >= world.clock.now - started  # the alarm's input keeps growing
    assert metrics.total("TailEnqueueFailures") == report.enqueue_failures


# --- Issue #17: the time-range start, retention and the hold-back --------------------------------------------------


def test_an_idle_time_range_tail_moves_its_start_so_workos_never_refuses_it() -> None:
    """With no event ever read, the start stayed where bootstrap put it: 30 days later WorkOS refused it, and every
    later run failed on the same refused start."""
    world = World(bootstrap_hours=24)
    world.api.retention_days = 30
    for _ in range(4):
        report = world.run(seconds=5)
        assert report.status is TailStatus.OK
        start = parse_time(world.api.requests[-1]["range_start"]).timestamp()
        assert world.clock.now - start <= 70  # near now (the hold-back margin, 60 s), not 24 h back
        world.clock.sleep(10 * 86_400)  # no event for 40 days in all
    event = world.users(1, age_seconds=5)[0]
    world.run(seconds=5)
    assert world.queue.event_ids == [event["id"]]


def test_a_stored_start_past_retention_is_clamped_and_a_full_reconcile_covers_the_gap() -> None:
    """A time-range tail that did not run for longer than WorkOS keeps events: its stored start is refused. It reads
    from the oldest start WorkOS keeps instead, and queues the full reconcile that repairs what is gone."""
    world = World()
    world.api.retention_days = 30
    long_ago = iso(datetime.fromtimestamp(world.clock.now - 31 * 86_400, UTC))
    assert CursorStore(world.table).save(Cursor(None, None, 0, 0, read_from=long_ago), expected_event_id=None)
    (event,) = world.users(1)
    report = world.run(seconds=5)
    assert report.status is TailStatus.OK and world.queue.event_ids == [event["id"]]
    first = parse_time(world.api.requests[0]["range_start"]).timestamp()
    assert world.clock.now - 30 * 86_400 < first < world.clock.now - 29 * 86_400
    assert world.reconciles.reasons == ["events time range past retention"]
    assert report.reconciles_requested == 3


def test_a_time_range_read_never_moves_the_cursor_past_an_event_not_yet_visible() -> None:
    """WorkOS holds events back from cursor reads so that a later id cannot pass an older event committed late; it
    says nothing of time-range reads. A time-range read (bootstrap, recovery) that returns a newer event while an
    older one is not visible yet must not lose the older one."""
    world = World(idle_poll_seconds=1)
    world.run(seconds=1)  # bootstrap: nothing yet
    late = world.api.add("dsync.user.deleted", DIRECTORY, age_seconds=1, visible_after_seconds=2.5)
    newer = world.api.add("dsync.user.updated", DIRECTORY, age_seconds=0.5)
    world.run(seconds=0.5)  # one time-range read, while `late` is not visible yet
    assert world.queue.event_ids == [newer["id"]]
    world.run(seconds=70)  # past the hold-back margin (60 s)
    assert late["id"] in world.queue.event_ids
    cursor = world.cursor()
    assert cursor is not None and cursor.event_id == newer["id"] and cursor.recheck_until is None


def test_replay_lists_an_event_too_large_for_sqs_and_queues_the_rest_of_the_window() -> None:
    """The tail parks such an event; replay cannot queue it either, so it must not stop at it."""
    world = World()
    (before,) = world.users(1)
    huge = world.api.add("dsync.user.updated", DIRECTORY, custom_attributes={"blob": "x" * 300_000})
    (after,) = world.users(1)
    now = datetime.fromtimestamp(world.clock.now, UTC)
    report = replay(world.api, world.queue, since=now - timedelta(hours=1), until=now, now=now)
    assert world.queue.event_ids == [before["id"], after["id"]] and report.events_enqueued == 2
    ((too_large),) = report.too_large
    assert too_large["event_id"] == huge["id"] and too_large["directory_id"] == DIRECTORY
    assert isinstance(too_large["size_bytes"], int) and too_large["size_bytes"] > MAX_MESSAGE_BYTES


# --- Issue #17, interlock: a refused cursor under another environment's key ------------------------------------------


def test_a_refused_cursor_under_a_key_that_sees_none_of_the_mirror_stops_the_tail_with_an_alarm() -> None:
    """A key of another WorkOS environment: the cursor is unknown there (refused), and none of the mirror's
    directories is visible. That is an environment change, not an expiry: no full reconcile, the cursor stays."""
    world = World()
    world.users(2)
    world.run(seconds=1)
    before = world.cursor()
    assert before is not None and before.event_id is not None
    world.api.refused_cursors.add(before.event_id)
    world.environment.visible = False
    for _ in range(2):  # every later invocation stops the same way, and the alarm stays on
        requests = len(world.api.requests)
        report = world.run(seconds=20)
        assert report.status is TailStatus.ENVIRONMENT_CHANGED and report.error is not None
        assert WRONG_ENVIRONMENT in report.error
        assert len(world.api.requests) == requests + 1  # the refused read, nothing after it
        assert world.reconciles.reasons == [] and report.reconciles_requested == 0 and report.recoveries == 0
        assert world.cursor() == before  # left as it was: the right key continues from it
        metrics = MetricsRecorder(service="dsync-tail")
        record_tail(metrics, report, now=world.clock.now)
        assert metrics.total("TailEnvironmentChanged") == 1 and metrics.total("TailCursorRefused") == 0
    # The right key is back: the cursor is accepted again and the tail continues from it, nothing lost.
    world.api.refused_cursors.clear()
    world.environment.visible = True
    later = world.users(1)[0]
    report = world.run(seconds=5)
    assert report.status is TailStatus.OK and later["id"] in world.queue.event_ids
    assert world.reconciles.reasons == []


def test_when_the_key_check_fails_the_tail_backs_off_and_asks_again_before_deciding() -> None:
    world = World(backoff_seconds=1)
    world.users(1)
    world.run(seconds=1)
    cursor = world.cursor()
    assert cursor is not None and cursor.event_id is not None
    world.api.refused_cursors.add(cursor.event_id)
    world.users(1)  # the re-read by time moves the cursor to an event WorkOS knows
    world.environment.failures.append(TransientError(503))
    report = world.run(seconds=5)
    assert world.environment.checks == 3 and report.unavailable == 1  # bootstrap, the failed check, its retry
    assert report.recoveries == 1 and world.reconciles.reasons == ["events cursor refused"]


def test_a_rejected_key_during_the_key_check_is_an_auth_failure() -> None:
    world = World()
    world.users(1)
    world.run(seconds=1)
    cursor = world.cursor()
    assert cursor is not None and cursor.event_id is not None
    world.api.refused_cursors.add(cursor.event_id)
    world.environment.failures.append(AuthError("401"))
    report = world.run(seconds=5)
    assert report.status is TailStatus.AUTH_FAILED and world.reconciles.reasons == [] and world.cursor() == cursor


def test_a_tail_that_reads_by_time_checks_the_key_first_and_imports_nothing_of_another_environment() -> None:
    """Issue #17 review: with no event cursor (a first deployment, or after a recovery) the tail reads by time, and
    a time range has no cursor WorkOS could refuse: under another environment's key it read that environment's
    events, applied them, and the imported directories then counted as evidence for deleting the mirror's own. A
    page of directories the mirror does not hold is now queued only once the key's listing shows the mirror's."""
    world = World()
    world.users(3)
    world.environment.visible = False
    report = world.run(seconds=5)
    assert report.status is TailStatus.ENVIRONMENT_CHANGED and world.environment.checks == 1
    assert len(world.api.requests) == 1 and world.queue.event_ids == [] and world.reconciles.reasons == []


def test_the_key_is_checked_once_per_invocation_before_reading_by_time() -> None:
    world = World()
    world.users(3)
    world.run(seconds=5)
    assert world.environment.checks == 1 and len(world.queue.event_ids) == 3


class MirrorOfTheseEvents(FakeEnvironment):
    """The mirror holds the directories of the events WorkOS returns; WorkOS's list API is down."""

    def mirror_knows_any(self, directory_ids: Any) -> bool:
        return bool(directory_ids)

    def known_directories_visible(self) -> bool:
        raise TransientError(503)


def test_a_page_of_the_mirrors_own_directories_needs_no_listing_so_the_tail_works_while_the_list_api_is_down() -> None:
    world = World()
    world.environment = MirrorOfTheseEvents()
    world.users(3)
    report = world.run(seconds=5)
    assert report.status is TailStatus.OK and len(world.queue.event_ids) == 3
    assert world.environment.checks == 0 and report.unavailable == 0
