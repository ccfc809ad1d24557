"""The SQL sink on the local stack (`dsync local --postgres URL`), against a real PostgreSQL: shuffled, duplicated
deliveries with deletions racing additions, a sink that is down for part of the run, and a backfill racing the
feed all end with the sink's live views equal to WorkOS and to `dsync export`, and `dsync sql verify` says so."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dsync.fake_workos import FakeWorkOS, populate
from shared.sql.reader import SinkReader, comparable
from tests.e2e.conftest import (
    ROOT,
    ROTATED_SECRET,
    SECRET,
    RunningStack,
    cli_environment,
    dsync,
    start_local_stack,
    stop,
)
from tests.e2e.test_local_stack import deliver, matches_truth
from tests.support.histories import project

pytestmark = pytest.mark.e2e
DATABASE = "sink_e2e"


def database_url(server_url: str, database: str) -> str:
    return server_url.replace("/postgres?", f"/{database}?")


@pytest.fixture(scope="module")
def sink_database(postgres_url: str) -> Iterator[str]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    yield database_url(postgres_url, DATABASE)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))


@pytest.fixture(scope="module")
def sink_stack(fake_workos: FakeWorkOS, sink_database: str) -> Iterator[RunningStack]:
    stack = start_local_stack(
        "--webhook-secret",
        f"{SECRET},{ROTATED_SECRET}",
        "--workos-api-key",
        fake_workos.api_key,
        "--workos-base-url",
        fake_workos.base_url,
        "--tail-every",
        "0",
        "--postgres",
        sink_database,
    )
    yield stack
    stop(stack)


def sql_verify(stack: RunningStack, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return dsync("sql", "verify", "--aws-endpoint", stack.aws_endpoint, "--database-url", url, *extra, check=False)


def sink_export(url: str, directory_id: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        return SinkReader(conn, schema="workos_dsync", environment="default").export(directory_id)


def sink_matches(stack: RunningStack, fake: FakeWorkOS, url: str, directory_id: str) -> bool:
    truth = fake.model.snapshot(directory_id)
    export = stack.export(directory_id)
    if project(export, truth) != truth:
        return False
    return sink_export(url, directory_id) == comparable(export)


def a_busy_history(fake: FakeWorkOS, organization: str, seed: int) -> tuple[str, list[dict[str, Any]]]:
    """A directory's initial sync, then deletions racing additions: users and groups deleted while memberships to
    them are added, users added to a group that is being deleted, renames."""
    model = fake.model
    directory_id = model.create_directory(organization_id=organization)["id"]
    rng = random.Random(seed)
    populate(model, directory_id, users=30, groups=4, rng=rng)
    users, groups = model.user_ids(directory_id), model.group_ids(directory_id)
    for user in users[:6]:
        model.add_user_to_group(groups[0], user)
    model.delete_group(groups[0])
    model.delete_user(users[6])
    model.add_user_to_group(groups[1], users[7])
    model.delete_user(users[7])
    model.deactivate_user(users[8])
    model.update_user(users[9], last_name="Renamed", custom_attributes={"level": 3})
    model.update_group(groups[2], name="Renamed team")
    return directory_id, model.drain_events()


def test_deliveries_in_any_order_end_equal_in_the_sink(
    sink_stack: RunningStack, fake_workos: FakeWorkOS, sink_database: str
) -> None:
    directory_id, events = a_busy_history(fake_workos, "org_01SQLE2EONE", seed=1)
    deliver(sink_stack, events, seed=3)
    sink_stack.wait_drained()
    sink_stack.wait_until(
        lambda: sink_matches(sink_stack, fake_workos, sink_database, directory_id), timeout=60, what="the sink"
    )
    result = sql_verify(sink_stack, sink_database, "--directory", directory_id)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["different"] == 0
    assert matches_truth(sink_stack, fake_workos, directory_id)


def test_a_sink_down_for_part_of_the_run_catches_up(
    sink_stack: RunningStack, fake_workos: FakeWorkOS, sink_database: str, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(DATABASE)))
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DATABASE,))
        try:
            directory_id, events = a_busy_history(fake_workos, "org_01SQLE2EDOWN", seed=2)
            deliver(sink_stack, events, seed=4)
            sink_stack.wait_drained()  # the mirror has it all while the sink is down
            assert matches_truth(sink_stack, fake_workos, directory_id)
            down = sql_verify(sink_stack, sink_database)
            assert down.returncode == 1 and "cannot connect to the sink's database" in down.stderr
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(DATABASE)))
    sink_stack.wait_until(
        lambda: sink_matches(sink_stack, fake_workos, sink_database, directory_id), timeout=90, what="the sink"
    )
    assert sql_verify(sink_stack, sink_database).returncode == 0


def test_a_backfill_racing_the_feed_converges_and_verify_names_a_difference(
    sink_stack: RunningStack, fake_workos: FakeWorkOS, sink_database: str
) -> None:
    directory_id, events = a_busy_history(fake_workos, "org_01SQLE2ERACE", seed=5)
    backfill = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dsync.cli",
            "sql",
            "backfill",
            "--aws-endpoint",
            sink_stack.aws_endpoint,
            "--database-url",
            sink_database,
        ],
        cwd=ROOT,
        env=cli_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deliver(sink_stack, events, seed=6)
    _, stderr = backfill.communicate(timeout=120)
    assert backfill.returncode == 0, stderr
    sink_stack.wait_drained()
    sink_stack.wait_until(
        lambda: sink_matches(sink_stack, fake_workos, sink_database, directory_id), timeout=60, what="the sink"
    )
    assert sql_verify(sink_stack, sink_database).returncode == 0

    with psycopg.connect(sink_database, autocommit=True) as conn:
        conn.execute(
            "UPDATE workos_dsync.users SET email = 'someone@else.test' WHERE directory_id = %s", (directory_id,)
        )
    different = sql_verify(sink_stack, sink_database, "--directory", directory_id)
    assert different.returncode == 1
    assert f"{directory_id} differs (users)" in different.stderr
    changed = json.loads(different.stdout)["directories"][0]["differences"]["users"]["changed"]
    assert set(next(iter(changed.values()))) == {"email"}
