"""What the sink writes, from either of its two inputs: a mirror item read by a backfill, or the same item's image
in a record of the table's stream (the feed). One mapping for both (`row_from_item`), so the feed and a backfill
racing it write the same row for the same version, and meet under one rule (`shared.sql.writer`): a row is written
only when its version is newer. Pure: no database, no AWS call (boto3 only for its type deserializer).

- users, groups, directories: the readable projection (`shared.model.records.readable_*`, what `dsync export`
  shows) at the item's version (`vkey`); a deletion is a tombstone row that keeps ids and the version only, like the
  mirror's (names, email, attributes and the organization erased), with `deleted_at` the version's time;
- memberships: present or removed at the membership's version;
- a directory first seen through its users' events (its `dsync.activated` missed or late) is the mirror's stub
  (`records.directory_stub`, version 0): any real version replaces it;
- an item removed from the table (a deleted directory's purge) is a tombstone at its version with the deletion bit
  set (`vkey | 1`), the rule the change events use; a tombstone expiring by TTL changes nothing (same version);
- tokens, health, and reconcile and apply bookkeeping have no table in the sink.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from shared.model import records, schema

Item = Mapping[str, Any]


class UnreadableStreamRecordError(ValueError):
    """Not a DynamoDB stream record with the images the sink needs (messages carry no data)."""


@dataclass(frozen=True)
class DirectoryRow:
    id: str
    organization_id: str | None
    version: int
    deleted: bool = False
    name: str | None = None
    type: str | None = None
    state: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class UserRow:
    id: str
    directory_id: str
    version: int
    deleted: bool = False
    organization_id: str | None = None
    idp_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    state: str | None = None
    role: str | None = None
    roles: tuple[str, ...] = ()
    custom_attributes: Mapping[str, Any] = field(default_factory=dict, hash=False)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class GroupRow:
    id: str
    directory_id: str
    version: int
    deleted: bool = False
    organization_id: str | None = None
    idp_id: str | None = None
    name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class MembershipRow:
    directory_id: str
    group_id: str
    user_id: str
    version: int
    deleted: bool = False


SinkRow = DirectoryRow | UserRow | GroupRow | MembershipRow


def row_key(row: SinkRow) -> tuple[str, ...]:
    """The row's table and primary key (without the environment)."""
    if isinstance(row, MembershipRow):
        return ("membership", row.group_id, row.user_id)
    kind = {DirectoryRow: "directory", UserRow: "user", GroupRow: "group"}[type(row)]
    return (kind, row.id)


def deleted_at(version: int) -> datetime:
    """The time a tombstone's version carries (`vkey = micros x 2 + 1`)."""
    return datetime.fromtimestamp((version >> 1) / 1_000_000, tz=UTC)


