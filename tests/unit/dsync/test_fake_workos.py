"""DirectoryModel: event shapes against the official SDK fixtures/models, and WorkOS semantics."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from workos import WorkOSClient
from workos.common.models.dsync_activated import DsyncActivated
from workos.common.models.dsync_deleted import DsyncDeleted
from workos.common.models.dsync_group_created import DsyncGroupCreated
from workos.common.models.dsync_group_deleted import DsyncGroupDeleted
from workos.common.models.dsync_group_updated import DsyncGroupUpdated
from workos.common.models.dsync_group_user_added import DsyncGroupUserAdded
from workos.common.models.dsync_group_user_removed import DsyncGroupUserRemoved
from workos.common.models.dsync_user_created import DsyncUserCreated
from workos.common.models.dsync_user_deleted import DsyncUserDeleted
from workos.common.models.dsync_user_updated import DsyncUserUpdated
from workos.events.models import EventSchema, EventSchemaUnknown

from dsync.fake_workos import DirectoryModel, SteppingClock, format_timestamp, parse_timestamp, populate

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fake_workos_fixtures"
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ULID = r"[0-9A-HJKMNP-TV-Z]{26}"

SDK_EVENT_CLASSES: dict[str, type] = {
    "dsync.activated": DsyncActivated,
    "dsync.deleted": DsyncDeleted,
    "dsync.user.created": DsyncUserCreated,
    "dsync.user.updated": DsyncUserUpdated,
    "dsync.user.deleted": DsyncUserDeleted,
    "dsync.group.created": DsyncGroupCreated,
    "dsync.group.updated": DsyncGroupUpdated,
    "dsync.group.deleted": DsyncGroupDeleted,
    "dsync.group.user_added": DsyncGroupUserAdded,
    "dsync.group.user_removed": DsyncGroupUserRemoved,
}
# Keys the model may legitimately add or omit relative to a fixture (documented optional fields).
# Today the sets match exactly; keep the hook so a future optional field is an explicit decision.
OPTIONAL_DATA_KEYS: dict[str, set[str]] = {}


def load_fixture(name: str) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return fixture


def fixture_name(event_type: str) -> str:
    return event_type.replace(".", "_")


def new_model(seed: int = 7, *, legacy_payloads: bool = False) -> DirectoryModel:
    return DirectoryModel(clock=SteppingClock(T0), seed=seed, legacy_payloads=legacy_payloads)


def every_event_type(*, legacy_payloads: bool = True) -> DirectoryModel:
    """A story that emits each of the ten dsync event types at least once (in the SDK fixtures' older shape)."""
    model = new_model(legacy_payloads=legacy_payloads)
    directory = model.create_directory(name="Foo Corp", domain="foo-corp.test")
    user = model.create_user(
        directory["id"],
        first_name="Marcelina",
        last_name="Davis",
        email="marcelina.davis@foo-corp.test",
        job_title="Software Engineer",
        custom_attributes={"department": "Engineering"},
    )
    group = model.create_group(directory["id"], name="Developers")
    model.add_user_to_group(group["id"], user["id"])
    model.update_user(user["id"], first_name="Marcy")
    model.update_group(group["id"], name="Engineers")
    model.remove_user_from_group(group["id"], user["id"])
    model.delete_group(group["id"])
    model.delete_user(user["id"])
    model.delete_directory(directory["id"])
    return model


# ---------------------------------------------------------------- wire shape vs SDK fixtures


@pytest.mark.parametrize("event_type", sorted(SDK_EVENT_CLASSES))
def test_event_key_sets_match_sdk_fixture(event_type: str) -> None:
    fixture = load_fixture(fixture_name(event_type))
    events = [e for e in every_event_type().events if e["event"] == event_type]
    assert events, f"story did not emit {event_type}"
    optional = OPTIONAL_DATA_KEYS.get(event_type, set())
    for event in events:
        assert set(event) == set(fixture)
        assert set(event["data"]) ^ set(fixture["data"]) <= optional
        if event_type.startswith("dsync.group.user_"):
            assert set(event["data"]["user"]) == set(fixture["data"]["user"])
            assert set(event["data"]["group"]) == set(fixture["data"]["group"])
        if event_type == "dsync.activated":
            assert set(event["data"]["domains"][0]) == set(fixture["data"]["domains"][0])
        if "emails" in event["data"]:
            assert set(event["data"]["emails"][0]) == set(fixture["data"]["emails"][0])


def test_fixtures_themselves_parse_with_the_installed_sdk() -> None:
    """Guards the premise: the copied fixtures are still what SDK 10.8 models accept."""
    for event_type, cls in SDK_EVENT_CLASSES.items():
        assert isinstance(EventSchema.from_dict(load_fixture(fixture_name(event_type))), cls)


def test_every_event_parses_with_the_sdk_event_models() -> None:
    for event in every_event_type().events:
        parsed = EventSchema.from_dict(event)
        assert isinstance(parsed, SDK_EVENT_CLASSES[event["event"]])
        assert not isinstance(parsed, EventSchemaUnknown)
        assert parsed.id == event["id"]
        assert parsed.created_at == parse_timestamp(event["created_at"])
        assert parsed.created_at.tzinfo is not None


def test_events_verify_through_the_sdk_webhook_path() -> None:
    """Sign each event like WorkOS does and let ``client.webhooks.verify_event`` parse it."""
    client = WorkOSClient(client_id="client_test")
    secret = "whsec_test"
    for event in every_event_type().events:
        body = json.dumps(event, separators=(",", ":"))
        issued_ms = int(time.time() * 1000)
        digest = hmac.new(secret.encode(), f"{issued_ms}.{body}".encode(), hashlib.sha256).hexdigest()
        parsed = client.webhooks.verify_event(
            event_body=body, event_signature=f"t={issued_ms}, v1={digest}", secret=secret
        )
        assert isinstance(parsed, SDK_EVENT_CLASSES[event["event"]])


def test_updated_events_carry_previous_attributes_inside_data() -> None:
    events = {e["event"]: e for e in every_event_type().events}
    user_updated = EventSchema.from_dict(events["dsync.user.updated"])
    assert isinstance(user_updated, DsyncUserUpdated)
    assert user_updated.data.previous_attributes == {"first_name": "Marcelina", "name": "Marcelina Davis"}
    group_updated = EventSchema.from_dict(events["dsync.group.updated"])
    assert isinstance(group_updated, DsyncGroupUpdated)
    assert group_updated.data.previous_attributes == {"name": "Developers"}
    assert "previous_attributes" not in events["dsync.group.updated"]


def test_user_without_email_is_valid_for_the_sdk() -> None:
    model = new_model()
    directory = model.create_directory()
    user = model.create_user(directory["id"], first_name=None, last_name=None, email=None)
    assert user["email"] is None
    assert user["emails"] == []
    assert user["name"] is None
    assert isinstance(EventSchema.from_dict(model.events[-1]), DsyncUserCreated)


# ---------------------------------------------------------------- ids and timestamps


def test_timestamps_strictly_increase_even_with_a_frozen_clock() -> None:
    model = DirectoryModel(clock=lambda: T0, seed=1)
    directory = model.create_directory()
    users = [model.create_user(directory["id"], first_name="A", last_name=str(i), email=None) for i in range(20)]
    for user in users:
        model.deactivate_user(user["id"])
    stamps = [parse_timestamp(e["created_at"]) for e in model.events]
    assert all(TIMESTAMP.match(e["created_at"]) for e in model.events)
    assert [b - a for a, b in itertools.pairwise(stamps)] == [timedelta(milliseconds=1)] * (len(stamps) - 1)
    assert stamps[0] == T0


def test_clock_going_backwards_cannot_reorder_changes() -> None:
    ticks = iter([T0, T0 - timedelta(hours=1), T0 + timedelta(microseconds=400), T0 + timedelta(seconds=5)])
    model = DirectoryModel(clock=lambda: next(ticks))
    directory = model.create_directory()
    for name in ("a", "b", "c"):
        model.create_group(directory["id"], name=name)
    assert [e["created_at"] for e in model.events] == [
        "2026-01-15T12:00:00.000Z",
        "2026-01-15T12:00:00.001Z",
        "2026-01-15T12:00:00.002Z",
        "2026-01-15T12:00:05.000Z",
    ]


def test_update_envelope_time_equals_new_updated_at() -> None:
    model = new_model()
    directory = model.create_directory()
    user = model.create_user(directory["id"], first_name="A", last_name="B", email="a@b.test")
    updated = model.update_user(user["id"], last_name="C")
    event = model.events[-1]
    assert event["created_at"] == event["data"]["updated_at"] == updated["updated_at"]
    assert updated["updated_at"] > user["updated_at"]
    assert updated["created_at"] == user["created_at"]


def test_format_timestamp_is_utc_millisecond_z() -> None:
    local = datetime(2026, 1, 15, 13, 0, 0, 123999, tzinfo=UTC).astimezone()
    assert format_timestamp(local) == "2026-01-15T13:00:00.123Z"
    assert format_timestamp(datetime(2026, 1, 15, 12, 0)) == "2026-01-15T12:00:00.000Z"  # naive = UTC


def test_ids_are_prefixed_time_ordered_ulids_and_deterministic_with_seed() -> None:
    first, second = every_event_type(), every_event_type()
    assert first.events == second.events  # same seed + stepping clock => byte-identical history
    patterns = {
        "event": rf"event_{ULID}",
        "directory": rf"directory_{ULID}",
        "directory_user": rf"directory_user_{ULID}",
        "directory_group": rf"directory_group_{ULID}",
    }
    events = first.events
    for event in events:
        assert re.fullmatch(patterns["event"], event["id"])
        data = event["data"]
        kind = data.get("object")
        if kind in ("directory", "directory_user", "directory_group"):
            assert re.fullmatch(patterns[kind], data["id"])
            assert re.fullmatch(rf"org_{ULID}", data["organization_id"])
    event_ids = [e["id"] for e in events]
    assert event_ids == sorted(event_ids)
    assert len(set(event_ids)) == len(event_ids)
    assert new_model(seed=1).create_directory()["id"] != new_model(seed=2).create_directory()["id"]


def test_id_order_is_creation_order() -> None:
    model = DirectoryModel(clock=lambda: T0, seed=3)  # every mutation in the "same" instant
    directory = model.create_directory()
    created = [model.create_user(directory["id"], first_name="A", last_name=str(i), email=None) for i in range(30)]
    ids = [u["id"] for u in created]
    assert ids == sorted(ids)
    assert model.user_ids(directory["id"]) == ids


# ---------------------------------------------------------------- WorkOS lifecycle semantics


def test_membership_changes_do_not_bump_updated_at() -> None:
    model = new_model()
    directory = model.create_directory()
    user = model.create_user(directory["id"], first_name="A", last_name="B", email="a@b.test")
    group = model.create_group(directory["id"], name="Engineering")
    added = model.add_user_to_group(group["id"], user["id"])
    removed = model.remove_user_from_group(group["id"], user["id"])
    assert added is not None and removed is not None
    for data in (added, removed):
        assert data["user"]["updated_at"] == user["updated_at"]
        assert data["group"]["updated_at"] == group["updated_at"]
        assert data["directory_id"] == directory["id"]
    assert model.get_user(user["id"])["updated_at"] == user["updated_at"]
    assert model.get_group(group["id"])["updated_at"] == group["updated_at"]
    add_event, remove_event = model.events[-2:]
    assert add_event["created_at"] > user["updated_at"]
    assert remove_event["created_at"] > add_event["created_at"]


def test_duplicate_membership_changes_are_silent_no_ops() -> None:
    model = new_model()
    directory = model.create_directory()
    user = model.create_user(directory["id"], first_name="A", last_name="B", email=None)
    group = model.create_group(directory["id"], name="G")
    assert model.remove_user_from_group(group["id"], user["id"]) is None
    assert model.add_user_to_group(group["id"], user["id"]) is not None
    count = model.event_count
    assert model.add_user_to_group(group["id"], user["id"]) is None
    assert model.event_count == count


def test_delete_user_drops_memberships_without_user_removed_events() -> None:
    model = new_model()
    directory = model.create_directory()
    user = model.create_user(directory["id"], first_name="A", last_name="B", email=None)
    groups = [model.create_group(directory["id"], name=n) for n in ("G1", "G2")]
    for group in groups:
        model.add_user_to_group(group["id"], user["id"])
    model.drain_events()
    deleted = model.delete_user(user["id"])
    events = model.drain_events()
    assert [e["event"] for e in events] == ["dsync.user.deleted"]
    assert events[0]["data"] == deleted
    assert deleted["updated_at"] == user["updated_at"]  # last snapshot, not re-stamped
    assert all(model.members(g["id"]) == set() for g in groups)
    assert model.groups(user_id=user["id"]) == []


def test_delete_group_drops_memberships_without_user_removed_events() -> None:
    model = new_model()
    directory = model.create_directory()
    users = [model.create_user(directory["id"], first_name="A", last_name=n, email=None) for n in "BC"]
    group = model.create_group(directory["id"], name="G")
    for user in users:
        model.add_user_to_group(group["id"], user["id"])
    model.drain_events()
    model.delete_group(group["id"])
    assert [e["event"] for e in model.drain_events()] == ["dsync.group.deleted"]
    assert all(model.groups(user_id=u["id"]) == [] for u in users)
    assert len(model.users(directory["id"])) == 2


def test_delete_directory_emits_a_single_dsync_deleted() -> None:
    model = new_model()
    directory = model.create_directory()
    other = model.create_directory(name="Other", domain="other.test")
    populate(model, directory["id"], users=4, groups=2, rng=random.Random(1))
    populate(model, other["id"], users=2, groups=1, rng=random.Random(2))
    model.drain_events()
    model.delete_directory(directory["id"])
    events = model.drain_events()
    assert [e["event"] for e in events] == ["dsync.deleted"]
    data = events[0]["data"]
    assert "domains" not in data and "external_key" not in data
    assert data["state"] == "active"  # state before deletion
    assert model.users(directory["id"]) == [] and model.groups(directory["id"]) == []
    assert len(model.users(other["id"])) == 2
    assert model.snapshot(directory["id"]) == {"directory": None, "users": [], "groups": [], "memberships": []}
    assert model.directory_ids() == [other["id"]]
    with pytest.raises(KeyError, match="was deleted"):
        model.create_user(directory["id"], first_name="A", last_name="B", email=None)


def test_update_user_previous_attributes_follow_the_documented_rules() -> None:
    model = new_model(legacy_payloads=True)
    directory = model.create_directory()
    user = model.create_user(
        directory["id"],
        first_name="Ana",
        last_name="Lopez",
        email="ana.lopez@acme.test",
        custom_attributes={"department": "Sales", "region": "EMEA"},
    )
    model.update_user(
        user["id"],
        email="ana@acme.test",
        job_title="Account Executive",
        custom_attributes={"department": "Marketing", "cost_center": "42"},
    )
    previous = model.events[-1]["data"]["previous_attributes"]
    assert previous == {
        "email": "ana.lopez@acme.test",
        "emails": [{"primary": True, "type": "work", "value": "ana.lopez@acme.test"}],
        "job_title": None,  # attribute that did not exist before -> null
        "custom_attributes": {"department": "Sales", "cost_center": None, "region": "EMEA"},
    }


def test_no_op_update_emits_nothing_and_keeps_updated_at() -> None:
    model = new_model()
    directory = model.create_directory()
    user = model.create_user(directory["id"], first_name="A", last_name="B", email=None)
    group = model.create_group(directory["id"], name="G")
    count = model.event_count
    assert model.update_user(user["id"], first_name="A") == user
    assert model.update_group(group["id"], name="G") == group
    model.reactivate_user(user["id"])  # already active
    assert model.event_count == count


def test_deactivate_and_reactivate() -> None:
    model = new_model()
    directory = model.create_directory()
    user = model.create_user(directory["id"], first_name="A", last_name="B", email=None)
    assert model.deactivate_user(user["id"])["state"] == "inactive"
    assert model.events[-1]["data"]["previous_attributes"] == {"state": "active"}
    assert model.reactivate_user(user["id"])["state"] == "active"
    assert model.events[-1]["data"]["previous_attributes"] == {"state": "inactive"}
    assert model.directory_metadata(directory["id"]) == {"users": {"active": 1, "inactive": 0}, "groups": 0}


def test_invalid_changes_are_rejected() -> None:
    model = new_model()
    directory = model.create_directory()
    user = model.create_user(directory["id"], first_name="A", last_name="B", email=None, idp_id="00u1")
    group = model.create_group(directory["id"], name="G", idp_id="00g1")
    other = model.create_directory()
    other_group = model.create_group(other["id"], name="G")
    with pytest.raises(TypeError, match="directory_id"):
        model.update_user(user["id"], directory_id=other["id"])
    with pytest.raises(TypeError, match="idp_id"):
        model.update_group(group["id"], idp_id="x")
    with pytest.raises(ValueError, match="state"):
        model.update_user(user["id"], state="deleted")
    with pytest.raises(ValueError, match="already exists"):
        model.create_user(directory["id"], first_name="A", last_name="B", email=None, idp_id="00u1")
    with pytest.raises(ValueError, match="already exists"):
        model.create_group(directory["id"], name="H", idp_id="00g1")
    with pytest.raises(ValueError, match="different directories"):
        model.add_user_to_group(other_group["id"], user["id"])


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.delete_directory("directory_missing"),
        lambda m: m.create_user("directory_missing", first_name="a", last_name="b", email=None),
        lambda m: m.update_user("directory_user_missing", first_name="x"),
        lambda m: m.deactivate_user("directory_user_missing"),
        lambda m: m.delete_user("directory_user_missing"),
        lambda m: m.create_group("directory_missing", name="x"),
        lambda m: m.update_group("directory_group_missing", name="x"),
        lambda m: m.delete_group("directory_group_missing"),
        lambda m: m.add_user_to_group("directory_group_missing", "directory_user_missing"),
        lambda m: m.remove_user_from_group("directory_group_missing", "directory_user_missing"),
        lambda m: m.get_user("directory_user_missing"),
        lambda m: m.get_group("directory_group_missing"),
        lambda m: m.get_directory("directory_missing"),
        lambda m: m.members("directory_group_missing"),
        lambda m: m.snapshot("directory_missing"),
    ],
)
def test_unknown_ids_raise_key_error_naming_the_id(call: Any) -> None:
    model = new_model()
    with pytest.raises(KeyError, match="_missing"):
        call(model)
    assert model.event_count == 0


