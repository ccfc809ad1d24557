"""What the read library and `dsync status` need of the directory table (`shared.adapters.dynamodb.DirectoryTable`)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any, Protocol

from shared.lease import ItemTable
from shared.model import schema
from shared.model.records import ItemKey


class ReadTable(ItemTable, Protocol):
    """Single items (and the tail's cursor, read through `shared.tail.cursor.CursorStore`), partitions, indexes."""

    def batch_get(
        self, keys: Collection[ItemKey], *, projection: Sequence[str] | None = None
    ) -> list[dict[str, Any]]: ...

    def query_partition(
        self,
        directory_id: str,
        prefix: str,
        *,
        projection: Sequence[str] | None = None,
        live_only: bool = False,
        consistent: bool = True,
        page_size: int | None = None,
        start_after: str | None = None,
    ) -> Iterator[dict[str, Any]]: ...

    def query_index(self, index: schema.IndexSpec, partition_value: str) -> Iterator[dict[str, Any]]: ...

    def live_group_memberships(self, directory_id: str, group_id: str) -> list[tuple[str, str]]: ...

    def live_user_memberships(self, directory_id: str, user_id: str) -> list[tuple[str, str]]: ...

    def list_directory_ids(self) -> list[str]: ...

    def count_live(self, directory_id: str, prefix: str) -> dict[str, int]: ...
