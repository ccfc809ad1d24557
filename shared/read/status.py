"""What `dsync status` reads from the table: the Events API tail's position and each directory's progress.

An on-call engineer's first questions: is the tail reading (poll age), how far behind is it (lag, cursor age), and,
per directory, is its IdP connection healthy (WorkOS's state, since when), do WorkOS's counts match the mirror's,
what was applied last, and when the last reconcile finished and what it found.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.model import records, schema
from shared.model.events import parse_time
from shared.model.records import ItemKey
from shared.model.smoke import SMOKE_TEST_PK, SMOKE_TEST_SK
from shared.read.ports import ReadTable
from shared.reconcile.health import mirror_counts
from shared.reconcile.run import LAST_RUN_SK
from shared.tail.cursor import LEASE_KEY, CursorStore


def _iso_ms(milliseconds: int) -> str | None:
    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="seconds") if milliseconds else None


def tail_status(table: ReadTable, *, now: float) -> dict[str, Any] | None:
    """None until the tail has run once."""
    cursor = CursorStore(table).load()
    lease = table.get_item(LEASE_KEY)
    if cursor is None:
        return None
    event_at = parse_time(cursor.event_created_at).timestamp() if cursor.event_created_at else None
    return {
        "cursor": cursor.event_id,
        "cursor_event_at": cursor.event_created_at,
        "cursor_age_seconds": round(now - event_at, 1) if event_at is not None else None,
        # How long after its creation the tail queued the cursor's event.
        "lag_seconds": round(cursor.moved_ms / 1000 - event_at, 1)
        if event_at is not None and cursor.moved_ms
        else None,
        "poll_age_seconds": round(now - cursor.polled_ms / 1000, 1) if cursor.polled_ms else None,
        "recovered_at": _iso_ms(cursor.recovered_ms),
        "recovery_reason": cursor.recovery_reason,
        "running": bool(lease and int(lease.get("lease_until_ms", 0)) > now * 1000),
    }


def smoke_test_status(table: ReadTable) -> dict[str, Any] | None:
    """The last smoke test apply acknowledged (`shared.model.smoke`): proof the deployed path works end to end."""
    item = table.get_item(ItemKey(SMOKE_TEST_PK, SMOKE_TEST_SK))
    if item is None:
        return None
    return {
        "event_id": item.get("event_id"),
        "event_type": item.get("event_type"),
        "sent_at": item.get("created_at"),
        "applied_at": _iso_ms(int(item.get("at_ms", 0))),
    }


def directory_status(table: ReadTable) -> list[dict[str, Any]]:
    """Per directory: its state and health, WorkOS's and the mirror's counts, the newest event applied, and the last
    finished reconcile. The mirror's counts are one query per directory: fine for an operator's command."""
    directory_ids = table.list_directory_ids()
    keys = [
        ItemKey(schema.directory_pk(directory_id), sk)
        for directory_id in directory_ids
        for sk in (schema.DIRECTORY_SK, schema.HEALTH_SK, schema.APPLIED_SK, LAST_RUN_SK)
    ]
    items = {
        ItemKey(str(item[schema.PARTITION_KEY]), str(item[schema.SORT_KEY])): item for item in table.batch_get(keys)
    }
    report = []
    for directory_id in directory_ids:
        pk = schema.directory_pk(directory_id)
        directory = items.get(ItemKey(pk, schema.DIRECTORY_SK)) or {}
        applied = items.get(ItemKey(pk, schema.APPLIED_SK))
        last_run = items.get(ItemKey(pk, LAST_RUN_SK))
        health = items.get(ItemKey(pk, schema.HEALTH_SK))
        report.append(
            {
                "id": directory_id,
                "state": directory.get("state"),
                "health": records.readable_health(health) if health else None,
                "mirror_counts": mirror_counts(table, directory_id).as_dict(),
                "last_event": {
                    "id": applied.get("event_id"),
                    "type": applied.get("event_type"),
                    "created_at": applied.get("created_at"),
                    "applied_at": _iso_ms(int(applied.get("at_ms", 0))),
                }
                if applied
                else None,
                "last_reconcile": {
                    "finished_at": _iso_ms(int(last_run.get("finished_at", 0)) * 1000),
                    "status": last_run.get("status"),
                    "drift_total": int(last_run.get("drift_total", 0)),
                    "duration_seconds": float(last_run.get("duration_seconds", 0)),
                }
                if last_run
                else None,
            }
        )
    return report
