"""Directory health: what WorkOS's `GET /directories` says about each directory, recorded by every reconcile wave.

WorkOS sends no event when a directory's IdP connection breaks (`invalid_credentials`) or is being checked
(`validating`): only its API state shows it. The wave already lists every directory to plan its jobs, so it records
each one's state and WorkOS's own counts (`metadata`) as a `~HEALTH` item (a max-register by observation time, so
a late or overlapping wave never replaces a newer observation), and keeps `since`, when the directory entered its
state. The stream turns a state change into `directory.state_changed`.

The wave also reads the mirror's live users and groups from each directory's counter item (`~COUNTS`, kept by the
writers' transitions, `shared.apply.counts`), in the same batched read as the health items, and reports the
directories whose counts differ from WorkOS's: a cheap drift hint, visible before any listing. A counter that
drifted from its partition looks like drift too, so its directory is reconciled sooner, which sets the counter
again. Only a directory whose counter has no basis yet (mirrored before the counters existed) is counted by
querying its partition (one query per kind), until its first reconcile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.model import records, schema
from shared.model.events import parse_time
from shared.model.records import DirectoryHealth, ItemKey, Record

# `linked` is healthy; `deleting` is on its way out (its `dsync.deleted` follows). The rest need a human.
UNHEALTHY_STATES = frozenset({"invalid_credentials", "unlinked", "validating"})


class HealthTable(Protocol):
    def batch_get(self, keys: Collection[ItemKey]) -> list[dict[str, Any]]: ...
    def put_if_newer(self, record: Record) -> bool: ...
    def count_live(self, directory_id: str, prefix: str) -> dict[str, int]: ...


@dataclass(frozen=True)
class Counts:
    users_active: int | None
    users_inactive: int | None
    groups: int | None

    def as_dict(self) -> dict[str, int | None]:
        return {"users_active": self.users_active, "users_inactive": self.users_inactive, "groups": self.groups}


@dataclass(frozen=True)
class DirectoryCheck:
    directory_id: str
    state: str
    since: datetime
    workos: Counts
    mirror: Counts

    def unhealthy_for(self, now: datetime) -> float:
        """Seconds the directory has been in an unhealthy state (0 when healthy)."""
        return (now - self.since).total_seconds() if self.state in UNHEALTHY_STATES else 0.0

    @property
    def counts_differ(self) -> bool:
        return self.workos.groups is not None and self.workos != self.mirror


@dataclass(frozen=True)
class HealthReport:
    observed_at: datetime
    checks: list[DirectoryCheck]
    changed: int  # health items written (a state or a count moved)
    unhealthy_after_seconds: float

    @property
    def unhealthy(self) -> list[DirectoryCheck]:
        return [check for check in self.checks if check.state in UNHEALTHY_STATES]

    @property
    def unhealthy_too_long(self) -> list[DirectoryCheck]:
        return [c for c in self.unhealthy if c.unhealthy_for(self.observed_at) >= self.unhealthy_after_seconds]

    @property
    def count_mismatches(self) -> list[DirectoryCheck]:
        return [check for check in self.checks if check.counts_differ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "directories": len(self.checks),
            "changed": self.changed,
            "unhealthy": {check.directory_id: check.state for check in self.unhealthy},
            "unhealthy_too_long": [check.directory_id for check in self.unhealthy_too_long],
            "count_mismatches": {
                check.directory_id: {"workos": check.workos.as_dict(), "mirror": check.mirror.as_dict()}
                for check in self.count_mismatches
            },
        }


class HealthRecorder:
    def __init__(
        self,
        table: HealthTable,
        *,
        unhealthy_after_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
        parallelism: int = 8,
    ) -> None:
        self._table = table
        self._unhealthy_after = unhealthy_after_seconds
        self._clock = clock
        self._parallelism = parallelism

    def record(self, listed: Sequence[Mapping[str, Any]]) -> HealthReport:
        """Record the listed directories' health (WorkOS's `list_directories` output, `api_state` included)."""
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        keys = [key for d in listed for key in (records.health_key(d["id"]), records.counts_key(d["id"]))]
        previous: dict[str, Mapping[str, Any]] = {}
        counters: dict[str, Mapping[str, Any]] = {}
        for item in self._table.batch_get(keys):
            directory_id = schema.directory_id_of_pk(str(item[schema.PARTITION_KEY]))
            (counters if item[schema.SORT_KEY] == schema.COUNTS_SK else previous)[directory_id] = item
        with ThreadPoolExecutor(max_workers=self._parallelism) as pool:
            checks = list(
                pool.map(lambda d: self._check(d, previous.get(str(d["id"])), counters.get(str(d["id"])), now), listed)
            )
            writes = [
                records.health_record(self._health(check, listed_directory, now))
                for check, listed_directory in zip(checks, listed, strict=True)
                if _moved(previous.get(check.directory_id), check)
            ]
            changed = sum(pool.map(self._table.put_if_newer, writes))
        return HealthReport(now, checks, changed, self._unhealthy_after)

    def _check(
        self,
        directory: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        counter: Mapping[str, Any] | None,
        now: datetime,
    ) -> DirectoryCheck:
        directory_id = str(directory["id"])
        state = str(directory.get("api_state") or directory.get("state") or "unknown")
        since = now
        if previous is not None and previous.get("state") == state and previous.get("since"):
            since = parse_time(str(previous["since"]))
        mirror = counted(counter) or mirror_counts(self._table, directory_id)
        return DirectoryCheck(directory_id, state, since, workos_counts(directory), mirror)

    def _health(self, check: DirectoryCheck, directory: Mapping[str, Any], now: datetime) -> DirectoryHealth:
        organization_id = directory.get("organization_id")
        return DirectoryHealth(
            directory_id=check.directory_id,
            organization_id=str(organization_id) if organization_id else None,
            state=check.state,
            observed_at=now,
            since=check.since,
            users_active=check.workos.users_active,
            users_inactive=check.workos.users_inactive,
            groups=check.workos.groups,
        )


class CountingTable(Protocol):
    def count_live(self, directory_id: str, prefix: str) -> dict[str, int]: ...


def counted(counter: Mapping[str, Any] | None) -> Counts | None:
    """The counts of a counter item (`records.counts_key`), or None while it has no basis."""
    counts, _ = records.readable_counts(counter)
    if counts["groups"] is None:
        return None
    return Counts(counts["users_active"], counts["users_inactive"], counts["groups"])


def mirror_counts(table: CountingTable, directory_id: str) -> Counts:
    """The mirror's live users (active / not active, as WorkOS counts them) and groups: one query per kind (what the
    counter item spares; for a directory whose counter has no basis yet)."""
    users = table.count_live(directory_id, schema.USER_PREFIX)
    groups = table.count_live(directory_id, schema.GROUP_PREFIX)
    return Counts(users.get("active", 0), users.get("inactive", 0), groups.get("live", 0))


def workos_counts(directory: Mapping[str, Any]) -> Counts:
    """WorkOS's `metadata` counts (absent before 2026-03-17: all None)."""
    metadata = directory.get("metadata")
    if not isinstance(metadata, Mapping):
        return Counts(None, None, None)
    users = metadata.get("users")
    if not isinstance(users, Mapping):
        users = {}
    return Counts(_int(users.get("active")), _int(users.get("inactive")), _int(metadata.get("groups")))


def _moved(previous: Mapping[str, Any] | None, check: DirectoryCheck) -> bool:
    """Only a change is written: an unchanged directory costs one read per wave, no write and no stream record."""
    if previous is None:
        return True
    stored = Counts(
        _int(previous.get("users_active")), _int(previous.get("users_inactive")), _int(previous.get("groups"))
    )
    return previous.get("state") != check.state or stored != check.workos


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
