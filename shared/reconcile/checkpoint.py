"""A reconcile run's checkpoint: its phase, cursor, drift so far and the ids it has seen, kept in the table.

A run stops before its time budget runs out and the next invocation resumes from here, so any directory size
completes and a crashed run resumes rather than restarts. Seen ids are stored in chunks of `SEEN_CHUNK_SIZE`
(well under DynamoDB's 400 KB), and only the ids seen since the last save are written each time. A checkpoint older
than `max_age_seconds` is abandoned: WorkOS has moved on since, and the run starts over.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.model import schema
from shared.model.records import ItemKey
from shared.reconcile.ports import ReconcileTable

STATE_SK = f"{schema.RECONCILE_PREFIX}STATE"
SEEN_PREFIX = f"{schema.RECONCILE_PREFIX}SEEN#"
LAST_RUN_SK = f"{schema.RECONCILE_PREFIX}LAST"
SEEN_CHUNK_SIZE = 5_000
KINDS = ("groups", "users")


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

    def count(self, name: str, amount: int = 1) -> None:
        setattr(self, name, getattr(self, name) + amount)


@dataclass
class Checkpoint:
    run_id: str
    started_at_us: int
    phase: str = "directory"
    cursor: str | None = None
    group_index: int = 0
    drift: Drift = field(default_factory=Drift)
    skipped: int = 0  # listed items that can never become a store item (counted, logged by id, never deleted)
    seen_chunks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def advance(self, phase: str) -> None:
        self.phase, self.cursor, self.group_index = phase, None, 0


class SeenIds:
    """Ids a run has seen listed, per kind; `unsaved` are those not yet in a checkpoint chunk."""

    def __init__(self, seen: dict[str, set[str]]) -> None:
        self.all = seen
        self.unsaved: dict[str, set[str]] = {kind: set() for kind in seen}

    def add(self, kind: str, entity_id: str) -> None:
        if entity_id not in self.all[kind]:
            self.all[kind].add(entity_id)
            self.unsaved[kind].add(entity_id)

    def __getitem__(self, kind: str) -> set[str]:
        return self.all[kind]


class CheckpointStore:
    """Load, save and delete one directory's checkpoint; record the last finished run."""

    def __init__(
        self, table: ReconcileTable, directory_id: str, *, clock: Callable[[], float], max_age_seconds: float
    ) -> None:
        self._table = table
        self._pk = schema.directory_pk(directory_id)
        self._directory_id = directory_id
        self._clock = clock
        self._max_age_seconds = max_age_seconds

    def load(self) -> tuple[Checkpoint, SeenIds]:
        """The saved checkpoint if fresh enough, else a new one (an abandoned one is deleted)."""
        item = self._table.get_item(ItemKey(self._pk, STATE_SK))
        now_us = int(self._clock() * 1e6)
        if item is not None and now_us - int(item["started_at_us"]) < self._max_age_seconds * 1e6:
            checkpoint = Checkpoint(
                run_id=str(item["run_id"]),
                started_at_us=int(item["started_at_us"]),
                phase=str(item["phase"]),
                cursor=item.get("cursor"),
                group_index=int(item.get("group_index", 0)),
                drift=Drift(**{k: int(v) for k, v in dict(item.get("drift", {})).items()}),
                skipped=int(item.get("skipped", 0)),
                seen_chunks={k: int(v) for k, v in dict(item.get("seen_chunks", {})).items()},
            )
            seen = {kind: self._load_seen(kind, count) for kind, count in checkpoint.seen_chunks.items()}
            return checkpoint, SeenIds(seen)
        if item is not None:
            self.delete()
        fresh = Checkpoint(run_id=uuid.uuid4().hex[:12], started_at_us=now_us)
        return fresh, SeenIds({kind: set() for kind in KINDS})

    def started_at_ms(self) -> int | None:
        """When the run in progress (checkpointed) started, if one is: a continuation holds a fresh lease, but what
        it will see was decided when the run started."""
        item = self._table.get_item(ItemKey(self._pk, STATE_SK))
        return int(item["started_at_us"]) // 1000 if item is not None else None

    def save(self, checkpoint: Checkpoint, seen: SeenIds) -> None:
        for kind, unsaved in seen.unsaved.items():  # persist ids seen since the last save, in new chunks
            persisted = checkpoint.seen_chunks.get(kind, 0)
            fresh = sorted(unsaved)
            for start in range(0, len(fresh), SEEN_CHUNK_SIZE):
                self._table.put_item(
                    {
                        schema.PARTITION_KEY: self._pk,
                        schema.SORT_KEY: self._seen_key(kind, persisted).sk,
                        "ids": fresh[start : start + SEEN_CHUNK_SIZE],
                    }
                )
                persisted += 1
            checkpoint.seen_chunks[kind] = persisted
            unsaved.clear()
        self._table.put_item(
            {
                schema.PARTITION_KEY: self._pk,
                schema.SORT_KEY: STATE_SK,
                "run_id": checkpoint.run_id,
                "started_at_us": checkpoint.started_at_us,
                "phase": checkpoint.phase,
                "cursor": checkpoint.cursor,
                "group_index": checkpoint.group_index,
                "drift": asdict(checkpoint.drift),
                "skipped": checkpoint.skipped,
                "seen_chunks": dict(checkpoint.seen_chunks),
                "saved_at": int(self._clock()),
            }
        )

    def delete(self) -> None:
        keys = [ItemKey(self._pk, STATE_SK)]
        keys += [
            ItemKey(str(item[schema.PARTITION_KEY]), str(item[schema.SORT_KEY]))
            for item in self._table.query_partition(
                self._directory_id, SEEN_PREFIX, projection=[schema.PARTITION_KEY, schema.SORT_KEY]
            )
        ]
        self._table.delete_items(keys)

    def record_finished(self, report: dict[str, Any]) -> None:
        """The last finished run, for `dsync status` and the demo."""
        self._table.put_item(
            {
                schema.PARTITION_KEY: self._pk,
                schema.SORT_KEY: LAST_RUN_SK,
                "finished_at": int(self._clock()),
                **{key: value for key, value in report.items() if value is not None},
            }
        )

    def _load_seen(self, kind: str, count: int) -> set[str]:
        seen: set[str] = set()
        for index in range(count):
            item = self._table.get_item(self._seen_key(kind, index))
            seen.update(item.get("ids", []) if item else [])
        return seen

    def _seen_key(self, kind: str, index: int) -> ItemKey:
        return ItemKey(self._pk, f"{SEEN_PREFIX}{kind}#{index:06d}")
