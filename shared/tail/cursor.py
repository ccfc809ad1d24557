"""The Events API tail's cursor: the last event id it processed, moved only by compare-and-set.

One item in the table (outside every directory's partition, so readers, exports and change events never see it).
Every write is conditional on the event id the writer last read, so a tail that lags behind another (a second
invocation, a process that paused) writes nothing and stops. Only the tail's own Events API reads move it, and only
after every event of the page was accepted by SQS (or parked): a crash in between re-reads the page (duplicates
only). Webhooks never touch it (WorkOS holds events back from cursor reads for a few seconds: a cursor moved with an
id learned from a webhook can skip an older event that was not visible yet).

Beside the cursor, the same partition keeps a reference to each event the tail parked because no SQS message can
hold it (`ParkedEvent`, sort key `#PARKED#<event id>`): ids, type, size and time, never the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.lease import ItemTable
from shared.model import schema
from shared.model.records import ItemKey

TAIL_PK = "~TAIL#events"
CURSOR_KEY = ItemKey(TAIL_PK, "#CURSOR")
LEASE_KEY = ItemKey(TAIL_PK, "#LEASE")
PARKED_PREFIX = "#PARKED#"
PARKED_RETENTION_SECONDS = 14 * 24 * 3600  # as long as the dead-letter queues keep a message


@dataclass(frozen=True)
class Cursor:
    """Where the tail is. `event_id` None: no event processed yet (bootstrap reads by time)."""

    event_id: str | None
    event_created_at: str | None  # created_at of that event, as WorkOS wrote it
    moved_ms: int  # when the cursor last moved
    polled_ms: int  # when the tail last read the Events API successfully
    recovered_ms: int = 0  # when the tail last fell back from a refused cursor (0: never)
    recovery_reason: str | None = None
    # With no event id: where the time-range reads start (bootstrap, or recovery), kept so that the next invocation
    # continues from the same point instead of recomputing one (which could skip what was created in between).
    read_from: str | None = None
    # A window a time-range read may have seen only in part (events committed late are not visible at once, and
    # WorkOS documents its hold-back for cursor reads only): re-read by time once it is older than the hold-back
    # margin. The cursor moved past it; the re-read queues what was missing.
    recheck_from: str | None = None
    recheck_until: str | None = None


@dataclass(frozen=True)
class ParkedEvent:
    """An event the tail could not queue because its message would be over SQS's size limit: where to find it."""

    event_id: str
    event_type: str
    directory_id: str
    created_at: str | None
    size_bytes: int
    limit_bytes: int
    parked_ms: int

    @property
    def key(self) -> ItemKey:
        return ItemKey(TAIL_PK, PARKED_PREFIX + self.event_id)


class CursorStore:
    def __init__(self, table: ItemTable) -> None:
        self._table = table

    def load(self) -> Cursor | None:
        item = self._table.get_item(CURSOR_KEY)
        if item is None:
            return None
        return Cursor(
            event_id=item.get("event_id") or None,
            event_created_at=item.get("event_created_at") or None,
            moved_ms=int(item.get("moved_ms", 0)),
            polled_ms=int(item.get("polled_ms", 0)),
            recovered_ms=int(item.get("recovered_ms", 0)),
            recovery_reason=item.get("recovery_reason") or None,
            read_from=item.get("read_from") or None,
            recheck_from=item.get("recheck_from") or None,
            recheck_until=item.get("recheck_until") or None,
        )

    def save(self, cursor: Cursor, *, expected_event_id: str | None) -> bool:
        """Write `cursor` only if the stored event id is still `expected_event_id`; False: another tail moved it."""
        item: dict[str, Any] = {
            schema.PARTITION_KEY: CURSOR_KEY.pk,
            schema.SORT_KEY: CURSOR_KEY.sk,
            "moved_ms": cursor.moved_ms,
            "polled_ms": cursor.polled_ms,
            "recovered_ms": cursor.recovered_ms,
        }
        for name in ("event_id", "event_created_at", "recovery_reason", "read_from", "recheck_from", "recheck_until"):
            value = getattr(cursor, name)
            if value is not None:
                item[name] = value
        if expected_event_id is None:
            return self._table.put_item(item, condition="attribute_not_exists(event_id)")
        return self._table.put_item(item, condition="event_id = :expected", values={":expected": expected_event_id})

    def park(self, parked: ParkedEvent) -> None:
        """Keep a reference to an event no queue message can hold (idempotent: one item per event id)."""
        item: dict[str, Any] = {
            schema.PARTITION_KEY: parked.key.pk,
            schema.SORT_KEY: parked.key.sk,
            "event_id": parked.event_id,
            "event_type": parked.event_type,
            "directory_id": parked.directory_id,
            "size_bytes": parked.size_bytes,
            "limit_bytes": parked.limit_bytes,
            "parked_ms": parked.parked_ms,
            schema.TTL_ATTRIBUTE: parked.parked_ms // 1000 + PARKED_RETENTION_SECONDS,
        }
        if parked.created_at is not None:
            item["created_at"] = parked.created_at
        self._table.put_item(item)
