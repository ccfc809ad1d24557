"""DynamoDB adapter for the directory table: the one place that speaks DynamoDB's wire format.

The write rule lives here once (`put_if_newer`: absent or older → write), used by the apply Lambda, the
reconcile Lambda and nothing else; readers, leases, checkpoints and purges use the other methods.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.apply.ports import PermanentStoreError, StoreThrottledError, TransientStoreError
from shared.model import records, schema
from shared.model.records import CountChange, ItemKey, Record, Replaced, StoredVersion

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CLIENT_CONFIG = Config(
    connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=25
)
BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
_CONDITION_NEWER = "attribute_not_exists(#pk) OR #vkey < :vkey"
_PERMANENT_CODES = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})
_THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def dynamodb_client(*, max_attempts: int | None = None, adaptive: bool = False) -> DynamoDBClient:
    """The table's client. `max_attempts` bounds the SDK's retries: the events queue's applier gives up on a
    throttled partition quickly and moves the directory to the overflow queue. `adaptive` adds botocore's client-side
    rate limiting, which slows every request of the client after a throttle: right for the overflow lane, which only
    carries throttled directories, wrong for the events lane, whose other directories must not wait."""
    config = CLIENT_CONFIG
    if max_attempts is not None:
        retries: Any = {"mode": "adaptive" if adaptive else "standard", "max_attempts": max_attempts}
        config = config.merge(Config(retries=retries))
    return boto3.client("dynamodb", config=config)


def to_wire(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(_decimals(value)) for name, value in item.items() if value is not None}


def _decimals(value: Any) -> Any:
    """DynamoDB numbers are decimals; boto3 refuses floats."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decimals(item) for item in value]
    return value


def from_wire(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set):
        return [_plain(item) for item in value]
    return value


def _key(key: ItemKey) -> dict[str, Any]:
    return {schema.PARTITION_KEY: {"S": key.pk}, schema.SORT_KEY: {"S": key.sk}}


def translate(error: Exception) -> Exception:
    """Map a botocore error to the port's transient/permanent split (throttling is a transient kind of its own)."""
    code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
    if code in _PERMANENT_CODES:
        return PermanentStoreError(str(error))
    if code in _THROTTLING_CODES:
        return StoreThrottledError(str(error))
    return TransientStoreError(str(error))


