"""`dsync sql migrate | backfill | verify`: the SQL sink, operated from a terminal.

The database: `--database-url`, else `$DSYNC_DATABASE_URL`, else the stack's SQL sink secret (the deployed stack's
`SqlSinkSecretArn` output; the local stack's `dsync/sql-sink-url`), read once and never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from dsync.arguments import non_negative_float
from dsync.errors import CommandError
from dsync.options import print_json, target, target_arguments

DATABASE_URL_ENV = "DSYNC_DATABASE_URL"
SCHEMA_ENV = "DSYNC_SQL_SCHEMA"
ENVIRONMENT_ENV = "DSYNC_SQL_ENVIRONMENT"


def add_sql_arguments(parser: argparse.ArgumentParser, *, needs_target: bool = True) -> None:
    from shared.sql.migrate import DEFAULT_SCHEMA
    from shared.sql.writer import DEFAULT_ENVIRONMENT

    parser.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV) or None,
        help=f"postgresql:// URL of the sink (default: ${DATABASE_URL_ENV}, else the stack's SQL sink secret)",
    )
    parser.add_argument(
        "--schema",
        default=os.environ.get(SCHEMA_ENV) or DEFAULT_SCHEMA,
        help=f"the sink's schema (default: ${SCHEMA_ENV} or %(default)s)",
    )
    parser.add_argument(
        "--environment",
        default=os.environ.get(ENVIRONMENT_ENV) or DEFAULT_ENVIRONMENT,
        help=f"the WorkOS environment's label in the sink's rows (default: ${ENVIRONMENT_ENV} or %(default)s)",
    )
    target_arguments(parser)


def database_url(args: argparse.Namespace, resolved: Any | None = None) -> str:
    """The sink's URL: the argument, else the stack's secret (never printed)."""
    if args.database_url:
        return str(args.database_url)
    from shared.sql.connection import SinkSecretError, url_from_secret

    resolved = resolved or target(args)
    secret_id = getattr(resolved, "sql_sink_secret_id", None)
    if not secret_id:
        raise CommandError(
            "no database: pass --database-url (or set $DSYNC_DATABASE_URL), or deploy the stack with the SQL sink "
            "(context key sqlSinkSecretArn)"
        )
    value = resolved.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    try:
        return url_from_secret(value)
    except SinkSecretError as error:
        raise CommandError(str(error)) from error


def connect(url: str) -> Any:
    import psycopg

    from shared.sql.connection import connect as sink_connect

    try:
        return sink_connect(url, application_name="dsync-cli")
    except psycopg.OperationalError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CommandError(f"cannot connect to the sink's database: {first}") from error


def cmd_migrate(args: argparse.Namespace) -> int:
    from shared.sql.migrate import MigrationError, migrate

    conn = connect(database_url(args))
    try:
        report = migrate(conn, args.schema)
    except (MigrationError, ValueError) as error:
        raise CommandError(str(error)) from error
    finally:
        conn.close()
    print(
        f"dsync sql migrate: schema {report.schema}: {len(report.applied)} applied, {len(report.already)} already",
        file=sys.stderr,
    )
    print_json(report.as_dict())
    return 0


def _sink_and_mirror(args: argparse.Namespace) -> tuple[Any, Any]:
    from shared.adapters.dynamodb import DirectoryTable
    from shared.sql.migrate import applied_numbers, load_migrations

    resolved = target(args)
    conn = connect(database_url(args, resolved))
    if applied_numbers(conn, args.schema) != [m.number for m in load_migrations()]:
        conn.close()
        raise CommandError(f"schema {args.schema} is not migrated to this version: run `dsync sql migrate` first")
    return conn, DirectoryTable(resolved.table_name, client=resolved.client("dynamodb"))


def cmd_backfill(args: argparse.Namespace) -> int:
    from shared.sql.backfill import backfill
    from shared.sql.writer import SqlSink

    conn, mirror = _sink_and_mirror(args)
    started = time.monotonic()

    def progress(directory_id: str, rows: int, directories_done: int) -> None:
        # One line a page (500 rows) and one per directory done: an interrupted run resumes after the last done.
        print(f"dsync sql backfill: {directories_done} directories done; {directory_id}: {rows} rows", file=sys.stderr)

    try:
        report = backfill(
            mirror,
            SqlSink(conn, schema=args.schema, environment=args.environment),
            directory_id=args.directory,
            run=args.run,
            progress=progress,
        )
    finally:
        conn.close()
    document = report.as_dict()
    document["seconds"] = round(time.monotonic() - started, 2)
    print_json(document)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from shared.sql.verify import verify

    conn, mirror = _sink_and_mirror(args)
    try:
        report = verify(
            mirror,
            conn,
            schema=args.schema,
            environment=args.environment,
            directory_id=args.directory,
            settle_seconds=args.settle,
        )
    finally:
        conn.close()
    print_json(report.as_dict())
    for verdict in report.different:
        kinds = ", ".join(sorted(verdict.differences)) or "checksum"
        print(f"dsync sql verify: {verdict.directory_id} differs ({kinds})", file=sys.stderr)
    if not report.different:
        print(f"dsync sql verify: {len(report.directories)} directories equal", file=sys.stderr)
    return 1 if report.different else 0


def register(commands: Any) -> None:
    """The `sql` command group (called once from `dsync.cli.build_parser`)."""
    sql = commands.add_parser("sql", help="the SQL sink: migrate its schema, backfill it, verify it against the mirror")
    group = sql.add_subparsers(dest="sql_command", required=True, metavar="SQL_COMMAND")

    migrate = group.add_parser("migrate", help="apply the sink's pending schema migrations (idempotent)")
    add_sql_arguments(migrate)
    migrate.set_defaults(func=cmd_migrate)

    from shared.sql.backfill import DEFAULT_RUN

    backfill = group.add_parser(
        "backfill", help="copy the mirror into the sink under the feed's rule (resumable; safe while the feed runs)"
    )
    add_sql_arguments(backfill)
    backfill.add_argument("--directory", default=None, help="one directory (default: every directory)")
    backfill.add_argument(
        "--run", default=DEFAULT_RUN, help="the run's name: an interrupted run resumes after its last whole directory"
    )
    backfill.set_defaults(func=cmd_backfill)

    verify = group.add_parser(
        "verify",
        help="compare each directory's live rows, mirror against sink (counts, checksum); exit 1 if any differ",
    )
    add_sql_arguments(verify)
    verify.add_argument("--directory", default=None, help="one directory (default: every directory)")
    verify.add_argument(
        "--settle",
        type=non_negative_float,
        default=0.0,
        help="seconds to wait before re-reading a directory that differs (changes in flight; default: %(default)s)",
    )
    verify.set_defaults(func=cmd_verify)