def timestamp(value: Any) -> datetime | None:
    """WorkOS's ISO-8601 text (or a datetime) as an aware datetime; None for anything empty."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else _text(str(value))


def _text(value: str) -> str:
    """PostgreSQL's text and jsonb cannot hold NUL (U+0000): it is dropped, so one odd IdP value never blocks a
    shard of the feed."""
    return value.replace("\x00", "") if "\x00" in value else value


def _json(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Mapping):
        return {_text(str(key)): _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    return value


def user_row(user: Mapping[str, Any], version: int) -> UserRow:
    """A live user from its readable projection (`records.readable_user`)."""
    attributes = user.get("custom_attributes") or {}
    return UserRow(
        id=str(user["id"]),
        directory_id=str(user["directory_id"]),
        version=version,
        organization_id=_str(user.get("organization_id")),
        idp_id=_str(user.get("idp_id")),
        email=_str(user.get("email")),
        first_name=_str(user.get("first_name")),
        last_name=_str(user.get("last_name")),
        state=_str(user.get("state")),
        role=_str(user.get("role")),
        roles=tuple(sorted(_text(str(role)) for role in user.get("roles") or ())),
        custom_attributes=_json(attributes) if isinstance(attributes, Mapping) else {},
        created_at=timestamp(user.get("created_at")),
        updated_at=timestamp(user.get("updated_at")),
    )


def group_row(group: Mapping[str, Any], version: int) -> GroupRow:
    return GroupRow(
        id=str(group["id"]),
        directory_id=str(group["directory_id"]),
        version=version,
        organization_id=_str(group.get("organization_id")),
        idp_id=_str(group.get("idp_id")),
        name=_str(group.get("name")),
        created_at=timestamp(group.get("created_at")),
        updated_at=timestamp(group.get("updated_at")),
    )


def directory_row(directory: Mapping[str, Any], version: int) -> DirectoryRow:
    return DirectoryRow(
        id=str(directory["id"]),
        organization_id=_str(directory.get("organization_id")),
        version=version,
        name=_str(directory.get("name")),
        type=_str(directory.get("type")),
        state=_str(directory.get("state")),
        created_at=timestamp(directory.get("created_at")),
        updated_at=timestamp(directory.get("updated_at")),
    )


# --- Mirror items (backfill, and the feed's stream images) --------------------------------------------------------


def row_from_item(item: Item) -> SinkRow | None:
    """A mirror item as the sink's row at the item's version; None for what the sink does not keep (tokens, health,
    reconcile and apply bookkeeping)."""
    sort_key = str(item.get(schema.SORT_KEY, ""))
    version = int(item.get(schema.VERSION_ATTRIBUTE, 0))
    deleted = bool(item.get(schema.DELETED_ATTRIBUTE))
    directory_id = str(item.get("directory_id") or schema.directory_id_of_pk(str(item.get(schema.PARTITION_KEY))))
    if sort_key == schema.DIRECTORY_SK:
        if deleted:
            return DirectoryRow(id=str(item["id"]), organization_id=None, version=version, deleted=True)
        return directory_row(records.readable_directory(item), version)
    if sort_key.startswith(schema.USER_PREFIX):
        if deleted:
            return UserRow(id=str(item["id"]), directory_id=directory_id, version=version, deleted=True)
        return user_row(records.readable_user(item), version)
    if sort_key.startswith(schema.GROUP_PREFIX):
        if deleted:
            return GroupRow(id=str(item["id"]), directory_id=directory_id, version=version, deleted=True)
        return group_row(records.readable_group(item), version)
    if sort_key.startswith(schema.MEMBER_PREFIX):
        return MembershipRow(directory_id, str(item["group_id"]), str(item["user_id"]), version, deleted)
    return None


def tombstone_of(row: SinkRow) -> SinkRow:
    """The deletion of a removed item's row: ids only, at its version with the deletion bit set."""
    version = row.version | 1
    if isinstance(row, MembershipRow):
        return MembershipRow(row.directory_id, row.group_id, row.user_id, version, deleted=True)
    if isinstance(row, UserRow):
        return UserRow(id=row.id, directory_id=row.directory_id, version=version, deleted=True)
    if isinstance(row, GroupRow):
        return GroupRow(id=row.id, directory_id=row.directory_id, version=version, deleted=True)
    return DirectoryRow(id=row.id, organization_id=None, version=version, deleted=True)


# --- Stream records (the feed) ------------------------------------------------------------------------------------

_deserializer = TypeDeserializer()


def _image(stream: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    image = stream.get(name)
    if image is None:
        return None
    if not isinstance(image, Mapping):
        raise UnreadableStreamRecordError(f"{name} is not a DynamoDB JSON map")
    try:
        return {attribute: _deserializer.deserialize(value) for attribute, value in image.items()}
    except (TypeError, ValueError, KeyError) as error:
        raise UnreadableStreamRecordError(f"{name} is not valid DynamoDB JSON") from error


def row_from_stream_record(record: Mapping[str, Any]) -> SinkRow | None:
    """The row one DynamoDB stream record (NEW_AND_OLD_IMAGES, as Lambda delivers it) implies; None for items the
    sink does not keep."""
    stream = record.get("dynamodb")
    event_name = record.get("eventName")
    if not isinstance(stream, Mapping) or event_name not in ("INSERT", "MODIFY", "REMOVE"):
        raise UnreadableStreamRecordError("not a DynamoDB stream record (eventName or dynamodb missing)")
    keys = _image(stream, "Keys") or {}
    if not str(keys.get(schema.PARTITION_KEY, "")).startswith(schema.directory_pk("")):
        return None  # the tail's cursor and lease
    if event_name == "REMOVE":
        old = _image(stream, "OldImage")
        if old is None:
            raise UnreadableStreamRecordError("REMOVE without OldImage (the stream must be NEW_AND_OLD_IMAGES)")
        row = _row(old)
        return tombstone_of(row) if row is not None else None
    new = _image(stream, "NewImage")
    if new is None:
        raise UnreadableStreamRecordError(f"{event_name} without NewImage (the stream must be NEW_AND_OLD_IMAGES)")
    return _row(new)


def _row(item: Item) -> SinkRow | None:
    try:
        return row_from_item(item)
    except (KeyError, TypeError, ValueError) as error:
        raise UnreadableStreamRecordError("an item without the ids its kind has") from error