class _TableClient:
    """The table's name, its client and the retry bounds, and paging: what every concern below shares."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        unprocessed_attempts: int = 8,
        transient_attempts: int = 1,
    ) -> None:
        self.table_name = table_name
        self._client = client or dynamodb_client()
        # Attempts of a conditional write that fails for a transient reason other than a throttle (a 500, a
        # timeout): the events lane's client makes one SDK attempt (throttles move on to the overflow lane), so
        # without these a passing 500 would stall the message's lane for the queue's visibility timeout.
        self._transient_attempts = max(1, transient_attempts)
        # Rounds of a batch read's unprocessed keys (partial throttling) before it gives up with a throttle error:
        # the events lane's applier keeps this short and moves the directory to the overflow lane instead.
        self._unprocessed_attempts = max(1, unprocessed_attempts)

    def _paginate(self, operation: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            try:
                response = getattr(self._client, operation)(**request)
            except (ClientError, BotoCoreError) as error:
                raise translate(error) from error
            for item in response.get("Items", []):
                yield from_wire(item)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            request = {**request, "ExclusiveStartKey": last}


class _TableReads(_TableClient):
    """Strongly consistent reads by key (`BatchGetItem`, `GetItem`), partition queries and index queries."""

    # --- Reads ------------------------------------------------------------------------------------------------------

    def get_versions(self, keys: Collection[ItemKey]) -> dict[ItemKey, StoredVersion]:
        versions: dict[ItemKey, StoredVersion] = {}
        for item in self.batch_get(
            keys, projection=[schema.PARTITION_KEY, schema.SORT_KEY, schema.VERSION_ATTRIBUTE, schema.DELETED_ATTRIBUTE]
        ):
            key = ItemKey(item[schema.PARTITION_KEY], item[schema.SORT_KEY])
            versions[key] = StoredVersion(
                int(item.get(schema.VERSION_ATTRIBUTE, 0)), bool(item.get(schema.DELETED_ATTRIBUTE))
            )
        return versions

    def batch_get(self, keys: Collection[ItemKey], *, projection: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Strongly consistent BatchGetItem in chunks of 100, retrying unprocessed keys with jittered backoff."""
        found: list[dict[str, Any]] = []
        ordered = sorted(set(keys))
        for start in range(0, len(ordered), BATCH_GET_LIMIT):
            request: dict[str, Any] = {"Keys": [_key(k) for k in ordered[start : start + BATCH_GET_LIMIT]]}
            request["ConsistentRead"] = True
            if projection:
                names = {f"#a{i}": name for i, name in enumerate(projection)}
                request["ProjectionExpression"] = ", ".join(names)
                request["ExpressionAttributeNames"] = names
            pending: dict[str, Any] = {self.table_name: request}
            for attempt in range(self._unprocessed_attempts):
                if attempt:
                    _backoff(attempt - 1)
                try:
                    response = self._client.batch_get_item(RequestItems=pending)
                except (ClientError, BotoCoreError) as error:
                    raise translate(error) from error
                found.extend(from_wire(item) for item in response.get("Responses", {}).get(self.table_name, []))
                pending = dict(response.get("UnprocessedKeys") or {})
                if not pending:
                    break
            else:
                # DynamoDB leaves keys unprocessed when the partition's throughput is exceeded (BatchGetItem API
                # reference): a throttle, so the applier moves the directory to the overflow lane.
                raise StoreThrottledError(
                    f"BatchGetItem left keys unprocessed after {self._unprocessed_attempts} attempts"
                )
        return found

    def get_item(self, key: ItemKey) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self.table_name, Key=_key(key), ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise translate(error) from error
        item = response.get("Item")
        return from_wire(item) if item else None

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
    ) -> Iterator[dict[str, Any]]:
        """Items of one directory whose sort key starts with `prefix`, in sort-key order, page by page."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": schema.PARTITION_KEY},
            "ExpressionAttributeValues": {":pk": {"S": schema.directory_pk(directory_id)}},
            "ConsistentRead": consistent,
        }
        if prefix:  # DynamoDB refuses begins_with on an empty string
            request["KeyConditionExpression"] += " AND begins_with(#sk, :prefix)"
            request["ExpressionAttributeNames"]["#sk"] = schema.SORT_KEY
            request["ExpressionAttributeValues"][":prefix"] = {"S": prefix}
        if live_only:
            request["FilterExpression"] = "#deleted = :false"
            request["ExpressionAttributeNames"]["#deleted"] = schema.DELETED_ATTRIBUTE
            request["ExpressionAttributeValues"][":false"] = {"BOOL": False}
        if projection:
            names = {f"#p{i}": name for i, name in enumerate(projection)}
            request["ProjectionExpression"] = ", ".join(names)
            request["ExpressionAttributeNames"].update(names)
        if page_size:
            request["Limit"] = page_size
        if start_after:
            request["ExclusiveStartKey"] = {
                schema.PARTITION_KEY: {"S": schema.directory_pk(directory_id)},
                schema.SORT_KEY: {"S": start_after},
            }
        yield from self._paginate("query", request)

    def query_index(self, index: schema.IndexSpec, partition_value: str) -> Iterator[dict[str, Any]]:
        request = {
            "TableName": self.table_name,
            "IndexName": index.name,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": index.partition_key},
            "ExpressionAttributeValues": {":v": {"S": partition_value}},
        }
        yield from self._paginate("query", request)


class _DirectoryQueries(_TableReads):
    """What the stages ask of one directory, or of all: stored versions, counts, memberships, the directories."""

    def entity_versions(self, directory_id: str, prefix: str) -> dict[str, StoredVersion]:
        """id → stored version of every user (or group) item of a directory, tombstones included (ids only)."""
        items = self.query_partition(
            directory_id, prefix, projection=["id", schema.VERSION_ATTRIBUTE, schema.DELETED_ATTRIBUTE]
        )
        return {
            str(item["id"]): StoredVersion(
                int(item[schema.VERSION_ATTRIBUTE]), bool(item.get(schema.DELETED_ATTRIBUTE))
            )
            for item in items
        }

    def count_live(self, directory_id: str, prefix: str, *, consistent: bool = False) -> dict[str, int]:
        """Live items under `prefix`: {"live": n}, plus "active"/"inactive" by `state` (users; anything not active is
        inactive, as WorkOS's counts have it). Eventually consistent unless asked (the reconcile's correction of the
        counter item reads strongly consistently: `shared.reconcile.counts`)."""
        items = self.query_partition(directory_id, prefix, projection=["state"], live_only=True, consistent=consistent)
        counts = {"live": 0, "active": 0, "inactive": 0}
        for item in items:
            counts["live"] += 1
            counts["active" if item.get("state", "active") == "active" else "inactive"] += 1
        return counts

    def live_group_memberships(self, directory_id: str, group_id: str) -> list[tuple[str, str]]:
        items = self.query_partition(
            directory_id, schema.group_members_prefix(group_id), projection=["group_id", "user_id"], live_only=True
        )
        return [(item["group_id"], item["user_id"]) for item in items]

    def live_user_memberships(self, directory_id: str, user_id: str) -> list[tuple[str, str]]:
        # The index only holds present rows; it is eventually consistent, and reconcile repairs anything it missed.
        items = self.query_index(schema.MEMBERSHIPS_BY_USER_INDEX, schema.member_key(directory_id, user_id))
        return [(item["group_id"], item["user_id"]) for item in items if not item.get(schema.DELETED_ATTRIBUTE)]

    def list_directory_ids(self) -> list[str]:
        return sorted(directory_id for directory_id, _ in self.live_directories())

    def holds_any_directory(self) -> bool:
        """Whether the table holds any directory item, live or tombstone: a strongly consistent Scan that stops at
        the first one. A scan reads a partition's items in sort-key order and `#DIRECTORY` sorts first, so in a
        mirror the first page finds one; with none (a new deployment, or only health records of directories never
        reconciled) it reads what little there is."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "#sk = :directory",
            "ExpressionAttributeNames": {"#sk": schema.SORT_KEY},
            "ExpressionAttributeValues": {":directory": {"S": schema.DIRECTORY_SK}},
            "ProjectionExpression": "#sk",
            "ConsistentRead": True,
            "Limit": 100,
        }
        return next(self._paginate("scan", request), None) is not None

    def live_directories(self) -> list[tuple[str, str | None]]:
        """(id, organization id) of every live directory (the sparse `directories` index holds no tombstones)."""
        items = self.query_index(schema.DIRECTORIES_INDEX, schema.DIRECTORY_INDEX_VALUE)
        return sorted((str(item["id"]), item.get("organization_id")) for item in items)


