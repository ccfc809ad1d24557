"""One contract, two implementations: the in-memory fake used by unit/property tests and the DynamoDB adapter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from dsync.local.provision import LocalResources
from shared.adapters.dynamodb import DirectoryTable
from shared.model import records
from tests.support.fake_store import FakeDirectoryStore

pytestmark = pytest.mark.integration

D = "directory_contract"


@pytest.fixture(params=["fake", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "fake":
        yield FakeDirectoryStore()
    else:
        resources: LocalResources = request.getfixturevalue("aws")
        yield DirectoryTable(resources.table_name, client=boto3.client("dynamodb"))


def membership(group_id: str, user_id: str, vkey: int, *, present: bool = True) -> records.Record:
    return records.membership_record(D, group_id, user_id, vkey=vkey, present=present, expires_at=2_000_000_000)


def test_put_if_newer_is_a_max_register(store: Any) -> None:
    assert store.put_if_newer(membership("g", "u", 10)) is True  # absent → written
    assert store.put_if_newer(membership("g", "u", 10)) is False  # equal → refused
    assert store.put_if_newer(membership("g", "u", 9, present=False)) is False  # older → refused
    assert store.put_if_newer(membership("g", "u", 11, present=False)) is True  # newer → written
    versions = store.get_versions([records.membership_key(D, "g", "u"), records.membership_key(D, "g", "other")])
    assert versions == {records.membership_key(D, "g", "u"): records.StoredVersion(11, True)}


def test_membership_queries_return_only_present_rows(store: Any) -> None:
    store.put_if_newer(membership("g1", "u1", 1))
    store.put_if_newer(membership("g1", "u2", 1))
    store.put_if_newer(membership("g2", "u1", 1))
    store.put_if_newer(membership("g1", "u2", 2, present=False))
    assert sorted(store.live_group_memberships(D, "g1")) == [("g1", "u1")]
    assert sorted(store.live_user_memberships(D, "u1")) == [("g1", "u1"), ("g2", "u1")]
    assert store.live_user_memberships(D, "u2") == []


def test_a_tombstone_replaces_the_whole_item(store: Any) -> None:
    key = records.user_key(D, "u1")
    live = records.Record(key, 2, False, {"id": "u1", "email": "a@b.c", "email_key": f"{D}#a@b.c"})
    assert store.put_if_newer(live)
    store.put_if_newer(records.entity_tombstone("user", D, "u1", vkey=3, expires_at=5))
    item = store.get_item(key) if isinstance(store, DirectoryTable) else store.items[key]
    assert item is not None and "email" not in item and "email_key" not in item and item["expires_at"] == 5
