"""In-memory `DirectoryStore` with DynamoDB's semantics for the operations the applier, the cascade and the purge use.

`tests/integration/adapters/test_store_contract.py` runs the same contract against this fake and the real adapter on
moto, so unit and property tests on the fake say something about the real table.

A fake kinder than DynamoDB hides defects, so `Unkindness` turns on what the real service does to the pipeline,
each modelled at the level of the port (what `shared.adapters.dynamodb.DirectoryTable` surfaces after its own
retries), with its source:

- **Index lag.** A global secondary index is updated asynchronously and a GSI Query cannot be strongly consistent
  (DynamoDB developer guide, "Reading data from a GSI": "... eventually consistent reads"; "ConsistentRead ... not
  supported on global secondary indexes"). Index reads (`live_user_memberships`) see the writes made up to a random
  earlier point; base-table reads stay strongly consistent, as the adapter asks for.
- **Throttling.** Any call may be throttled (`ProvisionedThroughputExceededException`/`ThrottlingException`, per
  partition; a `BatchGetItem` may leave `UnprocessedKeys`, which the adapter turns into `StoreThrottledError` once
  its retries are spent). Modelled as `StoreThrottledError` raised by a read or a write at random.
- **Timeouts that happened anyway.** A write whose response is lost (socket timeout, 5xx after commit) raises a
  transient error although DynamoDB applied it (boto3 "read timeout" retries; DynamoDB API "Error handling":
  "the request may have succeeded").
- **The counter item's changes** (`add_counts`) are writes like any other: throttled before they land, or landed
  with their response lost, or the Lambda killed right after. A change whose token is the last one stored is refused
  (DynamoDB's condition on the token), so a retry of a landed change adds nothing.
- **The Lambda killed between two writes** (timeout, out of memory, a runtime crash): `LambdaKilledError` after a
  random number of writes; SQS then redelivers the whole batch after its visibility timeout (Lambda developer
  guide, "Using Lambda with Amazon SQS": "the entire batch ... becomes visible again").
"""

from __future__ import annotations

import copy
import random
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.apply.ports import StoreThrottledError, TransientStoreError
from shared.model import records, schema
from shared.model.records import CountChange, ItemKey, Record, Replaced, StoredVersion


class LambdaKilledError(BaseException):
    """The invocation died mid-batch (not an Exception: nothing in the applier may catch it)."""


@dataclass
class Unkindness:
    """How unkind the fake store is; every probability is per call. `seed` makes a run reproducible."""

    seed: int = 0
    index_lag: bool = True
    throttle_rate: float = 0.0
    lost_response_rate: float = 0.0  # the write was applied, the caller hears a timeout
    kill_rate: float = 0.0  # per write: the Lambda dies right after it
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate


@dataclass
class FakeWorkQueue:
    jobs: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def submit(self, job: Any) -> None:
        if self.fail:
            raise RuntimeError("work queue unavailable")
        self.jobs.append(dict(job))


@dataclass
class FakeDeadLetters:
    parked: list[dict[str, str]] = field(default_factory=list)

    def forward(self, *, body: str, group_id: str, deduplication_id: str, reason: str) -> None:
        self.parked.append({"body": body, "group_id": group_id, "deduplication_id": deduplication_id, "reason": reason})


