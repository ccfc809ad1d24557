"""In-memory model of a WorkOS Directory Sync environment that records the dsync events it causes.

The model is the single source of truth for the fake: the HTTP server reads from it, property tests
drive it to generate realistic event histories, and ``snapshot()`` is the "truth" our pipeline's
DynamoDB state is compared against. Event shapes follow the WorkOS SDK fixtures
(``workos/workos-python`` ``tests/fixtures/dsync_*.json``) and the documented lifecycle rules:

* ``dsync.deleted`` is the only event for a deleted directory (no per-user/per-group deletes);
* deleting a user or a group drops its memberships without ``dsync.group.user_removed`` events;
* membership changes do not bump the user's or group's ``updated_at`` (documented known issue);
* ``dsync.user.updated`` / ``dsync.group.updated`` carry ``previous_attributes`` inside ``data``;
* roles come from IdP group -> role mappings (``map_group_to_role``): a user's ``roles`` are the roles of the mapped
  groups they are in, or the default role when in none; a change emits ``dsync.user.updated`` (an inference:
  WorkOS documents the mapping, not how its change is delivered);
* payloads have the 2026 shape by default (``raw_attributes`` is ``{}``; ``job_title``, ``username`` null and
  ``emails`` empty, since 2026-04-15); ``legacy_payloads=True`` restores the older, fuller shape.
"""

from __future__ import annotations

import bisect
import copy
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from dsync.fake_workos.ids import UlidFactory, random_token, ulid_part

__all__ = [
    "DIRECTORY_STATES",
    "USER_STATES",
    "Clock",
    "DirectoryModel",
    "JsonDict",
    "SteppingClock",
    "format_timestamp",
    "parse_timestamp",
]

JsonDict = dict[str, Any]
Clock = Callable[[], datetime]

#: Directory state vocabulary used in *events* (the REST API says linked/unlinked instead).
DIRECTORY_STATES: Final = frozenset({"active", "validating", "invalid_credentials", "inactive", "deleting"})
#: ``suspended`` was folded into ``inactive`` in Dec 2023 but is still a valid enum value.
USER_STATES: Final = frozenset({"active", "inactive", "suspended"})

_ONE_MS: Final = timedelta(milliseconds=1)
_USER_UPDATABLE: Final = frozenset(
    {"first_name", "last_name", "email", "state", "custom_attributes", "job_title", "username", "role", "roles"}
)
DEFAULT_ROLE: Final = "member"
_GROUP_UPDATABLE: Final = frozenset({"name"})
# Not diffed into previous_attributes: bookkeeping, and the deprecated provider payload.
_NOT_DIFFED: Final = frozenset({"updated_at", "raw_attributes"})
_SCIM_USER_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:User"
_MISSING: Final = object()


