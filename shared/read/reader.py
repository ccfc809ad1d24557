"""Read library for apps: the directory mirror as the rest of your SaaS should see it.

Readable rules, applied everywhere (export included): a deleted directory has no users, groups or memberships;
deleted users and groups are absent; inactive (suspended) users are present with `state: "inactive"`; a membership
counts only between a live user and a live group; a directory lists its active (unrevoked) tokens.

    reader = DirectoryReader(DirectoryTable(table_name))
    reader.find_user_by_email("directory_01…", "Ada@Example.com")
    reader.find_users_by_idp_id("directory_01…", "00u1a2b3")        # a person WorkOS recreated with a new id
    reader.organization_directories("org_01…")                       # the tenant as your app knows it
    reader.find_user_in_organization("org_01…", email="ada@example.com")
    for user in reader.iter_live_users("directory_01…"): ...

Every lookup is a key or index query, never a scan.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shared.model import records, schema
from shared.read.ports import ReadTable

Item = Mapping[str, Any]


def readable_state(directory_id: str, items: Iterable[Item]) -> dict[str, Any]:
    """The export document of one directory from its partition's items (sorted for stable diffs)."""
    directory: Item | None = None
    users: dict[str, Item] = {}
    groups: dict[str, Item] = {}
    memberships: list[tuple[str, str]] = []
    tokens: list[Item] = []
    for item in items:
        if item.get(schema.DELETED_ATTRIBUTE):
            if item[schema.SORT_KEY] == schema.DIRECTORY_SK:
                return {"directory": None, "users": [], "groups": [], "memberships": []}
            continue
        sort_key = str(item[schema.SORT_KEY])
        if sort_key == schema.DIRECTORY_SK:
            directory = item
        elif sort_key.startswith(schema.USER_PREFIX):
            users[str(item["id"])] = item
        elif sort_key.startswith(schema.GROUP_PREFIX):
            groups[str(item["id"])] = item
        elif sort_key.startswith(schema.MEMBER_PREFIX):
            memberships.append((str(item["group_id"]), str(item["user_id"])))
        elif sort_key.startswith(schema.TOKEN_PREFIX):
            tokens.append(item)
    return {
        "directory": _with_tokens(records.readable_directory(directory), tokens) if directory else None,
        "users": [records.readable_user(users[user_id]) for user_id in sorted(users)],
        "groups": [records.readable_group(groups[group_id]) for group_id in sorted(groups)],
        "memberships": [
            {"group_id": group_id, "user_id": user_id}
            for group_id, user_id in sorted(memberships)
            if group_id in groups and user_id in users
        ],
    }


def _with_tokens(directory: dict[str, Any], tokens: Iterable[Item]) -> dict[str, Any]:
    directory["tokens"] = sorted((records.readable_token(item) for item in tokens), key=lambda token: str(token["id"]))
    return directory


@dataclass(frozen=True)
class UserPage:
    users: list[dict[str, Any]]
    next_cursor: str | None


