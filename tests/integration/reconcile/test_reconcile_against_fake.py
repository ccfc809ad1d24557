"""Reconcile against the fake WorkOS (real HTTP, the real SDK) and the table on moto.

Each test builds a WorkOS history with the fake's model, delivers only some of its webhooks (the rest are "lost"),
runs reconcile and compares our export with WorkOS's truth.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from dsync.fake_workos import DirectoryModel, FakeWorkOS, SteppingClock, populate
from dsync.local.provision import LocalResources
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.workos_api import WorkOSDirectoryApi
from shared.apply.applier import Applier
from shared.apply.ports import InboundMessage, Status
from shared.lease import Lease
from shared.model import records, schema
from shared.model.records import ItemKey, Record, Replaced
from shared.read.reader import DirectoryReader
from shared.reconcile.run import LAST_RUN_SK, LEASE_SK, DirectoryReconciler, ReconcileConfig, RunStatus
from tests.support.fake_store import FakeDeadLetters
from tests.support.histories import project

pytestmark = pytest.mark.integration


@dataclass
class RecordingWorkQueue:
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def submit(self, job: Any, delay_seconds: int = 0) -> None:
        self.jobs.append(dict(job))


@dataclass
class World:
    model: DirectoryModel
    clock: SteppingClock
    fake: FakeWorkOS
    table: DirectoryTable
    jobs: RecordingWorkQueue
    api: WorkOSDirectoryApi

    def deliver(self, events: list[dict[str, Any]]) -> None:
        applier = Applier(store=self.table, work_queue=self.jobs, dead_letters=FakeDeadLetters())
        for start in range(0, len(events), 10):
            batch = events[start : start + 10]
            messages = [InboundMessage(e["id"], json.dumps(e), "g", e["id"]) for e in batch]
            outcomes = applier.apply(messages)
            assert all(o.status in (Status.APPLIED, Status.NOOP) for o in outcomes.values())

    def reconciler(self, **config: Any) -> DirectoryReconciler:
        return DirectoryReconciler(
            api=self.api, table=self.table, work_queue=self.jobs, config=ReconcileConfig(**config)
        )

    def export(self, directory_id: str) -> dict[str, Any]:
        return DirectoryReader(self.table).export(directory_id)

    def matches_truth(self, directory_id: str) -> bool:
        truth = self.model.snapshot(directory_id)
        return project(self.export(directory_id), truth) == truth


@pytest.fixture
def world(aws: LocalResources) -> Iterator[World]:
    # WorkOS history from days ago: the lost webhooks are old, as they are when reconcile finds them.
    clock = SteppingClock(datetime.now(UTC) - timedelta(days=3), timedelta(seconds=2))
    model = DirectoryModel(clock=clock, seed=11)
    with FakeWorkOS(model) as fake:
        api = WorkOSDirectoryApi(
            api_key=fake.api_key,
            base_url=fake.base_url,
            requests_per_second_per_directory=200,
            requests_per_second_total=400,
        )
        yield World(
            model,
            clock,
            fake,
            DirectoryTable(aws.table_name, client=boto3.client("dynamodb")),
            RecordingWorkQueue(),
            api,
        )
        api.close()


def synced_directory(world: World, *, users: int = 30, groups: int = 5) -> str:
    directory_id = str(world.model.create_directory(organization_id="org_01RECONCILE")["id"])
    populate(world.model, directory_id, users=users, groups=groups, rng=random.Random(5))
    world.deliver(world.model.drain_events())
    world.jobs.jobs.clear()
    assert world.matches_truth(directory_id)
    return directory_id


def test_a_store_that_matches_causes_zero_writes(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    directory_id = synced_directory(world)
    writes: list[str] = []
    original = world.table.replace_if_newer

    def counting(record: Record) -> Replaced:
        writes.append(record.key.sk)
        return original(record)

    monkeypatch.setattr(world.table, "replace_if_newer", counting)
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE
    assert report.drift.total() == 0 and writes == []


def test_missed_creates_updates_and_membership_changes_are_repaired(world: World) -> None:
    directory_id = synced_directory(world)
    model = world.model
    users, groups = model.user_ids(directory_id), model.group_ids(directory_id)
    new_user = model.create_user(directory_id, first_name="Late", last_name="Joiner", email="late@acme.test")["id"]
    model.update_user(users[0], last_name="Renamed")
    model.deactivate_user(users[1])
    new_group = model.create_group(directory_id, name="New Team")["id"]
    model.update_group(groups[0], name="Renamed Team")
    model.add_user_to_group(new_group, new_user)
    member = sorted(model.members(groups[1]))[0]
    model.remove_user_from_group(groups[1], member)
    model.drain_events()  # every one of those webhooks is lost

    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE
    drift = report.drift
    assert (drift.users_created, drift.users_updated, drift.groups_created, drift.groups_updated) == (1, 2, 1, 1)
    assert (drift.memberships_added, drift.memberships_removed) == (1, 1)
    assert world.matches_truth(directory_id)


def test_missed_deletes_are_confirmed_by_404_then_removed(world: World) -> None:
    directory_id = synced_directory(world)
    model = world.model
    users, groups = model.user_ids(directory_id), model.group_ids(directory_id)
    doomed_group_members = model.members(groups[0])
    model.delete_user(users[0])
    model.delete_group(groups[0])
    model.drain_events()

    world.fake.clear_request_log()
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE
    assert (report.drift.users_removed, report.drift.groups_removed) == (1, 1)
    gets = [r.path for r in world.fake.request_log if r.path.count("/") == 2]
    assert f"/directory_users/{users[0]}" in gets and f"/directory_groups/{groups[0]}" in gets
    assert world.matches_truth(directory_id)
    assert doomed_group_members  # the group had members, and their memberships ended with it
    assert DirectoryReader(world.table).group_members(directory_id, groups[0]) == []


def test_missed_activation_is_discovered_and_synced(world: World) -> None:
    directory_id = world.model.create_directory(organization_id="org_01MISSED")["id"]
    populate(world.model, directory_id, users=12, groups=3, rng=random.Random(9))
    world.model.drain_events()  # not one webhook arrived
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE and report.drift.directory_repaired == 1
    assert report.drift.users_created == 12 and report.drift.groups_created == 3
    assert world.matches_truth(directory_id)


def test_missed_directory_deletion_cascades_and_purges(world: World) -> None:
    synced_directory(world, users=3, groups=1)  # still listed: the key is of the mirror's environment
    directory_id = synced_directory(world, users=8, groups=2)
    world.model.delete_directory(directory_id)
    world.model.drain_events()
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.DELETED
    assert world.export(directory_id) == {"directory": None, "users": [], "groups": [], "memberships": []}
    assert {"kind": "purge", "directory_id": directory_id, "reason": "reconcile"} in world.jobs.jobs


def test_a_run_out_of_time_checkpoints_and_the_next_resumes(world: World) -> None:
    directory_id = world.model.create_directory(organization_id="org_01BIG")["id"]
    populate(world.model, directory_id, users=450, groups=6, rng=random.Random(2))
    world.model.drain_events()

    checks = itertools.count()

    def shrinking() -> float:  # plenty of time for the first few checks, then the Lambda is about to time out
        return 10_000.0 if next(checks) < 4 else 0.0

    first = world.reconciler(reserve_seconds=1).run(directory_id, remaining_seconds=shrinking)
    assert first.status is RunStatus.CONTINUE
    state = world.table.get_item(_key(directory_id, "~RECONCILE#STATE"))
    assert state is not None and state["phase"] in ("groups", "users", "memberships")

    second = world.reconciler().run(directory_id)
    assert second.status is RunStatus.COMPLETE
    assert second.drift.users_created == 450  # cumulative across both invocations, nothing counted twice
    assert world.matches_truth(directory_id)
    assert world.table.get_item(_key(directory_id, "~RECONCILE#STATE")) is None


def test_a_crashed_run_resumes_from_its_checkpoint(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    directory_id = world.model.create_directory(organization_id="org_01CRASH")["id"]
    populate(world.model, directory_id, users=250, groups=4, rng=random.Random(4))
    world.model.drain_events()
    listed: list[str] = []
    original = world.api.iter_users

    def crashing(directory: str, *, after: str | None = None) -> Iterator[dict[str, Any]]:
        for user in original(directory, after=after):
            listed.append(user["id"])
            if len(listed) == 220:
                raise ConnectionError("Lambda killed mid-run")
            yield user

    monkeypatch.setattr(world.api, "iter_users", crashing)
    failed = world.reconciler(checkpoint_every_seconds=0).run(directory_id)
    assert failed.status is RunStatus.FAILED
    monkeypatch.setattr(world.api, "iter_users", original)
    world.fake.clear_request_log()
    resumed = world.reconciler().run(directory_id)
    assert resumed.status is RunStatus.COMPLETE
    user_pages = [r for r in world.fake.request_log if r.path == "/directory_users" and "directory=" in r.query]
    assert len(user_pages) <= 2  # resumed after the last checkpointed user, not from the first page
    assert world.matches_truth(directory_id)


def test_two_runs_for_one_directory_never_interleave(world: World) -> None:
    directory_id = synced_directory(world, users=5, groups=1)
    holder = Lease(world.table, ItemKey(schema.directory_pk(directory_id), LEASE_SK), acquired_ms=1_000)
    assert holder.acquire(600)
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.BUSY and report.busy_since_ms == 1_000


@pytest.mark.parametrize("body", ["json_string", "text"])
def test_rate_limited_listing_completes_with_both_429_body_forms(world: World, body: str) -> None:
    directory_id = world.model.create_directory(organization_id="org_01LIMITS")["id"]
    populate(world.model, directory_id, users=60, groups=12, rng=random.Random(6))
    world.model.drain_events()
    world.fake.set_rate_limit(4)
    world.fake.rate_limit_body = body  # type: ignore[assignment]
    eager = WorkOSDirectoryApi(
        api_key=world.fake.api_key, base_url=world.fake.base_url, requests_per_second_per_directory=40
    )
    report = DirectoryReconciler(api=eager, table=world.table, work_queue=world.jobs).run(directory_id)
    eager.close()
    assert report.status is RunStatus.COMPLETE
    assert eager.stats.rate_limited > 0  # it really was throttled, and it handled it
    assert world.matches_truth(directory_id)


def _key(directory_id: str, sort_key: str) -> Any:
    from shared.model.records import ItemKey

    return ItemKey(f"DIR#{directory_id}", sort_key)


def test_a_membership_webhook_that_lands_mid_run_wins(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    directory_id = synced_directory(world)
    group_id = world.model.group_ids(directory_id)[0]
    member = sorted(world.model.members(group_id))[0]
    original = world.api.iter_group_member_ids

    def listing_then_webhook(directory: str, group: str, *, after: str | None = None) -> Iterator[str]:
        members = list(original(directory, group, after=after))  # the listing still shows the member...
        if group == group_id:
            world.model.remove_user_from_group(group_id, member)  # ...who is removed right after it,
            world.deliver(world.model.drain_events())  # and whose webhook is applied before reconcile writes
        yield from members

    world.clock.advance(timedelta(days=3))  # the removal happens now, after the run started
    world.table.delete_items(  # make the store disagree with the (stale) listing, so reconcile wants to repair
        [_key(directory_id, f"MEMBER#{group_id}#{member}")]
    )
    monkeypatch.setattr(world.api, "iter_group_member_ids", listing_then_webhook)
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE
    assert member not in {u["id"] for u in DirectoryReader(world.table).group_members(directory_id, group_id)}
    assert world.matches_truth(directory_id)


def test_a_user_webhook_that_lands_mid_run_wins(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    directory_id = synced_directory(world)
    user_id = world.model.user_ids(directory_id)[0]
    world.model.update_user(user_id, last_name="Stale")
    world.model.drain_events()  # lost: the store is behind, reconcile will want to write "Stale"
    original = world.api.iter_users

    def listing_then_webhook(directory: str, *, after: str | None = None) -> Iterator[dict[str, Any]]:
        for user in original(directory, after=after):
            if user["id"] == user_id:
                world.model.update_user(user_id, last_name="Fresh")  # newer change, delivered mid-run
                world.deliver(world.model.drain_events())
            yield user  # the listing's copy is the older "Stale" one

    monkeypatch.setattr(world.api, "iter_users", listing_then_webhook)
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE
    assert report.drift.users_updated == 0  # its write lost to the newer webhook, as it must
    user = DirectoryReader(world.table).get_user(directory_id, user_id)
    assert user is not None and user["last_name"] == "Fresh"
    assert world.matches_truth(directory_id)


def test_a_user_and_membership_created_by_webhook_mid_run_are_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store read at the start of the users phase predates a webhook burst that creates a user and its
    membership; reconcile's own write of that user is then a no-op. The membership must not be removed."""
    directory_id = synced_directory(world, users=5, groups=2)
    group_id = world.model.group_ids(directory_id)[0]
    original = world.api.iter_users
    late: list[str] = []

    def webhooks_land_during_listing(directory: str, *, after: str | None = None) -> Iterator[dict[str, Any]]:
        if not late:
            user = world.model.create_user(directory_id, first_name="Mid", last_name="Run", email="mid@run.test")
            world.model.add_user_to_group(group_id, user["id"])
            world.deliver(world.model.drain_events())
            late.append(user["id"])
        yield from original(directory, after=after)

    monkeypatch.setattr(world.api, "iter_users", webhooks_land_during_listing)
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE and report.drift.memberships_removed == 0
    assert late[0] in {u["id"] for u in DirectoryReader(world.table).group_members(directory_id, group_id)}
    assert world.matches_truth(directory_id)


