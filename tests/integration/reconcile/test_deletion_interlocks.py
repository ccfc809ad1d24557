"""No single input erases a tenant: reconcile deletes only on positive evidence, and mass deletions wait for a human.

The world: a production WorkOS environment whose directories the mirror holds, and a staging environment beside it
(its own key, its own directories). The review reproduced that a valid key of the other environment tombstoned and
purged every directory of the mirror, published `user.deprovisioned` for each user and exited 0.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from dsync import cli
from dsync.commands.reconcile import run_reconcile
from dsync.commands.replay import run_replay
from dsync.errors import CommandError
from dsync.fake_workos import DirectoryModel, FakeWorkOS, populate
from dsync.local.provision import LocalResources
from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.sqs import SqsEventQueue
from shared.adapters.workos_api import WorkOSDirectoryApi
from shared.adapters.workos_client import tail_errors
from shared.apply.applier import Applier
from shared.apply.ports import InboundMessage, Status, StoreThrottledError
from shared.key_check import KeyCheck, compare
from shared.lease import Lease
from shared.model import schema
from shared.model.records import Record, Replaced
from shared.read.reader import DirectoryReader
from shared.reconcile.deletion_guard import DeletionPolicy
from shared.reconcile.jobs import WavePlanner, discover, run_job
from shared.reconcile.run import DirectoryReconciler, RunStatus
from shared.tail.cursor import LEASE_KEY, CursorStore
from shared.tail.poller import EventsTail, TailConfig, TailStatus
from tests.support.fake_store import FakeDeadLetters

pytestmark = pytest.mark.integration

STAGING_KEY = "sk_test_staging"


@dataclass
class Jobs:
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def submit(self, job: Any, delay_seconds: int = 0) -> None:
        self.jobs.append(dict(job))


@dataclass
class Environments:
    fake: FakeWorkOS
    staging: DirectoryModel
    table: DirectoryTable
    target: Target
    jobs: Jobs

    def api(self, key: str) -> WorkOSDirectoryApi:
        return WorkOSDirectoryApi(
            api_key=key,
            base_url=self.fake.base_url,
            requests_per_second_per_directory=500,
            requests_per_second_total=500,
        )

    def synced(self, *, users: int = 12, organization: str = "org_01PROD") -> str:
        """A production directory whose webhooks all arrived."""
        model = self.fake.model
        directory_id = str(model.create_directory(organization_id=organization)["id"])
        populate(model, directory_id, users=users, groups=2, rng=random.Random(len(model.directory_ids())))
        self.deliver(model.drain_events())
        self.jobs.jobs.clear()
        return directory_id

    def deliver(self, events: list[dict[str, Any]]) -> None:
        applier = Applier(store=self.table, work_queue=self.jobs, dead_letters=FakeDeadLetters())
        for start in range(0, len(events), 10):
            batch = [InboundMessage(e["id"], json.dumps(e), "g", e["id"]) for e in events[start : start + 10]]
            assert all(o.status in (Status.APPLIED, Status.NOOP) for o in applier.apply(batch).values())

    def export(self, directory_id: str) -> dict[str, Any]:
        return DirectoryReader(self.table).export(directory_id)

    def items(self) -> list[str]:
        """Every item but reconcile's own bookkeeping (its last run records a refusal, for `dsync status`)."""
        items = boto3.client("dynamodb").scan(TableName=self.table.table_name)["Items"]
        return sorted(str(item) for item in items if not item["sk"]["S"].startswith("~RECONCILE#"))


@pytest.fixture
def envs(aws: LocalResources, target: Target) -> Iterator[Environments]:
    with FakeWorkOS(DirectoryModel(seed=41)) as fake:
        staging = fake.add_environment(STAGING_KEY, DirectoryModel(seed=42))
        staging_directory = staging.create_directory(organization_id="org_01STAGING")["id"]
        populate(staging, staging_directory, users=5, groups=1, rng=random.Random(3))
        yield Environments(fake, staging, DirectoryTable(aws.table_name), target, Jobs())


