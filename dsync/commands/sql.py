"""`dsync sql migrate | backfill | verify`: the SQL sink, operated from a terminal.

The database: `--database-url`, else `$DSYNC_DATABASE_URL`, else the stack's SQL sink secret (the deployed stack's
`SqlSinkSecretArn` output; the local stack's `dsync/sql-sink-url`), read once and never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

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


def register(commands: Any) -> None:
    """The `sql` command group (called once from `dsync.cli.build_parser`)."""
    sql = commands.add_parser("sql", help="the SQL sink: migrate its schema, backfill it, verify it against the mirror")
    group = sql.add_subparsers(dest="sql_command", required=True, metavar="SQL_COMMAND")

    migrate = group.add_parser("migrate", help="apply the sink's pending schema migrations (idempotent)")
    add_sql_arguments(migrate)
    migrate.set_defaults(func=cmd_migrate)
