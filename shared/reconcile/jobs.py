"""Reconcile and purge jobs on the work queue: planning a wave, running one job, deciding what comes next.

A wave (the schedule, or the Events API tail after WorkOS refused its cursor) queues one job per directory, so
directories run in parallel invocations. A job runs one directory's reconcile within the invocation's budget;
what happens next is decided here, not in the handler: a checkpointed run queues its continuation, a busy
directory is asked again only if the request is newer than the run in progress, a rate-limited run comes back once
WorkOS's window has passed, and anything else that failed is raised so SQS retries it (then the work DLQ).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from shared import key_check
from shared.apply.purge import PurgeResult, purge_directory
from shared.model import schema
from shared.model.records import ItemKey
from shared.reconcile import wave_budget
from shared.reconcile.deletion_guard import DeletionPolicy
from shared.reconcile.health import HealthRecorder, HealthReport
from shared.reconcile.ports import ReconcileTable
from shared.reconcile.run import LAST_RUN_SK, DirectoryApi, DirectoryReconciler, DirectoryReport, RunStatus

RATE_LIMITED_DELAY_SECONDS = 60
BUSY_RETRY_DELAY_SECONDS = 30


class WorkQueue(Protocol):
    def submit(self, job: Any, *, delay_seconds: int = 0) -> None: ...


def job_message(
    directory_id: str, reason: str, *, hold_directory_deletion: bool = False, confirmed_deletions: bool = False
) -> dict[str, Any]:
    job: dict[str, Any] = {
        "kind": "reconcile",
        "directory_id": directory_id,
        "reason": reason,
        "requested_at_ms": int(time.time() * 1000),
    }
    if hold_directory_deletion:
        job["hold_directory_deletion"] = (
            True  # the wave found too many directories gone (`shared.reconcile.deletion_guard`)
        )
    if confirmed_deletions:
        job["confirmed_deletions"] = True
    return job


@dataclass(frozen=True)
class Wave:
    directory_ids: list[str]
    health: HealthReport | None
    deferred: int = 0  # directories left for a later wave by the budget (`shared.reconcile.wave_budget`)
    view: key_check.KeyView | None = None
    refused: str | None = None  # why the wave queued nothing (the key sees none of the mirror)
    held: tuple[str, ...] = ()  # directories gone from WorkOS whose deletion waits for an operator

    def as_dict(self) -> dict[str, Any]:
        return {
            "directories": len(self.directory_ids),
            "deferred": self.deferred,
            "refused": self.refused,
            "held": list(self.held),
            "key": self.view.as_dict() if self.view is not None else None,
        }


def discover(
    api: DirectoryApi,
    table: ReconcileTable,
    *,
    health: HealthRecorder | None = None,
    deletions: DeletionPolicy | None = None,
) -> Wave:
    """Every directory WorkOS has, plus every one the store knows (the latter may be gone from WorkOS); with a
    `HealthRecorder`, the same listing records each directory's health.

    A key that sees none of the mirror's directories or organizations (`shared.key_check`) makes a refused wave:
    no directory, no health record, nothing of the other environment imported. More directories gone than the
    policy lets one wave delete are `held`: their jobs may not delete them."""
    listed = list(api.list_directories())
    view = key_check.mirror_view(listed, table)
    if not view.same_environment:
        return Wave([], None, view=view, refused=key_check.WRONG_ENVIRONMENT)
    report = health.record(listed) if health is not None else None
    policy = deletions or DeletionPolicy()
    held = view.missing if policy.directory_deletions_to_hold(len(view.missing)) else ()
    return Wave(sorted(view.listed | set(view.missing)), report, view=view, held=tuple(held))


class WavePlanner:
    """Queues one reconcile job per directory (WorkOS's and the store's); the tail's `ReconcileRequester` too.

    With a `HealthRecorder`, the listing the wave makes anyway also records each directory's health."""

    def __init__(
        self,
        api: DirectoryApi,
        table: ReconcileTable,
        work_queue: WorkQueue,
        *,
        health: HealthRecorder | None = None,
        budget_seconds: float | None = None,
        deletions: DeletionPolicy | None = None,
    ) -> None:
        self._api = api
        self._table = table
        self._work_queue = work_queue
        self._health = health
        self._budget_seconds = budget_seconds  # None: every directory, every wave
        self._deletions = deletions or DeletionPolicy()

    def plan_wave(self, reason: str, *, budgeted: bool = True) -> Wave:
        """Queue the wave's jobs: within the budget if there is one and `budgeted`, else every directory. A refused
        wave queues nothing."""
        wave = discover(self._api, self._table, health=self._health, deletions=self._deletions)
        if wave.refused:
            return wave
        chosen, deferred = wave.directory_ids, 0
        if budgeted and self._budget_seconds is not None:
            selection = wave_budget.select(self._candidates(wave), self._budget_seconds)
            chosen, deferred = sorted(c.directory_id for c in selection.chosen), len(selection.deferred)
        held = set(wave.held)
        for directory_id in chosen:
            self._work_queue.submit(
                job_message(
                    directory_id,
                    reason,
                    hold_directory_deletion=directory_id in held,
                    confirmed_deletions=self._deletions.confirmed,
                )
            )
        return Wave(chosen, wave.health, deferred, view=wave.view, held=wave.held)

    def plan(self, reason: str) -> list[str]:
        """Every directory (the tail's request after WorkOS refused its cursor: nothing may be left out)."""
        return self.plan_wave(reason, budgeted=False).directory_ids

    def _candidates(self, wave: Wave) -> list[wave_budget.Candidate]:
        """Each directory's last finished run (one batched read) and, from the wave's health listing, WorkOS's
        counts and whether they differ from the mirror's."""
        keys = [ItemKey(schema.directory_pk(d), LAST_RUN_SK) for d in wave.directory_ids]
        last_runs = {
            schema.directory_id_of_pk(str(item[schema.PARTITION_KEY])): item for item in self._table.batch_get(keys)
        }
        checks = {check.directory_id: check for check in (wave.health.checks if wave.health else [])}
        candidates = []
        for directory_id in wave.directory_ids:
            run, check = last_runs.get(directory_id), checks.get(directory_id)
            finished = run is not None and run.get("status") == RunStatus.COMPLETE.value
            users = (check.workos.users_active or 0) + (check.workos.users_inactive or 0) if check else 0
            candidates.append(
                wave_budget.Candidate(
                    directory_id,
                    last_finished_at=float(run.get("finished_at", 0)) if run is not None and finished else None,
                    last_requests=None,
                    last_seconds=float(run.get("duration_seconds", 0)) if run is not None else None,
                    last_attempted_at=float(run.get("finished_at", 0)) if run is not None else None,
                    users=users,
                    groups=(check.workos.groups or 0) if check else 0,
                    drifted=check.counts_differ if check else False,
                )
            )
        return candidates

    def request_full_reconcile(self, reason: str) -> int:
        return len(self.plan(reason))


