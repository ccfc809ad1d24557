"""What backfill and verify need of the directory table (`shared.adapters.dynamodb.DirectoryTable` implements it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from shared.model import schema
from shared.model.records import ItemKey


class MirrorTable(Protocol):
    def query_index(self, index: schema.IndexSpec, partition_value: str) -> Iterator[dict[str, Any]]: ...

    def query_partition(self, directory_id: str, prefix: str) -> Iterator[dict[str, Any]]: ...

    def get_item(self, key: ItemKey) -> dict[str, Any] | None: ...


def live_directory_ids(mirror: MirrorTable) -> list[str]:
    """The mirror's live directories (the sparse `directories` index holds no tombstone)."""
    items = mirror.query_index(schema.DIRECTORIES_INDEX, schema.DIRECTORY_INDEX_VALUE)
    return sorted({str(item["id"]) for item in items if not item.get(schema.DELETED_ATTRIBUTE)})
