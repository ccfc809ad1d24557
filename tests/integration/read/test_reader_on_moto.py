"""The read library on real DynamoDB (moto): what an app asks of the mirror, answered by key and index queries."""

from __future__ import annotations

from typing import Any

import pytest

from dsync.local.provision import LocalResources
from shared.adapters.dynamodb import DirectoryTable
from shared.apply.applier import Applier
from shared.read.reader import DirectoryReader
from tests.support import dsync_events as ev
from tests.support.fake_store import FakeDeadLetters, FakeWorkQueue

pytestmark = pytest.mark.integration

SECOND = "directory_01SECOND00000000000000000"
OTHER_ORG_DIRECTORY = "directory_01ELSEWHERE000000000000000"


def apply(table: DirectoryTable, *documents: dict[str, Any]) -> None:
    applier = Applier(store=table, work_queue=FakeWorkQueue(), dead_letters=FakeDeadLetters())
    outcomes = applier.apply([ev.message(document) for document in documents])
    assert all(outcome.status.value in ("applied", "noop") for outcome in outcomes.values()), outcomes


def directory(directory_id: str, *, organization_id: str = ev.ORG) -> dict[str, Any]:
    return {**ev.directory(directory_id), "organization_id": organization_id}


@pytest.fixture
def reader(aws: LocalResources) -> DirectoryReader:
    table = DirectoryTable(aws.table_name)
    apply(
        table,
        ev.event("dsync.activated", directory(ev.DIRECTORY), created=0),
        ev.event("dsync.activated", directory(SECOND), created=0),
        ev.event("dsync.activated", directory(OTHER_ORG_DIRECTORY, organization_id="org_01OTHER"), created=0),
        ev.event("dsync.user.created", ev.user("directory_user_ada", idp_id="00uAda"), created=1),
        # WorkOS recreated Ada (a returning employee): a new directory user id, the same IdP id.
        ev.event("dsync.user.deleted", ev.user("directory_user_ada", idp_id="00uAda", updated=2), created=2),
        ev.event("dsync.user.created", ev.user("directory_user_ada2", idp_id="00uAda", updated=3), created=3),
        ev.event(
            "dsync.user.created",
            ev.user("directory_user_bo", directory_id=SECOND, email="bo@example.com", idp_id="00ubo"),
            created=1,
        ),
        ev.event(
            "dsync.user.created",
            ev.user("directory_user_x", directory_id=OTHER_ORG_DIRECTORY, email="bo@example.com", idp_id="00ubo"),
            created=1,
        ),
    )
    return DirectoryReader(table)


def test_a_recreated_user_is_found_by_idp_id_exactly(reader: DirectoryReader) -> None:
    [ada] = reader.find_users_by_idp_id(ev.DIRECTORY, "00uAda")
    assert ada["id"] == "directory_user_ada2"
    assert reader.find_users_by_idp_id(ev.DIRECTORY, "00uada") == []  # case-sensitive, as WorkOS stores it
    assert reader.find_users_by_idp_id(SECOND, "00uAda") == []


def test_an_organization_lists_its_live_directories(reader: DirectoryReader) -> None:
    assert [d["id"] for d in reader.organization_directories(ev.ORG)] == sorted([ev.DIRECTORY, SECOND])
    assert [d["id"] for d in reader.organization_directories("org_01OTHER")] == [OTHER_ORG_DIRECTORY]
    assert reader.organization_directories("org_01NOBODY") == []


def test_a_user_is_found_across_an_organizations_directories_by_email_or_idp_id(reader: DirectoryReader) -> None:
    by_email = reader.find_user_in_organization(ev.ORG, email="BO@example.com")
    by_idp = reader.find_user_in_organization(ev.ORG, idp_id="00ubo")
    assert by_email is not None and by_idp is not None
    assert by_email["id"] == by_idp["id"] == "directory_user_bo"  # not the other organization's Bo
    assert reader.find_user_in_organization(ev.ORG, email="nobody@example.com") is None
    with pytest.raises(ValueError, match="exactly one"):
        reader.find_user_in_organization(ev.ORG, email="a@b.c", idp_id="x")


def test_a_deleted_directory_leaves_its_organization(aws: LocalResources, reader: DirectoryReader) -> None:
    apply(
        DirectoryTable(aws.table_name),
        ev.event(
            "dsync.deleted",
            directory(
                SECOND,
            ),
            created=9,
        ),
    )
    assert [d["id"] for d in reader.organization_directories(ev.ORG)] == [ev.DIRECTORY]
    assert reader.find_user_in_organization(ev.ORG, idp_id="00ubo") is None


def test_a_directory_lists_its_active_tokens(aws: LocalResources, reader: DirectoryReader) -> None:
    token = {
        "object": "directory_token",
        "id": "directory_token_1",
        "directory_id": ev.DIRECTORY,
        "organization_id": ev.ORG,
        "token_suffix": "9f3a",
        "created_at": ev.at(5),
    }
    table = DirectoryTable(aws.table_name)
    apply(table, ev.event("dsync.token.created", token, created=5))
    found = reader.directory(ev.DIRECTORY)
    assert found is not None and found["tokens"] == [
        {"id": "directory_token_1", "token_suffix": "9f3a", "created_at": ev.at(5)}
    ]
    apply(table, ev.event("dsync.token.revoked", token, created=6))
    found = reader.directory(ev.DIRECTORY)
    assert found is not None and found["tokens"] == []


def test_roles_are_readable_in_the_export(aws: LocalResources, reader: DirectoryReader) -> None:
    roles: dict[str, Any] = {"role": {"slug": "admin"}, "roles": [{"slug": "billing"}, {"slug": "admin"}]}
    apply(
        DirectoryTable(aws.table_name),
        ev.event("dsync.user.updated", ev.user("directory_user_ada2", idp_id="00uAda", updated=8, **roles), created=8),
    )
    [ada] = reader.export(ev.DIRECTORY)["users"]
    assert (ada["role"], ada["roles"]) == ("admin", ["admin", "billing"])
