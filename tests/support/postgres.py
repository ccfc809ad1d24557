"""A real PostgreSQL for the tests (never a mock): one embedded server per test session, per xdist worker, started
the first time a test asks for it (`dsync.local.embedded_postgres`), in the session's temporary directory.

Each test that writes gets a schema of its own (`sql_schema`), migrated and dropped afterwards, so tests share the
server and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dsync.local.embedded_postgres import EmbeddedPostgres
from shared.sql.migrate import migrate


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedPostgres.start(tmp_path_factory.mktemp("postgres"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pg(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection in autocommit mode: the sink and the migrations open their own transactions, and no test keeps
    a lock that would hold up the schema's drop."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


def fresh_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def sql_schema(postgres_url: str) -> Iterator[str]:
    """A migrated schema of this test's own."""
    name = fresh_schema_name()
    with psycopg.connect(postgres_url) as conn:
        migrate(conn, name)
        conn.commit()
    try:
        yield name
    finally:
        drop_schema(postgres_url, name)


def drop_schema(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