# ---------------------------------------------------------------- event access


def test_drain_events_returns_pending_and_keeps_history() -> None:
    model = new_model()
    directory = model.create_directory()
    assert [e["event"] for e in model.drain_events()] == ["dsync.activated"]
    assert model.drain_events() == []
    model.create_group(directory["id"], name="G")
    assert [e["event"] for e in model.drain_events()] == ["dsync.group.created"]
    assert [e["event"] for e in model.events] == ["dsync.activated", "dsync.group.created"]
    assert model.event_count == 2


def test_returned_events_and_snapshots_are_copies() -> None:
    model = new_model()
    directory = model.create_directory()
    user = model.create_user(directory["id"], first_name="A", last_name="B", email=None, custom_attributes={"k": 1})
    user["custom_attributes"]["k"] = 2
    model.events[-1]["data"]["custom_attributes"]["k"] = 3
    model.get_user(user["id"])["custom_attributes"]["k"] = 4
    assert model.events[-1]["data"]["custom_attributes"] == {"k": 1}
    assert model.get_user(user["id"])["custom_attributes"] == {"k": 1}


# ---------------------------------------------------------------- reads and snapshot


def test_snapshot_after_a_scripted_story() -> None:
    model = new_model()
    directory = model.create_directory(organization_id="org_01TEST", name="Acme Okta", domain="acme.test")
    did = directory["id"]
    ana = model.create_user(did, first_name="Ana", last_name="Lopez", email="ana@acme.test", idp_id="00u-ana")
    bo = model.create_user(did, first_name="Bo", last_name="Kim", email="bo@acme.test", idp_id="00u-bo")
    cy = model.create_user(did, first_name="Cy", last_name="Ng", email="cy@acme.test", idp_id="00u-cy")
    eng = model.create_group(did, name="Engineering", idp_id="00g-eng")
    ops = model.create_group(did, name="Ops", idp_id="00g-ops")
    tmp = model.create_group(did, name="Temp", idp_id="00g-tmp")
    for group, user in [(eng, ana), (eng, bo), (ops, bo), (ops, cy), (tmp, ana)]:
        model.add_user_to_group(group["id"], user["id"])
    model.remove_user_from_group(eng["id"], bo["id"])
    model.update_group(ops["id"], name="Platform Ops")
    model.update_user(ana["id"], custom_attributes={"department": "Engineering"})
    model.deactivate_user(bo["id"])
    model.delete_user(cy["id"])
    model.delete_group(tmp["id"])

    assert model.snapshot(did) == {
        "directory": {
            "id": did,
            "organization_id": "org_01TEST",
            "state": "active",
            "name": "Acme Okta",
            "type": "okta scim v2.0",
            "tokens": [],
        },
        "users": [
            {
                "id": ana["id"],
                "idp_id": "00u-ana",
                "email": "ana@acme.test",
                "first_name": "Ana",
                "last_name": "Lopez",
                "state": "active",
                "custom_attributes": {"department": "Engineering"},
                "role": "member",
                "roles": ["member"],
            },
            {
                "id": bo["id"],
                "idp_id": "00u-bo",
                "email": "bo@acme.test",
                "first_name": "Bo",
                "last_name": "Kim",
                "state": "inactive",
                "custom_attributes": {},
                "role": "member",
                "roles": ["member"],
            },
        ],
        "groups": [
            {"id": eng["id"], "idp_id": "00g-eng", "name": "Engineering"},
            {"id": ops["id"], "idp_id": "00g-ops", "name": "Platform Ops"},
        ],
        "memberships": [
            {"group_id": eng["id"], "user_id": ana["id"]},
            {"group_id": ops["id"], "user_id": bo["id"]},
        ],
    }
    assert [e["event"] for e in model.events].count("dsync.group.user_removed") == 1
    assert model.members(ops["id"]) == {bo["id"]}
    assert [u["id"] for u in model.users(group_id=eng["id"])] == [ana["id"]]
    assert [g["id"] for g in model.groups(user_id=bo["id"])] == [ops["id"]]
    assert [g["name"] for g in model.groups(did)] == ["Engineering", "Platform Ops"]
    assert model.users(directory_id="directory_unknown") == []
    assert model.groups(user_id="directory_user_unknown") == []