def format_timestamp(moment: datetime) -> str:
    """Format like WorkOS: UTC, millisecond precision, ``Z`` suffix (``2026-01-15T12:00:00.000Z``)."""
    moment = _to_utc_ms(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(value: str) -> datetime:
    """Parse a WorkOS timestamp into an aware UTC datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _to_utc_ms(moment: datetime) -> datetime:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SteppingClock:
    """Deterministic clock: returns ``start``, then advances by ``step`` on every call.

    Useful with ``seed=`` for byte-for-byte reproducible event histories.
    """

    def __init__(self, start: datetime, step: timedelta = timedelta(seconds=1)) -> None:
        self._now = start if start.tzinfo else start.replace(tzinfo=UTC)
        self._step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = self._now
            self._now += self._step
            return now

    def advance(self, delta: timedelta) -> None:
        """Jump forward, e.g. to simulate a quiet period between bursts of changes."""
        with self._lock:
            self._now += delta


@dataclass(slots=True)
class _Directory:
    id: str
    organization_id: str
    external_key: str
    name: str
    type: str
    state: str
    domain: str
    domain_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class _User:
    id: str
    directory_id: str
    organization_id: str
    idp_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    job_title: str | None
    username: str | None
    state: str
    role: str
    roles: list[str]
    custom_attributes: JsonDict
    created_at: datetime
    updated_at: datetime
    groups: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Group:
    id: str
    directory_id: str
    organization_id: str
    idp_id: str
    name: str
    created_at: datetime
    updated_at: datetime
    members: set[str] = field(default_factory=set)


def _full_name(first: str | None, last: str | None) -> str | None:
    parts = [p for p in (first, last) if p]
    return " ".join(parts) if parts else None


def _user_raw_attributes(user: _User) -> JsonDict:
    """A SCIM-style provider payload: deprecated in the API, but real events still carry one."""
    raw: JsonDict = {
        "schemas": [_SCIM_USER_SCHEMA],
        "id": user.idp_id,
        "userName": user.username,
        "name": {"givenName": user.first_name, "familyName": user.last_name},
        "active": user.state == "active",
    }
    if user.email is not None:
        raw["emails"] = [{"primary": True, "type": "work", "value": user.email}]
    if user.job_title is not None:
        raw["title"] = user.job_title
    return raw


def _user_snapshot(user: _User, *, legacy: bool = False) -> JsonDict:
    """DirectoryUser exactly as events (and, plus ``groups``, the API) carry it; the 2026 shape unless ``legacy``."""
    snapshot = _legacy_user_snapshot(user)
    if not legacy:
        snapshot.update(raw_attributes={}, job_title=None, username=None, emails=[])
    return snapshot


def _legacy_user_snapshot(user: _User) -> JsonDict:
    return {
        "object": "directory_user",
        "id": user.id,
        "directory_id": user.directory_id,
        "organization_id": user.organization_id,
        "idp_id": user.idp_id,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "name": _full_name(user.first_name, user.last_name),
        "emails": [] if user.email is None else [{"primary": True, "type": "work", "value": user.email}],
        "job_title": user.job_title,
        "username": user.username,
        "state": user.state,
        "raw_attributes": _user_raw_attributes(user),
        "custom_attributes": copy.deepcopy(user.custom_attributes),
        "role": {"slug": user.role},
        "roles": [{"slug": role} for role in user.roles],
        "created_at": format_timestamp(user.created_at),
        "updated_at": format_timestamp(user.updated_at),
    }


def _group_snapshot(group: _Group) -> JsonDict:
    return {
        "object": "directory_group",
        "id": group.id,
        "idp_id": group.idp_id,
        "directory_id": group.directory_id,
        "organization_id": group.organization_id,
        "name": group.name,
        "raw_attributes": {},
        "created_at": format_timestamp(group.created_at),
        "updated_at": format_timestamp(group.updated_at),
    }


def _directory_event_data(directory: _Directory, *, with_domains: bool) -> JsonDict:
    """``dsync.activated`` data; ``dsync.deleted`` drops ``external_key`` and ``domains``."""
    data: JsonDict = {
        "object": "directory",
        "id": directory.id,
        "organization_id": directory.organization_id,
        "type": directory.type,
        "state": directory.state,
        "name": directory.name,
        "created_at": format_timestamp(directory.created_at),
        "updated_at": format_timestamp(directory.updated_at),
    }
    if with_domains:
        data["external_key"] = directory.external_key
        data["domains"] = [{"object": "organization_domain", "id": directory.domain_id, "domain": directory.domain}]
    return data


def _previous_attributes(old: JsonDict, new: JsonDict) -> JsonDict:
    """Shallow diff of root properties; ``custom_attributes`` is diffed per key (new keys -> None)."""
    previous: JsonDict = {}
    for key, new_value in new.items():
        if key in _NOT_DIFFED:
            continue
        old_value = old.get(key)
        if key == "custom_attributes":
            old_attrs: JsonDict = old_value or {}
            changed = {
                k: old_attrs.get(k)
                for k in sorted(set(old_attrs) | set(new_value))
                if old_attrs.get(k, _MISSING) != new_value.get(k, _MISSING)
            }
            if changed:
                previous[key] = changed
        elif old_value != new_value:
            previous[key] = copy.deepcopy(old_value)
    return previous


class DirectoryModel:
    """Thread-safe in-memory WorkOS environment that appends the dsync events each change causes.

    Every mutation takes its timestamp from ``clock`` but forces it at least 1 ms past the previous
    mutation, so no two changes share a timestamp (our pipeline orders writes by them). Ids are
    monotonic ULIDs derived from that timestamp and ``seed``: with a deterministic clock (see
    :class:`SteppingClock`) and a seed, the whole event history is reproducible.
    """

    def __init__(self, *, clock: Clock | None = None, seed: int | None = None, legacy_payloads: bool = False) -> None:
        self._clock: Clock = clock or _utcnow
        self._legacy = legacy_payloads
        # Not for security: seeded so generated fixtures are reproducible.
        self._rng = random.Random(seed)  # noqa: S311
        self._ids = UlidFactory(self._rng)
        self._lock = threading.RLock()
        self._last_ts: datetime | None = None
        self._directories: dict[str, _Directory] = {}
        self._deleted_directories: set[str] = set()
        self._users: dict[str, _User] = {}
        self._groups: dict[str, _Group] = {}
        self._role_mappings: dict[str, dict[str, str]] = {}
        self._tokens: dict[str, JsonDict] = {}  # directory -> {group id: role}, in priority order
        self._events: list[JsonDict] = []
        self._event_keys: list[str] = []  # ULID parts of the event ids, ascending (ids are monotonic)
        self._event_times: list[datetime] = []
        self._drained = 0

    # ------------------------------------------------------------------ internals

    def _tick(self) -> datetime:
        now = _to_utc_ms(self._clock())
        if self._last_ts is not None and now < self._last_ts + _ONE_MS:
            now = self._last_ts + _ONE_MS
        self._last_ts = now
        return now

    def _emit(self, event: str, data: JsonDict, at: datetime) -> None:
        event_id = self._ids.new("event", at)
        self._events.append(
            {
                "object": "event",
                "id": event_id,
                "event": event,
                "data": data,
                "created_at": format_timestamp(at),
                "context": {},
            }
        )
        self._event_keys.append(ulid_part(event_id))
        self._event_times.append(at)

    def _snapshot(self, user: _User) -> JsonDict:
        return _user_snapshot(user, legacy=self._legacy)

    def _directory(self, directory_id: str) -> _Directory:
        try:
            return self._directories[directory_id]
        except KeyError:
            state = "was deleted" if directory_id in self._deleted_directories else "does not exist"
            raise KeyError(f"directory {directory_id!r} {state}") from None

    def _user(self, user_id: str) -> _User:
        try:
            return self._users[user_id]
        except KeyError:
            raise KeyError(f"directory user {user_id!r} does not exist") from None

    def _group(self, group_id: str) -> _Group:
        try:
            return self._groups[group_id]
        except KeyError:
            raise KeyError(f"directory group {group_id!r} does not exist") from None

    def _new_idp_id(self, prefix: str) -> str:
        # Okta-shaped ids (00u… users, 00g… groups): 20 characters.
        return prefix + random_token(self._rng, 17)

    # ------------------------------------------------------------------ directories

    def create_directory(
        self,
        *,
        organization_id: str | None = None,
        name: str = "Acme Okta",
        type: str = "okta scim v2.0",
        domain: str = "acme.test",
    ) -> JsonDict:
        """Create an active directory and emit ``dsync.activated``; returns the event ``data``."""
        with self._lock:
            ts = self._tick()
            directory = _Directory(
                id=self._ids.new("directory", ts),
                organization_id=organization_id or self._ids.new("org", ts),
                external_key=random_token(self._rng, 16),
                name=name,
                type=type,
                state="active",
                domain=domain,
                domain_id=self._ids.new("org_domain", ts),
                created_at=ts,
                updated_at=ts,
            )
            self._directories[directory.id] = directory
            self._emit("dsync.activated", _directory_event_data(directory, with_domains=True), ts)
            return _directory_event_data(directory, with_domains=True)

    def delete_directory(self, directory_id: str) -> JsonDict:
        """Delete a directory with everything in it; emits one ``dsync.deleted`` and nothing else."""
        with self._lock:
            directory = self._directory(directory_id)
            ts = self._tick()
            data = _directory_event_data(directory, with_domains=False)  # state as before deletion
            for user_id in [u.id for u in self._users.values() if u.directory_id == directory_id]:
                del self._users[user_id]
            for group_id in [g.id for g in self._groups.values() if g.directory_id == directory_id]:
                del self._groups[group_id]
            for token_id in [t for t, token in self._tokens.items() if token["directory_id"] == directory_id]:
                del self._tokens[token_id]
            self._role_mappings.pop(directory_id, None)
            del self._directories[directory_id]
            self._deleted_directories.add(directory_id)
            self._emit("dsync.deleted", data, ts)
            return copy.deepcopy(data)

    def set_directory_state(self, directory_id: str, state: str, *, emit_event: bool = False) -> JsonDict:
        """Change a directory's state (event vocabulary) the way the IdP connection does: silently, as WorkOS sends
        no event for ``invalid_credentials`` or ``validating``. ``emit_event`` sends, for ``inactive``, the
        ``dsync.deactivated`` that WorkOS's spec carried for part of 2026, and for ``active`` a ``dsync.activated``."""
        if state not in DIRECTORY_STATES:
            raise ValueError(f"directory state must be one of {sorted(DIRECTORY_STATES)}, got {state!r}")
        with self._lock:
            directory = self._directory(directory_id)
            ts = self._tick()
            directory.state, directory.updated_at = state, ts
            data = _directory_event_data(directory, with_domains=False)
            if emit_event and state == "inactive":
                self._emit("dsync.deactivated", data, ts)
            elif emit_event and state == "active":
                self._emit("dsync.activated", _directory_event_data(directory, with_domains=True), ts)
            return copy.deepcopy(data)

    def create_token(self, directory_id: str) -> JsonDict:
        """A new directory (SCIM bearer) token: emits ``dsync.token.created`` with its suffix, never its value."""
        with self._lock:
            directory = self._directory(directory_id)
            ts = self._tick()
            token = {
                "object": "directory_token",
                "id": self._ids.new("directory_token", ts),
                "directory_id": directory_id,
                "organization_id": directory.organization_id,
                "token_suffix": random_token(self._rng, 4),
                "created_at": format_timestamp(ts),
            }
            self._tokens[token["id"]] = token
            self._emit("dsync.token.created", token, ts)
            return copy.deepcopy(token)

    def revoke_token(self, token_id: str) -> JsonDict:
        """Revoke a directory token: emits ``dsync.token.revoked`` (same payload as its creation)."""
        with self._lock:
            token = self._tokens.pop(token_id)
            self._emit("dsync.token.revoked", token, self._tick())
            return copy.deepcopy(token)

    def tokens(self, directory_id: str) -> list[JsonDict]:
        """Active tokens of a directory, oldest first."""
        with self._lock:
            return [copy.deepcopy(t) for t in self._tokens.values() if t["directory_id"] == directory_id]

    # ------------------------------------------------------------------ users

    def create_user(
        self,
        directory_id: str,
        *,
        first_name: str | None,
        last_name: str | None,
        email: str | None,
        idp_id: str | None = None,
        state: str = "active",
        custom_attributes: JsonDict | None = None,
        job_title: str | None = None,
        username: str | None = None,
        role: str = DEFAULT_ROLE,
        roles: list[str] | None = None,
    ) -> JsonDict:
        """Provision a user and emit ``dsync.user.created``; ``username`` defaults to the email (legacy shape)."""
        _check_user_state(state)
        with self._lock:
            directory = self._directory(directory_id)
            if idp_id is not None and any(
                u.idp_id == idp_id for u in self._users.values() if u.directory_id == directory_id
            ):
                raise ValueError(f"idp_id {idp_id!r} already exists in directory {directory_id!r}")
            ts = self._tick()
            user = _User(
                id=self._ids.new("directory_user", ts),
                directory_id=directory_id,
                organization_id=directory.organization_id,
                idp_id=idp_id or self._new_idp_id("00u"),
                email=email,
                first_name=first_name,
                last_name=last_name,
                job_title=job_title,
                username=username if username is not None else email,
                state=state,
                role=role,
                roles=sorted(set(roles)) if roles else [role],
                custom_attributes=copy.deepcopy(custom_attributes or {}),
                created_at=ts,
                updated_at=ts,
            )
            self._users[user.id] = user
            snapshot = self._snapshot(user)
            self._emit("dsync.user.created", snapshot, ts)
            return copy.deepcopy(snapshot)

    def update_user(self, user_id: str, **changes: Any) -> JsonDict:
        """Change user attributes and emit ``dsync.user.updated`` with ``previous_attributes``.

        ``custom_attributes`` replaces the whole mapping (that is what the IdP pushes). A change
        that alters nothing emits nothing and keeps ``updated_at``.
        """
        unknown = set(changes) - _USER_UPDATABLE
        if unknown:
            raise TypeError(f"update_user() got unsupported attributes: {sorted(unknown)}")
        if "state" in changes:
            _check_user_state(changes["state"])
        with self._lock:
            user = self._user(user_id)
            before = self._snapshot(user)
            roles = changes.pop("roles", None)
            for key, value in changes.items():
                setattr(user, key, copy.deepcopy(value))
            if roles is not None:
                user.roles = sorted(set(roles)) or [DEFAULT_ROLE]
                user.role = changes.get("role", roles[0] if roles else DEFAULT_ROLE)
            elif "role" in changes:
                user.roles = [user.role]
            return self._emit_user_update(user, before)

    def _emit_user_update(self, user: _User, before: JsonDict) -> JsonDict:
        previous = _previous_attributes(before, self._snapshot(user))
        if not previous:
            return self._snapshot(user)
        ts = self._tick()
        user.updated_at = ts
        data = self._snapshot(user)
        data["previous_attributes"] = previous
        self._emit("dsync.user.updated", data, ts)
        return self._snapshot(user)

    # ------------------------------------------------------------------ roles

    def map_group_to_role(self, group_id: str, role: str | None) -> list[str]:
        """Map an IdP group to a role (None removes the mapping), as in WorkOS's dashboard; every member whose roles
        change gets a ``dsync.user.updated``. Earlier mappings take priority for the primary ``role``. Returns the
        ids of the users whose roles changed."""
        with self._lock:
            group = self._group(group_id)
            mappings = self._role_mappings.setdefault(group.directory_id, {})
            if role is None:
                mappings.pop(group_id, None)
            else:
                mappings[group_id] = role
            users = [u for u in self._users.values() if u.directory_id == group.directory_id]
            return [user.id for user in _by_creation(users) if self._apply_role_mapping(user)]

    def _apply_role_mapping(self, user: _User) -> bool:
        """Re-derive a user's roles from the directory's mappings (if it has ever had any); True if they changed."""
        mappings = self._role_mappings.get(user.directory_id)
        if mappings is None:
            return False
        mapped = [role for group_id, role in mappings.items() if group_id in user.groups]
        role, roles = (mapped[0], sorted(set(mapped))) if mapped else (DEFAULT_ROLE, [DEFAULT_ROLE])
        if (role, roles) == (user.role, user.roles):
            return False
        before = self._snapshot(user)
        user.role, user.roles = role, roles
        self._emit_user_update(user, before)
        return True

    def deactivate_user(self, user_id: str) -> JsonDict:
        """Soft delete, the way most IdPs deprovision: ``state`` becomes ``inactive``."""
        return self.update_user(user_id, state="inactive")

    def reactivate_user(self, user_id: str) -> JsonDict:
        """Undo :meth:`deactivate_user`."""
        return self.update_user(user_id, state="active")

    def delete_user(self, user_id: str) -> JsonDict:
        """Hard delete: emits ``dsync.user.deleted`` and silently drops the user's memberships."""
        with self._lock:
            user = self._user(user_id)
            ts = self._tick()
            snapshot = self._snapshot(user)
            for group_id in user.groups:
                self._groups[group_id].members.discard(user_id)
            del self._users[user_id]
            self._emit("dsync.user.deleted", snapshot, ts)
            return copy.deepcopy(snapshot)

    # ------------------------------------------------------------------ groups

    def create_group(self, directory_id: str, *, name: str, idp_id: str | None = None) -> JsonDict:
        """Create a group and emit ``dsync.group.created``."""
        with self._lock:
            directory = self._directory(directory_id)
            if idp_id is not None and any(
                g.idp_id == idp_id for g in self._groups.values() if g.directory_id == directory_id
            ):
                raise ValueError(f"idp_id {idp_id!r} already exists in directory {directory_id!r}")
            ts = self._tick()
            group = _Group(
                id=self._ids.new("directory_group", ts),
                directory_id=directory_id,
                organization_id=directory.organization_id,
                idp_id=idp_id or self._new_idp_id("00g"),
                name=name,
                created_at=ts,
                updated_at=ts,
            )
            self._groups[group.id] = group
            snapshot = _group_snapshot(group)
            self._emit("dsync.group.created", snapshot, ts)
            return copy.deepcopy(snapshot)

    def update_group(self, group_id: str, **changes: Any) -> JsonDict:
        """Rename a group; emits ``dsync.group.updated`` with ``previous_attributes`` (no-op if unchanged)."""
        unknown = set(changes) - _GROUP_UPDATABLE
        if unknown:
            raise TypeError(f"update_group() got unsupported attributes: {sorted(unknown)}")
        with self._lock:
            group = self._group(group_id)
            before = _group_snapshot(group)
            for key, value in changes.items():
                setattr(group, key, value)
            previous = _previous_attributes(before, _group_snapshot(group))
            if not previous:
                return _group_snapshot(group)
            ts = self._tick()
            group.updated_at = ts
            data = _group_snapshot(group)
            data["previous_attributes"] = previous
            self._emit("dsync.group.updated", data, ts)
            return _group_snapshot(group)

    def delete_group(self, group_id: str) -> JsonDict:
        """Emit ``dsync.group.deleted``; members are dropped without ``dsync.group.user_removed``."""
        with self._lock:
            group = self._group(group_id)
            ts = self._tick()
            snapshot = _group_snapshot(group)
            for user_id in group.members:
                self._users[user_id].groups.discard(group_id)
            del self._groups[group_id]
            self._emit("dsync.group.deleted", snapshot, ts)
            self._role_mappings.get(group.directory_id, {}).pop(group_id, None)
            for user_id in sorted(group.members):
                self._apply_role_mapping(self._users[user_id])
            return copy.deepcopy(snapshot)

    # ------------------------------------------------------------------ memberships

    def _membership(self, group_id: str, user_id: str) -> tuple[_Group, _User]:
        group, user = self._group(group_id), self._user(user_id)
        if group.directory_id != user.directory_id:
            raise ValueError(f"user {user_id!r} and group {group_id!r} belong to different directories")
        return group, user

    def _membership_event(self, event: str, group: _Group, user: _User) -> JsonDict:
        ts = self._tick()  # membership changes do NOT bump user/group updated_at (WorkOS known issue)
        data = {"directory_id": group.directory_id, "user": self._snapshot(user), "group": _group_snapshot(group)}
        self._emit(event, data, ts)
        return copy.deepcopy(data)

    def add_user_to_group(self, group_id: str, user_id: str) -> JsonDict | None:
        """Emit ``dsync.group.user_added``; returns its data, or None if already a member (no event)."""
        with self._lock:
            group, user = self._membership(group_id, user_id)
            if user_id in group.members:
                return None
            group.members.add(user_id)
            user.groups.add(group_id)
            data = self._membership_event("dsync.group.user_added", group, user)
            self._apply_role_mapping(user)
            return data

    def remove_user_from_group(self, group_id: str, user_id: str) -> JsonDict | None:
        """Emit ``dsync.group.user_removed``; returns its data, or None if not a member (no event)."""
        with self._lock:
            group, user = self._membership(group_id, user_id)
            if user_id not in group.members:
                return None
            group.members.discard(user_id)
            user.groups.discard(group_id)
            data = self._membership_event("dsync.group.user_removed", group, user)
            self._apply_role_mapping(user)
            return data

    # ------------------------------------------------------------------ events

    @property
    def events(self) -> list[JsonDict]:
        """Every event emitted so far, in emission order (deep copies: safe to mutate)."""
        with self._lock:
            return copy.deepcopy(self._events)

    @property
    def event_count(self) -> int:
        """Number of events emitted so far (cheaper than ``len(events)``)."""
        with self._lock:
            return len(self._events)

    def event_position(self, event_id: str) -> tuple[int, datetime] | None:
        """(index just past `event_id` in the history, its time), or None if no such event was emitted."""
        with self._lock:
            index = bisect.bisect_left(self._event_keys, ulid_part(event_id))
            if index < len(self._events) and self._events[index]["id"] == event_id:
                return index + 1, self._event_times[index]
            return None

    def events_between(
        self,
        *,
        start: int,
        created_from: datetime | None,
        created_until: datetime | None,
        types: frozenset[str],
        limit: int,
    ) -> list[JsonDict]:
        """Up to `limit` events of `types`, oldest first, from index `start`, created within the given bounds."""
        with self._lock:
            if created_from is not None:
                start = max(start, bisect.bisect_left(self._event_times, created_from))
            page: list[JsonDict] = []
            for index in range(start, len(self._events)):
                if created_until is not None and self._event_times[index] > created_until:
                    break
                if self._events[index]["event"] in types:
                    page.append(copy.deepcopy(self._events[index]))
                    if len(page) >= limit:
                        break
            return page

    def drain_events(self) -> list[JsonDict]:
        """Return the events emitted since the last drain; the full history stays in ``events``."""
        with self._lock:
            pending = copy.deepcopy(self._events[self._drained :])
            self._drained = len(self._events)
            return pending

    # ------------------------------------------------------------------ reads

    def directories(self) -> list[JsonDict]:
        """Live directories in creation order, in the ``dsync.activated`` data shape."""
        with self._lock:
            return [_directory_event_data(d, with_domains=True) for d in _by_creation(self._directories.values())]

    def get_directory(self, directory_id: str) -> JsonDict:
        """One live directory in the ``dsync.activated`` data shape (KeyError if unknown/deleted)."""
        with self._lock:
            return _directory_event_data(self._directory(directory_id), with_domains=True)

    def directory_ids(self) -> list[str]:
        """Live directory ids in creation order."""
        with self._lock:
            return [d.id for d in _by_creation(self._directories.values())]

    def directory_metadata(self, directory_id: str) -> JsonDict:
        """User/group counts as the API's ``Directory.metadata`` reports them."""
        with self._lock:
            self._directory(directory_id)
            users = [u for u in self._users.values() if u.directory_id == directory_id]
            active = sum(1 for u in users if u.state == "active")
            groups = sum(1 for g in self._groups.values() if g.directory_id == directory_id)
            return {"users": {"active": active, "inactive": len(users) - active}, "groups": groups}

    def user_ids(self, directory_id: str | None = None, group_id: str | None = None) -> list[str]:
        """Matching user ids in creation order; unknown filters match nothing."""
        with self._lock:
            return [u.id for u in self._select_users(directory_id, group_id)]

    def users(self, directory_id: str | None = None, group_id: str | None = None) -> list[JsonDict]:
        """Matching user snapshots in creation order; unknown filters match nothing."""
        with self._lock:
            return [self._snapshot(u) for u in self._select_users(directory_id, group_id)]

    def _select_users(self, directory_id: str | None, group_id: str | None) -> list[_User]:
        if group_id is not None:
            group = self._groups.get(group_id)
            candidates: Iterable[_User] = [self._users[uid] for uid in group.members] if group else []
        else:
            candidates = self._users.values()
        return _by_creation(u for u in candidates if directory_id is None or u.directory_id == directory_id)

    def get_user(self, user_id: str) -> JsonDict:
        """A user snapshot (KeyError if unknown or deleted)."""
        with self._lock:
            return self._snapshot(self._user(user_id))

    def group_ids(self, directory_id: str | None = None, user_id: str | None = None) -> list[str]:
        """Matching group ids in creation order; unknown filters match nothing."""
        with self._lock:
            return [g.id for g in self._select_groups(directory_id, user_id)]

    def groups(self, directory_id: str | None = None, user_id: str | None = None) -> list[JsonDict]:
        """Matching group snapshots in creation order; unknown filters match nothing."""
        with self._lock:
            return [_group_snapshot(g) for g in self._select_groups(directory_id, user_id)]

    def _select_groups(self, directory_id: str | None, user_id: str | None) -> list[_Group]:
        if user_id is not None:
            user = self._users.get(user_id)
            candidates: Iterable[_Group] = [self._groups[gid] for gid in user.groups] if user else []
        else:
            candidates = self._groups.values()
        return _by_creation(g for g in candidates if directory_id is None or g.directory_id == directory_id)

    def get_group(self, group_id: str) -> JsonDict:
        """A group snapshot (KeyError if unknown or deleted)."""
        with self._lock:
            return _group_snapshot(self._group(group_id))

    def members(self, group_id: str) -> set[str]:
        """User ids in a group (KeyError if the group is unknown)."""
        with self._lock:
            return set(self._group(group_id).members)

    def snapshot(self, directory_id: str) -> JsonDict:
        """The "truth" for one directory in the export format reconciliation tests diff against.

        A deleted directory yields ``directory: None`` and empty lists; an id the model never
        created raises KeyError (it is almost certainly a typo in a test).
        """
        with self._lock:
            directory = self._directories.get(directory_id)
            if directory is None:
                if directory_id not in self._deleted_directories:
                    raise KeyError(f"directory {directory_id!r} does not exist")
                return {"directory": None, "users": [], "groups": [], "memberships": []}
            users = sorted((u for u in self._users.values() if u.directory_id == directory_id), key=lambda u: u.id)
            groups = sorted((g for g in self._groups.values() if g.directory_id == directory_id), key=lambda g: g.id)
            return {
                "directory": {
                    "id": directory.id,
                    "organization_id": directory.organization_id,
                    "state": directory.state,
                    "name": directory.name,
                    "type": directory.type,
                    "tokens": [
                        {"id": t["id"], "token_suffix": t["token_suffix"], "created_at": t["created_at"]}
                        for t in sorted(self._tokens.values(), key=lambda t: str(t["id"]))
                        if t["directory_id"] == directory_id
                    ],
                },
                "users": [
                    {
                        "id": u.id,
                        "idp_id": u.idp_id,
                        "email": u.email,
                        "first_name": u.first_name,
                        "last_name": u.last_name,
                        "state": u.state,
                        "custom_attributes": copy.deepcopy(u.custom_attributes),
                        "role": u.role,
                        "roles": list(u.roles),
                    }
                    for u in users
                ],
                "groups": [{"id": g.id, "idp_id": g.idp_id, "name": g.name} for g in groups],
                "memberships": [
                    {"group_id": g.id, "user_id": user_id} for g in groups for user_id in sorted(g.members)
                ],
            }


_T = TypeVar("_T", _Directory, _User, _Group)


def _check_user_state(state: object) -> None:
    if state not in USER_STATES:
        raise ValueError(f"user state must be one of {sorted(USER_STATES)}, got {state!r}")


def _by_creation(items: Iterable[_T]) -> list[_T]:
    return sorted(items, key=lambda item: (item.created_at, item.id))
