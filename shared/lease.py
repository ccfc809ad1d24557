"""A single-writer lease in the directory table: one conditional put, so two runs of one job never interleave.

The holder writes `owner` and `lease_until_ms`; anyone else may take the item only once that time has passed (a
crashed holder's lease simply expires). `acquired_ms` says when the current holder first took it, so a job that
finds the lease busy can tell whether the run in progress started before or after it was asked for. Used by each
directory's reconcile and by the one Events API tail.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from shared.model import schema
from shared.model.records import ItemKey


class ItemTable(Protocol):
    """Conditional single-item access (implemented by `shared.adapters.dynamodb.DirectoryTable`)."""

    def put_item(
        self,
        item: dict[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool: ...

    def delete_item(
        self,
        key: ItemKey,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool: ...

    def get_item(self, key: ItemKey) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class LeaseHolder:
    run_id: str
    acquired_ms: int
    lease_until_ms: int


class Lease:
    """One holder's claim on `key`: `acquire` (or renew), `release`; `holder` reads who has it now."""

    def __init__(
        self,
        table: ItemTable,
        key: ItemKey,
        *,
        run_id: str = "",
        clock: Callable[[], float] = time.time,
        acquired_ms: int | None = None,
    ) -> None:
        self._table = table
        self.key = key
        self.owner = uuid.uuid4().hex
        self.run_id = run_id
        self._clock = clock
        self.acquired_ms = int(clock() * 1000) if acquired_ms is None else acquired_ms

    def acquire(self, seconds: float) -> bool:
        """Take the lease for `seconds` from now, or extend our own; False if someone else holds it."""
        now_ms = int(self._clock() * 1000)
        return self._table.put_item(
            {
                schema.PARTITION_KEY: self.key.pk,
                schema.SORT_KEY: self.key.sk,
                "owner": self.owner,
                "run_id": self.run_id,
                "acquired_ms": self.acquired_ms,
                "lease_until_ms": now_ms + int(seconds * 1000),
                schema.TTL_ATTRIBUTE: int(self._clock() + seconds + 3600),
            },
            condition="attribute_not_exists(#pk) OR lease_until_ms < :now OR #owner = :owner",
            names={"#pk": schema.PARTITION_KEY, "#owner": "owner"},
            values={":now": now_ms, ":owner": self.owner},
        )

    def release(self) -> None:
        self._table.delete_item(
            self.key, condition="#owner = :owner", names={"#owner": "owner"}, values={":owner": self.owner}
        )

    def holder(self) -> LeaseHolder | None:
        item = self._table.get_item(self.key)
        if item is None:
            return None
        return LeaseHolder(
            run_id=str(item.get("run_id", "")),
            acquired_ms=int(item.get("acquired_ms", 0)),
            lease_until_ms=int(item.get("lease_until_ms", 0)),
        )
