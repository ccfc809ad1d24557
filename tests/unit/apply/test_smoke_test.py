"""The applier's side of the smoke test (`shared.model.smoke`): acknowledged, counted, remembered, and nothing of
the mirror written, so nothing is published and no reconcile ever deletes a phantom tenant."""

from __future__ import annotations

from typing import Any

import pytest

from shared.apply.ports import Status
from shared.apply.smoke import SMOKE_TEST_KEY
from shared.model.smoke import SMOKE_TEST_DIRECTORY_ID, SMOKE_TEST_EVENT_PREFIX
from tests.support import dsync_events as ev
from tests.unit.apply.test_apply import Harness

pytestmark = pytest.mark.unit


def smoke(event_id: str = "01A", *, seconds: int = 0) -> dict[str, Any]:
    user = ev.user(directory_id=SMOKE_TEST_DIRECTORY_ID, updated=seconds)
    return ev.event("dsync.user.created", user, created=seconds, event_id=SMOKE_TEST_EVENT_PREFIX + event_id)


def test_a_smoke_test_is_acknowledged_and_writes_nothing_of_the_mirror() -> None:
    h = Harness()
    (outcome,) = h.apply(smoke())
    assert outcome.status is Status.SMOKE_TEST
    assert list(h.store.partition(SMOKE_TEST_DIRECTORY_ID)) == []  # no directory, user, progress or tombstone
    assert h.work.jobs == []  # no initial sync, no purge
    assert h.dead.parked == []
    remembered = h.item(SMOKE_TEST_KEY)
    assert remembered is not None
    assert remembered["event_id"] == SMOKE_TEST_EVENT_PREFIX + "01A"


def test_the_last_smoke_test_is_remembered_by_the_max_register() -> None:
    h = Harness()
    h.apply(smoke("new", seconds=60))
    h.apply(smoke("old", seconds=0))  # a late retry of an older one does not hide the newer
    remembered = h.item(SMOKE_TEST_KEY)
    assert remembered is not None
    assert remembered["event_id"] == SMOKE_TEST_EVENT_PREFIX + "new"


def test_a_half_marked_event_is_parked_not_applied() -> None:
    h = Harness()
    # a marked id in a real directory: neither a smoke test nor a WorkOS event
    document = ev.event("dsync.user.created", ev.user(), created=0, event_id=SMOKE_TEST_EVENT_PREFIX + "01A")
    (outcome,) = h.apply(document)
    assert outcome.status is Status.FORWARDED
    assert list(h.store.partition(ev.DIRECTORY)) == []
