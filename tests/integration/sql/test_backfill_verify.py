"""Backfill and verify against the mirror's real adapter (moto) and a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from dsync.local.provision import LocalResources
from shared.adapters.dynamodb import DirectoryTable
from shared.sql.backfill import backfill
from shared.sql.verify import verify
from shared.sql.writer import SqlSink
from tests.support import dsync_events as ev
from tests.support import streams as s

pytestmark = pytest.mark.integration


def mirror_with_a_directory(aws: LocalResources) -> DirectoryTable:
    table = DirectoryTable(aws.table_name)
    for record in (
        s.directory_item(),
        s.user_item("directory_user_1"),
        s.user_item("directory_user_2", state="inactive"),
        s.user_item("directory_user_3"),
        s.group_item(),
        s.membership_item("directory_group_1", "directory_user_1"),
        s.membership_item("directory_group_1", "directory_user_2"),
    ):
        table.put_if_newer(record)
    table.put_if_newer(s.user_tombstone("directory_user_3"))
    return table


def test_backfill_then_verify_equal_then_what_differs_is_named(
    aws: LocalResources, pg: psycopg.Connection[Any], sql_schema: str
) -> None:
    table = mirror_with_a_directory(aws)
    sink = SqlSink(pg, schema=sql_schema, environment="production")
    report = backfill(table, sink)
    assert report.as_dict()["rows_read"] == 7 and report.totals.total_written == 7
    first = verify(table, pg, schema=sql_schema, environment="production")
    assert first.as_dict()["different"] == 0
    assert first.directories[0].mirror_counts == {
        "users_active": 1,
        "users_inactive": 1,
        "groups": 1,
        "memberships": 2,
    }

    users = sql.Identifier(sql_schema, "users")
    pg.execute(sql.SQL("UPDATE {} SET last_name = 'Tampered' WHERE id = 'directory_user_1'").format(users))
    pg.execute(sql.SQL("UPDATE {} SET deleted_at = now() WHERE id = 'directory_user_2'").format(users))
    pg.execute(
        sql.SQL("INSERT INTO {} (environment, id, directory_id, version) VALUES ('production', 'ghost', %s, 2)").format(
            users
        ),
        (ev.DIRECTORY,),
    )
    [verdict] = verify(table, pg, schema=sql_schema, environment="production").different
    assert verdict.differences["users"]["changed"] == {"directory_user_1": ["last_name"]}
    assert verdict.differences["users"]["missing_in_sink"] == ["directory_user_2"]
    assert verdict.differences["users"]["extra_in_sink"] == ["ghost"]
    assert verdict.differences["memberships"]["missing_in_sink"] == [["directory_group_1", "directory_user_2"]]

    # A backfill repairs what a newer version can: the ghost (no mirror item) is pruned to a tombstone.
    backfill(table, sink)
    [verdict] = verify(table, pg, schema=sql_schema, environment="production").different
    assert set(verdict.differences["users"]["changed"]) | set(verdict.differences["users"]["missing_in_sink"]) == {
        "directory_user_1",
        "directory_user_2",
    }  # rows tampered at the same version stay: the rule never rewrites an equal version
    assert verdict.differences["users"]["extra_in_sink"] == []


def test_backfill_resumes_after_the_last_whole_directory(
    aws: LocalResources, pg: psycopg.Connection[Any], sql_schema: str
) -> None:
    table = mirror_with_a_directory(aws)
    other = "directory_02OTHER"
    table.put_if_newer(s.directory_item(directory_id=other))
    table.put_if_newer(s.user_item("directory_user_9", directory_id=other))
    sink = SqlSink(pg, schema=sql_schema, environment="production")
    calls: list[str] = []

    def interrupt_in_the_second(directory_id: str, rows: int, done: int) -> None:
        calls.append(directory_id)
        if done == 1 and directory_id == other:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backfill(table, sink, run="night", progress=interrupt_in_the_second)
    resumed = backfill(table, sink, run="night")
    assert [d.skipped for d in resumed.directories] == [True, False]
    again = backfill(table, sink, run="night")  # the completed run cleared its records: a fresh copy
    assert [d.skipped for d in again.directories] == [False, False]
    assert verify(table, pg, schema=sql_schema, environment="production").as_dict()["different"] == 0


def test_the_scheduled_verify_counts_directories_that_differ(
    aws: LocalResources,
    pg: psycopg.Connection[Any],
    sql_schema: str,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import boto3

    from functions.sql_verify import handler as verify_handler
    from tests.support.lambda_context import lambda_context

    table = mirror_with_a_directory(aws)
    arn = boto3.client("secretsmanager").create_secret(Name="sql-url", SecretString=postgres_url)["ARN"]
    for name, value in {
        "SQL_SINK_SECRET_ID": arn,
        "SQL_SCHEMA": sql_schema,
        "SQL_ENVIRONMENT": "production",
        "SQL_VERIFY_SETTLE_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    verify_handler.settings.cache_clear()
    try:
        assert verify_handler.handler({}, lambda_context()) == {"checked": 1, "equal": 0, "different": 1}
        assert '"SqlVerifyDirectoriesDifferent":[1.0]' in capsys.readouterr().out.replace(" ", "")
        backfill(table, SqlSink(pg, schema=sql_schema, environment="production"))
        assert verify_handler.handler({}, lambda_context()) == {"checked": 1, "equal": 1, "different": 0}
    finally:
        verify_handler.settings.cache_clear()