class DirectoryReader:
    def __init__(self, table: ReadTable) -> None:
        self._table = table

    def directory(self, directory_id: str) -> dict[str, Any] | None:
        """The directory with its active tokens, or None if unknown or deleted."""
        item = self._table.get_item(records.directory_key(directory_id))
        if not item or item.get(schema.DELETED_ATTRIBUTE):
            return None
        tokens = self._table.query_partition(directory_id, schema.TOKEN_PREFIX, consistent=False)
        return _with_tokens(
            records.readable_directory(item), (t for t in tokens if not t.get(schema.DELETED_ATTRIBUTE))
        )

    def organization_directories(self, organization_id: str) -> list[dict[str, Any]]:
        """The organization's live directories (an app knows its tenant by organization, not directory), by id."""
        items = self._table.query_index(schema.LOOKUP_INDEX, schema.organization_lookup_key(organization_id))
        live = [item for item in items if not item.get(schema.DELETED_ATTRIBUTE)]
        return sorted((records.readable_directory(item) for item in live), key=lambda d: str(d["id"]))

    def find_users_by_idp_id(self, directory_id: str, idp_id: str) -> list[dict[str, Any]]:
        """Live users with this IdP id (exact case, as WorkOS stores it), by id. WorkOS gives a returning person a
        new directory user id; the IdP id stays, so this relinks them. Usually one user, never a scan."""
        if self._directory_deleted(directory_id):
            return []
        items = self._table.query_index(schema.LOOKUP_INDEX, schema.idp_lookup_key(directory_id, idp_id))
        live = [item for item in items if not item.get(schema.DELETED_ATTRIBUTE)]
        return sorted((records.readable_user(item) for item in live), key=lambda user: str(user["id"]))

    def find_user_in_organization(
        self, organization_id: str, *, email: str | None = None, idp_id: str | None = None
    ) -> dict[str, Any] | None:
        """A live user of any of the organization's directories, by email (case-insensitive) or IdP id; the
        lowest directory id, then the lowest user id, wins (stable). One index query per directory."""
        if (email is None) == (idp_id is None):
            raise ValueError("give exactly one of email or idp_id")
        for directory in self.organization_directories(organization_id):
            if email is not None:
                user = self.find_user_by_email(directory["id"], email)
            else:
                found = self.find_users_by_idp_id(directory["id"], str(idp_id))
                user = found[0] if found else None
            if user is not None:
                return user
        return None

    def export(self, directory_id: str) -> dict[str, Any]:
        return readable_state(directory_id, self._table.query_partition(directory_id, ""))

    def get_user(self, directory_id: str, user_id: str) -> dict[str, Any] | None:
        if self._directory_deleted(directory_id):
            return None
        item = self._table.get_item(records.user_key(directory_id, user_id))
        return records.readable_user(item) if item and not item.get(schema.DELETED_ATTRIBUTE) else None

    def find_user_by_email(self, directory_id: str, email: str) -> dict[str, Any] | None:
        """Case-insensitive; if the IdP has the address twice, the lowest user id wins (stable)."""
        if self._directory_deleted(directory_id):
            return None
        candidates = sorted(
            self._table.query_index(schema.USERS_BY_EMAIL_INDEX, schema.email_key(directory_id, email)),
            key=lambda item: str(item["id"]),
        )
        live = [item for item in candidates if not item.get(schema.DELETED_ATTRIBUTE)]
        return records.readable_user(live[0]) if live else None

    def group_members(self, directory_id: str, group_id: str) -> list[dict[str, Any]]:
        if self._directory_deleted(directory_id) or not self._live(records.group_key(directory_id, group_id)):
            return []
        user_ids = [user_id for _, user_id in self._table.live_group_memberships(directory_id, group_id)]
        return self._live_entities([records.user_key(directory_id, u) for u in user_ids], records.readable_user)

    def user_groups(self, directory_id: str, user_id: str) -> list[dict[str, Any]]:
        if self._directory_deleted(directory_id) or not self._live(records.user_key(directory_id, user_id)):
            return []
        group_ids = [group_id for group_id, _ in self._table.live_user_memberships(directory_id, user_id)]
        return self._live_entities([records.group_key(directory_id, g) for g in group_ids], records.readable_group)

    def live_users(self, directory_id: str, *, page_size: int = 100, cursor: str | None = None) -> UserPage:
        """One page of live users (active and inactive) in id order; pass `next_cursor` back for the next page."""
        if self._directory_deleted(directory_id):
            return UserPage([], None)
        start_after = base64.urlsafe_b64decode(cursor.encode()).decode() if cursor else None
        users: list[dict[str, Any]] = []
        last_seen: str | None = None
        for item in self._table.query_partition(
            directory_id, schema.USER_PREFIX, consistent=False, start_after=start_after
        ):
            last_seen = str(item[schema.SORT_KEY])
            if not item.get(schema.DELETED_ATTRIBUTE):
                users.append(records.readable_user(item))
                if len(users) == page_size:
                    break
        else:
            last_seen = None
        next_cursor = base64.urlsafe_b64encode(last_seen.encode()).decode() if last_seen else None
        return UserPage(users, next_cursor)

    def iter_live_users(self, directory_id: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            page = self.live_users(directory_id, page_size=page_size, cursor=cursor)
            yield from page.users
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _directory_deleted(self, directory_id: str) -> bool:
        item = self._table.get_item(records.directory_key(directory_id))
        return bool(item and item.get(schema.DELETED_ATTRIBUTE))

    def _live(self, key: records.ItemKey) -> bool:
        item = self._table.get_item(key)
        return item is not None and not item.get(schema.DELETED_ATTRIBUTE)

    def _live_entities(
        self, keys: list[records.ItemKey], readable: Callable[[Item], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        items = self._table.batch_get(keys)
        live = [item for item in items if not item.get(schema.DELETED_ATTRIBUTE)]
        return sorted((readable(item) for item in live), key=lambda entity: str(entity["id"]))


def dumps(document: Mapping[str, Any]) -> str:
    """Stable JSON for diffs."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
