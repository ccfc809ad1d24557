"""Schema migrations: numbered SQL files under `shared/sql/migrations/`, applied in order, each once.

A small runner rather than a kept tool (Alembic, sqitch): the sink owns a handful of tables, the Lambda bundle stays
small, and the rules fit in one screen:

- `NNNN_name.sql` files, applied in number order, each with its row in `<schema>.schema_migrations` (number,
  name, sha256 of the text), all pending ones in one transaction (PostgreSQL's DDL is transactional), so a failed
  migration leaves nothing half done;
- idempotent: what is recorded is skipped, so `dsync sql migrate` can run on every deploy;
- history is immutable: a recorded migration whose file changed (another checksum) or disappeared stops the run
  before anything is applied, so an upgrade never runs against a schema it does not describe;
- one runner at a time: a transaction-scoped advisory lock per schema (two deploys racing wait for each other);
- upgrades are additive (new columns, indexes, views): a migration never drops a table of data.

`{schema}` in a file is replaced by the schema's quoted identifier; nothing else is interpolated.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_SCHEMA = "workos_dsync"


class MigrationError(Exception):
    """The database's migration history does not match the files (nothing was applied)."""


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statement(self, schema: str) -> str:
        return self.text.replace("{schema}", sql.Identifier(schema).as_string())


def validate_schema_name(schema: str) -> str:
    """Lower-case letters, digits and underscores, as an unquoted PostgreSQL name would be; raises ValueError."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"schema name {schema!r}: use lower-case letters, digits and _ (at most 63, not a digit first)"
        )
    return schema


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        migrations.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    numbers = [migration.number for migration in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise MigrationError(f"migration numbers must run 1, 2, 3... without gaps: {numbers}")
    return migrations


@dataclass(frozen=True)
class MigrationReport:
    schema: str
    applied: list[str]
    already: list[str]

    def as_dict(self) -> dict[str, object]:
        return {"schema": self.schema, "applied": self.applied, "already_applied": self.already}


def migrate(
    conn: psycopg.Connection[Any],
    schema: str = DEFAULT_SCHEMA,
    *,
    migrations: list[Migration] | None = None,
    target: int | None = None,
) -> MigrationReport:
    """Apply every pending migration (up to `target`) to `schema`; returns what it applied and what was there."""
    validate_schema_name(schema)
    migrations = load_migrations() if migrations is None else migrations
    wanted = [m for m in migrations if target is None or m.number <= target]
    schema_id = sql.Identifier(schema)
    with conn.transaction():
        # One runner per schema at a time: the lock is held until this transaction ends.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"dsync-migrate:{schema}",))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema_id))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations (number integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(schema_id)
        )
        recorded = {
            int(number): (str(name), str(checksum))
            for number, name, checksum in conn.execute(
                sql.SQL("SELECT number, name, checksum FROM {}.schema_migrations").format(schema_id)
            ).fetchall()
        }
        known = {m.number: m for m in migrations}
        for number, (name, checksum) in sorted(recorded.items()):
            migration = known.get(number)
            if migration is None:
                raise MigrationError(
                    f"{schema}: migration {number:04d}_{name} is recorded but has no file: this code is older "
                    "than the database's schema"
                )
            if migration.checksum != checksum:
                raise MigrationError(
                    f"{schema}: migration {number:04d}_{name} changed after it was applied (checksum differs): "
                    "add a new migration instead of editing an applied one"
                )
        applied: list[str] = []
        for migration in wanted:
            if migration.number in recorded:
                continue
            conn.execute(migration.statement(schema).encode())
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_migrations (number, name, checksum) VALUES (%s, %s, %s)").format(
                    schema_id
                ),
                (migration.number, migration.name, migration.checksum),
            )
            applied.append(f"{migration.number:04d}_{migration.name}")
    already = [f"{n:04d}_{name}" for n, (name, _) in sorted(recorded.items())]
    return MigrationReport(schema=schema, applied=applied, already=already)


def applied_numbers(conn: psycopg.Connection[Any], schema: str) -> list[int]:
    """The recorded migrations of `schema` (empty when it was never migrated)."""
    exists = conn.execute("SELECT to_regclass(%s)", (f"{schema}.schema_migrations",)).fetchone()
    if not exists or exists[0] is None:
        return []
    rows = conn.execute(
        sql.SQL("SELECT number FROM {}.schema_migrations ORDER BY number").format(sql.Identifier(schema))
    ).fetchall()
    return [int(row[0]) for row in rows]
