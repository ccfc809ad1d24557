"""The SQL sink handler: the table's stream on moto into a real PostgreSQL; a database that is down fails the batch
(Lambda retries it) and the next batch after it is back finds it through the secret."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest

from dsync.local.provision import LocalResources
from functions.sql_sink import handler as sink_handler
from shared.adapters.dynamodb import DirectoryTable
from shared.read.reader import DirectoryReader
from shared.sql.reader import SinkReader, comparable
from tests.support import dsync_events as ev
from tests.support import streams as s
from tests.support.lambda_context import lambda_context

pytestmark = pytest.mark.integration


@pytest.fixture
def sink_env(aws: LocalResources, sql_schema: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    arn = boto3.client("secretsmanager").create_secret(Name="sql-sink-url", SecretString=postgres_url)["ARN"]
    monkeypatch.setenv("SQL_SINK_SECRET_ID", arn)
    monkeypatch.setenv("SQL_SCHEMA", sql_schema)
    monkeypatch.setenv("SQL_ENVIRONMENT", "production")
    for cached in (sink_handler.settings, sink_handler.secret):
        cached.cache_clear()
    sink_handler.connections.failed()
    yield arn
    sink_handler.connections.failed()
    for cached in (sink_handler.settings, sink_handler.secret):
        cached.cache_clear()


def stream_event(aws: LocalResources, start: int = 0) -> dict[str, Any]:
    return {"Records": s.read_stream(aws.table_stream_arn)[start:]}


def test_the_stream_reaches_the_sink_equal_to_the_export(
    aws: LocalResources, sink_env: str, pg: psycopg.Connection[Any], sql_schema: str
) -> None:
    table = DirectoryTable(aws.table_name)
    for record in (s.directory_item(), s.user_item(), s.group_item(), s.membership_item()):
        table.put_if_newer(record)
    boto3.resource("dynamodb").Table(aws.table_name).put_item(Item=s.reconcile_item())  # not the sink's
    table.put_if_newer(s.user_item("directory_user_2", state="inactive"))
    table.put_if_newer(s.user_tombstone("directory_user_2"))

    assert sink_handler.handler(stream_event(aws), lambda_context()) == {"batchItemFailures": []}
    export = DirectoryReader(table).export(ev.DIRECTORY)
    reader = SinkReader(pg, schema=sql_schema, environment="production")
    assert reader.export(ev.DIRECTORY) == comparable(export)
    assert [u["id"] for u in export["users"]] == ["directory_user_1"]


def test_a_database_down_fails_the_batch_and_nothing_is_lost(
    aws: LocalResources, sink_env: str, postgres_url: str, pg: psycopg.Connection[Any], sql_schema: str
) -> None:
    secrets = boto3.client("secretsmanager")
    secrets.put_secret_value(SecretId=sink_env, SecretString="postgresql://x@/postgres?host=/nonexistent-socket-dir")
    DirectoryTable(aws.table_name).put_if_newer(s.user_item())
    with pytest.raises(psycopg.OperationalError):
        sink_handler.handler(stream_event(aws), lambda_context())
    assert SinkReader(pg, schema=sql_schema, environment="production").export(ev.DIRECTORY)["users"] == []

    secrets.put_secret_value(SecretId=sink_env, SecretString=postgres_url)  # back (a rotated secret, say)
    sink_handler.secret.cache_clear()  # as 30 s later: a failed connection re-reads the secret at most that often
    assert sink_handler.handler(stream_event(aws), lambda_context()) == {"batchItemFailures": []}
    [user] = SinkReader(pg, schema=sql_schema, environment="production").export(ev.DIRECTORY)["users"]
    assert user["id"] == "directory_user_1"


def test_unreadable_records_are_counted_and_skipped(
    aws: LocalResources, sink_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    DirectoryTable(aws.table_name).put_if_newer(s.user_item())
    event = stream_event(aws)
    event["Records"].insert(0, {"eventName": "INSERT", "dynamodb": {"Keys": "not a map"}})
    assert sink_handler.handler(event, lambda_context()) == {"batchItemFailures": []}
    assert '"SqlSinkRecordsUnreadable"' in capsys.readouterr().out
