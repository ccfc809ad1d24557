"""Directory health as each reconcile wave records it: state, since when, WorkOS's counts against the mirror's."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.model import records, schema
from shared.model.records import ItemKey, Record
from shared.reconcile.health import HealthRecorder

pytestmark = pytest.mark.unit

HOUR = 3600.0


class FakeHealthTable:
    def __init__(self) -> None:
        self.items: dict[ItemKey, dict[str, Any]] = {}
        self.counts: dict[tuple[str, str], dict[str, int]] = {}
        self.writes = 0
        self.queries = 0

    def batch_get(self, keys: Collection[ItemKey]) -> list[dict[str, Any]]:
        return [self.items[key] for key in keys if key in self.items]

    def put_if_newer(self, record: Record) -> bool:
        stored = self.items.get(record.key)
        if stored is not None and stored[schema.VERSION_ATTRIBUTE] >= record.vkey:
            return False
        self.items[record.key] = record.item()
        self.writes += 1
        return True

    def count_live(self, directory_id: str, prefix: str) -> dict[str, int]:
        self.queries += 1
        return self.counts.get((directory_id, prefix), {"live": 0, "active": 0, "inactive": 0})


def listed(state: str = "linked", *, active: int = 2, inactive: int = 0, groups: int = 1) -> dict[str, Any]:
    return {
        "id": "directory_1",
        "organization_id": "org_1",
        "state": "active" if state == "linked" else "inactive",
        "api_state": state,
        "metadata": {"users": {"active": active, "inactive": inactive}, "groups": groups},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table() -> FakeHealthTable:
    table = FakeHealthTable()
    table.counts[("directory_1", schema.USER_PREFIX)] = {"live": 2, "active": 2, "inactive": 0}
    table.counts[("directory_1", schema.GROUP_PREFIX)] = {"live": 1, "active": 1, "inactive": 0}
    return table


def test_the_first_wave_records_state_and_counts_and_later_waves_write_only_changes(table: FakeHealthTable) -> None:
    clock = Clock()
    recorder = HealthRecorder(table, clock=clock)
    report = recorder.record([listed()])
    item = table.items[records.health_key("directory_1")]
    assert (item["state"], item["users_active"], item["groups"], report.changed) == ("linked", 2, 1, 1)
    clock.now += HOUR
    assert recorder.record([listed()]).changed == 0
    assert table.writes == 1  # an unchanged directory costs a read, not a write (nor a stream record)
    clock.now += HOUR
    recorder.record([listed(active=3)])
    assert table.items[records.health_key("directory_1")]["users_active"] == 3


def test_since_is_kept_while_the_state_holds_and_the_alarm_counts_only_the_long_unhealthy(
    table: FakeHealthTable,
) -> None:
    clock = Clock()
    recorder = HealthRecorder(table, clock=clock, unhealthy_after_seconds=HOUR)
    recorder.record([listed()])
    clock.now += 600
    broken = recorder.record([listed("invalid_credentials")])
    assert [check.state for check in broken.unhealthy] == ["invalid_credentials"]
    assert broken.unhealthy_too_long == []
    clock.now += HOUR - 1
    assert recorder.record([listed("invalid_credentials")]).unhealthy_too_long == []
    clock.now += 1
    still = recorder.record([listed("invalid_credentials")])
    assert [check.directory_id for check in still.unhealthy_too_long] == ["directory_1"]
    assert still.as_dict()["unhealthy_too_long"] == ["directory_1"]
    clock.now += 60
    assert recorder.record([listed()]).unhealthy == []


@pytest.mark.parametrize("state", ["validating", "unlinked", "invalid_credentials"])
def test_states_that_need_the_customer_are_unhealthy(table: FakeHealthTable, state: str) -> None:
    assert len(HealthRecorder(table).record([listed(state)]).unhealthy) == 1


def test_deleting_and_linked_are_not_unhealthy(table: FakeHealthTable) -> None:
    assert HealthRecorder(table).record([listed("deleting")]).unhealthy == []


def test_counts_that_differ_from_the_mirror_are_a_drift_hint(table: FakeHealthTable) -> None:
    report = HealthRecorder(table).record([listed(active=5)])
    [mismatch] = report.count_mismatches
    assert (mismatch.workos.users_active, mismatch.mirror.users_active) == (5, 2)
    assert report.as_dict()["count_mismatches"]["directory_1"]["mirror"] == {
        "users_active": 2,
        "users_inactive": 0,
        "groups": 1,
    }
    assert HealthRecorder(table).record([listed()]).count_mismatches == []


def test_a_listing_without_metadata_gives_no_hint(table: FakeHealthTable) -> None:
    directory = listed()
    del directory["metadata"]
    report = HealthRecorder(table).record([directory])
    assert report.count_mismatches == []
    assert report.checks[0].workos.users_active is None


def test_a_late_wave_never_replaces_a_newer_observation(table: FakeHealthTable) -> None:
    clock = Clock()
    HealthRecorder(table, clock=clock).record([listed("invalid_credentials")])
    clock.now -= 60  # an overlapping wave that listed earlier writes later
    HealthRecorder(table, clock=clock).record([listed()])
    assert table.items[records.health_key("directory_1")]["state"] == "invalid_credentials"


def test_the_mirrors_counts_come_from_the_counter_item_in_the_same_batched_read(table: FakeHealthTable) -> None:
    """One BatchGetItem per 50 directories instead of two partition queries each (10 million items read per wave
    at 10,000 directories of 1,000 users); the queries remain only for a counter without a basis yet."""
    counter = records.counts_item(
        "directory_1", {"users_active": 7, "groups": 1}, seq=1, last_token=None, reconciled_at=datetime.now(UTC)
    )
    table.items[records.counts_key("directory_1")] = counter
    [mismatch] = HealthRecorder(table).record([listed()]).count_mismatches
    assert (mismatch.mirror.users_active, table.queries) == (7, 0)
    table.items[records.counts_key("directory_1")] = {**counter, "basis": None}  # mirrored before the counters
    assert HealthRecorder(table).record([listed()]).count_mismatches == [] and table.queries == 2
