"""Reconcile one directory against the WorkOS API: repair drift without ever undoing a newer webhook.

Webhooks get lost (an outage past WorkOS's retry window, a staging environment that retries for minutes, a message
parked in the DLQ). A run lists the directory through the API and makes the store equal to it, using the same
records and the same conditional write (`put_if_newer`) as the apply Lambda, so:

- users and groups are written only if the listed `updated_at` is newer than what is stored (a webhook that
  landed mid-run with a newer version wins; an identical store causes zero writes);
- membership repairs are versioned at the run's start minus a clock-skew allowance, so any membership webhook
  created after the run began is newer and wins;
- a user, group or directory missing from the listing is removed only after a `get` answers 404, and then its
  tombstone is newer than anything stored (deletion is final in WorkOS).

Phases: directory → groups → users → memberships (one listing per group) → deletions. A run checkpoints its phase,
cursor and the ids it has seen in the table, and stops before the time budget runs out; the next invocation resumes
from the checkpoint, so any directory size completes and a crashed run resumes rather than restarts. A lease item
keeps two runs for one directory from interleaving.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from shared import records, schema
from shared.adapters.dynamodb import DirectoryTable
from shared.apply import Cascade, WriteResult, end_memberships, write_record
from shared.events import Directory, DirectoryGroup, DirectoryUser, micros
from shared.lease import Lease
from shared.records import Record, StoredVersion

LEASE_SK = f"{schema.RECONCILE_PREFIX}LEASE"
STATE_SK = f"{schema.RECONCILE_PREFIX}STATE"
SEEN_PREFIX = f"{schema.RECONCILE_PREFIX}SEEN#"
LAST_RUN_SK = f"{schema.RECONCILE_PREFIX}LAST"
SEEN_CHUNK_SIZE = 5_000  # ids per checkpoint item: well under DynamoDB's 400 KB
PHASES = ("directory", "groups", "users", "memberships", "deletions", "done")


class DirectoryApi(Protocol):
    """What reconcile needs from WorkOS (implemented by `shared.adapters.workos_api.WorkOSDirectoryApi`)."""

    def list_directories(self) -> Iterator[dict[str, Any]]: ...
    def get_directory(self, directory_id: str) -> dict[str, Any] | None: ...
    def iter_groups(self, directory_id: str, *, after: str | None = None) -> Iterator[dict[str, Any]]: ...
    def iter_users(self, directory_id: str, *, after: str | None = None) -> Iterator[dict[str, Any]]: ...
    def iter_group_member_ids(self, directory_id: str, group_id: str, *, after: str | None = None) -> Iterator[str]: ...
    def get_user(self, directory_id: str, user_id: str) -> dict[str, Any] | None: ...
    def get_group(self, directory_id: str, group_id: str) -> dict[str, Any] | None: ...


class WorkQueue(Protocol):
    def submit(self, job: Any) -> None: ...


class RunStatus(StrEnum):
    COMPLETE = "complete"  # the store now matches WorkOS
    CONTINUE = "continue"  # checkpointed before the time budget ran out; a follow-up job resumes it
    BUSY = "busy"  # another run holds the directory's lease
    DELETED = "deleted"  # WorkOS confirmed the directory is gone: cascaded as dsync.deleted
    FAILED = "failed"


@dataclass
class Drift:
    users_created: int = 0
    users_updated: int = 0
    users_removed: int = 0
    groups_created: int = 0
    groups_updated: int = 0
    groups_removed: int = 0
    memberships_added: int = 0
    memberships_removed: int = 0
    directory_repaired: int = 0

    def total(self) -> int:
        return sum(asdict(self).values())

    def add(self, other: Drift) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class DirectoryReport:
    directory_id: str
    status: RunStatus
    run_id: str
    drift: Drift = field(default_factory=Drift)
    duration_seconds: float = 0.0
    error: str | None = None
    busy_since_ms: int | None = None  # BUSY: when the run holding the lease started

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory_id": self.directory_id,
            "status": self.status.value,
            "run_id": self.run_id,
            "drift": asdict(self.drift),
            "drift_total": self.drift.total(),
            "duration_seconds": round(self.duration_seconds, 3),
            "error": self.error,
        }


@dataclass(frozen=True)
class ReconcileConfig:
    tombstone_ttl_seconds: int = 30 * 24 * 3600
    clock_skew_allowance_seconds: int = 300
    # Stop and checkpoint when less than this remains of the budget.
    reserve_seconds: float = 45.0
    checkpoint_every_seconds: float = 30.0
    lease_seconds: float = 16 * 60
    # A checkpoint older than this is abandoned and the run starts over (WorkOS has moved on since).
    max_checkpoint_age_seconds: float = 6 * 3600


@dataclass
class _Checkpoint:
    run_id: str
    started_at_us: int
    phase: str = "directory"
    cursor: str | None = None
    group_index: int = 0
    drift: Drift = field(default_factory=Drift)
    seen_chunks: dict[str, int] = field(default_factory=lambda: {"groups": 0, "users": 0})


class _Paused(Exception):
    """The time budget is nearly spent: checkpoint and let a follow-up job continue."""


class DirectoryReconciler:
    """Runs (or resumes) the reconcile of one directory within a time budget."""

    def __init__(
        self,
        *,
        api: DirectoryApi,
        table: DirectoryTable,
        work_queue: WorkQueue,
        config: ReconcileConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._table = table
        self._work_queue = work_queue
        self._config = config or ReconcileConfig()
        self._clock = clock

    # --- Entry point -------------------------------------------------------------------------------------------

    def run(
        self, directory_id: str, *, remaining_seconds: Callable[[], float] = lambda: float("inf")
    ) -> DirectoryReport:
        started = time.monotonic()
        lease = Lease(self._table, records.ItemKey(schema.directory_pk(directory_id), LEASE_SK), clock=self._clock)
        if not lease.acquire(self._lease_seconds(remaining_seconds())):
            holder = lease.holder()
            report = DirectoryReport(directory_id, RunStatus.BUSY, run_id=holder.run_id if holder else "")
            report.busy_since_ms = holder.acquired_ms if holder else 0
            return report
        run = _Run(self, directory_id, lease, remaining_seconds)
        try:
            status = run.execute()
        except _Paused:
            run.save_checkpoint()
            status = RunStatus.CONTINUE
        except Exception as error:
            run.save_checkpoint()  # resume from here rather than restart
            report = DirectoryReport(directory_id, RunStatus.FAILED, run.checkpoint.run_id, run.checkpoint.drift)
            report.error = f"{type(error).__name__}: {error}"
            report.duration_seconds = time.monotonic() - started
            return report
        finally:
            lease.release()
        report = DirectoryReport(directory_id, status, run.checkpoint.run_id, run.checkpoint.drift)
        report.duration_seconds = time.monotonic() - started
        if status in (RunStatus.COMPLETE, RunStatus.DELETED):
            run.finish(report)
        return report

    def _lease_seconds(self, remaining: float) -> float:
        return min(self._config.lease_seconds, remaining + 60)


class _Run:
    """The state of one invocation's work on one directory."""

    def __init__(
        self,
        reconciler: DirectoryReconciler,
        directory_id: str,
        lease: Lease,
        remaining: Callable[[], float],
    ) -> None:
        self.r = reconciler
        self.directory_id = directory_id
        self.lease = lease
        self.remaining = remaining
        self.last_checkpoint = time.monotonic()
        self.checkpoint, self.seen = self._load()
        self.unsaved: dict[str, set[str]] = {kind: set() for kind in self.seen}  # seen, not yet checkpointed
        self.pool = ThreadPoolExecutor(max_workers=8)
        self.version_cache: dict[str, dict[str, StoredVersion]] = {}

    # --- Checkpoints -------------------------------------------------------------------------------------------

    def _load(self) -> tuple[_Checkpoint, dict[str, set[str]]]:
        item = self.r._table.get_item(records.ItemKey(schema.directory_pk(self.directory_id), STATE_SK))
        now_us = int(self.r._clock() * 1e6)
        if item is not None and now_us - int(item["started_at_us"]) < self.r._config.max_checkpoint_age_seconds * 1e6:
            checkpoint = _Checkpoint(
                run_id=str(item["run_id"]),
                started_at_us=int(item["started_at_us"]),
                phase=str(item["phase"]),
                cursor=item.get("cursor"),
                group_index=int(item.get("group_index", 0)),
                drift=Drift(**{k: int(v) for k, v in dict(item.get("drift", {})).items()}),
                seen_chunks={k: int(v) for k, v in dict(item.get("seen_chunks", {})).items()},
            )
            seen = {kind: self._load_seen(kind, count) for kind, count in checkpoint.seen_chunks.items()}
            return checkpoint, seen
        if item is not None:
            self._delete_checkpoint()
        return _Checkpoint(run_id=uuid.uuid4().hex[:12], started_at_us=now_us), {"groups": set(), "users": set()}

    def _load_seen(self, kind: str, count: int) -> set[str]:
        seen: set[str] = set()
        for index in range(count):
            item = self.r._table.get_item(self._seen_key(kind, index))
            seen.update(item.get("ids", []) if item else [])
        return seen

    def _seen_key(self, kind: str, index: int) -> records.ItemKey:
        return records.ItemKey(schema.directory_pk(self.directory_id), f"{SEEN_PREFIX}{kind}#{index:06d}")

    def save_checkpoint(self) -> None:
        checkpoint = self.checkpoint
        for kind, unsaved in self.unsaved.items():  # persist ids seen since the last checkpoint, in new chunks
            persisted = checkpoint.seen_chunks.get(kind, 0)
            fresh = sorted(unsaved)
            for start in range(0, len(fresh), SEEN_CHUNK_SIZE):
                self.r._table.put_item(
                    {
                        schema.PARTITION_KEY: schema.directory_pk(self.directory_id),
                        schema.SORT_KEY: self._seen_key(kind, persisted).sk,
                        "ids": fresh[start : start + SEEN_CHUNK_SIZE],
                    }
                )
                persisted += 1
            checkpoint.seen_chunks[kind] = persisted
            unsaved.clear()
        self.r._table.put_item(
            {
                schema.PARTITION_KEY: schema.directory_pk(self.directory_id),
                schema.SORT_KEY: STATE_SK,
                "run_id": checkpoint.run_id,
                "started_at_us": checkpoint.started_at_us,
                "phase": checkpoint.phase,
                "cursor": checkpoint.cursor,
                "group_index": checkpoint.group_index,
                "drift": asdict(checkpoint.drift),
                "seen_chunks": dict(checkpoint.seen_chunks),
                "saved_at": int(self.r._clock()),
            }
        )
        self.last_checkpoint = time.monotonic()
        self.lease.acquire(self.r._lease_seconds(self.remaining()))  # renew

    def _delete_checkpoint(self) -> None:
        keys = [records.ItemKey(schema.directory_pk(self.directory_id), STATE_SK)]
        keys += [
            records.ItemKey(str(item[schema.PARTITION_KEY]), str(item[schema.SORT_KEY]))
            for item in self.r._table.query_partition(
                self.directory_id, SEEN_PREFIX, projection=[schema.PARTITION_KEY, schema.SORT_KEY]
            )
        ]
        self.r._table.delete_items(keys)

    def finish(self, report: DirectoryReport) -> None:
        self._delete_checkpoint()
        if report.status is RunStatus.COMPLETE:
            self.r._table.put_item(
                {
                    schema.PARTITION_KEY: schema.directory_pk(self.directory_id),
                    schema.SORT_KEY: LAST_RUN_SK,
                    "finished_at": int(self.r._clock()),
                    **{key: value for key, value in report.as_dict().items() if value is not None},
                }
            )

    def tick(self) -> None:
        """Between units of work: pause near the end of the budget, checkpoint now and then."""
        if self.remaining() < self.r._config.reserve_seconds:
            raise _Paused
        if time.monotonic() - self.last_checkpoint > self.r._config.checkpoint_every_seconds:
            self.save_checkpoint()

    def advance(self, phase: str) -> None:
        self.checkpoint.phase, self.checkpoint.cursor, self.checkpoint.group_index = phase, None, 0

    # --- Phases ------------------------------------------------------------------------------------------------

    def execute(self) -> RunStatus:
        try:
            while (phase := self.checkpoint.phase) != "done":
                if phase == "directory":
                    if not self._directory():
                        return RunStatus.DELETED
                    self.advance("groups")
                elif phase == "groups":
                    self._entities("groups")
                    self.advance("users")
                elif phase == "users":
                    self._entities("users")
                    self.advance("memberships")
                elif phase == "memberships":
                    self._memberships()
                    self.advance("deletions")
                elif phase == "deletions":
                    self._deletions()
                    self.advance("done")
            return RunStatus.COMPLETE
        finally:
            self.pool.shutdown(wait=True)

    def _directory(self) -> bool:
        """Upsert the directory from WorkOS; if WorkOS says 404, cascade it away as dsync.deleted would."""
        stored = self.r._table.get_versions([records.directory_key(self.directory_id)])
        current = stored.get(records.directory_key(self.directory_id))
        listed = self.r._api.get_directory(self.directory_id)
        if listed is None:
            if current is None or not current.deleted:
                vkey = self._final_vkey(current)
                tombstone = records.directory_tombstone(self.directory_id, None, vkey=vkey, expires_at=self._expires())
                if self._write(tombstone):
                    self.checkpoint.drift.directory_repaired += 1
            self.r._work_queue.submit({"kind": "purge", "directory_id": self.directory_id, "reason": "reconcile"})
            return False
        if current is not None and current.deleted:
            return False  # deleted here (dsync.deleted applied); WorkOS will catch up
        directory = Directory.model_validate(listed)
        vkey = records.live_version(directory.updated_at) if directory.updated_at else 1
        if (current is None or current.vkey < vkey) and self._write(records.directory_record(directory, vkey=vkey)):
            self.checkpoint.drift.directory_repaired += 1
        return True

    def _entities(self, kind: str) -> None:
        """Upsert every listed group (or user) that is missing or older in the store."""
        prefix = schema.GROUP_PREFIX if kind == "groups" else schema.USER_PREFIX
        stored = self._versions(prefix)
        listing = (
            self.r._api.iter_groups(self.directory_id, after=self.checkpoint.cursor)
            if kind == "groups"
            else self.r._api.iter_users(self.directory_id, after=self.checkpoint.cursor)
        )
        pending: list[tuple[Record, bool]] = []  # (record, is new) of the current page
        last_id: str | None = None

        def flush() -> None:
            """Write the page's repairs in parallel, then (only then) move the resume cursor past the page."""
            for (_, is_new), written in zip(pending, self._write_many([r for r, _ in pending]), strict=True):
                if written:
                    self._count(f"{kind}_created" if is_new else f"{kind}_updated")
            pending.clear()
            self.checkpoint.cursor = last_id

        for count, listed in enumerate(listing, start=1):
            record = _entity_record(kind, listed)
            last_id = str(listed["id"])
            if last_id not in self.seen[kind]:
                self.seen[kind].add(last_id)
                self.unsaved[kind].add(last_id)
            existing = stored.get(last_id)
            if existing is None or existing.vkey < record.vkey:
                pending.append((record, existing is None))
            if count % 100 == 0:
                flush()
                self.tick()
        if last_id is not None:
            flush()

    def _memberships(self) -> None:
        """Per group, diff WorkOS's member list with the store's present rows; repairs lose to newer webhooks."""
        # Users WorkOS listed in this run exist, whatever this invocation's cached versions say: a webhook may have
        # created one after the cache was read (our own write of it was then a no-op, so the cache never saw it).
        live_users = _live(self._versions(schema.USER_PREFIX)) | self.seen["users"]
        live_groups = _live(self._versions(schema.GROUP_PREFIX))
        groups = sorted(self.seen["groups"] & live_groups)
        repair_us = self.checkpoint.started_at_us - self.r._config.clock_skew_allowance_seconds * 1_000_000
        while self.checkpoint.group_index < len(groups):
            group_id = groups[self.checkpoint.group_index]
            # The store read runs while the (paced) listing waits for its turn, instead of after it.
            stored_rows = self.pool.submit(self.r._table.live_group_memberships, self.directory_id, group_id)
            listed = set(self.r._api.iter_group_member_ids(self.directory_id, group_id))
            present = {user_id for _, user_id in stored_rows.result()}
            # Add only for users the store has (no rows for users it never saw); remove by WorkOS's full list.
            repairs = [
                records.membership_record(
                    self.directory_id, group_id, user_id, vkey=repair_us * 2, present=True, expires_at=0
                )
                for user_id in sorted((listed & live_users) - present)
            ] + [
                records.membership_record(
                    self.directory_id,
                    group_id,
                    user_id,
                    vkey=repair_us * 2 + 1,
                    present=False,
                    expires_at=self._expires(),
                )
                for user_id in sorted(present - listed)
            ]
            for record, written in zip(repairs, self._write_many(repairs), strict=True):
                if written and record.deleted:
                    self.checkpoint.drift.memberships_removed += 1
                elif written:
                    self.checkpoint.drift.memberships_added += 1
            self.checkpoint.group_index += 1
            self.tick()

    def _deletions(self) -> None:
        """Stored groups and users that WorkOS no longer lists are removed once a get confirms 404."""
        for kind, prefix in (("groups", schema.GROUP_PREFIX), ("users", schema.USER_PREFIX)):
            stored = self._versions(prefix)
            for entity_id in sorted(_live(stored) - self.seen[kind]):
                if self.checkpoint.cursor is not None and (kind, entity_id) <= _cursor_key(self.checkpoint.cursor):
                    continue  # confirmed before the last checkpoint
                exists = (
                    self.r._api.get_group(self.directory_id, entity_id)
                    if kind == "groups"
                    else self.r._api.get_user(self.directory_id, entity_id)
                )
                if exists is None:
                    self._remove(kind, entity_id, stored[entity_id])
                self.checkpoint.cursor = f"{kind}#{entity_id}"
                self.tick()

    # --- Writes --------------------------------------------------------------------------------------------------

    def _remove(self, kind: str, entity_id: str, current: StoredVersion) -> None:
        vkey = self._final_vkey(current)
        single = "group" if kind == "groups" else "user"
        tombstone = records.entity_tombstone(
            single, self.directory_id, entity_id, vkey=vkey, expires_at=self._expires()
        )
        if self._write(tombstone):
            self._count(f"{kind}_removed")
        ended, failure = end_memberships(
            self.r._table,
            Cascade(single, self.directory_id, entity_id, vkey),
            expires_at=self._expires(),
            pool=self.pool,
        )
        self.checkpoint.drift.memberships_removed += ended
        if failure:
            raise RuntimeError(failure)

    def _count(self, drift_field: str, amount: int = 1) -> None:
        setattr(self.checkpoint.drift, drift_field, getattr(self.checkpoint.drift, drift_field) + amount)

    def _versions(self, prefix: str) -> dict[str, StoredVersion]:
        """Stored versions of the directory's users (or groups), read once per invocation and kept current with
        this run's own writes. Webhooks landing meanwhile can make it stale, which is safe: every write is
        conditional, and a deletion is only ever made after WorkOS confirms it with a 404."""
        if prefix not in self.version_cache:
            self.version_cache[prefix] = self.r._table.entity_versions(self.directory_id, prefix)
        return self.version_cache[prefix]

    def _write(self, record: Record) -> bool:
        result, detail = write_record(self.r._table, record)
        if result in (WriteResult.TRANSIENT, WriteResult.PERMANENT):
            raise RuntimeError(f"write of {record.key.sk} failed: {detail}")
        written = result is WriteResult.WRITTEN
        for prefix, cache in self.version_cache.items():
            if written and record.key.sk.startswith(prefix):
                cache[record.key.sk.removeprefix(prefix)] = StoredVersion(record.vkey, record.deleted)
        return written

    def _write_many(self, batch: list[Record]) -> list[bool]:
        return list(self.pool.map(self._write, batch))

    def _final_vkey(self, current: StoredVersion | None) -> int:
        """A confirmed deletion is final in WorkOS: version it now, and above anything stored."""
        now = int(self.r._clock() * 1e6) * 2 + 1
        return max(now, (current.vkey | 1) + 2) if current is not None else now

    def _expires(self) -> int:
        return int(self.r._clock()) + self.r._config.tombstone_ttl_seconds


