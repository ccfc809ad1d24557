"""The write rules per event type and per cascade, on the in-memory store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from shared.apply.applier import Applier
from shared.apply.ports import ApplyConfig, InboundMessage, MessageOutcome, Status
from shared.model import records, schema
from shared.read.reader import readable_state
from tests.support import dsync_events as ev
from tests.support.fake_store import FakeDeadLetters, FakeDirectoryStore, FakeWorkQueue

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


class Harness:
    def __init__(self) -> None:
        self.store = FakeDirectoryStore()
        self.work = FakeWorkQueue()
        self.dead = FakeDeadLetters()
        self.applier = Applier(
            store=self.store,
            work_queue=self.work,
            dead_letters=self.dead,
            config=ApplyConfig(tombstone_ttl_seconds=30 * 86_400),
            clock=lambda: NOW,
        )

    def apply(self, *documents: dict[str, Any]) -> list[MessageOutcome]:
        messages = [ev.message(document) for document in documents]
        outcomes = self.applier.apply(messages)
        return [outcomes[message.message_id] for message in messages]

    def apply_messages(self, messages: Sequence[InboundMessage]) -> dict[str, MessageOutcome]:
        return self.applier.apply(messages)

    def state(self, directory_id: str = ev.DIRECTORY) -> dict[str, Any]:
        return readable_state(directory_id, self.store.partition(directory_id))

    def item(self, key: records.ItemKey) -> dict[str, Any] | None:
        return self.store.items.get(key)


@pytest.fixture
def h() -> Harness:
    return Harness()


def statuses(outcomes: Sequence[MessageOutcome]) -> list[str]:
    return [outcome.status.value for outcome in outcomes]


def user_ids(state: dict[str, Any]) -> list[str]:
    return [user["id"] for user in state["users"]]


# --- Users ----------------------------------------------------------------------------------------------------------


def test_user_created_is_readable(h: Harness) -> None:
    [outcome] = h.apply(ev.event("dsync.user.created", ev.user(), created=0))
    assert outcome.status is Status.APPLIED
    [user] = h.state()["users"]
    assert user["email"] == "ada@example.com" and user["state"] == "active"
    assert user["custom_attributes"] == {"department": "Engineering"}


def test_duplicate_delivery_is_a_noop_without_writes(h: Harness) -> None:
    created = ev.event("dsync.user.created", ev.user(), created=0)
    h.apply(created)
    puts_before = h.store.calls["put_if_newer"]
    assert statuses(h.apply(created)) == ["noop"]
    assert h.store.calls["put_if_newer"] == puts_before  # the batched read already showed it was not newer


def test_stale_update_never_overwrites_a_newer_one(h: Harness) -> None:
    newer = ev.event("dsync.user.updated", ev.user(updated=20, first_name="Augusta"), created=20)
    older = ev.event("dsync.user.updated", ev.user(updated=10, first_name="Stale"), created=10)
    assert statuses(h.apply(newer)) == ["applied"]
    assert statuses(h.apply(older)) == ["noop"]
    assert h.state()["users"][0]["first_name"] == "Augusta"


def test_same_batch_keeps_the_newest_version(h: Harness) -> None:
    outcomes = h.apply(
        ev.event("dsync.user.updated", ev.user(updated=20, first_name="Newest"), created=20),
        ev.event("dsync.user.created", ev.user(updated=0), created=0),
        ev.event("dsync.user.updated", ev.user(updated=10, first_name="Middle"), created=10),
    )
    assert h.state()["users"][0]["first_name"] == "Newest"
    # The user once, the directory stub, and the directory's progress (the newest event processed).
    assert h.store.calls["put_if_newer"] == 3
    progress = h.item(records.applied_key(ev.DIRECTORY))
    assert progress is not None and progress["created_at"] == ev.event("x", {}, created=20)["created_at"]
    assert [o.status for o in outcomes].count(Status.APPLIED) >= 1


def test_inactive_users_are_kept_suspended_and_can_be_reactivated(h: Harness) -> None:
    h.apply(ev.event("dsync.user.created", ev.user(), created=0))
    h.apply(ev.event("dsync.user.updated", ev.user(updated=10, state="inactive"), created=10))
    assert h.state()["users"][0]["state"] == "inactive"
    h.apply(ev.event("dsync.user.updated", ev.user(updated=20, state="active"), created=20))
    assert h.state()["users"][0]["state"] == "active"


def test_user_deleted_erases_personal_data_and_keeps_an_expiring_tombstone(h: Harness) -> None:
    h.apply(ev.event("dsync.user.created", ev.user(), created=0))
    assert statuses(h.apply(ev.event("dsync.user.deleted", ev.user(updated=0), created=30))) == ["applied"]
    tombstone = h.item(records.user_key(ev.DIRECTORY, "directory_user_1"))
    assert tombstone is not None
    assert set(tombstone) == {"pk", "sk", "vkey", "deleted", "kind", "id", "directory_id", "expires_at"}
    assert tombstone["deleted"] is True
    assert tombstone["expires_at"] == int(NOW) + 30 * 86_400
    assert "ada" not in json.dumps(tombstone).lower()
    assert h.state()["users"] == []


def test_stale_update_after_delete_cannot_resurrect(h: Harness) -> None:
    h.apply(ev.event("dsync.user.deleted", ev.user(updated=10), created=30))
    for stale in (
        ev.event("dsync.user.updated", ev.user(updated=10), created=10),
        ev.event("dsync.user.created", ev.user(updated=0), created=0),
        ev.membership("dsync.group.user_added", created=20, user_data=ev.user(updated=10)),
    ):
        h.apply(stale)
    state = h.state()
    assert state["users"] == [] and state["memberships"] == []


def test_delete_wins_a_timestamp_tie(h: Harness) -> None:
    h.apply(ev.event("dsync.user.deleted", ev.user(updated=10), created=10))
    h.apply(ev.event("dsync.user.updated", ev.user(updated=10), created=10))
    assert h.state()["users"] == []


# --- Groups and memberships --------------------------------------------------------------------------------------


def test_membership_before_user_and_group_creates_all_three(h: Harness) -> None:
    [outcome] = h.apply(ev.membership("dsync.group.user_added", created=5))
    assert outcome.status is Status.APPLIED
    state = h.state()
    assert user_ids(state) == ["directory_user_1"]
    assert [g["id"] for g in state["groups"]] == ["directory_group_1"]
    assert state["memberships"] == [{"group_id": "directory_group_1", "user_id": "directory_user_1"}]
    # And the later, older user.created changes nothing.
    assert statuses(h.apply(ev.event("dsync.user.created", ev.user(), created=0))) == ["noop"]


def test_membership_removal_leaves_a_tombstone_that_beats_a_stale_add(h: Harness) -> None:
    h.apply(ev.membership("dsync.group.user_removed", created=20))
    assert statuses(h.apply(ev.membership("dsync.group.user_added", created=10))) == ["noop"]
    assert h.state()["memberships"] == []
    assert statuses(h.apply(ev.membership("dsync.group.user_added", created=30))) == ["applied"]
    assert len(h.state()["memberships"]) == 1


def test_group_rename_is_applied_by_version(h: Harness) -> None:
    h.apply(ev.event("dsync.group.created", ev.group(), created=0))
    h.apply(ev.event("dsync.group.updated", ev.group(updated=9, name="Platform"), created=9))
    h.apply(ev.event("dsync.group.updated", ev.group(updated=5, name="Stale"), created=5))
    assert h.state()["groups"][0]["name"] == "Platform"


def test_group_deleted_ends_its_memberships(h: Harness) -> None:
    h.apply(
        ev.membership("dsync.group.user_added", created=1, user_data=ev.user("u1")),
        ev.membership("dsync.group.user_added", created=2, user_data=ev.user("u2")),
    )
    [outcome] = h.apply(ev.event("dsync.group.deleted", ev.group(), created=10))
    assert outcome.status is Status.APPLIED and outcome.writes == 3  # group tombstone + two memberships
    for user_id in ("u1", "u2"):
        row = h.item(records.membership_key(ev.DIRECTORY, "directory_group_1", user_id))
        assert row is not None and row["deleted"] is True and "member_key" not in row
    # A stale add delivered afterwards brings nothing back.
    h.apply(ev.membership("dsync.group.user_added", created=5, user_data=ev.user("u3")))
    state = h.state()
    assert state["groups"] == [] and state["memberships"] == []
    assert h.item(records.membership_key(ev.DIRECTORY, "directory_group_1", "u3")) is None


def test_user_deleted_ends_the_users_memberships(h: Harness) -> None:
    h.apply(
        ev.membership("dsync.group.user_added", created=1, group_data=ev.group("g1")),
        ev.membership("dsync.group.user_added", created=2, group_data=ev.group("g2")),
    )
    [outcome] = h.apply(ev.event("dsync.user.deleted", ev.user(), created=10))
    assert outcome.writes == 3
    assert h.state()["memberships"] == []
    assert h.store.live_user_memberships(ev.DIRECTORY, "directory_user_1") == []


def test_cascade_is_finished_by_redelivery_after_a_failure(h: Harness) -> None:
    h.apply(ev.membership("dsync.group.user_added", created=1))
    deleted = ev.event("dsync.group.deleted", ev.group(), created=10)
    h.store.fail_puts_for = {schema.MEMBER_PREFIX}
    [first] = h.apply(deleted)
    assert first.status is Status.RETRY  # group tombstoned, membership not yet ended
    h.store.fail_puts_for = set()
    [second] = h.apply(deleted)  # the redelivery: the tombstone is a no-op, the cascade completes
    assert second.status is Status.APPLIED
    assert h.store.live_group_memberships(ev.DIRECTORY, "directory_group_1") == []


# --- Directories -------------------------------------------------------------------------------------------------


def test_activation_registers_the_directory_and_starts_an_initial_sync_once(h: Harness) -> None:
    activated = ev.event("dsync.activated", ev.directory(), created=0)
    assert statuses(h.apply(activated)) == ["applied"]
    assert h.state()["directory"]["state"] == "active"
    assert h.work.jobs == [
        {
            "kind": "reconcile",
            "directory_id": ev.DIRECTORY,
            "reason": "dsync.activated",
            "requested_at_ms": int(NOW * 1000),
        }
    ]
    h.apply(activated)  # a duplicate does not trigger another sync
    assert len(h.work.jobs) == 1


def test_events_for_an_unknown_directory_register_a_stub(h: Harness) -> None:
    h.apply(ev.event("dsync.user.created", ev.user(), created=0))
    stub = h.state()["directory"]
    assert stub["id"] == ev.DIRECTORY and stub["organization_id"] == ev.ORG and stub["state"] is None
    h.apply(ev.event("dsync.activated", ev.directory(), created=1))  # the late activation fills it in
    assert h.state()["directory"]["state"] == "active"


def test_directory_deleted_hides_everything_and_schedules_a_purge(h: Harness) -> None:
    h.apply(
        ev.event("dsync.activated", ev.directory(), created=0),
        ev.membership("dsync.group.user_added", created=1),
    )
    h.work.jobs.clear()
    [outcome] = h.apply(ev.event("dsync.deleted", ev.directory(), created=50))
    assert outcome.status is Status.APPLIED
    assert h.state() == {"directory": None, "users": [], "groups": [], "memberships": []}
    assert [(job["kind"], job["directory_id"], job["reason"]) for job in h.work.jobs] == [
        ("purge", ev.DIRECTORY, "dsync.deleted")
    ]


def test_stale_events_for_a_deleted_directory_change_nothing(h: Harness) -> None:
    h.apply(ev.event("dsync.deleted", ev.directory(), created=50))
    before = dict(h.store.items)
    puts = h.store.calls["put_if_newer"]
    outcomes = h.apply(
        ev.event("dsync.activated", ev.directory(), created=0),
        ev.event("dsync.user.created", ev.user(), created=1),
        ev.event("dsync.group.created", ev.group(), created=2),
        ev.membership("dsync.group.user_added", created=3),
        ev.event("dsync.user.deleted", ev.user(), created=4),
    )
    assert statuses(outcomes) == ["noop"] * 5
    assert h.store.items == before and h.store.calls["put_if_newer"] == puts


def test_deletion_in_the_same_batch_wins_over_everything_before_it(h: Harness) -> None:
    h.apply(
        ev.event("dsync.user.created", ev.user(), created=1),
        ev.event("dsync.deleted", ev.directory(), created=50),
        ev.membership("dsync.group.user_added", created=2),
    )
    assert h.state() == {"directory": None, "users": [], "groups": [], "memberships": []}
    assert set(h.store.items) == {records.directory_key(ev.DIRECTORY)}


# --- Robustness --------------------------------------------------------------------------------------------------


def test_unknown_event_types_are_acknowledged_and_counted(h: Harness) -> None:
    future = ev.event("dsync.something.new", {"object": "thing", "directory_id": ev.DIRECTORY}, created=0)
    [outcome] = h.apply(future)
    assert (outcome.status, outcome.event_type) == (Status.IGNORED, "dsync.something.new")
    assert h.store.items == {}


def token(token_id: str = "directory_token_1") -> dict[str, Any]:
    return {
        "object": "directory_token",
        "id": token_id,
        "directory_id": ev.DIRECTORY,
        "organization_id": ev.ORG,
        "token_suffix": "a1b2",
        "created_at": ev.at(0),
    }


def test_token_events_keep_the_active_tokens_whatever_their_order(h: Harness) -> None:
    created, revoked = (
        ev.event("dsync.token.created", token(), created=1),
        ev.event("dsync.token.revoked", token(), created=5),
    )
    kept = ev.event("dsync.token.created", token("directory_token_2"), created=3)
    assert statuses(h.apply(revoked, kept)) == ["applied", "applied"]
    assert statuses(h.apply(created)) == ["noop"]  # the stale creation cannot bring the revoked token back
    revoked_item = h.item(records.token_key(ev.DIRECTORY, "directory_token_1"))
    assert revoked_item is not None and revoked_item["deleted"] and revoked_item["token_suffix"] == "a1b2"
    assert h.state()["directory"]["tokens"] == [
        {"id": "directory_token_2", "token_suffix": "a1b2", "created_at": ev.at(0)}
    ]
    assert h.dead.parked == []


def test_deactivation_marks_the_directory_inactive_and_keeps_its_users(h: Harness) -> None:
    h.apply(
        ev.event("dsync.activated", ev.directory(), created=0), ev.event("dsync.user.created", ev.user(), created=1)
    )
    h.work.jobs.clear()
    deactivated = ev.event("dsync.deactivated", ev.directory(updated=9, state="inactive"), created=9)
    stale_activation = ev.event("dsync.activated", ev.directory(updated=2), created=2)
    assert statuses(h.apply(deactivated)) == ["applied"]
    assert statuses(h.apply(stale_activation)) == ["noop"]
    state = h.state()
    assert state["directory"]["state"] == "inactive"
    assert user_ids(state) == ["directory_user_1"]
    assert h.work.jobs == []  # no purge and no initial sync


@pytest.mark.parametrize(
    "body",
    ["not json", "{}", json.dumps(ev.event("dsync.user.created", {"id": "u"}, created=0))],
)
def test_events_that_can_never_apply_go_to_the_dead_letter_queue(h: Harness, body: str) -> None:
    message = InboundMessage(message_id="m1", body=body, group_id=ev.DIRECTORY, deduplication_id="event_x")
    outcome = h.apply_messages([message])["m1"]
    assert outcome.status is Status.FORWARDED
    [parked] = h.dead.parked
    assert parked["body"] == body and parked["group_id"] == ev.DIRECTORY and parked["reason"]


def test_oversized_objects_are_dead_lettered_not_retried(h: Harness) -> None:
    huge = ev.user(custom_attributes={"blob": "x" * 400_000})
    [outcome] = h.apply(ev.event("dsync.user.created", huge, created=0))
    assert outcome.status is Status.FORWARDED and "bytes" in (outcome.reason or "")


def test_oversized_raw_attributes_are_dropped_to_fit(h: Harness) -> None:
    big = ev.user(raw_attributes={"blob": "x" * 400_000})
    assert statuses(h.apply(ev.event("dsync.user.created", big, created=0))) == ["applied"]


def test_a_transient_failure_retries_only_the_affected_message(h: Harness) -> None:
    h.store.fail_puts_for = {schema.GROUP_PREFIX}
    outcomes = h.apply(
        ev.event("dsync.user.created", ev.user("u1"), created=0),
        ev.event("dsync.group.created", ev.group(), created=0),
    )
    assert statuses(outcomes) == ["applied", "retry"]


def test_purge_job_failure_retries_the_deletion(h: Harness) -> None:
    h.work.fail = True
    [outcome] = h.apply(ev.event("dsync.deleted", ev.directory(), created=5))
    assert outcome.status is Status.RETRY


def test_naive_envelope_timestamps_are_treated_as_utc(h: Harness) -> None:
    document = ev.membership("dsync.group.user_added", created=0)
    document["created_at"] = "2026-01-15 12:00:10.000"
    h.apply(document)
    h.apply(ev.membership("dsync.group.user_removed", created=5))  # 12:00:05Z is older than 12:00:10 (naive, UTC)
    assert len(h.state()["memberships"]) == 1


def test_unknown_fields_and_null_email_are_kept(h: Harness) -> None:
    h.apply(ev.event("dsync.user.created", ev.user(email=None, future_field={"a": 1}), created=0))
    item = h.item(records.user_key(ev.DIRECTORY, "directory_user_1"))
    assert item is not None and "email_key" not in item
    assert json.loads(item["data"])["future_field"] == {"a": 1}
    assert h.state()["users"][0]["email"] is None


def test_previous_attributes_are_not_stored(h: Harness) -> None:
    h.apply(ev.event("dsync.user.updated", ev.user(previous_attributes={"first_name": "Old"}), created=0))
    item = h.item(records.user_key(ev.DIRECTORY, "directory_user_1"))
    assert item is not None and "previous_attributes" not in json.loads(item["data"])


def test_each_batch_records_the_newest_event_processed_per_directory_and_never_goes_back(h: Harness) -> None:
    h.apply(
        ev.event("dsync.user.created", ev.user(), created=5), ev.event("dsync.group.created", ev.group(), created=7)
    )
    progress = h.item(records.applied_key(ev.DIRECTORY))
    assert progress is not None and progress["event_type"] == "dsync.group.created"
    puts = h.store.calls["put_if_newer"]
    h.apply(ev.event("dsync.user.created", ev.user(), created=5))  # a late duplicate: no write at all
    assert h.store.calls["put_if_newer"] == puts
    assert h.item(records.applied_key(ev.DIRECTORY)) == progress
