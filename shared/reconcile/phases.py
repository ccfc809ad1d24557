"""The phases of a reconcile run: directory → groups → users → memberships (one listing per group) → deletions.

Each phase reads WorkOS through `DirectoryApi`, writes through `RepairWriter` (the apply Lambda's conditional
write), records what it repaired in the checkpoint's drift, and calls `tick()` between units of work so the run
can checkpoint or pause. Resuming a phase picks up at the checkpoint's cursor or group index.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from shared.apply.write_rule import Cascade
from shared.key_check import WRONG_ENVIRONMENT, KeyView
from shared.model import records, schema
from shared.model.events import Directory, DirectoryGroup, DirectoryUser, describe_invalid
from shared.model.records import Record, RecordTooLargeError, StoredVersion
from shared.reconcile.checkpoint import Checkpoint, SeenIds
from shared.reconcile.deletion_guard import DeletionPolicy, DeletionRefusedError, DeletionsHeldError
from shared.reconcile.writes import RepairWriter, prefix_of

logger = logging.getLogger(__name__)

PAGE = 100  # repairs are written (and the resume cursor moved) a listing page at a time


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


@dataclass
class RunState:
    """What the phases share: the directory, WorkOS, the writer, the checkpoint and a `tick` between units."""

    directory_id: str
    api: DirectoryApi
    writer: RepairWriter
    work_queue: WorkQueue
    checkpoint: Checkpoint
    seen: SeenIds
    clock_skew_allowance_seconds: int
    tick: Callable[[], None]
    # What the key sees against the mirror (one full directory listing): the evidence a deletion needs.
    evidence: Callable[[], KeyView]
    policy: DeletionPolicy


def sync_directory(run: RunState) -> Literal["live", "deleted", "unknown"]:
    """Upsert the directory from WorkOS; if WorkOS confirms it gone, cascade it away as dsync.deleted would.

    "live": go on with the other phases. A 404 deletes only with positive evidence
    (`shared.reconcile.deletion_guard`); a directory neither WorkOS nor the mirror knows (a typo) is "unknown" and
    writes nothing."""
    key = records.directory_key(run.directory_id)
    current = run.writer.stored(key)
    listed = run.api.get_directory(run.directory_id)
    if listed is None:
        if current is None:
            return "unknown"  # nothing to delete, and nothing is created for it
        if not current.deleted:
            confirm_directory_gone(run)
            tombstone = records.directory_tombstone(
                run.directory_id, None, vkey=run.writer.final_vkey(current), expires_at=run.writer.expires()
            )
            if run.writer.write(tombstone):
                run.checkpoint.drift.directory_repaired += 1
        run.work_queue.submit({"kind": "purge", "directory_id": run.directory_id, "reason": "reconcile"})
        return "deleted"
    if current is not None and current.deleted:
        return "deleted"  # deleted here (dsync.deleted applied); WorkOS will catch up
    directory = Directory.model_validate(listed)
    vkey = records.live_version(directory.updated_at) if directory.updated_at else 1
    if (current is None or current.vkey < vkey) and run.writer.write(records.directory_record(directory, vkey=vkey)):
        run.checkpoint.drift.directory_repaired += 1
    return "live"


def confirm_directory_gone(run: RunState) -> None:
    """A 404 for a live directory: raise unless the key's full listing is positive evidence of its deletion."""
    view = run.evidence()
    if not view.same_environment:
        raise DeletionRefusedError(WRONG_ENVIRONMENT)
    if view.lists(run.directory_id):
        raise DeletionRefusedError("WorkOS lists the directory but answers 404 for it: nothing deleted")
    if run.policy.hold_directory_deletion and not run.policy.confirmed:
        raise DeletionsHeldError(
            "this wave found more directories gone than it may delete on its own: "
            "confirm with `dsync reconcile --confirm-deletions`"
        )


