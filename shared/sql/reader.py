"""The sink read back through its live views, in the shape of `dsync export` (`shared.read.reader.readable_state`),
so the two can be compared field by field (`shared.sql.verify`, the tests).

Timestamps are compared as instants: `comparable()` turns the export's ISO text and the sink's `timestamptz` into
the same UTC text. Directory tokens have no table in the sink and are left out of both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from shared.sql.rows import timestamp

_TIMESTAMPS = ("created_at", "updated_at")


def instant(value: Any) -> str | None:
    moment = timestamp(value)
    return moment.astimezone(UTC).isoformat(timespec="microseconds") if moment else None


def comparable(document: Mapping[str, Any]) -> dict[str, Any]:
    """An export document with its timestamps as UTC instants and without the directory's tokens."""
    directory = document.get("directory")
    if directory is not None:
        directory = {k: (instant(v) if k in _TIMESTAMPS else v) for k, v in directory.items() if k != "tokens"}
    return {
        "directory": directory,
        "users": [{k: (instant(v) if k in _TIMESTAMPS else v) for k, v in user.items()} for user in document["users"]],
        "groups": [
            {k: (instant(v) if k in _TIMESTAMPS else v) for k, v in group.items()} for group in document["groups"]
        ],
        "memberships": [dict(m) for m in document["memberships"]],
    }


class SinkReader:
    def __init__(self, conn: psycopg.Connection[Any], *, schema: str, environment: str) -> None:
        self._conn = conn
        self._schema = schema
        self._environment = environment

    def _rows(self, query: str, *params: Any) -> Iterator[dict[str, Any]]:
        statement = sql.SQL(query).format(schema=sql.Identifier(self._schema))
        with self._conn.cursor() as cursor:
            cursor.execute(statement, (self._environment, *params))
            names = [column.name for column in cursor.description or ()]
            for row in cursor:
                yield dict(zip(names, row, strict=True))

    def directory_ids(self) -> list[str]:
        """Every directory the sink has a row for, deleted ones included."""
        rows = self._rows("SELECT id FROM {schema}.directories WHERE environment = %s ORDER BY id")
        return [str(row["id"]) for row in rows]

    def export(self, directory_id: str) -> dict[str, Any]:
        """The directory's live rows as `comparable(export)` would show them."""
        directories = list(
            self._rows(
                "SELECT id, organization_id, name, type, state, created_at, updated_at FROM {schema}.directories_live"
                " WHERE environment = %s AND id = %s",
                directory_id,
            )
        )
        deleted = list(
            self._rows(
                "SELECT 1 FROM {schema}.directories WHERE environment = %s AND id = %s AND deleted_at IS NOT NULL",
                directory_id,
            )
        )
        if deleted:
            return {"directory": None, "users": [], "groups": [], "memberships": []}
        users = self._rows(
            "SELECT id, directory_id, organization_id, idp_id, email, first_name, last_name, state,"
            " custom_attributes, role, roles, created_at, updated_at FROM {schema}.users_live"
            " WHERE environment = %s AND directory_id = %s ORDER BY id",
            directory_id,
        )
        groups = self._rows(
            "SELECT id, directory_id, organization_id, idp_id, name, created_at, updated_at FROM {schema}.groups_live"
            " WHERE environment = %s AND directory_id = %s ORDER BY id",
            directory_id,
        )
        memberships = self._rows(
            "SELECT group_id, user_id FROM {schema}.memberships_live WHERE environment = %s AND directory_id = %s"
            " ORDER BY group_id, user_id",
            directory_id,
        )
        return {
            "directory": _instants(directories[0]) if directories else None,
            "users": [_instants({**user, "roles": list(user["roles"] or [])}) for user in users],
            "groups": [_instants(group) for group in groups],
            "memberships": [{"group_id": m["group_id"], "user_id": m["user_id"]} for m in memberships],
        }


def _instants(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (instant(v) if k in _TIMESTAMPS and isinstance(v, datetime | str) else v) for k, v in row.items()}
