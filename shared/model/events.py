"""Lenient models of the ten Directory Sync events.

Lenient on purpose: WorkOS adds fields, deprecates others (`emails`, `job_title`, `username`, `raw_attributes`),
sends `email: null`, and its docs show naive envelope timestamps (`2023-04-28 20:05:31.093`) beside UTC ones. We
require only what the write rules need (ids and timestamps), normalise every timestamp to UTC, and keep unknown
fields so the stored raw record loses nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer, ValidationError


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def micros(value: datetime) -> int:
    """Microseconds since the epoch: the integer clock every version in the store is built from."""
    delta = _as_utc(value) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso(value: datetime) -> str:
    """WorkOS's own timestamp format: UTC, milliseconds, `Z`."""
    return _as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """The inverse of `iso` (any ISO-8601 time, `Z` or an offset), in UTC."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc), PlainSerializer(iso, when_used="json")]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    def raw(self) -> dict[str, Any]:
        """The object as WorkOS sent it (unknown fields included), JSON-safe."""
        document: dict[str, Any] = json.loads(self.model_dump_json(exclude={"previous_attributes"}))
        return document


class DirectoryUser(_Lenient):
    id: str
    directory_id: str
    organization_id: str | None = None
    idp_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    state: str = "active"
    custom_attributes: dict[str, Any] | None = None
    raw_attributes: dict[str, Any] | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime


class DirectoryGroup(_Lenient):
    id: str
    directory_id: str
    organization_id: str | None = None
    idp_id: str | None = None
    name: str | None = None
    raw_attributes: dict[str, Any] | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime


class Directory(_Lenient):
    id: str
    organization_id: str | None = None
    name: str | None = None
    type: str | None = None
    state: str | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None


class DirectoryToken(_Lenient):
    """A directory's SCIM bearer token as `dsync.token.*` events carry it: the suffix, never the value."""

    id: str
    directory_id: str
    organization_id: str | None = None
    token_suffix: str | None = None
    created_at: UtcDatetime | None = None


class MembershipChange(_Lenient):
    directory_id: str
    user: DirectoryUser
    group: DirectoryGroup


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    event: str
    data: dict[str, Any]
    created_at: UtcDatetime


EventType = Literal[
    "dsync.activated",
    "dsync.deleted",
    "dsync.user.created",
    "dsync.user.updated",
    "dsync.user.deleted",
    "dsync.group.created",
    "dsync.group.updated",
    "dsync.group.deleted",
    "dsync.group.user_added",
    "dsync.group.user_removed",
    "dsync.deactivated",
    "dsync.token.created",
    "dsync.token.revoked",
]
# Every Directory Sync type WorkOS may send, all applied: the ten, the token events (since 2026-04-30) and
# dsync.deactivated (in the spec for two months of 2026, still deserialised by WorkOS's SDKs). The Events API tail
# asks for all of them; any other type is acknowledged and counted, never dead-lettered.
DSYNC_EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
KNOWN_EVENT_TYPES: frozenset[str] = frozenset(DSYNC_EVENT_TYPES)


@dataclass(frozen=True)
class DsyncEvent:
    """One verified WorkOS event, its payload parsed according to its type."""

    id: str
    type: EventType
    created_at: datetime
    directory_id: str
    directory: Directory | None = None
    user: DirectoryUser | None = None
    group: DirectoryGroup | None = None
    token: DirectoryToken | None = None


@dataclass(frozen=True)
class UnknownEvent:
    """A well-formed event of a type we do not apply (a type WorkOS adds later): acknowledged and counted."""

    id: str
    type: str


class InvalidEventError(ValueError):
    """The body can never be applied (not JSON, or a known type with an unusable payload)."""


def parse_event(body: str | bytes) -> DsyncEvent | UnknownEvent:
    try:
        envelope = _Envelope.model_validate_json(body)
    except ValidationError as error:
        raise InvalidEventError(_summary(error)) from error
    if envelope.event not in KNOWN_EVENT_TYPES:
        return UnknownEvent(id=envelope.id, type=envelope.event)
    event_type: EventType = envelope.event  # type: ignore[assignment]
    try:
        return _typed(envelope, event_type)
    except ValidationError as error:
        raise InvalidEventError(f"{event_type}: {_summary(error)}") from error


DIRECTORY_EVENT_TYPES = frozenset({"dsync.activated", "dsync.deleted", "dsync.deactivated"})
TOKEN_EVENT_TYPES = frozenset({"dsync.token.created", "dsync.token.revoked"})
MEMBERSHIP_EVENT_TYPES = frozenset({"dsync.group.user_added", "dsync.group.user_removed"})


def _typed(envelope: _Envelope, event_type: EventType) -> DsyncEvent:
    directory: Directory | None = None
    user: DirectoryUser | None = None
    group: DirectoryGroup | None = None
    token: DirectoryToken | None = None
    if event_type in DIRECTORY_EVENT_TYPES:
        directory = Directory.model_validate(envelope.data)
        directory_id = directory.id
    elif event_type in MEMBERSHIP_EVENT_TYPES:
        change = MembershipChange.model_validate(envelope.data)
        user, group, directory_id = change.user, change.group, change.directory_id
    elif event_type in TOKEN_EVENT_TYPES:
        token = DirectoryToken.model_validate(envelope.data)
        directory_id = token.directory_id
    elif event_type.startswith("dsync.user."):
        user = DirectoryUser.model_validate(envelope.data)
        directory_id = user.directory_id
    else:
        group = DirectoryGroup.model_validate(envelope.data)
        directory_id = group.directory_id
    return DsyncEvent(
        id=envelope.id,
        type=event_type,
        created_at=envelope.created_at,
        directory_id=directory_id,
        directory=directory,
        user=user,
        group=group,
        token=token,
    )


def describe_invalid(error: ValidationError) -> str:
    """Where and why a payload is invalid, never its values (they are personal data)."""
    return _summary(error)


def _summary(error: ValidationError) -> str:
    problems = [f"{'.'.join(str(p) for p in item['loc']) or 'body'}: {item['msg']}" for item in error.errors()[:5]]
    return "; ".join(problems)
