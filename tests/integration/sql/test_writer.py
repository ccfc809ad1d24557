"""The write rule on a real PostgreSQL: newer wins, stale and duplicate writes change nothing, a tombstone stays,
environments stay apart, and the integration guide's step-9 checks count the live rows."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from shared.model import records
from shared.sql.reader import SinkReader, comparable
from shared.sql.rows import DirectoryRow, GroupRow, MembershipRow, UserRow, row_from_item, tombstone_of
from shared.sql.writer import SqlSink
from tests.support import dsync_events as ev
from tests.support import streams as s

pytestmark = pytest.mark.integration

ORG = ev.ORG
DIRECTORY = ev.DIRECTORY


def rows(*items: records.Record) -> list[Any]:
    return [row_from_item(item.item()) for item in items]


def count(conn: psycopg.Connection[Any], schema: str, query: str, *params: Any) -> int:
    value = conn.execute(sql.SQL(query).format(schema=sql.Identifier(schema)), params).fetchone()
    assert value is not None
    return int(value[0])


def test_newer_wins_and_stale_or_duplicate_writes_change_nothing(pg: psycopg.Connection[Any], sql_schema: str) -> None:
    sink = SqlSink(pg, schema=sql_schema)
    old, new = s.user_item(updated=1, first_name="Ada"), s.user_item(updated=5, first_name="Augusta")
    first = sink.write(rows(new))
    assert first.written["user"] == 1
    again = sink.write(rows(old, new))  # stale and duplicate
    assert again.total_written == 0 and again.unchanged["user"] == 1  # collapsed to the newest, then no-op
    assert sink.write(rows(old)).unchanged["user"] == 1
    [user] = SinkReader(pg, schema=sql_schema, environment="default").export(DIRECTORY)["users"]
    assert user["first_name"] == "Augusta"


def test_a_tombstone_stays_and_a_late_update_cannot_resurrect(pg: psycopg.Connection[Any], sql_schema: str) -> None:
    sink = SqlSink(pg, schema=sql_schema)
    sink.write(rows(s.user_item(updated=1), s.group_item(), s.membership_item()))
    sink.write(rows(s.user_tombstone(deleted=10)))
    assert sink.write(rows(s.user_item(updated=9))).total_written == 0
    reader = SinkReader(pg, schema=sql_schema, environment="default")
    state = reader.export(DIRECTORY)
    assert state["users"] == [] and state["memberships"] == []  # a membership needs a live user
    tombstone = pg.execute(
        sql.SQL("SELECT email, organization_id, deleted_at IS NOT NULL FROM {}.users").format(
            sql.Identifier(sql_schema)
        )
    ).fetchone()
    assert tombstone == (None, None, True)  # ids and version only, like the mirror's


def test_a_removed_item_is_a_tombstone_at_its_version_with_the_deletion_bit() -> None:
    live = row_from_item(s.membership_item(at=4).item())
    assert isinstance(live, MembershipRow)
    gone = tombstone_of(live)
    assert gone.deleted and gone.version == live.version | 1 > live.version


def test_a_deleted_directory_hides_everything_of_it(pg: psycopg.Connection[Any], sql_schema: str) -> None:
    sink = SqlSink(pg, schema=sql_schema)
    sink.write(rows(s.directory_item(), s.user_item(), s.group_item(), s.membership_item()))
    sink.write(rows(s.directory_tombstone()))
    state = SinkReader(pg, schema=sql_schema, environment="default").export(DIRECTORY)
    assert state == {"directory": None, "users": [], "groups": [], "memberships": []}


def test_a_stub_is_replaced_by_the_real_directory_and_never_replaces_it(
    pg: psycopg.Connection[Any], sql_schema: str
) -> None:
    sink = SqlSink(pg, schema=sql_schema)
    sink.write(rows(s.directory_stub()))
    reader = SinkReader(pg, schema=sql_schema, environment="default")
    assert reader.export(DIRECTORY)["directory"]["name"] is None
    sink.write(rows(s.directory_item()))
    sink.write(rows(s.directory_stub()))
    assert reader.export(DIRECTORY)["directory"]["name"] == "Acme Okta"


def test_the_sink_equals_the_export_field_by_field(pg: psycopg.Connection[Any], sql_schema: str) -> None:
    items = [
        s.directory_item(),
        s.user_item("directory_user_1", roles=[{"slug": "admin"}, {"slug": "member"}]),
        s.user_item("directory_user_2", state="inactive", email="Grace@Example.com"),
        s.group_item(),
        s.membership_item("directory_group_1", "directory_user_1"),
        s.membership_item("directory_group_1", "directory_user_2", present=False),
    ]
    SqlSink(pg, schema=sql_schema).write(rows(*items))
    from shared.read.reader import readable_state

    export = readable_state(DIRECTORY, [item.item() for item in items])
    assert SinkReader(pg, schema=sql_schema, environment="default").export(DIRECTORY) == comparable(export)


def test_environments_share_a_database_and_stay_apart(pg: psycopg.Connection[Any], sql_schema: str) -> None:
    SqlSink(pg, schema=sql_schema, environment="production").write(rows(s.user_item(updated=5)))
    SqlSink(pg, schema=sql_schema, environment="staging").write(rows(s.user_item(updated=1, first_name="Staging")))
    production = SinkReader(pg, schema=sql_schema, environment="production").export(DIRECTORY)
    staging = SinkReader(pg, schema=sql_schema, environment="staging").export(DIRECTORY)
    assert production["users"][0]["first_name"] == "Ada" and staging["users"][0]["first_name"] == "Staging"


def test_one_batch_is_one_transaction(pg: psycopg.Connection[Any], sql_schema: str) -> None:
    bad = UserRow(id="directory_user_9", directory_id=None, version=2)  # type: ignore[arg-type]
    with pytest.raises(psycopg.errors.NotNullViolation):
        SqlSink(pg, schema=sql_schema).write([*rows(s.group_item()), bad])
    assert count(pg, sql_schema, "SELECT count(*) FROM {schema}.groups") == 0


def test_the_guides_step_9_checks_count_live_rows(pg: psycopg.Connection[Any], sql_schema: str) -> None:
    """The integration guide's queries, unchanged apart from the schema, after deletions and an inactive user."""
    sink = SqlSink(pg, schema=sql_schema)
    sink.write(
        rows(
            s.directory_item(),
            s.user_item("directory_user_1"),
            s.user_item("directory_user_2", state="inactive"),
            s.user_item("directory_user_3"),
            s.group_item("directory_group_1"),
            s.group_item("directory_group_2"),
            s.membership_item("directory_group_1", "directory_user_1"),
            s.membership_item("directory_group_1", "directory_user_3"),
            s.membership_item("directory_group_2", "directory_user_1"),
        )
    )
    sink.write(rows(s.user_tombstone("directory_user_3"), s.group_tombstone("directory_group_2")))
    users = count(pg, sql_schema, "SELECT COUNT(*) FROM {schema}.users WHERE organization_id = %s", ORG)
    groups = count(pg, sql_schema, "SELECT COUNT(*) FROM {schema}.groups WHERE organization_id = %s", ORG)
    memberships = count(pg, sql_schema, "SELECT COUNT(*) FROM {schema}.group_memberships")
    assert (users, groups, memberships) == (2, 1, 1)
    organizations = pg.execute(
        sql.SQL("SELECT id, workos_directory_id FROM {}.organizations").format(sql.Identifier(sql_schema))
    ).fetchall()
    assert organizations == [(ORG, DIRECTORY)]


