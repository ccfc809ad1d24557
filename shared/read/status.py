"""What `dsync status` reads from the table: the Events API tail's position and each directory's progress.

An on-call engineer's first questions: is the tail reading (poll age), how far behind is it (lag, cursor age), and,
per directory, is its IdP connection healthy (WorkOS's state, since when), do WorkOS's counts match the mirror's,
what was applied last, and when the last reconcile finished and what it found. Then: does anything need a human now
(`attention`)?

It scales with the number of directories, never with their size: the directory list is one query of the sparse
`directories` index (its items are the directory items themselves), then four items per directory by key (health,
last event applied, last reconcile, counts), in BatchGetItem calls of 100 keys, a few at once. No partition is
queried: the mirror's counts are the counter item the writers keep (`shared.apply.counts`). At 10,000 directories
that is about 10 index pages and 400 batch reads (`bench/bench_status.py` prints them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.model import records, schema
from shared.model.events import parse_time
from shared.model.records import ItemKey
from shared.model.smoke import SMOKE_TEST_PK, SMOKE_TEST_SK
from shared.read.ports import ReadTable
from shared.reconcile.health import UNHEALTHY_STATES
from shared.reconcile.run import LAST_RUN_SK, NOT_OK
from shared.tail.cursor import LEASE_KEY, CursorStore

# The deployed alarms' defaults (infra.config: alarm_tail_poll_age_seconds, alarm_directory_unhealthy_minutes);
# tests/unit/read/test_status.py keeps them equal.
DEFAULT_TAIL_POLL_AGE_ALARM_SECONDS = 300.0
DEFAULT_UNHEALTHY_MINUTES = 60.0
STATUS_ITEMS = (schema.HEALTH_SK, schema.APPLIED_SK, LAST_RUN_SK, schema.COUNTS_SK)
BATCH_KEYS = 100  # BatchGetItem's limit
PARALLEL_READS = 8
_NOT_OK = frozenset(status.value for status in NOT_OK)


class StatusTable(Protocol):
    """What the directories' status reads (`shared.adapters.dynamodb.DirectoryTable`, or the tests' store)."""

    def batch_get(
        self, keys: Collection[ItemKey], *, projection: Sequence[str] | None = None
    ) -> list[dict[str, Any]]: ...

    def query_index(self, index: schema.IndexSpec, partition_value: str) -> Iterator[dict[str, Any]]: ...


class UnknownDirectoryError(LookupError):
    """`--directory` names no live directory of the mirror."""


@dataclass(frozen=True)
class Limits:
    """When something needs a human (`dsync status --check`)."""

    tail_poll_age_seconds: float = DEFAULT_TAIL_POLL_AGE_ALARM_SECONDS
    unhealthy_minutes: float = DEFAULT_UNHEALTHY_MINUTES


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


def directory_status(
    table: StatusTable, *, now: float, directory_id: str | None = None, limits: Limits | None = None
) -> list[dict[str, Any]]:
    """Per directory (every live one, or `directory_id` alone): its state and health, WorkOS's and the mirror's
    counts, the newest event applied, the last finished reconcile, and its `problems`. Raises
    `UnknownDirectoryError` for a `directory_id` the mirror does not hold live."""
    limits = limits or Limits()
    if directory_id is None:
        directories = sorted(
            table.query_index(schema.DIRECTORIES_INDEX, schema.DIRECTORY_INDEX_VALUE), key=lambda item: str(item["id"])
        )
        wanted = [str(item["id"]) for item in directories]
    else:
        wanted = [directory_id]
    keys = [ItemKey(schema.directory_pk(d), sk) for d in wanted for sk in STATUS_ITEMS]
    if directory_id is not None:
        keys.append(records.directory_key(directory_id))  # in the same read
    items = {ItemKey(str(item[schema.PARTITION_KEY]), str(item[schema.SORT_KEY])): item for item in _read(table, keys)}
    if directory_id is not None:
        stored = items.get(records.directory_key(directory_id))
        if stored is None or stored.get(schema.DELETED_ATTRIBUTE):
            state = "was deleted" if stored is not None else "is unknown"
            raise UnknownDirectoryError(
                f"directory {directory_id!r} {state} in the mirror (`dsync status` lists the live directories)"
            )
        directories = [stored]
    return [_directory(item, items, now=now, limits=limits) for item in directories]


def _read(table: StatusTable, keys: Sequence[ItemKey]) -> list[dict[str, Any]]:
    """BatchGetItem in chunks of 100 keys, a few chunks at once (each chunk one call, its own retries)."""
    chunks = [keys[start : start + BATCH_KEYS] for start in range(0, len(keys), BATCH_KEYS)]
    if len(chunks) <= 1:
        return table.batch_get(keys) if keys else []
    with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
        return [item for found in pool.map(table.batch_get, chunks) for item in found]


def _directory(
    directory: Mapping[str, Any], items: Mapping[ItemKey, dict[str, Any]], *, now: float, limits: Limits
) -> dict[str, Any]:
    directory_id = str(directory["id"])
    pk = schema.directory_pk(directory_id)
    health = items.get(ItemKey(pk, schema.HEALTH_SK))
    applied = items.get(ItemKey(pk, schema.APPLIED_SK))
    last_run = items.get(ItemKey(pk, LAST_RUN_SK))
    counts, basis = records.readable_counts(items.get(ItemKey(pk, schema.COUNTS_SK)))
    entry: dict[str, Any] = {
        "id": directory_id,
        "state": directory.get("state"),
        "health": records.readable_health(health) if health else None,
        "mirror_counts": counts,
        "mirror_counts_basis": basis,
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
            "error": last_run.get("error"),
            "counts_corrected": last_run.get("counts_corrected"),
        }
        if last_run
        else None,
    }
    entry["problems"] = _problems(entry, now=now, limits=limits)
    return entry


def unhealthy_seconds(entry: Mapping[str, Any], *, now: float) -> float | None:
    """How long WorkOS has reported the directory's connection unhealthy, as of its last observation; None when
    it is healthy (or never observed)."""
    health = entry.get("health") or {}
    if health.get("state") not in UNHEALTHY_STATES:
        return None
    since = health.get("since")
    return max(0.0, now - parse_time(str(since)).timestamp()) if since else 0.0


def _problems(entry: Mapping[str, Any], *, now: float, limits: Limits) -> list[str]:
    problems = []
    unhealthy_for = unhealthy_seconds(entry, now=now)
    if unhealthy_for is not None:
        health = entry["health"]
        too_long = unhealthy_for >= limits.unhealthy_minutes * 60
        problems.append(
            f"WorkOS reports {health['state']} since {health.get('since')} ({unhealthy_for / 60:.0f} min"
            + (f", over the {limits.unhealthy_minutes:g}-minute limit)" if too_long else ")")
        )
    last = entry.get("last_reconcile") or {}
    if last.get("status") in _NOT_OK:
        problems.append(f"last reconcile {last['status']} at {last.get('finished_at')}: {last.get('error') or ''}")
    return problems


def attention(
    *,
    queues: Mapping[str, int],
    tail: Mapping[str, Any] | None,
    directories: Iterable[Mapping[str, Any]],
    now: float,
    limits: Limits | None = None,
) -> list[str]:
    """What needs a human now, one line each (`dsync status --check` exits 1 on any): a dead letter, a tail that
    stopped polling past its alarm, a directory unhealthy past its alarm, a reconcile that failed, refused or held."""
    limits = limits or Limits()
    reasons = []
    if queues.get("dead_letters"):
        reasons.append(
            f"the dead-letter queue holds {queues['dead_letters']} event(s): see docs/runbook.md, then `dsync redrive`"
        )
    poll_age = (tail or {}).get("poll_age_seconds")
    if poll_age is not None and poll_age > limits.tail_poll_age_seconds:
        reasons.append(
            f"the Events API tail last polled {poll_age:.0f} s ago (alarm at {limits.tail_poll_age_seconds:g} s)"
        )
    for entry in directories:
        unhealthy_for = unhealthy_seconds(entry, now=now)
        if unhealthy_for is not None and unhealthy_for >= limits.unhealthy_minutes * 60:
            health = entry["health"]
            reasons.append(
                f"directory {entry['id']}: WorkOS reports {health['state']} for {unhealthy_for / 60:.0f} min "
                f"(over {limits.unhealthy_minutes:g}): the customer's IT admin must reconnect it"
            )
        last = entry.get("last_reconcile") or {}
        if last.get("status") in _NOT_OK:
            reasons.append(
                f"directory {entry['id']}: last reconcile {last['status']}: {last.get('error') or 'see its report'}"
            )
    return reasons


def summary(directories: Sequence[Mapping[str, Any]], *, now: float, limits: Limits | None = None) -> dict[str, Any]:
    """Totals over the directories: their health, reconciles, and the mirror's counts."""
    limits = limits or Limits()
    health_states: dict[str, int] = {}
    totals = dict.fromkeys(records.COUNT_NAMES, 0)
    uncounted = 0
    for entry in directories:
        state = str((entry.get("health") or {}).get("state") or "not observed")
        health_states[state] = health_states.get(state, 0) + 1
        counts = entry["mirror_counts"]
        if counts["groups"] is None:
            uncounted += 1
        else:
            for name in records.COUNT_NAMES:
                totals[name] += int(counts[name])
    unhealthy = [seconds for entry in directories if (seconds := unhealthy_seconds(entry, now=now)) is not None]
    last_runs = [entry.get("last_reconcile") or {} for entry in directories]
    return {
        "directories": len(directories),
        "health_states": dict(sorted(health_states.items())),
        "unhealthy": len(unhealthy),
        "unhealthy_too_long": sum(1 for seconds in unhealthy if seconds >= limits.unhealthy_minutes * 60),
        "reconcile_not_ok": sum(1 for run in last_runs if run.get("status") in _NOT_OK),
        "never_reconciled": sum(1 for run in last_runs if not run),
        "mirror_counts": totals,
        "uncounted": uncounted,  # counted only once their first reconcile sets them (mirrored before the counters)
    }
