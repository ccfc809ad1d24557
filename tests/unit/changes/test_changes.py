"""Change events derived from stream records of real table items: every transition of the catalogue."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.changes import derive as changes
from shared.changes.derive import ChangeEvent, MalformedStreamRecordError, changes_from_stream_record
from shared.model import records
from shared.model.events import DirectoryToken
from tests.support import dsync_events as ev
from tests.support import streams as s

pytestmark = pytest.mark.unit

PERSONAL = ("Ada", "Lovelace", "example.com", "Engineering", "Acme Okta")


def derive(record: dict[str, Any]) -> list[ChangeEvent]:
    events = changes_from_stream_record(record)
    for event in events:
        json.dumps(event.detail, allow_nan=False)  # JSON-serialisable, always
        assert event.detail["event_id"] == event.event_id
        assert event.detail["directory_id"] == event.directory_id == ev.DIRECTORY
    return events


def types(events: list[ChangeEvent]) -> list[str]:
    return [event.detail_type for event in events]


def assert_no_personal_data(event: ChangeEvent) -> None:
    text = json.dumps(event.detail)
    for fragment in PERSONAL:
        assert fragment not in text, f"{fragment!r} leaked into {event.detail_type}"


# --- Users ----------------------------------------------------------------------------------------------------------


def test_new_user_is_provisioned_with_its_readable_projection_and_envelope() -> None:
    user = s.user_item()
    record = s.insert(user, created_epoch=1_768_478_401.5)
    [event] = derive(record)
    assert event.detail_type == "user.provisioned"
    assert event.subject_id == "directory_user_1"
    assert event.organization_id == ev.ORG
    assert event.detail["user"] == records.readable_user(user.item())
    assert event.detail["user"]["custom_attributes"] == {"department": "Engineering"}
    assert event.detail["version"] == user.vkey
    assert event.detail["occurred_at"] == "2026-01-15T12:00:01.500Z"
    assert event.detail["organization_id"] == ev.ORG
    assert set(event.detail) == {"event_id", "directory_id", "organization_id", "version", "occurred_at", "user"}


def test_user_recreated_after_deletion_is_provisioned_again() -> None:
    assert types(derive(s.modify(s.user_tombstone(deleted=10), s.user_item(updated=20)))) == ["user.provisioned"]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("active", "inactive", "user.suspended"),
        ("active", "suspended", "user.suspended"),
        ("inactive", "active", "user.reactivated"),
        ("suspended", "active", "user.reactivated"),
    ],
)
def test_state_transitions(before: str, after: str, expected: str) -> None:
    [event] = derive(s.modify(s.user_item(state=before), s.user_item(updated=10, state=after)))
    assert event.detail_type == expected
    assert event.detail["user"]["state"] == after
    assert "changed" not in event.detail


def test_other_state_changes_are_updates() -> None:
    [event] = derive(s.modify(s.user_item(state="inactive"), s.user_item(updated=10, state="suspended")))
    assert event.detail_type == "user.updated"
    assert event.detail["changed"] == ["state"]


def test_state_change_with_other_changes_emits_both_events() -> None:
    old = s.user_item()
    new = s.user_item(updated=10, state="inactive", first_name="Augusta")
    suspended, updated = derive(s.modify(old, new))
    assert (suspended.detail_type, updated.detail_type) == ("user.suspended", "user.updated")
    assert updated.detail["changed"] == ["first_name"]
    assert suspended.detail["user"]["first_name"] == updated.detail["user"]["first_name"] == "Augusta"
    assert suspended.event_id != updated.event_id


def test_updated_lists_changed_readable_fields_sorted() -> None:
    old = s.user_item()
    new = s.user_item(updated=10, email="ada.lovelace@example.com", custom_attributes={"department": "Research"})
    [event] = derive(s.modify(old, new))
    assert event.detail_type == "user.updated"
    assert event.detail["changed"] == ["custom_attributes", "email"]
    assert event.detail["user"]["email"] == "ada.lovelace@example.com"
    assert event.detail["version"] == new.vkey


def test_version_bump_with_identical_data_emits_nothing() -> None:
    # A newer WorkOS `updated_at` with nothing readable changed (timestamps are not changes).
    assert derive(s.modify(s.user_item(), s.user_item(updated=10))) == []
    assert derive(s.modify(s.user_item(), s.user_item())) == []


def test_fields_outside_the_readable_projection_are_not_changes() -> None:
    old = s.user_item(raw_attributes={"manager": "x"})
    new = s.user_item(updated=10, raw_attributes={"manager": "y"}, job_title="CEO")
    assert derive(s.modify(old, new)) == []


def test_a_role_change_is_its_own_event_with_what_was_added_and_removed() -> None:
    old = s.user_item(role={"slug": "member"}, roles=[{"slug": "member"}])
    new = s.user_item(
        updated=10, first_name="Augusta", role={"slug": "admin"}, roles=[{"slug": "billing"}, {"slug": "admin"}]
    )
    roles, updated = derive(s.modify(old, new))
    assert roles.detail_type == "user.roles_changed"
    assert (roles.detail["roles"], roles.detail["added"], roles.detail["removed"]) == (
        ["admin", "billing"],
        ["admin", "billing"],
        ["member"],
    )
    assert (roles.detail["user"]["role"], roles.detail["user"]["roles"]) == ("admin", ["admin", "billing"])
    assert updated.detail_type == "user.updated" and updated.detail["changed"] == ["first_name"]


def test_a_primary_role_change_alone_is_a_roles_change_with_nothing_added_or_removed() -> None:
    old = s.user_item(role={"slug": "admin"}, roles=[{"slug": "admin"}, {"slug": "billing"}])
    new = s.user_item(updated=10, role={"slug": "billing"}, roles=[{"slug": "admin"}, {"slug": "billing"}])
    [event] = derive(s.modify(old, new))
    assert (event.detail_type, event.detail["added"], event.detail["removed"]) == ("user.roles_changed", [], [])
    assert event.detail["user"]["role"] == "billing"


def test_older_payloads_with_only_a_primary_role_read_as_one_role() -> None:
    [event] = derive(s.modify(s.user_item(role={"slug": "member"}), s.user_item(updated=10, role={"slug": "admin"})))
    assert (event.detail["roles"], event.detail["added"], event.detail["removed"]) == (["admin"], ["admin"], ["member"])


def test_a_user_without_roles_reads_as_none_and_empty() -> None:
    [event] = derive(s.insert(s.user_item(role=None)))
    assert (event.detail["user"]["role"], event.detail["user"]["roles"]) == (None, [])


def test_deleted_user_is_deprovisioned_with_ids_only() -> None:
    tombstone = s.user_tombstone(deleted=30)
    [event] = derive(s.modify(s.user_item(), tombstone))
    assert event.detail_type == "user.deprovisioned"
    assert event.detail["user"] == {"id": "directory_user_1", "idp_id": "idp-directory_user_1"}
    assert event.detail["version"] == tombstone.vkey
    assert event.organization_id == ev.ORG
    assert_no_personal_data(event)


def test_removed_live_user_is_deprovisioned_with_ids_only_and_a_deletion_version() -> None:
    user = s.user_item(updated=10)
    [event] = derive(s.remove(user))
    assert event.detail_type == "user.deprovisioned"
    assert event.detail["user"] == {"id": "directory_user_1", "idp_id": "idp-directory_user_1"}
    assert event.detail["version"] == user.vkey | 1 > user.vkey  # orders after the user's last live version
    assert_no_personal_data(event)


def test_tombstone_expiry_and_rewrites_emit_nothing() -> None:
    assert derive(s.remove(s.user_tombstone(), ttl_expiry=True)) == []
    assert derive(s.modify(s.user_tombstone(deleted=10), s.user_tombstone(deleted=20))) == []
    assert derive(s.insert(s.user_tombstone())) == []  # a deletion of a user we never had


def test_inactive_user_is_provisioned_in_its_state() -> None:
    [event] = derive(s.insert(s.user_item(state="inactive")))
    assert event.detail_type == "user.provisioned"
    assert event.detail["user"]["state"] == "inactive"


# --- Groups ---------------------------------------------------------------------------------------------------------


def test_group_lifecycle() -> None:
    group = s.group_item()
    [created] = derive(s.insert(group))
    assert created.detail_type == "group.created"
    assert created.detail["group"] == records.readable_group(group.item())
    assert created.subject_id == "directory_group_1" and created.organization_id == ev.ORG

    renamed = s.group_item(updated=10, name="Platform")
    [updated] = derive(s.modify(group, renamed))
    assert updated.detail_type == "group.updated"
    assert updated.detail["changed"] == ["name"]
    assert updated.detail["group"]["name"] == "Platform"

    assert derive(s.modify(renamed, s.group_item(updated=20, name="Platform"))) == []

    [deleted] = derive(s.modify(renamed, s.group_tombstone(deleted=30)))
    assert deleted.detail_type == "group.deleted"
    assert deleted.detail["group"] == {"id": "directory_group_1"}
    assert "Platform" not in json.dumps(deleted.detail)


def test_removed_group_is_deleted_and_expired_group_tombstone_is_silent() -> None:
    [event] = derive(s.remove(s.group_item()))
    assert event.detail_type == "group.deleted"
    assert_no_personal_data(event)
    assert derive(s.remove(s.group_tombstone(), ttl_expiry=True)) == []


# --- Memberships ----------------------------------------------------------------------------------------------------


def test_membership_added_and_removed_by_tombstone() -> None:
    present = s.membership_item(at=10)
    [added] = derive(s.insert(present))
    assert added.detail_type == "membership.added"
    assert added.subject_id == "directory_group_1"
    assert added.detail["membership"] == {"group_id": "directory_group_1", "user_id": "directory_user_1"}
    assert added.detail["version"] == present.vkey
    assert added.organization_id is None

    removed_item = s.membership_item(at=20, present=False)
    [removed] = derive(s.modify(present, removed_item))
    assert removed.detail_type == "membership.removed"
    assert removed.detail["membership"] == {"group_id": "directory_group_1", "user_id": "directory_user_1"}
    assert removed.detail["version"] == removed_item.vkey


def test_membership_removed_by_remove_and_readded_after_tombstone() -> None:
    assert types(derive(s.remove(s.membership_item()))) == ["membership.removed"]
    readd = s.modify(s.membership_item(at=10, present=False), s.membership_item(at=20))
    assert types(derive(readd)) == ["membership.added"]


def test_membership_rewrites_and_expiry_emit_nothing() -> None:
    assert derive(s.modify(s.membership_item(at=1), s.membership_item(at=2))) == []
    assert derive(s.insert(s.membership_item(present=False))) == []  # removal seen before the add
    assert derive(s.remove(s.membership_item(present=False), ttl_expiry=True)) == []


# --- Directories ----------------------------------------------------------------------------------------------------


def test_directory_stub_creation_is_ignored_and_activation_is_published() -> None:
    stub = s.directory_stub()
    assert derive(s.insert(stub)) == []
    directory = s.directory_item(updated=5)
    [event] = derive(s.modify(stub, directory))
    assert event.detail_type == "directory.activated"
    assert event.detail["directory"] == records.readable_directory(directory.item())
    assert event.detail["directory"]["name"] == "Acme Okta"
    assert event.subject_id == ev.DIRECTORY and event.organization_id == ev.ORG
    assert types(derive(s.insert(directory))) == ["directory.activated"]


def test_activated_directory_rewrite_emits_nothing() -> None:
    assert derive(s.modify(s.directory_item(), s.directory_item(updated=10))) == []


@pytest.mark.parametrize("old", [s.directory_item(), s.directory_stub()], ids=["activated", "stub"])
def test_directory_deleted_by_tombstone_with_ids_only(old: records.Record) -> None:
    [event] = derive(s.modify(old, s.directory_tombstone()))
    assert event.detail_type == "directory.deleted"
    assert event.detail["directory"] == {"id": ev.DIRECTORY}
    assert event.organization_id == ev.ORG
    assert_no_personal_data(event)


def test_directory_removed_and_expired() -> None:
    assert types(derive(s.remove(s.directory_item()))) == ["directory.deleted"]
    assert derive(s.remove(s.directory_tombstone(), ttl_expiry=True)) == []


def test_directory_reactivated_after_deletion() -> None:
    assert types(derive(s.modify(s.directory_tombstone(deleted=10), s.directory_item(updated=20)))) == [
        "directory.activated"
    ]


# --- Everything else ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY", "REMOVE"])
def test_reconcile_items_are_ignored(event_name: str) -> None:
    item = s.reconcile_item()
    record = s.stream_record(
        event_name, old=None if event_name == "INSERT" else item, new=None if event_name == "REMOVE" else item
    )
    assert derive(record) == []


def test_items_outside_directory_partitions_are_ignored() -> None:
    assert derive(s.insert({"pk": "SOMETHING#else", "sk": "USER#u1", "id": "u1", "vkey": 2, "deleted": False})) == []


def test_event_ids_are_deterministic_per_stream_record_and_detail_type() -> None:
    old, new = s.user_item(), s.user_item(updated=10, state="inactive", first_name="Augusta")
    first = derive(s.modify(old, new, sequence_number="100"))
    again = derive(s.modify(old, new, sequence_number="100"))
    later = derive(s.modify(old, new, sequence_number="101"))
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first + later}) == 4


def test_occurred_at_from_epoch_seconds_and_from_a_datetime_agree() -> None:
    record = s.insert(s.user_item(), created_epoch=1_768_478_400)
    from_api = json.loads(json.dumps(record))
    from_api["dynamodb"]["ApproximateCreationDateTime"] = datetime(2026, 1, 15, 12, tzinfo=UTC)
    assert derive(record)[0].detail["occurred_at"] == derive(from_api)[0].detail["occurred_at"]
    assert derive(record)[0].detail["occurred_at"] == "2026-01-15T12:00:00.000Z"


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda r: r["dynamodb"].pop("OldImage"), id="modify-without-old-image"),
        pytest.param(lambda r: r["dynamodb"].pop("SequenceNumber"), id="no-sequence-number"),
        pytest.param(lambda r: r["dynamodb"].pop("Keys"), id="no-keys"),
        pytest.param(lambda r: r.pop("dynamodb"), id="no-dynamodb"),
        pytest.param(lambda r: r.update(eventName="UPSERT"), id="unknown-event-name"),
        pytest.param(lambda r: r["dynamodb"]["NewImage"].update(vkey={"Q": "1"}), id="bad-dynamodb-json"),
    ],
)
def test_unreadable_records_raise_without_echoing_data(mutate: Any) -> None:
    record = s.modify(s.user_item(), s.user_item(updated=10, first_name="Augusta"))
    mutate(record)
    with pytest.raises(MalformedStreamRecordError) as raised:
        changes_from_stream_record(record)
    assert "Augusta" not in str(raised.value) and "Ada" not in str(raised.value)


def test_compact_and_minimal_details_drop_bulk_and_mark_truncation() -> None:
    [event] = derive(s.modify(s.user_item(), s.user_item(updated=10, first_name="Augusta")))
    compact = event.compact_detail()
    assert compact["truncated"] is True
    assert "custom_attributes" not in compact["user"]
    assert compact["user"]["first_name"] == "Augusta" and compact["changed"] == ["first_name"]
    minimal = event.minimal_detail()
    assert minimal == {
        "event_id": event.event_id,
        "directory_id": ev.DIRECTORY,
        "organization_id": ev.ORG,
        "version": event.detail["version"],
        "occurred_at": event.detail["occurred_at"],
        "user": {"id": "directory_user_1", "idp_id": "idp-directory_user_1"},
        "changed": ["first_name"],
        "truncated": True,
    }
    assert "truncated" not in event.detail  # the event itself is unchanged


def test_catalogue_is_documented() -> None:
    doc = changes.__doc__ or ""
    for detail_type in changes.DETAIL_TYPES:
        assert f"`{detail_type}`" in doc


# --- Directories: deactivation, tokens, health --------------------------------------------------------------------


def test_deactivation_and_reactivation_of_a_directory() -> None:
    active, inactive = s.directory_item(), s.directory_item(updated=10, state="inactive")
    [deactivated] = derive(s.modify(active, inactive))
    assert deactivated.detail_type == "directory.deactivated"
    assert deactivated.detail["directory"]["state"] == "inactive"
    [reactivated] = derive(s.modify(inactive, s.directory_item(updated=20)))
    assert reactivated.detail_type == "directory.activated"
    assert derive(s.modify(inactive, s.directory_item(updated=30, state="inactive"))) == []


def token_item(*, revoked: bool = False) -> records.Record:
    token = DirectoryToken.model_validate(
        {"id": "directory_token_1", "directory_id": ev.DIRECTORY, "organization_id": ev.ORG, "token_suffix": "x9z8"}
    )
    return records.token_record(token, event_created_at=ev.BASE, revoked=revoked, expires_at=1)


def test_tokens_created_and_revoked_carry_the_suffix_never_more() -> None:
    [created] = derive(s.insert(token_item()))
    assert created.detail_type == "directory.token_created"
    assert created.detail["token"] == {"id": "directory_token_1", "token_suffix": "x9z8", "created_at": None}
    assert created.subject_id == ev.DIRECTORY and created.organization_id == ev.ORG
    [revoked] = derive(s.modify(token_item(), token_item(revoked=True)))
    assert revoked.detail_type == "directory.token_revoked"
    assert derive(s.insert(token_item(revoked=True))) == []  # a revocation of a token we never saw: nothing to say


def health_item(state: str, *, at: float) -> records.Record:
    moment = ev.BASE + timedelta(seconds=at)
    return records.health_record(
        records.DirectoryHealth(ev.DIRECTORY, ev.ORG, state, observed_at=moment, since=moment, users_active=3)
    )


def test_a_health_state_change_is_published_with_from_and_to() -> None:
    assert derive(s.insert(health_item("invalid_credentials", at=0))) == []  # the first observation is a baseline
    assert derive(s.modify(health_item("linked", at=0), health_item("linked", at=60))) == []
    [event] = derive(s.modify(health_item("linked", at=0), health_item("invalid_credentials", at=60)))
    assert event.detail_type == "directory.state_changed"
    assert (event.detail["from"], event.detail["to"]) == ("linked", "invalid_credentials")
    assert event.detail["health"]["workos_counts"] == {"users_active": 3, "users_inactive": None, "groups": None}