# ---------------------------------------------------------------- populate and concurrency


def test_populate_builds_a_plausible_directory_deterministically() -> None:
    def build() -> tuple[DirectoryModel, str]:
        model = new_model()
        directory = model.create_directory(domain="example.test")
        populate(model, directory["id"], users=60, groups=8, memberships_per_user=(1, 3), rng=random.Random(42))
        return model, directory["id"]

    model, did = build()
    users, groups = model.users(did), model.groups(did)
    assert len(users) == 60 and len(groups) == 8
    emails = [u["email"] for u in users]
    assert len(set(emails)) == 60
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+\d*@example\.test", e) for e in emails)
    assert all({"department", "job_title"} <= set(u["custom_attributes"]) for u in users)
    assert "Engineering" in {g["name"] for g in groups}
    assert len({g["name"] for g in groups}) == 8
    for user in users:
        assert 1 <= len(model.groups(user_id=user["id"])) <= 3
    kinds = [e["event"] for e in model.events[1:]]
    assert kinds == sorted(kinds, key=["dsync.user.created", "dsync.group.created", "dsync.group.user_added"].index)
    assert build()[0].events == model.events

    populate(model, did, users=5, groups=20, rng=random.Random(1))  # extends without clashes
    assert len({u["email"] for u in model.users(did)}) == 65
    assert len({g["name"] for g in model.groups(did)}) == 28