def test_a_group_deleted_by_webhook_mid_run_keeps_no_membership_the_run_repaired(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #17 defect 6: the membership repair is written after the group's deletion cascade ran; the run's
    read-back ends it (a deleted group is never revisited by a later run)."""
    directory_id = synced_directory(world)
    group_id = world.model.group_ids(directory_id)[0]
    members = sorted(world.model.members(group_id))
    world.table.delete_items([_key(directory_id, f"MEMBER#{group_id}#{member}") for member in members])
    original = world.api.iter_group_member_ids

    def listing_then_deletion(directory: str, group: str, *, after: str | None = None) -> Iterator[str]:
        listed = list(original(directory, group, after=after))
        if group == group_id:
            world.clock.advance(timedelta(days=3))  # the deletion happens now, after the run started
            world.model.delete_group(group_id)
            world.deliver(world.model.drain_events())  # its webhook (and cascade) lands before reconcile writes
        yield from listed

    monkeypatch.setattr(world.api, "iter_group_member_ids", listing_then_deletion)
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE
    rows = list(world.table.query_partition(directory_id, f"MEMBER#{group_id}#"))
    assert rows and all(row["deleted"] for row in rows)  # written by the repair, then ended by its read-back
    assert world.matches_truth(directory_id)


def test_a_user_that_can_never_be_stored_is_skipped_by_id_without_personal_data(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #17 defect 10: one bad object no longer fails its directory's reconcile at the same spot forever."""
    directory_id = world.model.create_directory(organization_id="org_01SKIP")["id"]
    populate(world.model, directory_id, users=30, groups=2, rng=random.Random(4))
    world.model.drain_events()
    bad_id = world.model.user_ids(directory_id)[10]
    original = world.api.iter_users

    def with_a_broken_user(directory: str, *, after: str | None = None) -> Iterator[dict[str, Any]]:
        for user in original(directory, after=after):
            yield {**user, "first_name": {"secret": "PII-Ada-Lovelace"}} if user["id"] == bad_id else user

    monkeypatch.setattr(world.api, "iter_users", with_a_broken_user)
    with caplog.at_level("WARNING"):
        report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE and report.skipped == 1
    assert report.drift.users_created == 29  # everything after the bad user too
    [skipped] = [record for record in caplog.records if record.getMessage().startswith("reconcile skipped")]
    assert vars(skipped)["id"] == bad_id and "first_name" in vars(skipped)["reason"]
    assert "PII-Ada-Lovelace" not in str(vars(skipped))
    assert "PII-Ada-Lovelace" not in json.dumps(report.as_dict())


# --- The directory's counter item: kept by apply's and reconcile's writes, set from the partition at the end --------


def workos_counts(world: World, directory_id: str) -> dict[str, int]:
    truth = world.model.snapshot(directory_id)
    active = sum(1 for user in truth["users"] if user["state"] == "active")
    return {"users_active": active, "users_inactive": len(truth["users"]) - active, "groups": len(truth["groups"])}


def mirror_counts(world: World, directory_id: str) -> dict[str, int | None]:
    counts, _ = records.readable_counts(world.table.get_item(records.counts_key(directory_id)))
    return counts


def test_webhooks_and_a_reconciles_repairs_keep_the_counts_so_its_correction_finds_nothing(world: World) -> None:
    directory_id = synced_directory(world)
    assert mirror_counts(world, directory_id) == workos_counts(world, directory_id)  # applied webhooks counted
    users, groups = world.model.user_ids(directory_id), world.model.group_ids(directory_id)
    world.model.deactivate_user(users[0])
    world.model.delete_user(users[1])
    world.model.delete_group(groups[0])
    world.model.create_user(directory_id, first_name="New", last_name="Comer", email="new@acme.test")
    world.model.drain_events()  # the webhooks are lost: only the reconcile repairs them
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE and report.drift.total() > 0
    assert report.counts_corrected == {}  # the repairs' own transitions moved the counts
    assert mirror_counts(world, directory_id) == workos_counts(world, directory_id)


def test_counts_that_missed_a_batch_are_set_from_the_partition_by_the_reconcile(world: World) -> None:
    directory_id = synced_directory(world)
    # A Lambda killed between its writes and its counter update: the counts lost that batch's transitions.
    world.table.add_counts(records.CountChange(directory_id, {"users_active": -3, "groups": 1}, token="lost"))
    report = world.reconciler().run(directory_id)
    assert report.status is RunStatus.COMPLETE and report.counts_corrected == {"users_active": 3, "groups": -1}
    assert mirror_counts(world, directory_id) == workos_counts(world, directory_id)
    counter = world.table.get_item(records.counts_key(directory_id)) or {}
    assert counter["basis"] == "reconcile" and counter["reconciled_at"] and counter["unobserved"] == 0
    last = world.table.get_item(ItemKey(schema.directory_pk(directory_id), LAST_RUN_SK)) or {}
    assert last["counts_corrected"] == {"users_active": 3, "groups": -1}  # `dsync status` shows the last run's
