"""The fake WorkOS serves `GET /events` as WorkOS does (see its module docstring for the deliberate choices)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dsync.fake_workos import DirectoryModel, FakeWorkOS
from shared.model.events import DSYNC_EVENT_TYPES

pytestmark = pytest.mark.unit
TYPES = ",".join(DSYNC_EVENT_TYPES)


class Clock:
    """WorkOS's clock; changes are stamped `model_lag` behind it (10 minutes old unless a test says otherwise)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self.model_lag = timedelta(minutes=10)

    def model_time(self) -> datetime:
        return self.now - self.model_lag

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeWorkOS:
    model = DirectoryModel(seed=3, clock=clock.model_time)
    directory_id = model.create_directory(organization_id="org_01EVENTS")["id"]
    for index in range(5):
        model.create_user(directory_id, first_name=f"U{index}", last_name="X", email=f"u{index}@example.com")
    return FakeWorkOS(model, events_hold_back_seconds=3.0, events_clock=clock)


def get(fake: FakeWorkOS, query: str) -> tuple[int, dict[str, Any]]:
    response = fake.handle("GET", f"/events?{query}", {"Authorization": f"Bearer {fake.api_key}"})
    return response.status, json.loads(response.body)


def test_events_is_required(fake: FakeWorkOS) -> None:
    status, body = get(fake, "limit=10")
    assert status == 422 and body["errors"] == [{"field": "events", "code": "required"}]


def test_after_and_range_start_are_mutually_exclusive(fake: FakeWorkOS) -> None:
    first = fake.model.events[0]["id"]
    status, _ = get(fake, f"events={TYPES}&after={first}&range_start=2026-01-01T00:00:00.000Z")
    assert status == 422


def test_oldest_first_whatever_order_says(fake: FakeWorkOS) -> None:
    for order in ("asc", "desc", "normal"):
        status, body = get(fake, f"events={TYPES}&order={order}&range_start=2020-01-01T00:00:00.000Z")
        assert status == 200
        assert [event["id"] for event in body["data"]] == [event["id"] for event in fake.model.events]


def test_pages_follow_the_cursor_and_filter_by_type(fake: FakeWorkOS) -> None:
    status, body = get(fake, "events=dsync.user.created&limit=2&range_start=2020-01-01T00:00:00.000Z")
    assert status == 200 and [e["event"] for e in body["data"]] == ["dsync.user.created"] * 2
    status, second = get(fake, f"events=dsync.user.created&limit=10&after={body['list_metadata']['after']}")
    assert len(second["data"]) == 3


def test_cursor_reads_hold_new_events_back_for_a_few_seconds(fake: FakeWorkOS, clock: Clock) -> None:
    directory_id = fake.model.directory_ids()[0]
    last = fake.model.events[-1]["id"]
    clock.model_lag = timedelta(0)  # the next change happens now
    fake.model.create_user(directory_id, first_name="New", last_name="X", email="new@example.com")
    assert get(fake, f"events={TYPES}&after={last}")[1]["data"] == []  # held back
    assert len(get(fake, f"events={TYPES}&range_start=2020-01-01T00:00:00.000Z")[1]["data"]) == 7  # time reads: not
    clock.now += timedelta(seconds=3.5)
    assert len(get(fake, f"events={TYPES}&after={last}")[1]["data"]) == 1


def test_an_unknown_or_expired_cursor_is_refused(fake: FakeWorkOS, clock: Clock) -> None:
    assert get(fake, f"events={TYPES}&after=event_01ARZ3NDEKTSV4RRFFQ69G5FAV")[0] == 422
    first = fake.model.events[0]["id"]
    clock.now += timedelta(days=31)
    status, body = get(fake, f"events={TYPES}&after={first}")
    assert status == 422 and "retention" in json.dumps(body)


def test_range_end_and_timestamps_need_a_z_suffix(fake: FakeWorkOS) -> None:
    assert get(fake, f"events={TYPES}&range_start=2026-01-01T00:00:00+00:00")[0] == 422
    status, body = get(fake, f"events={TYPES}&range_start=2020-01-01T00:00:00.000Z&range_end=2020-01-02T00:00:00.000Z")
    assert status == 200 and body["data"] == []


def test_an_outage_answers_the_list_endpoints_but_not_events(fake: FakeWorkOS) -> None:
    fake.set_outage(503)
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    assert fake.handle("GET", "/directory_users?directory=x", headers).status == 503
    assert fake.handle("GET", "/directories", headers).status == 503
    assert get(fake, f"events={TYPES}&range_start=2020-01-01T00:00:00.000Z")[0] == 200
    fake.set_outage(None)
    assert fake.handle("GET", "/directories", headers).status == 200
