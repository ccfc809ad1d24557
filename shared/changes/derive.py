"""Change events: what apps subscribed to the change bus hear when the directory mirror actually changed.

Derived from the directory table's DynamoDB stream (NEW_AND_OLD_IMAGES), never from webhooks: a conditional write
the table rejected (stale, duplicate) leaves no stream record, so an event means the store changed, and the stream
is the outbox, so no committed change is lost. Pure: no AWS calls (boto3 is used only for its type deserializer).

Event catalogue (EventBridge `source` = the pipeline's source, `workos.dsync.pipeline` by default):

| detail-type               | emitted when (old item → new item)                                 | subject      |
|---------------------------|--------------------------------------------------------------------|--------------|
| `user.provisioned`        | user absent or deleted → live (in any state, see `user.state`)     | user id      |
| `user.suspended`          | live user, `state` active → inactive or suspended                  | user id      |
| `user.reactivated`        | live user, `state` inactive or suspended → active                  | user id      |
| `user.roles_changed`      | live user, `role` or `roles` changed (`roles`, `added`, `removed`) | user id      |
| `user.updated`            | live user, any other readable field changed (`changed` lists them) | user id      |
| `user.deprovisioned`      | live user → tombstone, or the live item removed                    | user id      |
| `group.created`           | group absent or deleted → live                                     | group id     |
| `group.updated`           | live group, a readable field changed (`changed` lists them)        | group id     |
| `group.deleted`           | live group → tombstone, or the live item removed                   | group id     |
| `membership.added`        | membership absent or removed → present                             | group id     |
| `membership.removed`      | present membership → removed (tombstone), or the item removed      | group id     |
| `directory.activated`     | directory absent, stub, deleted or inactive → activated and active | directory id |
| `directory.deactivated`   | activated directory, `state` → inactive (`dsync.deactivated`)      | directory id |
| `directory.deleted`       | live directory (stub included) → tombstone, or the item removed    | directory id |
| `directory.state_changed` | WorkOS's API `state` changed between two waves (`from`, `to`)      | directory id |
| `directory.token_created` | a directory (SCIM) token appeared (`token`: id, suffix, time)      | directory id |
| `directory.token_revoked` | an active token was revoked (or purged with its directory)         | directory id |

A state change together with other changes emits both events (`user.suspended`, then `user.updated` without
`state` in `changed`); likewise a role change (`user.roles_changed`, and `user.updated` only for what else
changed). `added` and `removed` are computed from the stored old and new images, never from WorkOS's
`previous_attributes` (a stale or duplicated delivery misstates those; the store's max-register does not). A
state change that is neither of the two above (inactive → suspended) is a `user.updated`.
Nothing is emitted for a rewrite whose readable projection is unchanged (a version bump with identical data; the
`created_at`/`updated_at` timestamps alone do not count), for tombstones expiring by TTL, for the creation of a
directory stub, or for reconcile bookkeeping items.

Every `detail` carries:

    {
      "event_id": "<uuid, deterministic from the stream record and the detail-type: equal ids are duplicates>",
      "directory_id": "directory_…",
      "organization_id": "org_…" | null,      # null for memberships (the membership item does not store it)
      "version": 1234567890,                   # the item's version (vkey): orders the events of one subject
      "occurred_at": "2026-01-15T12:00:00.000Z" | null,  # when the table changed (stream record time)
      ...one of:
      "user": {readable user},                 # provisioned, suspended, reactivated, updated
      "group": {readable group},               # created, updated
      "membership": {"group_id": …, "user_id": …},
      "directory": {readable directory},       # activated
      "user" | "group" | "directory": {"id": …},  # deprovisioned / deleted: ids only, never personal data
                                               # (a deprovisioned user also keeps its `idp_id`, to relink)
      "changed": ["email", "first_name"],      # *.updated only, sorted readable field names
      "roles": ["admin"], "added": […], "removed": […],  # user.roles_changed only, sorted slugs
      "truncated": true                        # only if bulky fields were dropped to fit EventBridge's 256 KB
    }

Readable shapes are `shared.model.records.readable_user/group/directory` (what `dsync export` shows). WorkOS sends only
`dsync.deleted` when a directory goes; its purge then removes the users, groups and memberships still live, so
`directory.deleted` is followed by their `user.deprovisioned` / `group.deleted` / `membership.removed`. For such a
removal (no tombstone), `version` is the removed item's version with the deletion bit set (`vkey | 1`), the same
rule the store uses to make a deletion win a timestamp tie. Delivery is at least once and EventBridge does not
preserve order: consumers deduplicate on `event_id` and order the events of one subject by `version`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer

from shared.model import records, schema
from shared.model.events import iso

if TYPE_CHECKING:
    from typing_extensions import TypeIs

Item = Mapping[str, Any]

USER_PROVISIONED = "user.provisioned"
USER_SUSPENDED = "user.suspended"
USER_REACTIVATED = "user.reactivated"
USER_UPDATED = "user.updated"
USER_ROLES_CHANGED = "user.roles_changed"
USER_DEPROVISIONED = "user.deprovisioned"
GROUP_CREATED = "group.created"
GROUP_UPDATED = "group.updated"
GROUP_DELETED = "group.deleted"
MEMBERSHIP_ADDED = "membership.added"
MEMBERSHIP_REMOVED = "membership.removed"
DIRECTORY_ACTIVATED = "directory.activated"
DIRECTORY_DELETED = "directory.deleted"
DIRECTORY_DEACTIVATED = "directory.deactivated"
DIRECTORY_STATE_CHANGED = "directory.state_changed"
DIRECTORY_TOKEN_CREATED = "directory.token_created"  # noqa: S105 (an event name)
DIRECTORY_TOKEN_REVOKED = "directory.token_revoked"  # noqa: S105 (an event name)
DETAIL_TYPES: tuple[str, ...] = (
    USER_PROVISIONED,
    USER_SUSPENDED,
    USER_REACTIVATED,
    USER_ROLES_CHANGED,
    USER_UPDATED,
    USER_DEPROVISIONED,
    GROUP_CREATED,
    GROUP_UPDATED,
    GROUP_DELETED,
    MEMBERSHIP_ADDED,
    MEMBERSHIP_REMOVED,
    DIRECTORY_ACTIVATED,
    DIRECTORY_DEACTIVATED,
    DIRECTORY_DELETED,
    DIRECTORY_STATE_CHANGED,
    DIRECTORY_TOKEN_CREATED,
    DIRECTORY_TOKEN_REVOKED,
)
INACTIVE_DIRECTORY_STATE = "inactive"

ACTIVE_STATE = "active"
SUSPENDED_STATES = frozenset({"inactive", "suspended"})
# Timestamps move on every rewrite; they are carried in the payload but never make an event on their own.
IGNORED_FIELDS = frozenset({"created_at", "updated_at"})
# Dropped first when an event would not fit in one EventBridge entry (free-form, unbounded IdP data).
BULKY_FIELDS = frozenset({"custom_attributes"})
# Small fields a consumer acts on without re-reading the subject: kept even in the minimal (oversized) form.
KEPT_FIELDS = ("changed", "roles", "added", "removed", "from", "to")
ROLE_FIELDS = frozenset(records.ROLE_FIELDS)
_ENVELOPE = ("event_id", "directory_id", "organization_id", "version", "occurred_at")
_EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:workos-dsync-pipeline:change-event")
_DIRECTORY_PK_PREFIX = schema.directory_pk("")
_deserializer = TypeDeserializer()


class MalformedStreamRecordError(ValueError):
    """A stream record this module cannot read (wrong stream view type, missing keys). Messages carry no data."""


@dataclass(frozen=True)
class ChangeEvent:
    """One normalised change, ready to put on the change bus (`detail` is JSON-serialisable)."""

    detail_type: str
    directory_id: str
    organization_id: str | None
    subject_id: str
    detail: dict[str, Any] = field(hash=False)
    event_id: str

    def compact_detail(self) -> dict[str, Any]:
        """The detail without its bulky fields, marked truncated: the first fallback for an oversized entry."""
        detail: dict[str, Any] = {"truncated": True}
        for name, value in self.detail.items():
            if isinstance(value, dict):
                detail[name] = {key: item for key, item in value.items() if key not in BULKY_FIELDS}
            else:
                detail[name] = value
        return detail

    def minimal_detail(self) -> dict[str, Any]:
        """Envelope and subject ids only, marked truncated: always small; consumers re-read the subject."""
        detail: dict[str, Any] = {name: self.detail.get(name) for name in _ENVELOPE}
        for subject in ("user", "group", "directory"):
            if subject in self.detail:
                detail[subject] = {"id": self.subject_id}
                if self.detail[subject].get("idp_id"):
                    detail[subject]["idp_id"] = self.detail[subject]["idp_id"]
        for name in ("membership", "token", *KEPT_FIELDS):
            if name in self.detail:
                detail[name] = self.detail[name]
        detail["truncated"] = True
        return detail


# --- Stream records → change events ---------------------------------------------------------------------------------


def changes_from_stream_record(record: Mapping[str, Any]) -> list[ChangeEvent]:
    """The change events one DynamoDB stream record (as Lambda delivers it) implies; often none."""
    stream = record.get("dynamodb")
    event_name = record.get("eventName")
    if not isinstance(stream, Mapping) or event_name not in ("INSERT", "MODIFY", "REMOVE"):
        raise MalformedStreamRecordError("not a DynamoDB stream record (eventName or dynamodb missing)")
    sequence_number = stream.get("SequenceNumber")
    if not sequence_number:
        raise MalformedStreamRecordError("stream record without a SequenceNumber")
    # The kind of item first (from its keys), so that items outside the catalogue are never even decoded.
    keys = _image(stream, "Keys", required=True) or {}
    partition_key = str(keys.get(schema.PARTITION_KEY, ""))
    sort_key = str(keys.get(schema.SORT_KEY, ""))
    derive = _derivation(sort_key) if partition_key.startswith(_DIRECTORY_PK_PREFIX) else None
    if derive is None:
        return []  # reconcile bookkeeping, or anything else this catalogue does not describe
    old = _image(stream, "OldImage", required=event_name != "INSERT")
    new = _image(stream, "NewImage", required=event_name != "REMOVE")
    context = _Context(
        directory_id=partition_key.removeprefix(_DIRECTORY_PK_PREFIX),
        sequence_number=str(sequence_number),
        item_key=f"{partition_key}|{sort_key}",
        occurred_at=_occurred_at(stream.get("ApproximateCreationDateTime")),
        old=old,
        new=new,
    )
    return derive(context)


@dataclass(frozen=True)
class _Context:
    directory_id: str
    sequence_number: str
    item_key: str
    occurred_at: str | None
    old: Item | None
    new: Item | None

    @property
    def version(self) -> int:
        if self.new is not None:
            return int(self.new.get(schema.VERSION_ATTRIBUTE, 0))
        # The item was removed without a tombstone: the deletion of the last version we published.
        return int(self.old.get(schema.VERSION_ATTRIBUTE, 0) if self.old else 0) | 1

    def event(
        self, detail_type: str, *, subject_id: str, organization_id: str | None, body: Mapping[str, Any]
    ) -> ChangeEvent:
        event_id = str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{self.sequence_number}|{detail_type}|{self.item_key}"))
        detail: dict[str, Any] = {
            "event_id": event_id,
            "directory_id": self.directory_id,
            "organization_id": organization_id,
            "version": self.version,
            "occurred_at": self.occurred_at,
            **body,
        }
        return ChangeEvent(
            detail_type=detail_type,
            directory_id=self.directory_id,
            organization_id=organization_id,
            subject_id=subject_id,
            detail=detail,
            event_id=event_id,
        )


def _derivation(sort_key: str) -> Callable[[_Context], list[ChangeEvent]] | None:
    if sort_key == schema.DIRECTORY_SK:
        return _directory_changes
    if sort_key.startswith(schema.USER_PREFIX):
        return _user_changes
    if sort_key.startswith(schema.GROUP_PREFIX):
        return _group_changes
    if sort_key.startswith(schema.MEMBER_PREFIX):
        return _membership_changes
    if sort_key.startswith(schema.TOKEN_PREFIX):
        return _token_changes
    if sort_key == schema.HEALTH_SK:
        return _health_changes
    return None  # reconcile leases and checkpoints, anything unknown


def _live(item: Item | None) -> TypeIs[Item]:
    return item is not None and not item.get(schema.DELETED_ATTRIBUTE)


def _entity_id(context: _Context) -> str:
    item = context.new if context.new is not None else context.old
    entity_id = item.get("id") if item else None
    if not entity_id:
        # Every user, group and directory item carries its id; keys alone are not trusted to split on "#".
        raise MalformedStreamRecordError("item without an id")
    return str(entity_id)


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(name for name in (old.keys() | new.keys()) - IGNORED_FIELDS if old.get(name) != new.get(name))


def _user_changes(context: _Context) -> list[ChangeEvent]:
    user_id = _entity_id(context)
    old, new = context.old, context.new
    if _live(old) and not _live(new):
        previous = records.readable_user(old)
        # Ids only (the old image holds personal data); `idp_id` lets an app relink the person WorkOS recreates.
        body: dict[str, Any] = {"user": {"id": user_id, "idp_id": previous["idp_id"]}}
        organization_id = previous["organization_id"]
        return [context.event(USER_DEPROVISIONED, subject_id=user_id, organization_id=organization_id, body=body)]
    if not _live(new):
        return []  # a tombstone rewritten, expired or removed
    user = records.readable_user(new)
    organization_id = user["organization_id"]
    if not _live(old):
        return [
            context.event(USER_PROVISIONED, subject_id=user_id, organization_id=organization_id, body={"user": user})
        ]
    previous = records.readable_user(old)
    changed = _changed(previous, user)
    events: list[ChangeEvent] = []
    state_event = _state_event(previous["state"], user["state"])
    if state_event is not None:
        changed.remove("state")
        events.append(
            context.event(state_event, subject_id=user_id, organization_id=organization_id, body={"user": user})
        )
    if ROLE_FIELDS & set(changed):
        changed = [name for name in changed if name not in ROLE_FIELDS]
        before, after = set(previous["roles"]), set(user["roles"])
        body = {
            "user": user,
            "roles": user["roles"],
            "added": sorted(after - before),
            "removed": sorted(before - after),
        }
        events.append(context.event(USER_ROLES_CHANGED, subject_id=user_id, organization_id=organization_id, body=body))
    if changed:
        body = {"user": dict(user), "changed": changed}
        events.append(context.event(USER_UPDATED, subject_id=user_id, organization_id=organization_id, body=body))
    return events


def _state_event(old_state: Any, new_state: Any) -> str | None:
    if old_state == ACTIVE_STATE and new_state in SUSPENDED_STATES:
        return USER_SUSPENDED
    if old_state in SUSPENDED_STATES and new_state == ACTIVE_STATE:
        return USER_REACTIVATED
    return None


def _group_changes(context: _Context) -> list[ChangeEvent]:
    group_id = _entity_id(context)
    old, new = context.old, context.new
    if _live(old) and not _live(new):
        organization_id = records.readable_group(old)["organization_id"]
        body: dict[str, Any] = {"group": {"id": group_id}}
        return [context.event(GROUP_DELETED, subject_id=group_id, organization_id=organization_id, body=body)]
    if not _live(new):
        return []
    group = records.readable_group(new)
    organization_id = group["organization_id"]
    if not _live(old):
        return [
            context.event(GROUP_CREATED, subject_id=group_id, organization_id=organization_id, body={"group": group})
        ]
    changed = _changed(records.readable_group(old), group)
    if not changed:
        return []
    body = {"group": group, "changed": changed}
    return [context.event(GROUP_UPDATED, subject_id=group_id, organization_id=organization_id, body=body)]


def _membership_changes(context: _Context) -> list[ChangeEvent]:
    was_present, is_present = _live(context.old), _live(context.new)
    item = context.new if context.new is not None else context.old
    if was_present == is_present or item is None:
        return []
    group_id, user_id = item.get("group_id"), item.get("user_id")
    if not group_id or not user_id:
        raise MalformedStreamRecordError("membership item without group_id or user_id")
    return [
        context.event(
            MEMBERSHIP_ADDED if is_present else MEMBERSHIP_REMOVED,
            subject_id=str(group_id),
            organization_id=None,  # the membership item does not store it
            body={"membership": {"group_id": str(group_id), "user_id": str(user_id)}},
        )
    ]


def _activated(item: Item | None) -> bool:
    """A live directory we have the data of; a stub (version 0, no data) only registers the id."""
    if not _live(item):
        return False
    return bool(item.get("data")) or int(item.get(schema.VERSION_ATTRIBUTE, 0)) > 0


def _directory_changes(context: _Context) -> list[ChangeEvent]:
    directory_id = _entity_id(context)
    old, new = context.old, context.new
    if _live(old) and not _live(new):
        organization_id = _optional_str(old.get("organization_id"))
        body: dict[str, Any] = {"directory": {"id": directory_id}}
        return [context.event(DIRECTORY_DELETED, subject_id=directory_id, organization_id=organization_id, body=body)]
    if not _activated(new):
        return []
    assert new is not None
    directory = records.readable_directory(new)
    organization_id = _optional_str(directory["organization_id"])
    was_active = _activated(old) and not _inactive(old)
    if _inactive(new) and _activated(old) and not _inactive(old):
        detail_type: str | None = DIRECTORY_DEACTIVATED
    elif not _inactive(new) and not was_active:
        detail_type = DIRECTORY_ACTIVATED
    else:
        detail_type = None
    if detail_type is None:
        return []
    return [
        context.event(
            detail_type, subject_id=directory_id, organization_id=organization_id, body={"directory": directory}
        )
    ]


def _inactive(item: Item | None) -> bool:
    return item is not None and item.get("state") == INACTIVE_DIRECTORY_STATE


def _token_changes(context: _Context) -> list[ChangeEvent]:
    was_live, is_live = _live(context.old), _live(context.new)
    item = context.new if is_live else context.old
    if was_live == is_live or item is None:
        return []
    return [
        context.event(
            DIRECTORY_TOKEN_CREATED if is_live else DIRECTORY_TOKEN_REVOKED,
            subject_id=context.directory_id,
            organization_id=_optional_str(item.get("organization_id")),
            body={"token": records.readable_token(item)},
        )
    ]


def _health_changes(context: _Context) -> list[ChangeEvent]:
    """Only a change between two observations: the first observation of a directory is its baseline."""
    old, new = context.old, context.new
    if old is None or new is None or old.get("state") == new.get("state"):
        return []
    body = {
        "directory": {"id": context.directory_id},
        "from": old.get("state"),
        "to": new.get("state"),
        "health": records.readable_health(new),
    }
    organization_id = _optional_str(new.get("organization_id"))
    return [
        context.event(
            DIRECTORY_STATE_CHANGED, subject_id=context.directory_id, organization_id=organization_id, body=body
        )
    ]


# --- DynamoDB JSON ----------------------------------------------------------------------------------------------------


def _image(stream: Mapping[str, Any], name: str, *, required: bool) -> dict[str, Any] | None:
    image = stream.get(name)
    if image is None:
        if required:
            raise MalformedStreamRecordError(f"stream record without {name} (the stream must be NEW_AND_OLD_IMAGES)")
        return None
    if not isinstance(image, Mapping):
        raise MalformedStreamRecordError(f"{name} is not a DynamoDB JSON map")
    try:
        return {attribute: _plain(_deserializer.deserialize(value)) for attribute, value in image.items()}
    except (TypeError, ValueError, KeyError) as error:
        raise MalformedStreamRecordError(f"{name} is not valid DynamoDB JSON") from error


def _plain(value: Any) -> Any:
    """Decimals to int (or float); sets to sorted lists; binary to bytes: plain JSON-friendly Python."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_plain(item) for item in value), key=repr)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3 Binary
        return bytes(value.value)
    return value


def _occurred_at(value: Any) -> str | None:
    """Lambda delivers epoch seconds; the dynamodbstreams API (boto3) a datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, int | float | Decimal):
        return iso(datetime.fromtimestamp(float(value), tz=UTC))
    if isinstance(value, str):
        try:
            return iso(datetime.fromtimestamp(float(value), tz=UTC))
        except ValueError:
            pass
        try:
            return iso(datetime.fromisoformat(value))
        except ValueError as error:
            raise MalformedStreamRecordError("ApproximateCreationDateTime is not a time") from error
    raise MalformedStreamRecordError("ApproximateCreationDateTime is not a time")


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
