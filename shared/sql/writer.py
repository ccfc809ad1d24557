"""The sink's one write rule, the mirror's max-register in SQL: every write is an upsert that lands only when its
version is newer.

    INSERT INTO users AS t (...) VALUES (...)
    ON CONFLICT (environment, id) DO UPDATE SET ... WHERE t.version < EXCLUDED.version

A stale or duplicate write matches no row and changes nothing; a deletion is a row (a tombstone) with a higher
version, so a late stale upsert cannot resurrect it. Whatever the order, duplicates and replays, every row ends at
its highest version: the feed, a backfill racing it, and a redelivered batch all converge.

One call is one transaction (a batch of the feed, a page of a backfill): all of it lands or none. Rows are
collapsed to the newest per key, then written table by table in key order, so two transactions touching the same
rows lock them in the same order and never deadlock; concurrent transactions on one key resolve by version,
whatever the commit order (PostgreSQL re-checks the `WHERE` against the committed row).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from shared.sql.migrate import validate_schema_name
from shared.sql.rows import DirectoryRow, GroupRow, MembershipRow, SinkRow, UserRow, deleted_at, row_key

DEFAULT_ENVIRONMENT = "default"
TABLE_ORDER = ("directory", "group", "user", "membership")  # the lock order of every transaction


@dataclass
class WriteReport:
    """Rows written (their version was newer) and rows that changed nothing (stale or duplicate), per table."""

    written: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)

    def add(self, other: WriteReport) -> None:
        self.written.update(other.written)
        self.unchanged.update(other.unchanged)

    @property
    def total_written(self) -> int:
        return sum(self.written.values())

    @property
    def total_unchanged(self) -> int:
        return sum(self.unchanged.values())


_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # table: (its columns after `environment`, its key columns after `environment`)
    "directory": (
        ("id", "organization_id", "name", "type", "state", "created_at", "updated_at", "version", "deleted_at"),
        ("id",),
    ),
    "user": (
        (
            "id",
            "directory_id",
            "organization_id",
            "idp_id",
            "email",
            "first_name",
            "last_name",
            "state",
            "role",
            "roles",
            "custom_attributes",
            "created_at",
            "updated_at",
            "version",
            "deleted_at",
        ),
        ("id",),
    ),
    "group": (
        (
            "id",
            "directory_id",
            "organization_id",
            "idp_id",
            "name",
            "created_at",
            "updated_at",
            "version",
            "deleted_at",
        ),
        ("id",),
    ),
    "membership": (("group_id", "user_id", "directory_id", "version", "deleted_at"), ("group_id", "user_id")),
}
TABLES = {"directory": "directories", "user": "users", "group": "groups", "membership": "memberships"}


def upsert_statement(schema: str, kind: str) -> sql.Composed:
    columns, keys = _COLUMNS[kind]
    all_columns = ("environment", *columns)
    updated = [column for column in columns if column not in keys]
    return sql.SQL(
        "INSERT INTO {table} AS t ({columns}) VALUES ({values}) "
        "ON CONFLICT ({keys}) DO UPDATE SET {updates}, synced_at = now() "
        "WHERE t.version < EXCLUDED.version"
    ).format(
        table=sql.Identifier(schema, TABLES[kind]),
        columns=sql.SQL(", ").join(map(sql.Identifier, all_columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(all_columns)),
        keys=sql.SQL(", ").join(map(sql.Identifier, ("environment", *keys))),
        updates=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column)) for column in updated),
    )


def _params(environment: str, row: SinkRow) -> tuple[Any, ...]:
    gone = deleted_at(row.version) if row.deleted else None
    if isinstance(row, MembershipRow):
        return (environment, row.group_id, row.user_id, row.directory_id, row.version, gone)
    if isinstance(row, UserRow):
        return (
            environment,
            row.id,
            row.directory_id,
            row.organization_id,
            row.idp_id,
            row.email,
            row.first_name,
            row.last_name,
            row.state,
            row.role,
            list(row.roles),
            Jsonb(dict(row.custom_attributes)),
            row.created_at,
            row.updated_at,
            row.version,
            gone,
        )
    if isinstance(row, GroupRow):
        return (
            environment,
            row.id,
            row.directory_id,
            row.organization_id,
            row.idp_id,
            row.name,
            row.created_at,
            row.updated_at,
            row.version,
            gone,
        )
    assert isinstance(row, DirectoryRow)
    return (
        environment,
        row.id,
        row.organization_id,
        row.name,
        row.type,
        row.state,
        row.created_at,
        row.updated_at,
        row.version,
        gone,
    )


def newest_per_key(rows: Iterable[SinkRow]) -> dict[tuple[str, ...], SinkRow]:
    """One row per key, the highest version (equal versions are the same write: the first is kept)."""
    newest: dict[tuple[str, ...], SinkRow] = {}
    for row in rows:
        key = row_key(row)
        current = newest.get(key)
        if current is None or current.version < row.version:
            newest[key] = row
    return newest


class SqlSink:
    """Writes rows of one WorkOS environment into one schema, by the rule above."""

    def __init__(self, conn: psycopg.Connection[Any], *, schema: str, environment: str = DEFAULT_ENVIRONMENT) -> None:
        if not environment:
            raise ValueError("the environment label must not be empty")
        self._conn = conn
        self.schema = validate_schema_name(schema)
        self.environment = environment
        self._statements = {kind: upsert_statement(schema, kind) for kind in TABLE_ORDER}

    @property
    def connection(self) -> psycopg.Connection[Any]:
        return self._conn

    def write(self, rows: Iterable[SinkRow]) -> WriteReport:
        """One transaction: every row lands if newer, or nothing does (the error propagates)."""
        by_table: dict[str, list[tuple[tuple[str, ...], SinkRow]]] = {kind: [] for kind in TABLE_ORDER}
        for key, row in newest_per_key(rows).items():
            by_table[key[0]].append((key, row))
        report = WriteReport()
        with self._conn.transaction(), self._conn.cursor() as cursor:
            for kind in TABLE_ORDER:
                ordered: Sequence[tuple[tuple[str, ...], SinkRow]] = sorted(by_table[kind], key=lambda pair: pair[0])
                if not ordered:
                    continue
                cursor.executemany(self._statements[kind], [_params(self.environment, row) for _, row in ordered])
                written = max(cursor.rowcount, 0)
                report.written[kind] += written
                report.unchanged[kind] += len(ordered) - written
        return report
