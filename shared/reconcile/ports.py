"""What reconcile needs of the directory table: the ports of the pieces it drives, and the reads its own phases make.

Implemented by `shared.adapters.dynamodb.DirectoryTable`; the stage never imports the adapter (adapters sit above
the stages, `make test`'s import contracts check it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any, Protocol

from shared.apply.ports import DirectoryStore
from shared.apply.purge import PurgeStore
from shared.key_check import MirrorDirectories
from shared.lease import ItemTable
from shared.model.records import ItemKey
from shared.reconcile.counts import CountsTable
from shared.reconcile.health import HealthTable


class ReconcileTable(DirectoryStore, PurgeStore, ItemTable, MirrorDirectories, HealthTable, CountsTable, Protocol):
    """The write rule and its cascades, the purge, leases and checkpoints, the key check, health, the counts'
    correction, and the reads of the phases (stored versions, a group's members, the last runs of a wave)."""

    def count_live(self, directory_id: str, prefix: str, *, consistent: bool = False) -> dict[str, int]: ...

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
