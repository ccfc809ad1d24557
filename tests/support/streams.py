"""DynamoDB stream records as Lambda delivers them, built from real table items (`shared.model.records` builders).

`insert` / `modify` / `remove` take `Record`s (or plain items) and serialise them with boto3's TypeSerializer, so
the publish path is tested on exactly what the applier writes. `from_streams_api` turns what the `dynamodbstreams`
API returns (moto or AWS) into the Lambda shape, for end-to-end tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from dsync.local import lambda_events
from shared.model import records, schema
from shared.model.events import Directory, DirectoryGroup, DirectoryUser
from tests.support import dsync_events as ev

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/dsync-directory/stream/2026-01-15T12:00:00.000"
CREATED_EPOCH = 1_768_478_400  # 2026-01-15T12:00:00Z
TTL_SECONDS = 30 * 86_400
_serializer = TypeSerializer()
_sequence = itertools.count(1)

ItemLike = records.Record | Mapping[str, Any]


def next_sequence_number() -> str:
    """Increasing, like a shard's sequence numbers (21+ digits in AWS)."""
    return f"{4_421_584_500_000_000_000_000 + next(_sequence)}"


def to_dynamodb_json(item: ItemLike) -> dict[str, Any]:
    plain = item.item() if isinstance(item, records.Record) else dict(item)
    return {name: _serializer.serialize(value) for name, value in plain.items() if value is not None}


def stream_record(
    event_name: str,
    *,
    old: ItemLike | None = None,
    new: ItemLike | None = None,
    sequence_number: str | None = None,
    created_epoch: float = CREATED_EPOCH,
    ttl_expiry: bool = False,
) -> dict[str, Any]:
    source = new if new is not None else old
    assert source is not None, "a stream record has at least one image"
    plain = source.item() if isinstance(source, records.Record) else dict(source)
    stream: dict[str, Any] = {
        "ApproximateCreationDateTime": created_epoch,
        "Keys": to_dynamodb_json({schema.PARTITION_KEY: plain["pk"], schema.SORT_KEY: plain["sk"]}),
        "SequenceNumber": sequence_number or next_sequence_number(),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        stream["OldImage"] = to_dynamodb_json(old)
    if new is not None:
        stream["NewImage"] = to_dynamodb_json(new)
    record: dict[str, Any] = {
        "eventID": f"event-{stream['SequenceNumber']}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": stream,
        "eventSourceARN": STREAM_ARN,
    }
    if ttl_expiry:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def insert(new: ItemLike, **kwargs: Any) -> dict[str, Any]:
    return stream_record("INSERT", new=new, **kwargs)


def modify(old: ItemLike, new: ItemLike, **kwargs: Any) -> dict[str, Any]:
    return stream_record("MODIFY", old=old, new=new, **kwargs)


def remove(old: ItemLike, **kwargs: Any) -> dict[str, Any]:
    return stream_record("REMOVE", old=old, **kwargs)


def stream_event(*stream_records: Mapping[str, Any]) -> dict[str, Any]:
    return {"Records": [dict(record) for record in stream_records]}


def from_streams_api(record: Mapping[str, Any], *, stream_arn: str) -> dict[str, Any]:
    """A `dynamodbstreams.get_records` record in the Lambda event shape (epoch seconds, eventSourceARN)."""
    converted = dict(record)
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = created.timestamp()
    converted["dynamodb"] = stream
    converted["eventSourceARN"] = stream_arn
    return converted


# --- Items from WorkOS-shaped objects (tests.support.dsync_events) ---------------------------------------------------


def user_item(user_id: str = "directory_user_1", **fields: Any) -> records.Record:
    return records.user_record(DirectoryUser.model_validate(ev.user(user_id, **fields)))


def group_item(group_id: str = "directory_group_1", **fields: Any) -> records.Record:
    return records.group_record(DirectoryGroup.model_validate(ev.group(group_id, **fields)))


def directory_item(*, updated: float = 0, **fields: Any) -> records.Record:
    directory = Directory.model_validate(ev.directory(updated=updated, **fields))
    assert directory.updated_at is not None
    return records.directory_record(directory, vkey=records.live_version(directory.updated_at))


def user_tombstone(user_id: str = "directory_user_1", *, deleted: float = 60) -> records.Record:
    return records.entity_tombstone(
        "user",
        ev.DIRECTORY,
        user_id,
        vkey=records.tombstone_version(_at(deleted)),
        expires_at=CREATED_EPOCH + TTL_SECONDS,
    )


def group_tombstone(group_id: str = "directory_group_1", *, deleted: float = 60) -> records.Record:
    return records.entity_tombstone(
        "group",
        ev.DIRECTORY,
        group_id,
        vkey=records.tombstone_version(_at(deleted)),
        expires_at=CREATED_EPOCH + TTL_SECONDS,
    )


def membership_item(
    group_id: str = "directory_group_1", user_id: str = "directory_user_1", *, at: float = 0, present: bool = True
) -> records.Record:
    return records.membership_record(
        ev.DIRECTORY,
        group_id,
        user_id,
        vkey=records.membership_version(_at(at), removed=not present),
        present=present,
        expires_at=CREATED_EPOCH + TTL_SECONDS,
    )


def directory_stub() -> records.Record:
    return records.directory_stub(ev.DIRECTORY, ev.ORG)


def directory_tombstone(*, deleted: float = 60) -> records.Record:
    return records.directory_tombstone(
        ev.DIRECTORY, ev.ORG, vkey=records.tombstone_version(_at(deleted)), expires_at=CREATED_EPOCH + TTL_SECONDS
    )


def reconcile_item(suffix: str = "LEASE") -> dict[str, Any]:
    return {
        schema.PARTITION_KEY: schema.directory_pk(ev.DIRECTORY),
        schema.SORT_KEY: f"{schema.RECONCILE_PREFIX}{suffix}",
        "vkey": 1,
        "owner": "run-1",
    }


def _at(seconds: float) -> datetime:
    return datetime.fromisoformat(ev.at(seconds))


def read_stream(stream_arn: str) -> list[dict[str, Any]]:
    """Every record of a table's stream (moto or AWS) from the trim horizon, in the Lambda event shape."""
    return [from_streams_api(record, stream_arn=stream_arn) for record in lambda_events.read_stream(stream_arn)]