class FakeDirectoryStore:
    def __init__(self, unkindness: Unkindness | None = None) -> None:
        self.items: dict[ItemKey, dict[str, Any]] = {}
        self.calls: dict[str, int] = {}
        self.fail_puts_for: set[str] = set()  # sort-key prefixes whose puts raise TransientStoreError
        self.unkindness = unkindness
        self.on_write: Callable[[dict[str, Any] | None, dict[str, Any] | None], None] | None = None
        self._lock = threading.RLock()
        self._index_log: list[tuple[ItemKey, dict[str, Any] | None]] = []  # writes, in order, for the GSI
        self._indexed = 0  # how many of them the GSI has applied

    def _count(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def _maybe_throttle(self, operation: str) -> None:
        if self.unkindness is not None and self.unkindness.chance(self.unkindness.throttle_rate):
            raise StoreThrottledError(f"injected throttling of {operation}")

    def _commit(self, key: ItemKey, new: dict[str, Any] | None) -> None:
        """Under the lock: the write, its stream record (`on_write`) and its place in the index's queue."""
        old = self.items.get(key)
        if new is None:
            self.items.pop(key, None)
        else:
            self.items[key] = new
        self._index_log.append((key, copy.deepcopy(new)))
        if self.on_write is not None:
            self.on_write(copy.deepcopy(old), copy.deepcopy(new))

    def get_versions(self, keys: Collection[ItemKey]) -> dict[ItemKey, StoredVersion]:
        with self._lock:
            self._count("get_versions")
            self._maybe_throttle("BatchGetItem")
            return {
                key: StoredVersion(int(item[schema.VERSION_ATTRIBUTE]), bool(item[schema.DELETED_ATTRIBUTE]))
                for key in keys
                if (item := self.items.get(key)) is not None
            }

    def put_if_newer(self, record: Record) -> bool:
        return self.replace_if_newer(record).written

    def replace_if_newer(self, record: Record) -> Replaced:
        """DynamoDB's conditional put with ReturnValues=ALL_OLD: the replaced item when written."""
        unkind = self.unkindness
        with self._lock:
            self._count("put_if_newer")
            if any(record.key.sk.startswith(prefix) for prefix in self.fail_puts_for):
                raise TransientStoreError("injected throttling")
            self._maybe_throttle("PutItem")
            existing = self.items.get(record.key)
            if existing is not None and int(existing[schema.VERSION_ATTRIBUTE]) >= record.vkey:
                return Replaced(False)
            self._commit(record.key, dict(record.item()))
            if unkind is not None and unkind.chance(unkind.kill_rate):
                raise LambdaKilledError(f"killed after writing {record.key.sk}")
            if unkind is not None and unkind.chance(unkind.lost_response_rate):
                raise TransientStoreError("read timeout (the write was applied)")
            return Replaced(True, copy.deepcopy(existing))

    def add_counts(self, change: CountChange) -> None:
        """UpdateItem ADD on the counter item, conditional on the change's token not being the last one stored."""
        unkind = self.unkindness
        key = records.counts_key(change.directory_id)
        with self._lock:
            self._count("add_counts")
            self._maybe_throttle("UpdateItem")
            existing = self.items.get(key)
            if existing is not None and existing.get(records.COUNTS_TOKEN) == change.token:
                return  # ConditionalCheckFailedException: this change landed before
            item: dict[str, Any] = (
                copy.deepcopy(existing) if existing else {schema.PARTITION_KEY: key.pk, schema.SORT_KEY: key.sk}
            )
            item.setdefault(schema.VERSION_ATTRIBUTE, 0)
            item.setdefault(schema.DELETED_ATTRIBUTE, False)
            for name, delta in {
                **change.deltas,
                records.COUNTS_SEQ: 1,
                records.COUNTS_UNOBSERVED: change.unobserved,
            }.items():
                if delta or name == records.COUNTS_SEQ:
                    item[name] = int(item.get(name, 0)) + delta
            item[records.COUNTS_TOKEN] = change.token
            if change.created:
                item.setdefault(records.COUNTS_BASIS, records.BASIS_CREATED)
            self._commit(key, item)
            if unkind is not None and unkind.chance(unkind.kill_rate):
                raise LambdaKilledError("killed after adding to the counts")
            if unkind is not None and unkind.chance(unkind.lost_response_rate):
                raise TransientStoreError("read timeout (the counts were added)")

    def set_counts(self, item: Mapping[str, Any], *, expected_seq: int | None) -> bool:
        key = ItemKey(str(item[schema.PARTITION_KEY]), str(item[schema.SORT_KEY]))
        with self._lock:
            self._count("set_counts")
            self._maybe_throttle("PutItem")
            existing = self.items.get(key)
            if (existing is None) != (expected_seq is None):
                return False
            if existing is not None and int(existing.get(records.COUNTS_SEQ, 0)) != expected_seq:
                return False
            self._commit(key, dict(item))
            return True

    def entity_versions(self, directory_id: str, prefix: str) -> dict[str, StoredVersion]:
        self._maybe_throttle("Query")
        return {
            str(item["id"]): StoredVersion(int(item[schema.VERSION_ATTRIBUTE]), bool(item[schema.DELETED_ATTRIBUTE]))
            for item in self.partition(directory_id, prefix)
        }

    def live_group_memberships(self, directory_id: str, group_id: str) -> list[tuple[str, str]]:
        self._maybe_throttle("Query")
        prefix = schema.group_members_prefix(group_id)
        return [(i["group_id"], i["user_id"]) for i in self.partition(directory_id, prefix) if not i["deleted"]]

    def live_user_memberships(self, directory_id: str, user_id: str) -> list[tuple[str, str]]:
        """The `memberships_by_user` GSI: eventually consistent, so it may lag the table (see the module doc)."""
        member_key = schema.member_key(directory_id, user_id)
        return [
            (item["group_id"], item["user_id"])
            for item in self._index_snapshot().values()
            if item.get("member_key") == member_key and not item[schema.DELETED_ATTRIBUTE]
        ]

    def _index_snapshot(self) -> dict[ItemKey, dict[str, Any]]:
        with self._lock:
            pending = len(self._index_log) - self._indexed
            unkind = self.unkindness
            if unkind is None or not unkind.index_lag:
                self._indexed += pending
            elif pending:
                self._indexed += unkind.rng.randint(0, pending)  # the index catches up by a random amount
            snapshot: dict[ItemKey, dict[str, Any]] = {}
            for key, item in self._index_log[: self._indexed]:
                if item is None:
                    snapshot.pop(key, None)
                else:
                    snapshot[key] = item
            return snapshot

    def partition(self, directory_id: str, prefix: str = "") -> Iterator[dict[str, Any]]:
        pk = schema.directory_pk(directory_id)
        with self._lock:
            selected = sorted(
                (key.sk, copy.deepcopy(item))
                for key, item in self.items.items()
                if key.pk == pk and key.sk.startswith(prefix)
            )
        for _, item in selected:
            yield item

    # --- What `dsync status` and the reconcile's correction read --------------------------------------------------

    def batch_get(self, keys: Collection[ItemKey], *, projection: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Strongly consistent, by key; one call per 100 keys, as the adapter's BatchGetItem chunks."""
        keys = sorted(set(keys))
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            with self._lock:
                self._count("batch_get")
                self._maybe_throttle("BatchGetItem")
                found += [copy.deepcopy(self.items[key]) for key in keys[start : start + 100] if key in self.items]
        return found

    def query_index(self, index: schema.IndexSpec, partition_value: str) -> Iterator[dict[str, Any]]:
        """A global secondary index: eventually consistent (it may lag the table, see the module doc)."""
        self._count("query_index")
        self._maybe_throttle("Query")
        snapshot = self._index_snapshot()
        for key in sorted(snapshot):
            if snapshot[key].get(index.partition_key) == partition_value:
                yield copy.deepcopy(snapshot[key])

    def count_live(self, directory_id: str, prefix: str, *, consistent: bool = False) -> dict[str, int]:
        self._count("count_live")
        self._maybe_throttle("Query")
        counts = {"live": 0, "active": 0, "inactive": 0}
        for item in self.partition(directory_id, prefix):
            if not item.get(schema.DELETED_ATTRIBUTE):
                counts["live"] += 1
                counts["active" if item.get("state", "active") == "active" else "inactive"] += 1
        return counts

    # --- What the purge uses (`shared.apply.purge.PurgeStore`) -----------------------------------------------------

    def get_item(self, key: ItemKey) -> dict[str, Any] | None:
        self._maybe_throttle("GetItem")
        with self._lock:
            item = self.items.get(key)
            return copy.deepcopy(item) if item is not None else None

    def query_partition(
        self, directory_id: str, prefix: str, *, projection: Sequence[str] | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        self._maybe_throttle("Query")
        yield from self.partition(directory_id, prefix)

    def delete_items(self, keys: Iterable[ItemKey]) -> int:
        self._maybe_throttle("BatchWriteItem")
        count = 0
        with self._lock:
            for key in keys:
                if key in self.items:
                    self._commit(key, None)
                count += 1
        return count

    def delete_partition(self, directory_id: str) -> None:
        pk = schema.directory_pk(directory_id)
        with self._lock:
            for key in [key for key in self.items if key.pk == pk]:
                del self.items[key]
