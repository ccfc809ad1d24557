"""Migrations against a real PostgreSQL: idempotent, all or nothing, history immutable, upgrades keep the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from shared.sql.migrate import Migration, MigrationError, applied_numbers, load_migrations, migrate
from tests.support.postgres import drop_schema, fresh_schema_name

pytestmark = pytest.mark.integration


@pytest.fixture
def schema(postgres_url: str) -> Any:
    name = fresh_schema_name()
    yield name
    drop_schema(postgres_url, name)


def relations(conn: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    ).fetchall()
    return {str(row[0]) for row in rows}


def test_a_fresh_schema_gets_every_table_and_view_and_a_second_run_changes_nothing(
    pg: psycopg.Connection[Any], schema: str
) -> None:
    first = migrate(pg, schema)
    pg.commit()
    assert first.applied == [f"{m.number:04d}_{m.name}" for m in load_migrations()]
    assert {"directories", "users", "groups", "memberships", "schema_migrations"} <= relations(pg, schema)
    assert {"directories_live", "users_live", "groups_live", "memberships_live"} <= relations(pg, schema)
    assert {"organizations", "group_memberships"} <= relations(pg, schema)

    second = migrate(pg, schema)
    pg.commit()
    assert second.applied == []
    assert second.already == first.applied
    assert applied_numbers(pg, schema) == [m.number for m in load_migrations()]


def test_an_upgrade_keeps_every_row(pg: psycopg.Connection[Any], schema: str) -> None:
    """Migrate to the first migration, write rows, upgrade to the last: the rows are there and readable live."""
    migrate(pg, schema, target=1)
    pg.execute(
        sql.SQL(
            "INSERT INTO {}.users (environment, id, directory_id, email, version) VALUES (%s, %s, %s, %s, %s)"
        ).format(sql.Identifier(schema)),
        ("default", "directory_user_1", "directory_1", "ada@example.com", 2),
    )
    pg.commit()
    assert applied_numbers(pg, schema) == [1]
    report = migrate(pg, schema)
    pg.commit()
    assert report.applied and report.already == ["0001_tables"]
    live = pg.execute(sql.SQL("SELECT id, email FROM {}.users_live").format(sql.Identifier(schema))).fetchall()
    assert live == [("directory_user_1", "ada@example.com")]


def test_a_failing_migration_leaves_nothing_half_done(pg: psycopg.Connection[Any], schema: str) -> None:
    good = load_migrations()
    broken = [*good, Migration(len(good) + 1, "broken", "CREATE TABLE {schema}.half (a int); SELECT nonsense;")]
    with pytest.raises(psycopg.errors.UndefinedColumn):
        migrate(pg, schema, migrations=broken)
    pg.rollback()
    assert applied_numbers(pg, schema) == []  # not even the good ones: one transaction
    migrate(pg, schema)
    pg.commit()
    assert "half" not in relations(pg, schema)


def test_an_edited_or_missing_migration_stops_the_run(pg: psycopg.Connection[Any], schema: str) -> None:
    migrate(pg, schema)
    pg.commit()
    edited = [Migration(m.number, m.name, m.text + "\n-- edited") if m.number == 1 else m for m in load_migrations()]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(pg, schema, migrations=edited)
    pg.rollback()
    with pytest.raises(MigrationError, match="has no file"):
        migrate(pg, schema, migrations=load_migrations()[:1])
    pg.rollback()


def test_migration_files_are_numbered_without_gaps(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="without gaps"):
        load_migrations(tmp_path)
    (tmp_path / "3_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_name"):
        load_migrations(tmp_path)


@pytest.mark.parametrize("name", ["Upper", "1abc", "a-b", "a;drop", "", "x" * 64])
def test_schema_names_are_plain_identifiers(pg: psycopg.Connection[Any], name: str) -> None:
    with pytest.raises(ValueError, match="schema name"):
        migrate(pg, name)