class _TableWrites(_TableReads):
    """The write rule (`put_if_newer`) and the generic conditional writes of leases, checkpoints and purges."""

    # --- The write rule -------------------------------------------------------------------------------------------

    def put_if_newer(self, record: Record) -> bool:
        return self.replace_if_newer(record).written

    def replace_if_newer(self, record: Record) -> Replaced:
        """The write rule, saying what it replaced: with ReturnValues=ALL_OLD DynamoDB answers a put that passed its
        condition with the item it replaced (nothing when the key was absent), so the writer knows the exact
        transition (`records.transition`). A transient failure (not a throttle) is retried; if an earlier attempt may
        have landed (a timeout after the commit), a refused retry reads the item: our own version stored means
        written, but what that attempt replaced is lost with its response (`old_known` False)."""
        for attempt in range(self._transient_attempts):
            try:
                response = self._client.put_item(
                    TableName=self.table_name,
                    Item=to_wire(record.item()),
                    ConditionExpression=_CONDITION_NEWER,
                    ExpressionAttributeNames={"#pk": schema.PARTITION_KEY, "#vkey": schema.VERSION_ATTRIBUTE},
                    ExpressionAttributeValues={":vkey": {"N": str(record.vkey)}},
                    ReturnValues="ALL_OLD",
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    landed = attempt > 0 and self._stored_vkey(record.key) == record.vkey
                    return Replaced(True, old_known=False) if landed else Replaced(False)
                failure = translate(error)
                if type(failure) is not TransientStoreError or attempt + 1 == self._transient_attempts:
                    raise failure from error
            except BotoCoreError as error:
                if attempt + 1 == self._transient_attempts:
                    raise translate(error) from error
            else:
                old = response.get("Attributes")
                return Replaced(True, from_wire(old) if old else None)
            _backoff(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- The directory's counter item (`records.counts_key`) ---------------------------------------------------------

    def add_counts(self, change: CountChange) -> None:
        """One UpdateItem ADD of a writer's net change. Conditional on the change's token not being the last one
        stored, so a retry whose first attempt landed (botocore's own retries included) adds nothing; any other
        writer's change passes. Creates the item if absent (ADD starts from 0), with the version and deletion flag
        every partition item has, and the basis `directory_created` when the change created the directory."""
        names = {
            "#tok": records.COUNTS_TOKEN,
            "#seq": records.COUNTS_SEQ,
            "#v": schema.VERSION_ATTRIBUTE,
            "#d": schema.DELETED_ATTRIBUTE,
        }
        values: dict[str, Any] = {
            ":tok": {"S": change.token},
            ":one": {"N": "1"},
            ":zero": {"N": "0"},
            ":false": {"BOOL": False},
        }
        adds = ["#seq :one"]
        for index, (name, delta) in enumerate(sorted(change.deltas.items())):
            if delta:
                names[f"#c{index}"], values[f":c{index}"] = name, {"N": str(delta)}
                adds.append(f"#c{index} :c{index}")
        if change.unobserved:
            names["#u"], values[":u"] = records.COUNTS_UNOBSERVED, {"N": str(change.unobserved)}
            adds.append("#u :u")
        sets = ["#tok = :tok", "#v = if_not_exists(#v, :zero)", "#d = if_not_exists(#d, :false)"]
        if change.created:
            names["#b"], values[":b"] = records.COUNTS_BASIS, {"S": records.BASIS_CREATED}
            sets.append("#b = if_not_exists(#b, :b)")
        key = records.counts_key(change.directory_id)
        for attempt in range(self._transient_attempts):
            try:
                self._client.update_item(
                    TableName=self.table_name,
                    Key=_key(key),
                    UpdateExpression=f"ADD {', '.join(adds)} SET {', '.join(sets)}",
                    ConditionExpression="attribute_not_exists(#tok) OR #tok <> :tok",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    return  # this change's token is the last one stored: an earlier attempt landed
                failure = translate(error)
                if type(failure) is not TransientStoreError or attempt + 1 == self._transient_attempts:
                    raise failure from error
            except BotoCoreError as error:
                if attempt + 1 == self._transient_attempts:
                    raise translate(error) from error
            else:
                return
            _backoff(attempt)

    def set_counts(self, item: Mapping[str, Any], *, expected_seq: int | None) -> bool:
        """Put the counter item (`records.counts_item`) only if no change was ADDed since `expected_seq` was read
        (None: only if there is no counter item). False when one was."""
        if expected_seq is None:
            return self.put_item(item, condition="attribute_not_exists(#pk)", names={"#pk": schema.PARTITION_KEY})
        return self.put_item(
            item, condition="#seq = :seq", names={"#seq": records.COUNTS_SEQ}, values={":seq": expected_seq}
        )

    def _stored_vkey(self, key: ItemKey) -> int | None:
        item = self.get_item(key)
        return int(item[schema.VERSION_ATTRIBUTE]) if item is not None else None

    # --- Generic writes (leases, checkpoints, purge) ----------------------------------------------------------------

    def put_item(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Put `item`; with a condition, False when the condition fails."""
        request = {"TableName": self.table_name, "Item": to_wire(item)}
        return self._conditional(self._client.put_item, request, condition, names, values)

    def delete_item(
        self,
        key: ItemKey,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Delete the item; with a condition, False when the condition fails."""
        request = {"TableName": self.table_name, "Key": _key(key)}
        return self._conditional(self._client.delete_item, request, condition, names, values)

    def _conditional(
        self,
        call: Callable[..., Any],
        request: dict[str, Any],
        condition: str | None,
        names: Mapping[str, str] | None,
        values: Mapping[str, Any] | None,
    ) -> bool:
        if condition:
            request["ConditionExpression"] = condition
            if names:
                request["ExpressionAttributeNames"] = dict(names)
            if values:
                request["ExpressionAttributeValues"] = to_wire(values)
        try:
            call(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise translate(error) from error
        except BotoCoreError as error:
            raise translate(error) from error
        return True

    def delete_items(self, keys: Iterable[ItemKey]) -> int:
        """Unconditional BatchWriteItem deletes in chunks of 25, retrying unprocessed items. Returns the count."""
        ordered = list(keys)
        for start in range(0, len(ordered), BATCH_WRITE_LIMIT):
            pending: dict[str, Any] = {
                self.table_name: [
                    {"DeleteRequest": {"Key": _key(key)}} for key in ordered[start : start + BATCH_WRITE_LIMIT]
                ]
            }
            for attempt in range(8):
                try:
                    response = self._client.batch_write_item(RequestItems=pending)
                except (ClientError, BotoCoreError) as error:
                    raise translate(error) from error
                pending = dict(response.get("UnprocessedItems") or {})
                if not pending:
                    break
                _backoff(attempt)
            else:
                raise TransientStoreError("BatchWriteItem left items unprocessed after 8 attempts")
        return len(ordered)


class DirectoryTable(_DirectoryQueries, _TableWrites):
    """Implements `shared.apply.ports.DirectoryStore` and the ports of reconcile, read, purge, lease and the key
    check: one class for the one table, its concerns split above (reads, directory queries, writes)."""


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
