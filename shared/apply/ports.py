"""What the write path talks to and answers: the store, work queue and dead-letter ports and their errors, a
message in, its outcome out, and the applier's configuration."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from shared.model.records import CountChange, ItemKey, Record, Replaced, StoredVersion
from shared.resources import DEFAULT_TOMBSTONE_TTL_DAYS


class TransientStoreError(Exception):
    """Throttling, 5xx, timeouts, access or configuration problems: worth retrying later."""


class PermanentStoreError(Exception):
    """The store refused the record itself (e.g. validation): retrying can never help."""


class StoreThrottledError(TransientStoreError):
    """The directory's partition is over its throughput: worth retrying, better elsewhere (`shared.apply.overflow`)."""


class DirectoryStore(Protocol):
    def get_versions(self, keys: Collection[ItemKey]) -> dict[ItemKey, StoredVersion]:
        """Stored (vkey, deleted) of each key that exists; strongly consistent."""
        ...

    def put_if_newer(self, record: Record) -> bool:
        """Write `record` iff the key is absent or its stored vkey is lower. True if written."""
        ...

    def replace_if_newer(self, record: Record) -> Replaced:
        """`put_if_newer`, also saying what the write replaced (the old item, when the store could tell)."""
        ...

    def add_counts(self, change: CountChange) -> None:
        """ADD the change to its directory's counter item (`records.counts_key`), at most once per `change.token`."""
        ...

    def live_group_memberships(self, directory_id: str, group_id: str) -> list[tuple[str, str]]:
        """(group_id, user_id) of the group's present membership rows."""
        ...

    def entity_versions(self, directory_id: str, prefix: str) -> dict[str, StoredVersion]:
        """id -> stored version of every user (or group) of the directory, tombstones included; strongly
        consistent (a query of the directory's own partition, never an index)."""
        ...


class WorkQueue(Protocol):
    def submit(self, job: Mapping[str, Any]) -> None: ...


class DeadLetters(Protocol):
    def forward(self, *, body: str, group_id: str, deduplication_id: str, reason: str) -> None: ...


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    body: str
    group_id: str
    deduplication_id: str


class Status(StrEnum):
    APPLIED = "applied"  # the store changed
    NOOP = "noop"  # duplicate, stale, or for a deleted directory
    IGNORED = "ignored"  # a well-formed event of a type we do not apply
    FORWARDED = "forwarded"  # can never apply: parked on the dead-letter queue
    MOVED = "moved"  # its directory's partition is throttled: queued on the overflow lane, applied there
    RETRY = "retry"  # transient failure: report it failed so SQS redelivers
    SMOKE_TEST = "smoke_test"  # a marked test event (`shared.model.smoke`): acknowledged, the mirror untouched


@dataclass
class MessageOutcome:
    status: Status
    event_type: str | None = None
    event_id: str | None = None
    directory_id: str | None = None
    created_at: datetime | None = None
    reason: str | None = None
    writes: int = 0
    throttled: bool = False


@dataclass(frozen=True)
class ApplyConfig:
    tombstone_ttl_seconds: int = DEFAULT_TOMBSTONE_TTL_DAYS * 86_400
    parallelism: int = 10
    # Stop starting cascades when less than this is left before the Lambda timeout; redelivery finishes them.
    safety_margin_seconds: float = 5.0


class JobKind(StrEnum):
    RECONCILE = "reconcile"
    PURGE = "purge"


_SEVERITY = {
    Status.APPLIED: 0,
    Status.NOOP: 0,
    Status.IGNORED: 0,
    Status.MOVED: 0,
    Status.FORWARDED: 1,
    Status.RETRY: 2,
}


def _fail(outcome: MessageOutcome, status: Status, reason: str | None) -> None:
    """Keep the most severe failure: a retry beats a forward (the retry may still succeed as a whole)."""
    if _SEVERITY[status] >= _SEVERITY[outcome.status]:
        outcome.status, outcome.reason = status, reason