def test_another_environments_key_erases_and_imports_nothing_and_the_command_exits_1_saying_why(
    envs: Environments, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    directories = [envs.synced(), envs.synced(organization="org_01OTHER")]
    exports = {d: envs.export(d) for d in directories}
    before = envs.items()
    monkeypatch.setattr(cli, "_target", lambda _: envs.target)
    workos = ["--workos-api-key", STAGING_KEY, "--workos-base-url", envs.fake.base_url]

    assert cli.main(["reconcile", *workos]) == 1
    assert "another WorkOS environment" in capsys.readouterr().err
    assert cli.main(["reconcile", "--directory", directories[0], *workos]) == 1
    assert "refused" in capsys.readouterr().err
    # Even an operator's confirmation does not turn a 404 under the wrong key into evidence.
    with pytest.raises(CommandError, match="another WorkOS environment"):
        run_reconcile(
            envs.target, directory_id=None, api_key=STAGING_KEY, base_url=envs.fake.base_url, confirm_deletions=True
        )
    one = run_reconcile(
        envs.target,
        directory_id=directories[1],
        api_key=STAGING_KEY,
        base_url=envs.fake.base_url,
        confirm_deletions=True,
    )
    assert not one["ok"] and one["directories"][0]["status"] == "refused"

    assert {d: envs.export(d) for d in directories} == exports
    assert envs.items() == before  # nothing written, nothing of staging imported


def test_a_wave_under_another_environments_key_queues_nothing(envs: Environments) -> None:
    envs.synced()
    with envs.api(STAGING_KEY) as api:
        wave = WavePlanner(api, envs.table, envs.jobs).plan_wave("schedule")
    assert wave.refused is not None and "another WorkOS environment" in wave.refused
    assert envs.jobs.jobs == [] and wave.directory_ids == []


def test_a_job_under_another_environments_key_is_refused_and_writes_nothing(envs: Environments) -> None:
    directory_id = envs.synced()
    envs.synced(organization="org_01OTHER")
    before = envs.items()
    with envs.api(STAGING_KEY) as api:
        outcome = run_job(
            {"kind": "reconcile", "directory_id": directory_id},
            table=envs.table,
            work_queue=envs.jobs,
            reconciler=lambda: DirectoryReconciler(api=api, table=envs.table, work_queue=envs.jobs),
            remaining_seconds=lambda: 900.0,
        )
    assert outcome.report is not None and outcome.report.status is RunStatus.REFUSED
    assert envs.jobs.jobs == []  # no purge
    assert envs.items() == before


def test_a_directory_is_deleted_on_positive_evidence(envs: Environments) -> None:
    kept, doomed = envs.synced(), envs.synced(organization="org_01DOOMED")
    envs.fake.model.delete_directory(doomed)  # its dsync.deleted webhook was lost
    envs.fake.model.drain_events()
    with envs.api(envs.fake.api_key) as api:
        report = DirectoryReconciler(api=api, table=envs.table, work_queue=envs.jobs).run(doomed)
    assert report.status is RunStatus.DELETED
    assert envs.export(doomed)["directory"] is None and envs.export(kept)["directory"] is not None
    assert [job["kind"] for job in envs.jobs.jobs] == ["purge"]


def test_a_directory_the_listing_still_shows_is_not_deleted_on_a_404(
    envs: Environments, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory_id = envs.synced()
    with envs.api(envs.fake.api_key) as api:
        monkeypatch.setattr(api, "get_directory", lambda _: None)  # a stray 404, the listing disagrees
        report = DirectoryReconciler(api=api, table=envs.table, work_queue=envs.jobs).run(directory_id)
    assert report.status is RunStatus.REFUSED and "lists the directory" in str(report.error)
    assert envs.export(directory_id)["directory"] is not None and envs.jobs.jobs == []


def test_a_typo_directory_is_unknown_creates_nothing_and_the_command_exits_1(
    envs: Environments, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    envs.synced()
    before = envs.items()
    with envs.api(envs.fake.api_key) as api:
        report = DirectoryReconciler(api=api, table=envs.table, work_queue=envs.jobs).run("directory_01TYPO")
    assert report.status is RunStatus.UNKNOWN and envs.jobs.jobs == []
    assert envs.items() == before
    monkeypatch.setattr(cli, "_target", lambda _: envs.target)
    workos = ["--workos-api-key", envs.fake.api_key, "--workos-base-url", envs.fake.base_url]
    assert cli.main(["reconcile", "--directory", "directory_01TYPO", *workos]) == 1
    assert "nor the mirror knows directory 'directory_01TYPO'" in capsys.readouterr().err


def test_more_directories_gone_than_a_wave_may_delete_wait_for_an_operator(envs: Environments) -> None:
    kept = envs.synced()
    gone = [envs.synced(users=3, organization=f"org_01GONE{n}") for n in range(4)]
    for directory_id in gone:
        envs.fake.model.delete_directory(directory_id)
    envs.fake.model.drain_events()

    held = run_reconcile(envs.target, directory_id=None, api_key=envs.fake.api_key, base_url=envs.fake.base_url)
    assert not held["ok"] and sorted(held["held_directories"]) == sorted(gone)
    assert {d["directory_id"]: d["status"] for d in held["directories"]} == {kept: "complete"} | dict.fromkeys(
        gone, "held"
    )
    assert all(envs.export(d)["directory"] is not None for d in gone)

    confirmed = run_reconcile(
        envs.target, directory_id=None, api_key=envs.fake.api_key, base_url=envs.fake.base_url, confirm_deletions=True
    )
    assert confirmed["ok"] and all(envs.export(d)["directory"] is None for d in gone)
    assert envs.export(kept)["directory"] is not None


def test_a_wave_within_the_limit_deletes_and_its_jobs_carry_the_decision(envs: Environments) -> None:
    envs.synced()
    doomed = envs.synced(organization="org_01DOOMED")
    envs.fake.model.delete_directory(doomed)
    with envs.api(envs.fake.api_key) as api:
        wave = discover(api, envs.table, deletions=DeletionPolicy(max_directory_deletions_per_wave=1))
        assert wave.held == ()
        strict = discover(api, envs.table, deletions=DeletionPolicy(max_directory_deletions_per_wave=0))
        assert strict.held == (doomed,)
        WavePlanner(api, envs.table, envs.jobs, deletions=DeletionPolicy(max_directory_deletions_per_wave=0)).plan(
            "test"
        )
    [held_job] = [job for job in envs.jobs.jobs if job["directory_id"] == doomed]
    assert held_job["hold_directory_deletion"] is True


def test_a_run_removes_at_most_a_share_of_the_users_without_an_operator(envs: Environments) -> None:
    envs.synced()
    directory_id = envs.synced(users=60, organization="org_01SHRINK")
    model = envs.fake.model
    for user_id in model.user_ids(directory_id)[:20]:  # a third of the directory, every webhook lost
        model.delete_user(user_id)
    model.drain_events()
    with envs.api(envs.fake.api_key) as api:
        reconciler = DirectoryReconciler(api=api, table=envs.table, work_queue=envs.jobs)
        held = reconciler.run(directory_id)
        assert held.status is RunStatus.HELD and "20 of the directory's 60 users" in str(held.error)
        assert len(envs.export(directory_id)["users"]) == 60 and held.drift.users_removed == 0
        done = reconciler.run(directory_id, deletions=DeletionPolicy(confirmed=True))
    assert done.status is RunStatus.COMPLETE and done.drift.users_removed == 20
    assert len(envs.export(directory_id)["users"]) == 40


def test_a_few_leavers_are_removed_without_an_operator(envs: Environments) -> None:
    envs.synced()
    directory_id = envs.synced(users=60, organization="org_01LEAVERS")
    for user_id in envs.fake.model.user_ids(directory_id)[:4]:
        envs.fake.model.delete_user(user_id)
    with envs.api(envs.fake.api_key) as api:
        report = DirectoryReconciler(api=api, table=envs.table, work_queue=envs.jobs).run(directory_id)
    assert report.status is RunStatus.COMPLETE and report.drift.users_removed == 4


def test_check_key_shows_what_a_key_sees_and_exits_1_for_another_environment(
    envs: Environments, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    directory_id = envs.synced()
    new_in_workos = envs.fake.model.create_directory(organization_id="org_01NEW")["id"]
    monkeypatch.setattr(cli, "_target", lambda _: envs.target)

    assert cli.main(["check-key", "--workos-api-key", envs.fake.api_key, "--workos-base-url", envs.fake.base_url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["same_environment"] and report["known"] == [directory_id] and report["unknown"] == [new_in_workos]

    assert cli.main(["check-key", "--workos-api-key", STAGING_KEY, "--workos-base-url", envs.fake.base_url]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert not report["same_environment"] and report["missing"] == [directory_id] and report["known"] == []
    assert "another WorkOS environment" in captured.err


def test_a_tail_without_an_event_cursor_under_another_environments_key_reads_nothing(
    envs: Environments, aws: LocalResources
) -> None:
    """The review's reproduction: the tail read staging's events by time, they were applied, and the imported
    directory then made production's look deletable."""
    production = envs.synced()
    with envs.api(STAGING_KEY) as staging:
        tail = EventsTail(
            api=staging,
            errors=tail_errors(),
            queue=SqsEventQueue(aws.event_queue_url),
            cursors=CursorStore(envs.table),
            lease=Lease(envs.table, LEASE_KEY),
            reconciles=WavePlanner(staging, envs.table, envs.jobs),
            environment=KeyCheck(staging, envs.table),
            config=TailConfig(run_seconds=2, idle_poll_seconds=0.2),
        )
        report = tail.run(lambda: 30.0)
    assert report.status is TailStatus.ENVIRONMENT_CHANGED and report.events_enqueued == 0
    queued = boto3.client("sqs").get_queue_attributes(
        QueueUrl=aws.event_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert queued == "0" and envs.jobs.jobs == []
    assert envs.export(production)["directory"] is not None


def test_a_mirror_whose_only_directory_was_deleted_imports_nothing_under_another_environments_key(
    envs: Environments,
) -> None:
    """The review's reproduction: with no live directory left, "the mirror holds nothing" made any key its own, and
    the wave imported staging's directory (and published its users as provisioned)."""
    only = envs.synced()
    envs.fake.model.delete_directory(only)
    envs.deliver(envs.fake.model.drain_events())
    envs.jobs.jobs.clear()  # the deletion's own purge
    before = envs.items()
    with envs.api(STAGING_KEY) as staging:
        wave = WavePlanner(staging, envs.table, envs.jobs).plan_wave("schedule")
    assert wave.refused is not None and envs.jobs.jobs == []
    assert envs.items() == before


def test_the_empty_mirror_rule_reads_the_table_not_the_lagging_index() -> None:
    """A mirror whose first directory is not indexed yet (or whose only directory is a tombstone) is not empty."""
    listed = [{"id": "directory_staging", "organization_id": "org_staging"}]
    assert not compare(listed, [], mirror_ever_held=True).same_environment
    assert compare(listed, [], mirror_ever_held=False).same_environment  # a new deployment takes its first key


def test_a_replay_under_another_environments_key_is_refused_before_reading_anything(envs: Environments) -> None:
    envs.synced()
    with pytest.raises(CommandError, match=r"replay refused.*another WorkOS environment"):
        run_replay(
            envs.target,
            since=(datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            until=None,
            directory_id=None,
            api_key=STAGING_KEY,
            base_url=envs.fake.base_url,
        )
    assert not [r for r in envs.fake.request_log if r.path == "/events"]


class ThrottledOnceCascade(DirectoryTable):
    """The table, whose first membership-ending write is throttled (the run fails there and is retried)."""

    armed = True

    def replace_if_newer(self, record: Record) -> Replaced:
        if self.armed and record.key.sk.startswith(schema.MEMBER_PREFIX) and record.deleted:
            self.armed = False
            raise StoreThrottledError("ProvisionedThroughputExceededException")
        return super().replace_if_newer(record)


def test_a_group_removal_whose_cascade_failed_once_ends_every_membership_on_the_retry(envs: Environments) -> None:
    """The review's reproduction: the tombstone was written before the cascade, so the retry no longer saw a live
    group to remove, and no later run visits a deleted group: 4 of 11 memberships stayed present for good."""
    directory_id = envs.synced(users=12)
    model = envs.fake.model
    group_id = next(group for group in model.group_ids(directory_id) if model.members(group))
    model.delete_group(group_id)
    model.drain_events()  # its webhook was lost
    table = ThrottledOnceCascade(envs.table.table_name)
    with envs.api(envs.fake.api_key) as api:
        reconciler = DirectoryReconciler(api=api, table=table, work_queue=envs.jobs)
        assert reconciler.run(directory_id).status is RunStatus.FAILED
        assert reconciler.run(directory_id).status is RunStatus.COMPLETE
    rows = list(table.query_partition(directory_id, schema.group_members_prefix(group_id)))
    assert rows and not [row for row in rows if not row["deleted"]]
