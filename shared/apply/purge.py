"""Purge a deleted directory's items: the physical half of `dsync.deleted` (and of a reconcile-confirmed deletion).

Readers already see nothing once the directory is tombstoned; the purge erases the personal data behind it. It runs
from the work queue, in pages, within a time budget; an unfinished purge asks for a continuation job. It refuses to
touch a directory that is not tombstoned, so a misrouted job can never delete a live directory. The directory
tombstone itself stays (it expires with the tombstone TTL) so that stale events keep being refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.model import records, schema
from shared.model.records import ItemKey


class PurgeStore(Protocol):
    """What the purge needs of the table (`shared.adapters.dynamodb.DirectoryTable`)."""

    def get_item(self, key: ItemKey) -> dict[str, Any] | None: ...

    def query_partition(
        self, directory_id: str, prefix: str, *, projection: Sequence[str] | None = ..., page_size: int | None = ...
    ) -> Iterator[dict[str, Any]]: ...

    def delete_items(self, keys: Iterable[ItemKey]) -> int: ...


PAGE_SIZE = 500


@dataclass(frozen=True)
class PurgeResult:
    directory_id: str
    deleted_items: int
    complete: bool
    refused: bool = False


def purge_directory(
    table: PurgeStore, directory_id: str, *, remaining_seconds: Callable[[], float], reserve_seconds: float = 30.0
) -> PurgeResult:
    directory = table.get_item(records.directory_key(directory_id))
    if directory is None or not directory.get(schema.DELETED_ATTRIBUTE):
        return PurgeResult(directory_id, 0, complete=True, refused=directory is not None)
    deleted = 0
    started = time.monotonic()
    while True:
        keys = [
            ItemKey(str(item[schema.PARTITION_KEY]), str(item[schema.SORT_KEY]))
            for item in _first_page(table, directory_id)
        ]
        keys = [key for key in keys if key.sk != schema.DIRECTORY_SK]
        if not keys:
            return PurgeResult(directory_id, deleted, complete=True)
        deleted += table.delete_items(keys)
        elapsed = time.monotonic() - started
        if remaining_seconds() - reserve_seconds < max(1.0, elapsed / max(1, deleted) * PAGE_SIZE):
            return PurgeResult(directory_id, deleted, complete=False)


def _first_page(table: PurgeStore, directory_id: str) -> list[dict[str, object]]:
    items = []
    for item in table.query_partition(
        directory_id, "", projection=[schema.PARTITION_KEY, schema.SORT_KEY], page_size=PAGE_SIZE
    ):
        items.append(item)
        if len(items) >= PAGE_SIZE:
            break
    return items
