"""The smoke test (`shared.model.smoke`): a marked event travels the real path, signature and queue, and is told
apart from WorkOS's events only after its signature is verified."""

from __future__ import annotations

import json

import pytest

from functions.ingest.handler import handle
from shared.model.smoke import SMOKE_TEST_DIRECTORY_ID, SMOKE_TEST_EVENT_PREFIX
from shared.observability import MetricsRecorder
from tests.support.webhooks import compact, signed_event, user_created_event
from tests.unit.ingest.test_ingest import FakeQueue, deps, ingest

pytestmark = pytest.mark.unit

SMOKE = user_created_event(event_id=SMOKE_TEST_EVENT_PREFIX + "01A", directory_id=SMOKE_TEST_DIRECTORY_ID)


def test_a_signed_smoke_test_is_queued_like_any_event_and_marked() -> None:
    result, queue = ingest(compact(SMOKE))
    assert result.status == 200
    assert result.smoke_test is True
    assert result.response_body()["status"] == "queued"
    assert "smoke_test" in result.response_body()
    [queued] = queue.sent
    assert queued.smoke_test is True
    assert queued.directory_id == SMOKE_TEST_DIRECTORY_ID


def test_an_unsigned_smoke_test_is_refused_like_any_event() -> None:
    result, queue = ingest(compact(SMOKE), secret="whsec_wrong")
    assert result.status == 401
    assert queue.sent == []


@pytest.mark.parametrize(
    ("event_id", "directory_id"),
    [(SMOKE_TEST_EVENT_PREFIX + "01A", "directory_01D"), ("event_01A", SMOKE_TEST_DIRECTORY_ID)],
)
def test_a_half_marked_event_is_neither_and_is_refused(event_id: str, directory_id: str) -> None:
    result, queue = ingest(compact(user_created_event(event_id=event_id, directory_id=directory_id)))
    assert result.status == 400
    assert queue.sent == []


def test_a_workos_event_is_not_a_smoke_test() -> None:
    result, queue = ingest(compact(user_created_event(event_id="event_01A", directory_id="directory_01D")))
    assert result.smoke_test is False
    assert queue.sent[0].smoke_test is False


def test_the_handler_counts_smoke_tests() -> None:
    metrics = MetricsRecorder(service="t")
    response = handle(signed_event(SMOKE), deps(FakeQueue()), metrics)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["status"] == "queued"
    assert metrics.total("SmokeTestsReceived") == 1
    assert metrics.total("WebhooksAccepted") == 1