@dataclass(frozen=True)
class JobOutcome:
    kind: str
    directory_id: str | None
    report: DirectoryReport | None = None
    purge: PurgeResult | None = None
    invalid: bool = False
    # Set when the job neither finished nor checkpointed a continuation: the handler fails it so SQS retries it.
    retry_error: str | None = None


def run_job(
    job: dict[str, Any],
    *,
    table: ReconcileTable,
    work_queue: WorkQueue,
    reconciler: Callable[[], DirectoryReconciler],
    remaining_seconds: Callable[[], float],
    deletions: DeletionPolicy | None = None,
) -> JobOutcome:
    """Run one work-queue job and queue whatever must follow it (see `JobOutcome.retry_error`)."""
    kind, directory_id = job.get("kind"), job.get("directory_id")
    if not isinstance(directory_id, str) or kind not in ("reconcile", "purge"):
        return JobOutcome(str(kind), None, invalid=True)
    if kind == "purge":
        result = purge_directory(table, directory_id, remaining_seconds=remaining_seconds)
        if not result.complete:
            work_queue.submit({**job, "reason": "continuation"})
        return JobOutcome(kind, directory_id, purge=result)
    policy = (deletions or DeletionPolicy()).for_job(job)
    report = reconciler().run(directory_id, remaining_seconds=remaining_seconds, deletions=policy)
    if report.status is RunStatus.CONTINUE:
        work_queue.submit({**job, "reason": "continuation"})
    elif report.status is RunStatus.BUSY and int(job.get("requested_at_ms", 0)) > (report.busy_since_ms or 0):
        # The run in progress started before this request: it may miss what prompted it, so come back after it.
        work_queue.submit({**job, "reason": "retry after busy"}, delay_seconds=BUSY_RETRY_DELAY_SECONDS)
    elif report.status is RunStatus.FAILED:
        if report.error and report.error.startswith("WorkOSRateLimitedError"):
            # Checkpointed: come back once WorkOS's window has passed instead of burning retries.
            work_queue.submit({**job, "reason": "rate limited"}, delay_seconds=RATE_LIMITED_DELAY_SECONDS)
        else:
            return JobOutcome(kind, directory_id, report=report, retry_error=report.error or "reconcile failed")
    return JobOutcome(kind, directory_id, report=report)