def test_populate_validates_arguments() -> None:
    model = new_model()
    directory = model.create_directory()
    with pytest.raises(ValueError, match="memberships_per_user"):
        populate(model, directory["id"], users=1, groups=1, memberships_per_user=(3, 1), rng=random.Random(0))
    populate(model, directory["id"], users=3, groups=0, rng=random.Random(0))
    assert model.event_count == 4


def test_concurrent_mutations_are_serialised() -> None:
    model = DirectoryModel(seed=5)
    directory = model.create_directory()
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(40):
            user = model.create_user(directory["id"], first_name=f"w{n}", last_name=str(i), email=None)
            model.update_user(user["id"], last_name=f"{i}-x")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = model.events
    assert len(events) == 1 + 8 * 40 * 2
    stamps = [e["created_at"] for e in events]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert len({e["id"] for e in events}) == len(events)


# ---------------------------------------------------------------- 2026: payload shape, roles, tokens, directory state


def test_payloads_have_the_2026_shape_by_default() -> None:
    model = new_model()
    directory = model.create_directory()
    model.create_user(directory["id"], first_name="A", last_name="B", email="a@acme.test", job_title="CEO")
    data = model.events[-1]["data"]
    assert (data["raw_attributes"], data["job_title"], data["username"], data["emails"]) == ({}, None, None, [])
    assert data["role"] == {"slug": "member"} and data["roles"] == [{"slug": "member"}]


