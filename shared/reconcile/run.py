"""Reconcile one directory against the WorkOS API: repair drift without ever undoing a newer webhook.

Webhooks get lost (an outage past WorkOS's retry window, a staging environment that retries for minutes, a message
parked in the DLQ). A run lists the directory through the API and makes the store equal to it, using the same
records and the same conditional write (`put_if_newer`) as the apply Lambda, so:

- users and groups are written only if the listed `updated_at` is newer than what is stored (a webhook that
  landed mid-run with a newer version wins; an identical store causes zero writes);
- membership repairs are versioned at the run's start minus a clock-skew allowance, so any membership webhook
  created after the run began is newer and wins;
- a user, group or directory missing from the listing is removed only after a `get` answers 404, and then its
  tombstone is newer than anything stored (deletion is final in WorkOS);
- a run that completes sets the directory's counter item from the partition (`shared.reconcile.counts`), the
  backstop of the counts the writers keep;
- a directory is deleted only on positive evidence, and mass deletions wait for an operator
  (`shared.reconcile.deletion_guard`): a run that would delete without evidence is REFUSED, one over the limits is
  HELD, and neither writes anything.

Phases: directory → groups → users → memberships (one listing per group) → deletions. A run checkpoints its phase,
cursor and the ids it has seen in the table, and stops before the time budget runs out; the next invocation resumes
from the checkpoint, so any directory size completes and a crashed run resumes rather than restarts. A lease item
keeps two runs for one directory from interleaving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from shared.apply.ports import PermanentStoreError, TransientStoreError
from shared.key_check import KeyCheck, KeyView
from shared.lease import Lease
from shared.model import records, schema
from shared.model.events import micros
from shared.reconcile.checkpoint import LAST_RUN_SK, CheckpointStore, Drift
from shared.reconcile.counts import CountsCorrection, correct_counts
from shared.reconcile.deletion_guard import DeletionPolicy, DeletionRefusedError, DeletionsHeldError
from shared.reconcile.phases import (
    DirectoryApi,
    RunState,
    WorkQueue,
    confirm_deletions,
    end_deleted_groups_memberships,
    sync_directory,
    sync_entities,
    sync_memberships,
)
from shared.reconcile.ports import ReconcileTable
from shared.reconcile.writes import RepairWriter
from shared.resources import DEFAULT_TOMBSTONE_TTL_DAYS

logger = logging.getLogger(__name__)

LEASE_SK = f"{schema.RECONCILE_PREFIX}LEASE"
PHASES = ("directory", "groups", "users", "memberships", "deletions", "done")


class RunStatus(StrEnum):
    COMPLETE = "complete"  # the store now matches WorkOS
    CONTINUE = "continue"  # checkpointed before the time budget ran out; a follow-up job resumes it
    BUSY = "busy"  # another run holds the directory's lease
    DELETED = "deleted"  # WorkOS confirmed the directory is gone: cascaded as dsync.deleted
    UNKNOWN = "unknown"  # neither WorkOS nor the mirror knows the directory: nothing written
    REFUSED = "refused"  # a deletion without positive evidence (e.g. another environment's key): nothing written
    HELD = "held"  # more deletions than one run may make on its own: they wait for --confirm-deletions
    FAILED = "failed"


#: A run that ended so needs an operator: the run report is not ok, and `dsync reconcile` exits 1.
NOT_OK = frozenset({RunStatus.FAILED, RunStatus.REFUSED, RunStatus.HELD, RunStatus.UNKNOWN})


@dataclass
class DirectoryReport:
    directory_id: str
    status: RunStatus
    run_id: str
    drift: Drift = field(default_factory=Drift)
    duration_seconds: float = 0.0
    error: str | None = None
    busy_since_ms: int | None = None  # BUSY: when the run holding the lease started
    skipped: int = 0  # listed items that cannot be stored (logged by id; never deleted)
    # The counter item set from the partition at the end (`shared.reconcile.counts`): by how much the maintained
    # counts were off ({} none); None when this run did not set them (not complete, out of time, or writers raced).
    counts_corrected: dict[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory_id": self.directory_id,
            "status": self.status.value,
            "run_id": self.run_id,
            "drift": asdict(self.drift),
            "drift_total": self.drift.total(),
            "duration_seconds": round(self.duration_seconds, 3),
            "error": self.error,
            "skipped": self.skipped,
            "counts_corrected": self.counts_corrected,
        }


@dataclass(frozen=True)
class ReconcileConfig:
    tombstone_ttl_seconds: int = DEFAULT_TOMBSTONE_TTL_DAYS * 86_400
    clock_skew_allowance_seconds: int = 300
    # Stop and checkpoint when less than this remains of the budget.
    reserve_seconds: float = 45.0
    checkpoint_every_seconds: float = 30.0
    lease_seconds: float = 16 * 60
    # A checkpoint older than this is abandoned and the run starts over (WorkOS has moved on since).
    max_checkpoint_age_seconds: float = 6 * 3600
    deletions: DeletionPolicy = field(default_factory=DeletionPolicy)

    def lease_for(self, remaining_seconds: float) -> float:
        return min(self.lease_seconds, remaining_seconds + 60)


class _Paused(Exception):
    """The time budget is nearly spent: checkpoint and let a follow-up job continue."""


@dataclass(frozen=True)
class RunProgress:
    """Where a run is, reported between units of work (for a progress bar): WorkOS items listed so far (users and
    groups, memberships not counted) and store writes made."""

    directory_id: str
    phase: str
    listed: int
    written: int


WRITE_PARALLELISM = 16


class DirectoryReconciler:
    """Runs (or resumes) the reconcile of one directory within a time budget."""

    def __init__(
        self,
        *,
        api: DirectoryApi,
        table: ReconcileTable,
        work_queue: WorkQueue,
        config: ReconcileConfig | None = None,
        clock: Callable[[], float] = time.time,
        on_progress: Callable[[RunProgress], None] | None = None,
    ) -> None:
        self._api = api
        self._table = table
        self._work_queue = work_queue
        self._config = config or ReconcileConfig()
        self._clock = clock
        self._on_progress = on_progress

    def run(
        self,
        directory_id: str,
        *,
        remaining_seconds: Callable[[], float] = lambda: float("inf"),
        deletions: DeletionPolicy | None = None,
    ) -> DirectoryReport:
        """Run (or resume) the directory's reconcile; `deletions` overrides the config's policy (a job's own)."""
        started = time.monotonic()
        config = self._config
        lease = Lease(self._table, records.ItemKey(schema.directory_pk(directory_id), LEASE_SK), clock=self._clock)
        checkpoints = CheckpointStore(
            self._table, directory_id, clock=self._clock, max_age_seconds=config.max_checkpoint_age_seconds
        )
        if not lease.acquire(config.lease_for(remaining_seconds())):
            holder = lease.holder()
            report = DirectoryReport(directory_id, RunStatus.BUSY, run_id=holder.run_id if holder else "")
            # Since when the run in progress has been listing: a continuation's lease is fresh, its run is not.
            acquired = holder.acquired_ms if holder else 0
            run_started = checkpoints.started_at_ms()
            report.busy_since_ms = min(acquired, run_started) if run_started is not None else acquired
            return report
        # Writes are I/O: 16 in flight keep the store busy while WorkOS's paced listing runs beside them.
        with ThreadPoolExecutor(max_workers=WRITE_PARALLELISM) as pool:
            writer = RepairWriter(
                self._table,
                directory_id,
                clock=self._clock,
                tombstone_ttl_seconds=config.tombstone_ttl_seconds,
                pool=pool,
            )
            run = _Run(
                directory_id=directory_id,
                api=self._api,
                writer=writer,
                work_queue=self._work_queue,
                checkpoints=checkpoints,
                lease=lease,
                config=config,
                remaining=remaining_seconds,
                on_progress=self._on_progress,
                evidence=KeyCheck(self._api, self._table).view,
                deletions=deletions or config.deletions,
            )
            corrected: CountsCorrection | None = None
            try:
                status = run.execute()
                corrected = (
                    self._correct_counts(directory_id, remaining_seconds) if status is RunStatus.COMPLETE else None
                )
            except _Paused:
                run.save()
                status = RunStatus.CONTINUE
            except (DeletionRefusedError, DeletionsHeldError) as stop:
                # Nothing deleted; the next run starts over from a fresh listing rather than resume this one.
                checkpoints.delete()
                refused = isinstance(stop, DeletionRefusedError)
                report = DirectoryReport(
                    directory_id,
                    RunStatus.REFUSED if refused else RunStatus.HELD,
                    run.checkpoint.run_id,
                    run.checkpoint.drift,
                )
                report.error = str(stop)
                report.duration_seconds = time.monotonic() - started
                checkpoints.record_finished(report.as_dict())
                return report
            except Exception as error:
                run.save()  # resume from here rather than restart
                report = DirectoryReport(directory_id, RunStatus.FAILED, run.checkpoint.run_id, run.checkpoint.drift)
                report.error = f"{type(error).__name__}: {error}"
                report.duration_seconds = time.monotonic() - started
                checkpoints.record_finished(report.as_dict())  # the attempt ages the directory in the wave budget
                return report
            finally:
                lease.release()
        report = DirectoryReport(directory_id, status, run.checkpoint.run_id, run.checkpoint.drift)
        report.skipped = run.checkpoint.skipped
        report.counts_corrected = corrected.drift if corrected is not None else None
        report.duration_seconds = time.monotonic() - started
        if status in (RunStatus.COMPLETE, RunStatus.DELETED):
            checkpoints.delete()
            if status is RunStatus.COMPLETE:
                checkpoints.record_finished(report.as_dict())
        return report

    def _correct_counts(self, directory_id: str, remaining_seconds: Callable[[], float]) -> CountsCorrection | None:
        """The store now matches WorkOS: set the directory's counter from its partition (two strongly consistent
        queries). Skipped near the end of the budget; a failure leaves the maintained counts as they are."""
        if remaining_seconds() < self._config.reserve_seconds:
            return None
        try:
            return correct_counts(self._table, directory_id, clock=self._clock)
        except (TransientStoreError, PermanentStoreError) as error:
            logger.warning("counts not corrected", extra={"directory_id": directory_id, "reason": str(error)})
            return None


class _Run:
    """One invocation's pass through the phases, from the checkpoint on; pauses and checkpoints between units."""

    def __init__(
        self,
        *,
        directory_id: str,
        api: DirectoryApi,
        writer: RepairWriter,
        work_queue: WorkQueue,
        checkpoints: CheckpointStore,
        lease: Lease,
        config: ReconcileConfig,
        remaining: Callable[[], float],
        evidence: Callable[[], KeyView],
        deletions: DeletionPolicy,
        on_progress: Callable[[RunProgress], None] | None = None,
    ) -> None:
        self._on_progress = on_progress
        self._checkpoints = checkpoints
        self._lease = lease
        self._config = config
        self._remaining = remaining
        self._last_save = time.monotonic()
        self.checkpoint, seen = checkpoints.load()
        self.state = RunState(
            directory_id=directory_id,
            api=api,
            writer=writer,
            work_queue=work_queue,
            checkpoint=self.checkpoint,
            seen=seen,
            clock_skew_allowance_seconds=config.clock_skew_allowance_seconds,
            tick=self.tick,
            evidence=evidence,
            policy=deletions,
        )

    def execute(self) -> RunStatus:
        checkpoint, state = self.checkpoint, self.state
        while (phase := checkpoint.phase) != "done":
            if phase == "directory":
                found = sync_directory(state)
                if found != "live":
                    return RunStatus.DELETED if found == "deleted" else RunStatus.UNKNOWN
                checkpoint.advance("groups")
            elif phase in ("groups", "users"):
                sync_entities(state, phase)
                checkpoint.advance("users" if phase == "groups" else "memberships")
            elif phase == "memberships":
                sync_memberships(state)
                end_deleted_groups_memberships(state)
                checkpoint.advance("deletions")
            elif phase == "deletions":
                confirm_deletions(state)
                checkpoint.advance("done")
        return RunStatus.COMPLETE

    def tick(self) -> None:
        """Between units of work: report progress, pause near the end of the budget, checkpoint now and then."""
        if self._on_progress is not None:
            seen, checkpoint = self.state.seen, self.checkpoint
            self._on_progress(
                RunProgress(
                    self.state.directory_id,
                    checkpoint.phase,
                    listed=len(seen["users"]) + len(seen["groups"]),
                    written=checkpoint.drift.total(),
                )
            )
        if self._remaining() < self._config.reserve_seconds:
            raise _Paused
        if time.monotonic() - self._last_save > self._config.checkpoint_every_seconds:
            self.save()

    def save(self) -> None:
        self._checkpoints.save(self.checkpoint, self.state.seen)
        self._last_save = time.monotonic()
        self._lease.acquire(self._config.lease_for(self._remaining()))  # renew


def membership_repair_version(started_at_us: int, skew_allowance_seconds: int, *, removed: bool) -> int:
    """The vkey reconcile gives a membership repair (exposed for tests and docs)."""
    return (started_at_us - skew_allowance_seconds * 1_000_000) * 2 + (1 if removed else 0)


__all__ = [
    "LAST_RUN_SK",
    "LEASE_SK",
    "PHASES",
    "DirectoryApi",
    "DirectoryReconciler",
    "DirectoryReport",
    "Drift",
    "ReconcileConfig",
    "RunProgress",
    "RunReport",
    "RunStatus",
    "membership_repair_version",
    "micros",
    "reconcile_until_complete",
]


@dataclass
class RunReport:
    """What one `dsync reconcile` (or one scheduled wave) did, across directories."""

    directories: list[DirectoryReport]
    requests: int
    rate_limited: int
    duration_seconds: float

    @property
    def ok(self) -> bool:
        """False when any directory failed, or refused or held a deletion (an operator must look)."""
        return all(report.status not in NOT_OK for report in self.directories)

    def as_dict(self) -> dict[str, Any]:
        drift = Drift()
        for report in self.directories:
            drift.add(report.drift)
        return {
            "ok": self.ok,
            "directories": [report.as_dict() for report in self.directories],
            "drift": asdict(drift),
            "drift_total": drift.total(),
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "rate_limited_ratio": round(self.rate_limited / self.requests, 4) if self.requests else 0.0,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def reconcile_until_complete(
    reconciler: DirectoryReconciler,
    directory_ids: list[str],
    *,
    parallelism: int,
    deletions: Callable[[str], DeletionPolicy | None] = lambda _: None,
) -> list[DirectoryReport]:
    """Reconcile directories in parallel (one thread each, WorkOS rate limits are per directory), each to the end;
    `deletions` gives a directory's own policy (the wave's decision), None for the reconciler's."""

    def one(directory_id: str) -> DirectoryReport:
        started = time.monotonic()
        while True:  # drift is cumulative across a run's invocations (it lives in the checkpoint)
            report = reconciler.run(directory_id, deletions=deletions(directory_id))
            if report.status is not RunStatus.CONTINUE:
                report.duration_seconds = time.monotonic() - started
                return report

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        return list(pool.map(one, directory_ids))
