"""In-memory `DirectoryStore` with DynamoDB's semantics for the operations the applier uses.

`tests/integration/test_store_contract.py` runs the same contract against this fake and the real adapter on moto,
so unit and property tests on the fake say something about the real table.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared import schema
from shared.apply import TransientStoreError
from shared.records import ItemKey, Record, StoredVersion


@dataclass
class FakeWorkQueue:
    jobs: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def submit(self, job: Any) -> None:
        if self.fail:
            raise RuntimeError("work queue unavailable")
        self.jobs.append(dict(job))


@dataclass
class FakeDeadLetters:
    parked: list[dict[str, str]] = field(default_factory=list)

    def forward(self, *, body: str, group_id: str, deduplication_id: str, reason: str) -> None:
        self.parked.append({"body": body, "group_id": group_id, "deduplication_id": deduplication_id, "reason": reason})


class FakeDirectoryStore:
    def __init__(self) -> None:
        self.items: dict[ItemKey, dict[str, Any]] = {}
        self.calls: dict[str, int] = {}
        self.fail_puts_for: set[str] = set()  # sort-key prefixes whose puts raise TransientStoreError
        self._lock = threading.Lock()

    def _count(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def get_versions(self, keys: Collection[ItemKey]) -> dict[ItemKey, StoredVersion]:
        with self._lock:
            self._count("get_versions")
            return {
                key: StoredVersion(int(item[schema.VERSION_ATTRIBUTE]), bool(item[schema.DELETED_ATTRIBUTE]))
                for key in keys
                if (item := self.items.get(key)) is not None
            }

    def put_if_newer(self, record: Record) -> bool:
        with self._lock:
            self._count("put_if_newer")
            if any(record.key.sk.startswith(prefix) for prefix in self.fail_puts_for):
                raise TransientStoreError("injected throttling")
            existing = self.items.get(record.key)
            if existing is not None and int(existing[schema.VERSION_ATTRIBUTE]) >= record.vkey:
                return False
            self.items[record.key] = dict(record.item())
            return True

    def live_group_memberships(self, directory_id: str, group_id: str) -> list[tuple[str, str]]:
        prefix = schema.group_members_prefix(group_id)
        return [(i["group_id"], i["user_id"]) for i in self.partition(directory_id, prefix) if not i["deleted"]]

    def live_user_memberships(self, directory_id: str, user_id: str) -> list[tuple[str, str]]:
        return [
            (i["group_id"], i["user_id"])
            for i in self.partition(directory_id, schema.MEMBER_PREFIX)
            if not i["deleted"] and i["user_id"] == user_id
        ]

    def partition(self, directory_id: str, prefix: str = "") -> Iterator[dict[str, Any]]:
        pk = schema.directory_pk(directory_id)
        with self._lock:
            selected = sorted(
                (key.sk, copy.deepcopy(item))
                for key, item in self.items.items()
                if key.pk == pk and key.sk.startswith(prefix)
            )
        for _, item in selected:
            yield item

    def delete_partition(self, directory_id: str) -> None:
        pk = schema.directory_pk(directory_id)
        with self._lock:
            for key in [key for key in self.items if key.pk == pk]:
                del self.items[key]