def test_a_group_role_mapping_changes_its_members_roles_with_user_updated_events() -> None:
    model = new_model()
    did = model.create_directory()["id"]
    ana = model.create_user(did, first_name="Ana", last_name="L", email="ana@acme.test")["id"]
    bo = model.create_user(did, first_name="Bo", last_name="K", email="bo@acme.test")["id"]
    admins = model.create_group(did, name="Admins")["id"]
    billing = model.create_group(did, name="Billing")["id"]
    model.add_user_to_group(admins, ana)
    model.add_user_to_group(billing, ana)
    count = model.event_count
    assert model.map_group_to_role(admins, "admin") == [ana]  # bo keeps the default role: no event for him
    assert model.event_count == count + 1  # only ana's roles changed (bo already had the default)
    model.map_group_to_role(billing, "billing")
    event = model.events[-1]
    assert event["event"] == "dsync.user.updated"
    assert event["data"]["roles"] == [{"slug": "admin"}, {"slug": "billing"}]
    assert event["data"]["role"] == {"slug": "admin"}  # the earlier mapping is the primary role
    assert event["data"]["previous_attributes"]["roles"] == [{"slug": "admin"}]
    model.remove_user_from_group(admins, ana)
    assert model.get_user(ana)["roles"] == [{"slug": "billing"}]
    model.delete_group(billing)
    assert {u["id"]: (u["role"], u["roles"]) for u in model.snapshot(did)["users"]} == {
        ana: ("member", ["member"]),
        bo: ("member", ["member"]),
    }


def test_tokens_emit_created_and_revoked_with_the_suffix_only() -> None:
    model = new_model()
    did = model.create_directory()["id"]
    token = model.create_token(did)
    assert set(token) == {"object", "id", "directory_id", "organization_id", "token_suffix", "created_at"}
    assert model.tokens(did) == [token]
    model.revoke_token(token["id"])
    assert [e["event"] for e in model.events[-2:]] == ["dsync.token.created", "dsync.token.revoked"]
    assert model.tokens(did) == []


def test_directory_state_changes_are_silent_unless_deactivated_is_asked_for() -> None:
    model = new_model()
    did = model.create_directory()["id"]
    count = model.event_count
    model.set_directory_state(did, "invalid_credentials")
    assert model.event_count == count
    model.set_directory_state(did, "inactive", emit_event=True)
    assert model.events[-1]["event"] == "dsync.deactivated"
    assert model.events[-1]["data"]["state"] == "inactive"
    with pytest.raises(ValueError, match="directory state"):
        model.set_directory_state(did, "linked")
