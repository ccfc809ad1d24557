"""Store records: what a user, group, membership or directory looks like in the table, and its version.

The one write rule (owned by `DirectoryStore.put_if_newer`): an item is written only if it is absent or its
stored `vkey` is lower than the incoming one. Every item is therefore a max-register, and applying any set of
events in any order, with any duplicates, ends in the same state. The version key packs a WorkOS timestamp and a
tie-breaker into one integer: `vkey = micros * 2 + (1 if tombstone else 0)`, so a deletion beats an update with
the same timestamp and two deliveries of one event compare equal (the second is a no-op).

- users and groups: `micros(data.updated_at)`; deletions use max(updated_at, event created_at) and keep only ids
  and the version (personal data erased), expiring after the tombstone TTL;
- memberships: the event's `created_at` (WorkOS does not bump `updated_at` on membership changes);
- directories: `updated_at` (or the event's `created_at`), and a stub with version 0 when events arrive for a
  directory we never saw activated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.model import schema
from shared.model.events import Directory, DirectoryGroup, DirectoryToken, DirectoryUser, iso, micros

# DynamoDB items are capped at 400 KB; keep headroom for keys and attributes.
MAX_DATA_BYTES = 350_000
AttributeValue = str | int | bool
USERS_BY_EMAIL = schema.USERS_BY_EMAIL_INDEX.partition_key
MEMBERSHIPS_BY_USER = schema.MEMBERSHIPS_BY_USER_INDEX.partition_key
DIRECTORIES = schema.DIRECTORIES_INDEX.partition_key
LOOKUP = schema.LOOKUP_INDEX.partition_key


class RecordTooLargeError(ValueError):
    """The object cannot fit in one DynamoDB item even without its raw attributes."""


@dataclass(frozen=True, order=True)
class ItemKey:
    pk: str
    sk: str


@dataclass(frozen=True)
class StoredVersion:
    vkey: int
    deleted: bool


@dataclass(frozen=True)
class Record:
    """A full item to write (a put replaces the whole item, so a tombstone erases every other attribute)."""

    key: ItemKey
    vkey: int
    deleted: bool
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    expires_at: int | None = None

    def item(self) -> dict[str, AttributeValue]:
        item: dict[str, AttributeValue] = {
            schema.PARTITION_KEY: self.key.pk,
            schema.SORT_KEY: self.key.sk,
            schema.VERSION_ATTRIBUTE: self.vkey,
            schema.DELETED_ATTRIBUTE: self.deleted,
        }
        item.update(self.attributes)
        if self.expires_at is not None:
            item[schema.TTL_ATTRIBUTE] = self.expires_at
        return item


def live_version(timestamp: datetime) -> int:
    return micros(timestamp) * 2


def tombstone_version(*timestamps: datetime | None) -> int:
    return max(micros(t) for t in timestamps if t is not None) * 2 + 1


def membership_version(created_at: datetime, *, removed: bool) -> int:
    return micros(created_at) * 2 + (1 if removed else 0)


def directory_key(directory_id: str) -> ItemKey:
    return ItemKey(schema.directory_pk(directory_id), schema.DIRECTORY_SK)


def applied_key(directory_id: str) -> ItemKey:
    return ItemKey(schema.directory_pk(directory_id), schema.APPLIED_SK)


def applied_record(directory_id: str, *, event_id: str, event_type: str, created_at: datetime, at_ms: int) -> Record:
    """The newest event apply has processed for a directory (for `dsync status`), versioned by its time: the same
    max-register as everything else, so a late old event never makes the directory look behind."""
    return Record(
        key=applied_key(directory_id),
        vkey=live_version(created_at),
        deleted=False,
        attributes={"event_id": event_id, "event_type": event_type, "created_at": iso(created_at), "at_ms": at_ms},
    )


# --- A directory's counts (`~COUNTS`), kept by the writers' own transitions (`dsync status`, the wave's hint) -----

COUNT_NAMES = ("users_active", "users_inactive", "groups")
COUNTS_SEQ = "seq"  # changes ADDed so far: the reconcile's correction overwrites only if none landed meanwhile
# The last change's token: its retry (a lost response) is refused, never added twice.
COUNTS_TOKEN = "last_token"  # noqa: S105 (an attribute name)
COUNTS_UNOBSERVED = "unobserved"  # user or group writes whose transition is unknown since the counts were set
COUNTS_BASIS = "basis"
COUNTS_RECONCILED_AT = "reconciled_at"
BASIS_CREATED = "directory_created"  # counted from the directory item's creation, when its partition was empty
BASIS_RECONCILED = "reconcile"  # set from the partition by a reconcile (`shared.reconcile.counts`)


def counts_key(directory_id: str) -> ItemKey:
    return ItemKey(schema.directory_pk(directory_id), schema.COUNTS_SK)


def counted_key(key: ItemKey) -> bool:
    """Whether a write to this key can move a count (users and groups)."""
    return key.sk.startswith((schema.USER_PREFIX, schema.GROUP_PREFIX))


def counted_as(item: Mapping[str, Any] | None) -> str | None:
    """The count a stored item is in: a live user by its state (anything not active is inactive, as WorkOS counts
    them), a live group; nothing else (tombstones, memberships, tokens, the directory, bookkeeping)."""
    if item is None or item.get(schema.DELETED_ATTRIBUTE):
        return None
    sort_key = str(item.get(schema.SORT_KEY, ""))
    if sort_key.startswith(schema.USER_PREFIX):
        return "users_active" if item.get("state", "active") == "active" else "users_inactive"
    if sort_key.startswith(schema.GROUP_PREFIX):
        return "groups"
    return None


@dataclass(frozen=True)
class Replaced:
    """What a conditional put did (`DirectoryStore.replace_if_newer`): whether it wrote, and the item it replaced."""

    written: bool
    old: Mapping[str, Any] | None = None  # the replaced item (DynamoDB's ReturnValues=ALL_OLD); None: it was absent
    old_known: bool = True  # False: a retry found its own earlier attempt stored, and what that one replaced is lost


def transition(record: Record, replaced: Replaced) -> dict[str, int]:
    """The count deltas of one write that was observed: +1 to the new item's count, -1 to the old one's (a user's
    update that keeps its state moves nothing)."""
    deltas: dict[str, int] = {}
    if not replaced.written or not replaced.old_known:
        return deltas
    new, old = counted_as(record.item()), counted_as(replaced.old)
    if new != old:
        if new is not None:
            deltas[new] = 1
        if old is not None:
            deltas[old] = -1
    return deltas


@dataclass(frozen=True)
class CountChange:
    """One writer's net change to a directory's counts, ADDed at most once: a retry carrying the same `token` (its
    first attempt landed, its response was lost) finds the token stored and adds nothing."""

    directory_id: str
    deltas: Mapping[str, int]
    token: str
    unobserved: int = 0  # user or group writes whose transition is unknown: the counts may be off by that many
    created: bool = False  # the writer created the directory item: counting starts from an empty partition


def counts_item(
    directory_id: str, counts: Mapping[str, int], *, seq: int, last_token: str | None, reconciled_at: datetime
) -> dict[str, AttributeValue]:
    """The counter as a reconcile sets it from the partition (its own `seq`, the last change's token kept)."""
    item: dict[str, AttributeValue] = {
        schema.PARTITION_KEY: schema.directory_pk(directory_id),
        schema.SORT_KEY: schema.COUNTS_SK,
        # A version and a deletion flag as every item of a partition has: the applier reads the counter with the
        # batch's other keys (a counter outliving its directory's purge queues the purge again).
        schema.VERSION_ATTRIBUTE: 0,
        schema.DELETED_ATTRIBUTE: False,
        **{name: int(counts.get(name, 0)) for name in COUNT_NAMES},
        COUNTS_SEQ: seq,
        COUNTS_UNOBSERVED: 0,
        COUNTS_BASIS: BASIS_RECONCILED,
        COUNTS_RECONCILED_AT: iso(reconciled_at),
    }
    if last_token:
        item[COUNTS_TOKEN] = last_token
    return item


def readable_counts(item: Mapping[str, Any] | None) -> tuple[dict[str, int | None], dict[str, Any]]:
    """(the mirror's counts, what they rest on) from a counter item. Counts are None until they have a basis: a
    directory mirrored before the counters existed has changes ADDed to nothing until its first reconcile sets them."""
    basis = item.get(COUNTS_BASIS) if item else None
    counts = {name: (int(item.get(name, 0)) if item and basis else None) for name in COUNT_NAMES}
    return counts, {
        "counted_from": basis,
        "reconciled_at": item.get(COUNTS_RECONCILED_AT) if item else None,
        "unobserved_writes": int(item.get(COUNTS_UNOBSERVED, 0)) if item else 0,
    }


def user_key(directory_id: str, user_id: str) -> ItemKey:
    return ItemKey(schema.directory_pk(directory_id), schema.user_sk(user_id))


def group_key(directory_id: str, group_id: str) -> ItemKey:
    return ItemKey(schema.directory_pk(directory_id), schema.group_sk(group_id))


def membership_key(directory_id: str, group_id: str, user_id: str) -> ItemKey:
    return ItemKey(schema.directory_pk(directory_id), schema.membership_sk(group_id, user_id))


def _present(values: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {name: value for name, value in values.items() if value is not None and value != ""}


def _data(raw: dict[str, Any]) -> str:
    text = json.dumps(raw, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > MAX_DATA_BYTES and raw.get("raw_attributes"):
        text = json.dumps({**raw, "raw_attributes": {}}, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > MAX_DATA_BYTES:
        raise RecordTooLargeError(f"object {raw.get('id')} is {len(text.encode())} bytes, over {MAX_DATA_BYTES}")
    return text


def user_record(user: DirectoryUser) -> Record:
    email_key = schema.email_key(user.directory_id, user.email) if user.email else None
    return Record(
        key=user_key(user.directory_id, user.id),
        vkey=live_version(user.updated_at),
        deleted=False,
        attributes=_present(
            {
                "kind": "user",
                "id": user.id,
                "directory_id": user.directory_id,
                "organization_id": user.organization_id,
                "idp_id": user.idp_id,
                "email": user.email,
                USERS_BY_EMAIL: email_key,
                LOOKUP: schema.idp_lookup_key(user.directory_id, user.idp_id) if user.idp_id else None,
                "first_name": user.first_name,
                "last_name": user.last_name,
                "state": user.state,
                "updated_at": iso(user.updated_at),
                "data": _data(user.raw()),
            }
        ),
    )


def group_record(group: DirectoryGroup) -> Record:
    return Record(
        key=group_key(group.directory_id, group.id),
        vkey=live_version(group.updated_at),
        deleted=False,
        attributes=_present(
            {
                "kind": "group",
                "id": group.id,
                "directory_id": group.directory_id,
                "organization_id": group.organization_id,
                "idp_id": group.idp_id,
                "name": group.name,
                "updated_at": iso(group.updated_at),
                "data": _data(group.raw()),
            }
        ),
    )


def entity_key(kind: str, directory_id: str, entity_id: str) -> ItemKey:
    """The key of a user or group item (`kind` "user" or "group")."""
    return user_key(directory_id, entity_id) if kind == "user" else group_key(directory_id, entity_id)


def entity_tombstone(kind: str, directory_id: str, entity_id: str, *, vkey: int, expires_at: int) -> Record:
    """What remains of a deleted user or group (`kind` "user" or "group"): ids and the version, nothing personal."""
    return Record(
        key=entity_key(kind, directory_id, entity_id),
        vkey=vkey,
        deleted=True,
        attributes={"kind": kind, "id": entity_id, "directory_id": directory_id},
        expires_at=expires_at,
    )


def membership_record(
    directory_id: str, group_id: str, user_id: str, *, vkey: int, present: bool, expires_at: int
) -> Record:
    attributes: dict[str, AttributeValue] = {
        "kind": "membership",
        "directory_id": directory_id,
        "group_id": group_id,
        "user_id": user_id,
    }
    if present:
        attributes[MEMBERSHIPS_BY_USER] = schema.member_key(directory_id, user_id)
    return Record(
        key=membership_key(directory_id, group_id, user_id),
        vkey=vkey,
        deleted=not present,
        attributes=attributes,
        expires_at=None if present else expires_at,
    )


def membership_parents(record: Record) -> tuple[ItemKey, ItemKey]:
    """The user and group keys a membership record belongs to."""
    directory_id, group_id, user_id = (str(record.attributes[name]) for name in ("directory_id", "group_id", "user_id"))
    return user_key(directory_id, user_id), group_key(directory_id, group_id)


def ended_membership(record: Record, *, vkey: int, expires_at: int) -> Record:
    """The tombstone that ends a membership at its user's or group's deletion version."""
    directory_id, group_id, user_id = (str(record.attributes[name]) for name in ("directory_id", "group_id", "user_id"))
    return membership_record(directory_id, group_id, user_id, vkey=vkey, present=False, expires_at=expires_at)


def directory_record(directory: Directory, *, vkey: int) -> Record:
    return Record(
        key=directory_key(directory.id),
        vkey=vkey,
        deleted=False,
        attributes=_present(
            {
                "kind": "directory",
                "id": directory.id,
                "organization_id": directory.organization_id,
                "name": directory.name,
                "type": directory.type,
                "state": directory.state,
                DIRECTORIES: schema.DIRECTORY_INDEX_VALUE,
                LOOKUP: _organization_lookup(directory.organization_id),
                "data": _data(directory.raw()),
            }
        ),
    )


def directory_stub(directory_id: str, organization_id: str | None) -> Record:
    """Registers a directory first seen through user/group events (its dsync.activated was missed or is late)."""
    return Record(
        key=directory_key(directory_id),
        vkey=0,
        deleted=False,
        attributes=_present(
            {
                "kind": "directory",
                "id": directory_id,
                "organization_id": organization_id,
                DIRECTORIES: schema.DIRECTORY_INDEX_VALUE,
                LOOKUP: _organization_lookup(organization_id),
            }
        ),
    )


def _organization_lookup(organization_id: str | None) -> str | None:
    return schema.organization_lookup_key(organization_id) if organization_id else None


def token_key(directory_id: str, token_id: str) -> ItemKey:
    return ItemKey(schema.directory_pk(directory_id), schema.token_sk(token_id))


def token_record(token: DirectoryToken, *, event_created_at: datetime, revoked: bool, expires_at: int) -> Record:
    """A directory token: live once created, a tombstone once revoked (revocation is later, so it always wins)."""
    return Record(
        key=token_key(token.directory_id, token.id),
        vkey=tombstone_version(event_created_at) if revoked else live_version(event_created_at),
        deleted=revoked,
        attributes=_present(
            {
                "kind": "token",
                "id": token.id,
                "directory_id": token.directory_id,
                "organization_id": token.organization_id,
                "token_suffix": token.token_suffix,
                "created_at": iso(token.created_at) if token.created_at else None,
                "revoked_at": iso(event_created_at) if revoked else None,
            }
        ),
        expires_at=expires_at if revoked else None,
    )


def readable_token(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: item.get(name) for name in ("id", "token_suffix", "created_at")}


def health_key(directory_id: str) -> ItemKey:
    return ItemKey(schema.directory_pk(directory_id), schema.HEALTH_SK)


@dataclass(frozen=True)
class DirectoryHealth:
    """What `GET /directories` says about one directory at one moment: its API state and WorkOS's own counts."""

    directory_id: str
    organization_id: str | None
    state: str
    observed_at: datetime
    since: datetime  # when the directory entered `state` (as far as our observations tell)
    users_active: int | None = None
    users_inactive: int | None = None
    groups: int | None = None


def health_record(health: DirectoryHealth) -> Record:
    """Versioned by observation time: a late or overlapping wave never replaces a newer observation."""
    return Record(
        key=health_key(health.directory_id),
        vkey=live_version(health.observed_at),
        deleted=False,
        attributes=_present(
            {
                "kind": "health",
                "id": health.directory_id,
                "organization_id": health.organization_id,
                "state": health.state,
                "since": iso(health.since),
                "observed_at": iso(health.observed_at),
                "users_active": health.users_active,
                "users_inactive": health.users_inactive,
                "groups": health.groups,
            }
        ),
    )


def readable_health(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "state": item.get("state"),
        "since": item.get("since"),
        "observed_at": item.get("observed_at"),
        "workos_counts": {name: item.get(name) for name in ("users_active", "users_inactive", "groups")},
    }


def directory_tombstone(directory_id: str, organization_id: str | None, *, vkey: int, expires_at: int) -> Record:
    return Record(
        key=directory_key(directory_id),
        vkey=vkey,
        deleted=True,
        attributes=_present({"kind": "directory", "id": directory_id, "organization_id": organization_id}),
        expires_at=expires_at,
    )


# --- Readable projections (what apps and `dsync export` see) ------------------------------------------------------


USER_FIELDS = ("organization_id", "idp_id", "email", "first_name", "last_name", "state", "custom_attributes")
ROLE_FIELDS = ("role", "roles")
GROUP_FIELDS = ("organization_id", "idp_id", "name")
DIRECTORY_FIELDS = ("name", "type", "state")


def _stored_object(item: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(str(item.get("data") or "{}"))
    return data


def _readable(
    item: Mapping[str, Any], fields: tuple[str, ...], data: Mapping[str, Any] | None = None, **ids: Any
) -> dict[str, Any]:
    """Ids from the item's attributes, everything else from WorkOS's object as stored in `data`."""
    data = _stored_object(item) if data is None else data
    readable = {"id": item["id"], **ids}
    readable.update({name: data.get(name) for name in fields})
    readable.update(created_at=data.get("created_at"), updated_at=data.get("updated_at"))
    return readable


def readable_user(item: Mapping[str, Any]) -> dict[str, Any]:
    data = _stored_object(item)
    user = _readable(item, USER_FIELDS, data, directory_id=item.get("directory_id"))
    user["custom_attributes"] = user["custom_attributes"] or {}
    user["role"], user["roles"] = role_slugs(data)
    return user


def role_slugs(user: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(primary role slug or None, every role slug sorted) of a WorkOS directory user.

    `roles` (all roles, since December 2025) is preferred; older payloads carry only `role` (the primary one).
    """
    primary = _slug(user.get("role"))
    listed = user.get("roles")
    if isinstance(listed, list):
        slugs = {slug for slug in (_slug(role) for role in listed) if slug}
    else:
        slugs = {primary} if primary else set()
    return primary, sorted(slugs)


def _slug(role: Any) -> str | None:
    if isinstance(role, Mapping):
        slug = role.get("slug")
        return str(slug) if slug else None
    return str(role) if isinstance(role, str) and role else None


def readable_group(item: Mapping[str, Any]) -> dict[str, Any]:
    return _readable(item, GROUP_FIELDS, directory_id=item.get("directory_id"))


def readable_directory(item: Mapping[str, Any]) -> dict[str, Any]:
    return _readable(item, DIRECTORY_FIELDS, organization_id=item.get("organization_id"))