def test_row_kinds_the_sink_does_not_keep() -> None:
    assert row_from_item(s.reconcile_item()) is None
    assert isinstance(row_from_item(s.directory_tombstone().item()), DirectoryRow)
    assert isinstance(row_from_item(s.group_tombstone().item()), GroupRow)


def test_a_row_postgresql_refuses_is_counted_and_the_rest_of_the_batch_lands(
    pg: psycopg.Connection[Any], sql_schema: str
) -> None:
    from shared.sql.feed import feed_stream_records

    refused = {**s.user_item("directory_user_9").item(), "vkey": 2**70}  # past bigint: refused for its data
    batch = [s.insert(s.user_item("directory_user_1")), s.insert(refused), s.insert(s.group_item())]
    outcome = feed_stream_records(SqlSink(pg, schema=sql_schema), batch)
    assert outcome.rejected == ["NumericValueOutOfRange"]
    assert outcome.report.total_written == 2
    state = SinkReader(pg, schema=sql_schema, environment="default").export(DIRECTORY)
    assert [user["id"] for user in state["users"]] == ["directory_user_1"] and len(state["groups"]) == 1


def test_nul_characters_are_dropped_rather_than_blocking_the_feed(pg: psycopg.Connection[Any], sql_schema: str) -> None:
    odd = s.user_item("directory_user_1", first_name="A\x00da", custom_attributes={"k\x00": ["v\x00"]})
    assert SqlSink(pg, schema=sql_schema).write(rows(odd)).total_written == 1
    [user] = SinkReader(pg, schema=sql_schema, environment="default").export(DIRECTORY)["users"]
    assert user["first_name"] == "Ada" and user["custom_attributes"] == {"k": ["v"]}
