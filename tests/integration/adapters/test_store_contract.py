"""One contract, two implementations: the in-memory fake used by unit/property tests and the DynamoDB adapter (on
moto): the write rule, and the counter item's conditional put with ReturnValues, UpdateItem ADD and guarded set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from dsync.local.provision import LocalResources
from shared.adapters.dynamodb import DirectoryTable
from shared.model import records, schema
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


# --- The directory's counter item (`shared.apply.counts`) ------------------------------------------------------------


def user(user_id: str, vkey: int, *, state: str = "active", deleted: bool = False) -> records.Record:
    if deleted:
        return records.entity_tombstone("user", D, user_id, vkey=vkey, expires_at=2_000_000_000)
    return records.Record(records.user_key(D, user_id), vkey, False, {"id": user_id, "state": state})


def test_a_conditional_put_answers_with_the_item_it_replaced(store: Any) -> None:
    first = store.replace_if_newer(user("u1", 2))
    assert (first.written, first.old, first.old_known) == (True, None, True)  # absent
    second = store.replace_if_newer(user("u1", 4, state="inactive"))
    assert second.written and second.old is not None and second.old["state"] == "active" and second.old["vkey"] == 2
    assert records.transition(user("u1", 4, state="inactive"), second) == {"users_active": -1, "users_inactive": 1}
    assert store.replace_if_newer(user("u1", 3)) == records.Replaced(False)  # older: refused, nothing returned
    gone = store.replace_if_newer(user("u1", 5, deleted=True))
    assert records.transition(user("u1", 5, deleted=True), gone) == {"users_inactive": -1}


def counter(store: Any) -> dict[str, Any]:
    item = store.get_item(records.counts_key(D))
    assert item is not None
    return dict(item)


def test_a_counts_change_is_added_once_whatever_its_retries(store: Any) -> None:
    store.add_counts(records.CountChange(D, {"users_active": 2, "groups": 1}, token="a", created=True))
    store.add_counts(records.CountChange(D, {"users_active": 2, "groups": 1}, token="a"))  # a retry: refused
    store.add_counts(records.CountChange(D, {"users_active": -1, "users_inactive": 1}, token="b", unobserved=1))
    item = counter(store)
    assert {name: item.get(name) for name in records.COUNT_NAMES} == {
        "users_active": 1,
        "users_inactive": 1,
        "groups": 1,
    }
    assert (item["seq"], item["unobserved"], item["basis"], item["last_token"]) == (2, 1, "directory_created", "b")
    assert (item["vkey"], item["deleted"]) == (0, False)  # read with a batch's versions like any partition item
    versions = store.get_versions([records.counts_key(D)])
    assert versions == {records.counts_key(D): records.StoredVersion(0, False)}


def test_the_counts_are_set_only_if_no_change_landed_since_they_were_read(store: Any) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    first = records.counts_item(D, {"users_active": 3}, seq=1, last_token=None, reconciled_at=now)
    assert store.set_counts(first, expected_seq=None) is True  # no counter yet
    assert store.set_counts(first, expected_seq=None) is False  # there is one now
    store.add_counts(records.CountChange(D, {"users_active": 1}, token="c"))  # seq 1 -> 2
    late = records.counts_item(D, {"users_active": 3}, seq=2, last_token=None, reconciled_at=now)
    assert store.set_counts(late, expected_seq=1) is False  # the change landed meanwhile: not overwritten
    assert counter(store)["users_active"] == 4
    again = records.counts_item(D, {"users_active": 4}, seq=3, last_token="c", reconciled_at=now)
    assert store.set_counts(again, expected_seq=2) is True
    assert (counter(store)["basis"], counter(store)["reconciled_at"]) == ("reconcile", "2026-03-01T00:00:00.000Z")


def test_live_users_and_groups_are_counted_from_the_partition(store: Any) -> None:
    store.put_if_newer(user("u1", 2))
    store.put_if_newer(user("u2", 2, state="suspended"))
    store.put_if_newer(user("u3", 2, deleted=True))
    store.put_if_newer(records.Record(records.group_key(D, "g1"), 2, False, {"id": "g1"}))
    assert store.count_live(D, schema.USER_PREFIX, consistent=True) == {"live": 2, "active": 1, "inactive": 1}
    assert store.count_live(D, schema.GROUP_PREFIX, consistent=True)["live"] == 1
