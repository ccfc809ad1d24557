"""`dsync sql` from the command line against a real PostgreSQL."""

from __future__ import annotations

import json

import pytest

from dsync.cli import main
from tests.support.postgres import drop_schema, fresh_schema_name

pytestmark = pytest.mark.integration


def test_migrate_is_idempotent(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    schema = fresh_schema_name()
    try:
        assert main(["sql", "migrate", "--database-url", postgres_url, "--schema", schema]) == 0
        first = json.loads(capsys.readouterr().out)
        assert first["applied"] and first["already_applied"] == []
        assert main(["sql", "migrate", "--database-url", postgres_url, "--schema", schema]) == 0
        second = json.loads(capsys.readouterr().out)
        assert second == {"schema": schema, "applied": [], "already_applied": first["applied"]}
    finally:
        drop_schema(postgres_url, schema)


def test_migrate_says_why_it_cannot(capsys: pytest.CaptureFixture[str], postgres_url: str) -> None:
    assert main(["sql", "migrate", "--database-url", postgres_url, "--schema", "Bad-Name"]) == 1
    assert "schema name 'Bad-Name'" in capsys.readouterr().err
    unreachable = "postgresql://nobody@/postgres?host=/nonexistent-socket-dir"
    assert main(["sql", "migrate", "--database-url", unreachable]) == 1
    assert "cannot connect to the sink's database" in capsys.readouterr().err
