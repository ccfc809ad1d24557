"""`dsync status`'s reads and verdicts (`shared.read.status`), on the in-memory store: a few calls per 100
directories whatever their size, each directory's problems, the totals, and what needs a human (`attention`)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.apply.ports import StoreThrottledError
from shared.model import records, schema
from shared.model.events import Directory
from shared.model.records import CountChange, DirectoryHealth, ItemKey
from shared.read import status
from shared.read.status import Limits, UnknownDirectoryError, attention, directory_status, summary
from shared.reconcile.run import LAST_RUN_SK
from tests.support import dsync_events as ev
from tests.support.fake_store import FakeDirectoryStore, Unkindness

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
QUIET = {"queued": 0, "in_flight": 0, "dead_letters": 0}


def directory_id(n: int) -> str:
    return f"directory_01STATUS{n:018d}"


def seed(
    store: FakeDirectoryStore,
    n: int,
    *,
    users: int = 3,
    inactive: int = 0,
    groups: int = 1,
    health: str | None = "linked",
    unhealthy_since: timedelta = timedelta(0),
    last_run: str | None = "complete",
    counted: bool = True,
    now: datetime = NOW,
) -> str:
    """A directory as the pipeline leaves it: its item, its counter, its health and its last reconcile."""
    d = directory_id(n)
    store.put_if_newer(records.directory_record(Directory.model_validate(ev.directory(d)), vkey=2))
    change = {"users_active": users, "users_inactive": inactive, "groups": groups}
    store.add_counts(CountChange(d, change, token=f"seed-{n}", created=counted))
    for user in range(users):  # partition items status must never read
        store.put_if_newer(records.Record(records.user_key(d, f"u{user}"), 2, False, {"id": f"u{user}"}))
    if health is not None:
        observed = now - timedelta(minutes=5)
        store.put_if_newer(
            records.health_record(
                DirectoryHealth(d, ev.ORG, health, observed_at=observed, since=observed - unhealthy_since)
            )
        )
    if last_run is not None:
        store.items[ItemKey(schema.directory_pk(d), LAST_RUN_SK)] = {
            schema.PARTITION_KEY: schema.directory_pk(d),
            schema.SORT_KEY: LAST_RUN_SK,
            "finished_at": int(now.timestamp()) - 600,
            "status": last_run,
            "drift_total": 0,
            "error": None if last_run == "complete" else "WorkOS no longer lists 40 of the directory's 50 users",
        }
    return d


def read(store: FakeDirectoryStore, **kwargs: Any) -> list[dict[str, Any]]:
    return directory_status(store, now=NOW.timestamp(), **kwargs)


def test_the_calls_grow_with_directories_never_with_their_size() -> None:
    small, large = FakeDirectoryStore(), FakeDirectoryStore()
    for n in range(250):
        seed(small, n, users=1)
        seed(large, n, users=40)
    for store in (small, large):
        store.calls.clear()
        assert len(read(store)) == 250
        # One index query lists them; four items each by key, 100 keys a call; not one partition query.
        assert store.calls == {"query_index": 1, "batch_get": math.ceil(250 * 4 / 100)}


def test_a_directory_shows_its_state_health_counts_and_last_reconcile() -> None:
    store = FakeDirectoryStore()
    d = seed(store, 1, users=5, inactive=2, groups=3)
    [entry] = read(store)
    assert set(entry) == {
        "id",
        "state",
        "health",
        "mirror_counts",
        "mirror_counts_basis",
        "last_event",
        "last_reconcile",
        "problems",
    }
    assert (entry["id"], entry["state"], entry["health"]["state"]) == (d, "active", "linked")
    assert entry["mirror_counts"] == {"users_active": 5, "users_inactive": 2, "groups": 3}
    assert entry["mirror_counts_basis"] == {
        "counted_from": "directory_created",
        "reconciled_at": None,
        "unobserved_writes": 0,
    }
    assert entry["last_reconcile"]["status"] == "complete" and entry["problems"] == []


def test_counts_without_a_basis_are_unknown_not_wrong() -> None:
    store = FakeDirectoryStore()
    seed(store, 1, counted=False)  # mirrored before the counters: changes were ADDed to nothing
    [entry] = read(store)
    assert entry["mirror_counts"] == {"users_active": None, "users_inactive": None, "groups": None}
    assert summary([entry], now=NOW.timestamp())["uncounted"] == 1


def test_one_directory_is_one_call_and_an_unknown_or_deleted_one_is_an_error() -> None:
    store = FakeDirectoryStore()
    d = seed(store, 1)
    seed(store, 2)
    store.calls.clear()
    [entry] = read(store, directory_id=d)
    assert entry["id"] == d and store.calls == {"batch_get": 1}
    with pytest.raises(UnknownDirectoryError, match="is unknown"):
        read(store, directory_id="directory_01TYPO")
    store.put_if_newer(records.directory_tombstone(d, ev.ORG, vkey=9, expires_at=0))
    with pytest.raises(UnknownDirectoryError, match="was deleted"):
        read(store, directory_id=d)
    assert [entry["id"] for entry in read(store)] == [directory_id(2)]  # a deleted directory is not listed


def test_problems_are_an_unhealthy_connection_or_a_reconcile_that_needs_an_operator() -> None:
    store = FakeDirectoryStore()
    seed(store, 1)
    seed(store, 2, health="invalid_credentials", unhealthy_since=timedelta(minutes=10))
    seed(store, 3, last_run="held")
    seed(store, 4, health=None, last_run=None)  # never observed nor reconciled: nothing known to be wrong
    entries = {entry["id"]: entry for entry in read(store)}
    assert [bool(entries[directory_id(n)]["problems"]) for n in (1, 2, 3, 4)] == [False, True, True, False]
    assert "invalid_credentials" in entries[directory_id(2)]["problems"][0]
    assert "held" in entries[directory_id(3)]["problems"][0]


def test_attention_is_what_needs_a_human_now() -> None:
    store = FakeDirectoryStore()
    seed(store, 1)
    seed(store, 2, health="invalid_credentials", unhealthy_since=timedelta(minutes=10))  # not yet too long
    now = NOW.timestamp()
    assert attention(queues=QUIET, tail={"poll_age_seconds": 12.0}, directories=read(store), now=now) == []
    seed(store, 3, health="unlinked", unhealthy_since=timedelta(minutes=90))
    seed(store, 4, last_run="refused")
    reasons = attention(
        queues={**QUIET, "dead_letters": 2}, tail={"poll_age_seconds": 301.0}, directories=read(store), now=now
    )
    assert len(reasons) == 4
    assert "dead-letter queue holds 2" in reasons[0] and "polled 301 s ago (alarm at 300 s)" in reasons[1]
    assert directory_id(3) in reasons[2] and "unlinked" in reasons[2]
    assert directory_id(4) in reasons[3] and "refused" in reasons[3]
    # The limits are the operator's to set: the 10-minute-old problem counts under a 5-minute limit.
    strict = Limits(tail_poll_age_seconds=600, unhealthy_minutes=5)
    reasons = attention(queues=QUIET, tail={"poll_age_seconds": 301.0}, directories=read(store), now=now, limits=strict)
    assert [directory_id(2) in r for r in reasons].count(True) == 1 and not any("tail" in r for r in reasons)


def test_the_summary_totals_every_directory() -> None:
    store = FakeDirectoryStore()
    seed(store, 1, users=10, inactive=1, groups=2)
    seed(store, 2, users=5, groups=1, health="validating", unhealthy_since=timedelta(hours=2), last_run=None)
    totals = summary(read(store), now=NOW.timestamp())
    assert totals == {
        "directories": 2,
        "health_states": {"linked": 1, "validating": 1},
        "unhealthy": 1,
        "unhealthy_too_long": 1,
        "reconcile_not_ok": 0,
        "never_reconciled": 1,
        "mirror_counts": {"users_active": 15, "users_inactive": 1, "groups": 3},
        "uncounted": 0,
    }


def test_a_throttled_read_fails_whole_never_answers_in_part() -> None:
    store = FakeDirectoryStore()
    for n in range(300):
        seed(store, n)
    store.unkindness = Unkindness(seed=3, index_lag=False, throttle_rate=0.2)
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(len(read(store)))
        except StoreThrottledError:
            outcomes.append(-1)
    assert set(outcomes) == {300, -1}  # a complete answer or an error (the CLI's one line, exit 1)


def test_the_default_limits_are_the_stacks_alarms() -> None:
    from infra.config import StackConfig  # here: the CDK's runtime starts with it

    config = StackConfig()
    assert config.alarm_tail_poll_age_seconds == status.DEFAULT_TAIL_POLL_AGE_ALARM_SECONDS
    assert config.alarm_directory_unhealthy_minutes == status.DEFAULT_UNHEALTHY_MINUTES