def sync_entities(run: RunState, kind: str) -> None:
    """Upsert every listed group (or user) that is missing or older in the store."""
    stored = run.writer.versions(prefix_of(kind))
    after = run.checkpoint.cursor
    listing = (
        run.api.iter_groups(run.directory_id, after=after)
        if kind == "groups"
        else run.api.iter_users(run.directory_id, after=after)
    )
    pending: list[tuple[Record, bool]] = []  # (record, is new) of the current page
    last_id: str | None = None

    def flush(writes: OnePageAhead) -> None:
        """Write the page's repairs in parallel (while the next page is listed), then, only once they are all
        written, move the resume cursor past the page."""
        page, page_last_id = list(pending), last_id

        def done(written: list[bool]) -> None:
            for (_, is_new), was_written in zip(page, written, strict=True):
                if was_written:
                    run.checkpoint.drift.count(f"{kind}_created" if is_new else f"{kind}_updated")
            run.checkpoint.cursor = page_last_id

        writes.submit(lambda: run.writer.write_many([record for record, _ in page]), done)
        pending.clear()

    with OnePageAhead() as writes:
        for count, listed in enumerate(listing, start=1):
            last_id = str(listed["id"])
            run.seen.add(kind, last_id)  # listed: never removed, even if it cannot be written
            try:
                record = _entity_record(kind, listed)
            except (ValidationError, RecordTooLargeError) as error:
                # One object that can never be an item must not stop the rest of the directory, run after run.
                run.checkpoint.skipped += 1
                reason = describe_invalid(error) if isinstance(error, ValidationError) else str(error)
                logger.warning(
                    "reconcile skipped an item it cannot store",
                    extra={"directory_id": run.directory_id, "kind": kind, "id": last_id, "reason": reason},
                )
                continue
            existing = stored.get(last_id)
            if existing is None or existing.vkey < record.vkey:
                pending.append((record, existing is None))
            if count % PAGE == 0:
                flush(writes)
                run.tick()
        if last_id is not None:
            flush(writes)


class OnePageAhead:
    """Writes pages in the background while the caller lists the next: WorkOS paces listings (4 requests/s per
    directory), the store does not, so the two overlap instead of taking turns. Up to `depth` pages are in flight
    (two: the store stays busy across a page boundary). Results are applied in the caller's thread (`done`), in
    order, as later pages are submitted or the block ends, so the checkpoint only ever records pages whose writes
    all finished, and every page before them; a failed write raises there."""

    def __init__(self, depth: int = 2) -> None:
        self._depth = depth
        self._executor = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="reconcile-writes")
        self._inflight: deque[tuple[Future[list[bool]], Callable[[list[bool]], None]]] = deque()

    def submit(self, writes: Callable[[], list[bool]], done: Callable[[list[bool]], None]) -> None:
        while len(self._inflight) >= self._depth:
            self._finish_oldest()
        self._inflight.append((self._executor.submit(writes), done))

    def wait(self) -> None:
        while self._inflight:
            self._finish_oldest()

    def _finish_oldest(self) -> None:
        future, done = self._inflight.popleft()
        done(future.result())

    def __enter__(self) -> OnePageAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()  # also when pausing: the pages in flight are written and counted before the checkpoint
        finally:
            self._executor.shutdown(wait=True)