def _entity_record(kind: str, listed: dict[str, Any]) -> Record:
    if kind == "groups":
        return records.group_record(DirectoryGroup.model_validate(listed))
    return records.user_record(DirectoryUser.model_validate(listed))


def _live(versions: dict[str, StoredVersion]) -> set[str]:
    return {entity_id for entity_id, version in versions.items() if not version.deleted}


def _cursor_key(cursor: str) -> tuple[str, str]:
    kind, _, entity_id = cursor.partition("#")
    return kind, entity_id


def discover_directories(api: DirectoryApi, table: DirectoryTable) -> list[str]:
    """Every directory WorkOS has, plus every one the store knows: the latter may be gone from WorkOS."""
    listed = {str(directory["id"]) for directory in api.list_directories()}
    return sorted(listed | set(table.list_directory_ids()))


def membership_repair_version(started_at_us: int, skew_allowance_seconds: int, *, removed: bool) -> int:
    """The vkey reconcile gives a membership repair (exposed for tests and docs)."""
    return (started_at_us - skew_allowance_seconds * 1_000_000) * 2 + (1 if removed else 0)


__all__ = [
    "DirectoryApi",
    "DirectoryReconciler",
    "DirectoryReport",
    "Drift",
    "ReconcileConfig",
    "RunReport",
    "RunStatus",
    "discover_directories",
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
        return all(report.status is not RunStatus.FAILED for report in self.directories)

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
    reconciler: DirectoryReconciler, directory_ids: list[str], *, parallelism: int
) -> list[DirectoryReport]:
    """Reconcile directories in parallel (one thread each, WorkOS rate limits are per directory), each to the end."""

    def one(directory_id: str) -> DirectoryReport:
        started = time.monotonic()
        while True:  # drift is cumulative across a run's invocations (it lives in the checkpoint)
            report = reconciler.run(directory_id)
            if report.status is not RunStatus.CONTINUE:
                report.duration_seconds = time.monotonic() - started
                return report

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        return list(pool.map(one, directory_ids))