def sync_memberships(run: RunState) -> None:
    """Per group, diff WorkOS's member list with the store's present rows; repairs lose to newer webhooks."""
    writer, checkpoint = run.writer, run.checkpoint
    # Users WorkOS listed in this run exist, whatever this invocation's cached versions say: a webhook may have
    # created one after the cache was read (our own write of it was then a no-op, so the cache never saw it).
    live_users = _live(writer.versions(schema.USER_PREFIX)) | run.seen["users"]
    stored_groups = writer.versions(schema.GROUP_PREFIX)
    # Every listed group, deleted ones included, so the resume index means the same group in every invocation.
    groups = sorted(run.seen["groups"])
    repair_us = checkpoint.started_at_us - run.clock_skew_allowance_seconds * 1_000_000
    with OnePageAhead() as writes:  # a group's repairs are written while the next group is listed
        index = checkpoint.group_index
        while index < len(groups):
            group_id = groups[index]
            if (version := stored_groups.get(group_id)) is not None and version.deleted:
                # Deleted by a webhook since it was listed (`end_deleted_groups_memberships` ends its rows). The
                # resume index moves past it in order, behind the writes still in flight.
                writes.submit(list, partial(_memberships_done, checkpoint, [], index + 1))
                index += 1
                continue
            # The store read runs while the (paced) listing waits for its turn, instead of after it.
            stored_rows = writer.pool.submit(_present_members, writer, group_id)
            listed = set(run.api.iter_group_member_ids(run.directory_id, group_id))
            present = stored_rows.result()
            # Add only for users the store has (no rows for users it never saw); remove by WorkOS's full list.
            repairs = [
                records.membership_record(
                    run.directory_id, group_id, user_id, vkey=repair_us * 2, present=True, expires_at=0
                )
                for user_id in sorted((listed & live_users) - present)
            ] + [
                records.membership_record(
                    run.directory_id,
                    group_id,
                    user_id,
                    vkey=repair_us * 2 + 1,
                    present=False,
                    expires_at=writer.expires(),
                )
                for user_id in sorted(present - listed)
            ]
            writes.submit(
                partial(writer.write_memberships, repairs),
                partial(_memberships_done, checkpoint, repairs, index + 1),
            )
            index += 1
            run.tick()


def end_deleted_groups_memberships(run: RunState) -> None:
    """Present rows of a deleted group are ended at its deletion's version. A cascade cut short (a crash between a
    membership repair and its read-back, a failed cascade) leaves such rows, and no other step visits a group that
    is no longer listed. One query per group tombstone; they expire with the tombstone TTL."""
    for group_id, version in sorted(run.writer.versions(schema.GROUP_PREFIX).items()):
        if version.deleted and _present_members(run.writer, group_id):
            ended = run.writer.end_memberships(Cascade("group", run.directory_id, group_id, version.vkey))
            run.checkpoint.drift.memberships_removed += ended


def _memberships_done(checkpoint: Checkpoint, repairs: list[Record], next_index: int, written: list[bool]) -> None:
    for record, was_written in zip(repairs, written, strict=True):
        if was_written:
            checkpoint.drift.count("memberships_removed" if record.deleted else "memberships_added")
    checkpoint.group_index = next_index


def confirm_deletions(run: RunState) -> None:
    """Stored groups and users that WorkOS no longer lists are removed once a get confirms 404."""
    for kind in ("groups", "users"):
        stored = run.writer.versions(prefix_of(kind))
        live = _live(stored)
        unlisted = sorted(live - run.seen[kind])
        if len(unlisted) > run.policy.removals_allowed(len(live)):
            raise DeletionsHeldError(
                f"WorkOS no longer lists {len(unlisted)} of the directory's {len(live)} {kind}, more than one run "
                "may remove on its own: nothing removed; confirm with `dsync reconcile --confirm-deletions`"
            )
        for entity_id in unlisted:
            cursor = run.checkpoint.cursor
            if cursor is not None and (kind, entity_id) <= _cursor_key(cursor):
                continue  # confirmed before the last checkpoint
            exists = (
                run.api.get_group(run.directory_id, entity_id)
                if kind == "groups"
                else run.api.get_user(run.directory_id, entity_id)
            )
            if exists is None:
                tombstoned, ended = run.writer.remove(kind, entity_id, stored[entity_id])
                if tombstoned:
                    run.checkpoint.drift.count(f"{kind}_removed")
                run.checkpoint.drift.memberships_removed += ended
            run.checkpoint.cursor = f"{kind}#{entity_id}"
            run.tick()


def _present_members(writer: RepairWriter, group_id: str) -> set[str]:
    return {user_id for _, user_id in writer.live_group_memberships(group_id)}


def _entity_record(kind: str, listed: dict[str, Any]) -> Record:
    if kind == "groups":
        return records.group_record(DirectoryGroup.model_validate(listed))
    return records.user_record(DirectoryUser.model_validate(listed))


def _live(versions: dict[str, StoredVersion]) -> set[str]:
    return {entity_id for entity_id, version in versions.items() if not version.deleted}


def _cursor_key(cursor: str) -> tuple[str, str]:
    kind, _, entity_id = cursor.partition("#")
    return kind, entity_id
