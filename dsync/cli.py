"""`dsync`: operate the pipeline, locally or deployed.

    dsync local                 run the whole pipeline on this machine (moto + the same handlers)
    dsync demo                  start the local stack and the fake WorkOS and play a story end to end
    dsync send-test-event       sign and POST a realistic event to a webhook URL
    dsync status | export | reconcile | replay | redrive
                                operate the local stack (--aws-endpoint) or a deployed stack (--stack)

Exit codes: 0 success, 1 the operation failed (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from dsync.arguments import http_url, point_in_time, positive_float, positive_int
from dsync.errors import CommandError
from dsync.options import print_json as _print_json
from dsync.options import target as _target
from dsync.options import target_arguments as _target_arguments
from dsync.options import workos_arguments as _workos_arguments

# --- commands ------------------------------------------------------------------------------------------------


def cmd_send_test_event(args: argparse.Namespace) -> int:
    from dsync.commands.webhooks import post_signed, sample_event

    try:
        document = sample_event(args.event)
    except ValueError as error:
        raise CommandError(str(error)) from error
    try:
        delivery = post_signed(args.url, document, secret=args.secret, timeout=args.timeout)
    except OSError as error:
        raise CommandError(f"could not reach {args.url}: {error}") from error
    directory_id = document["data"].get("directory_id") or document["data"].get("id")
    print(
        f"sent {args.event} {delivery.event_id} (directory {directory_id}, a smoke test: apply acknowledges it "
        f"without storing or publishing anything) to {args.url}",
        file=sys.stderr,
    )
    print(f"{delivery.status} {delivery.body.strip()}  ({args.event} {delivery.event_id})")
    return 0 if 200 <= delivery.status < 300 else 1


def cmd_status(args: argparse.Namespace) -> int:
    from dsync.commands.mirror import status
    from dsync.commands.status_view import render_table
    from shared.read.status import Limits

    document = status(
        _target(args),
        directory_id=args.directory,
        unhealthy_only=args.unhealthy,
        summary_only=args.summary,
        limits=Limits(tail_poll_age_seconds=args.tail_poll_age_alarm, unhealthy_minutes=args.unhealthy_minutes),
    )
    if (args.output or ("table" if sys.stdout.isatty() else "json")) == "table":
        print(render_table(document))
    else:
        _print_json(document)
    if args.check:
        for reason in document["attention"]:
            print(f"dsync status: needs attention: {reason}", file=sys.stderr)
        return 1 if document["attention"] else 0
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from dsync.commands.mirror import export

    _print_json(export(_target(args), args.directory))
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    from dsync.commands.redrive import redrive

    report = redrive(_target(args), limit=args.limit)
    _print_json(report.as_dict())
    print(
        f"moved {report.moved} message(s) from the dead-letter queue back to the event queue, "
        f"in order within each of their groups, across {len(report.by_directory)} directory(ies)",
        file=sys.stderr,
    )
    if report.left:
        print(
            f"left {sum(report.left.values())} message(s) that can never apply in the dead-letter queue "
            f"({', '.join(f'{n} {why}' for why, n in sorted(report.left.items()))}); see docs/runbook.md",
            file=sys.stderr,
        )
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from dsync.commands.reconcile import run_reconcile

    report = run_reconcile(
        _target(args),
        directory_id=args.directory,
        api_key=args.workos_api_key,
        base_url=args.workos_base_url,
        parallelism=args.parallelism,
        requests_per_second=args.requests_per_second,
        confirm_deletions=args.confirm_deletions,
    )
    _print_json(report)
    if not report["ok"]:
        stopped = [d for d in report["directories"] if d["status"] in ("failed", "refused", "held", "unknown")]
        first = stopped[0]
        raise CommandError(
            f"reconcile {first['status']} for {len(stopped)} directory(ies); {first['directory_id']}: "
            f"{first['error'] or 'neither WorkOS nor the mirror knows this directory'}"
        )
    return 0


def cmd_check_key(args: argparse.Namespace) -> int:
    from dsync.commands.reconcile import check_key
    from shared.key_check import WRONG_ENVIRONMENT

    report = check_key(_target(args), api_key=args.workos_api_key, base_url=args.workos_base_url)
    _print_json(report)
    print(
        f"the key sees {len(report['known'])} of the mirror's directories; {len(report['missing'])} of them not; "
        f"{len(report['unknown'])} the mirror does not hold",
        file=sys.stderr,
    )
    if not report["same_environment"]:
        raise CommandError(WRONG_ENVIRONMENT)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from dsync.commands.replay import run_replay

    report = run_replay(
        _target(args),
        since=args.since,
        until=args.until,
        directory_id=args.directory,
        api_key=args.workos_api_key,
        base_url=args.workos_base_url,
    )
    _print_json(report)
    print(
        f"queued {report['events_enqueued']} event(s) of {report['events_read']} read in {report['requests']} "
        "request(s); already-applied events change nothing",
        file=sys.stderr,
    )
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    from dsync.commands.connect import connect, read_api_key

    target = _target(args)
    report = connect(
        target,
        api_key=read_api_key(),
        webhook_url=args.webhook_url,
        base_url=args.workos_base_url,
        wait_seconds=args.wait,
    )
    _print_json(report)
    print(
        f"connected: WorkOS sends {len(report['events'])} dsync.* event types to {report['webhook_url']}; the smoke "
        f"test was applied after {report['smoke_test']['applied_after_seconds']} s. Next: `dsync portal-link "
        "--organization org_...` for each customer",
        file=sys.stderr,
    )
    return 0


def cmd_portal_link(args: argparse.Namespace) -> int:
    from dsync.commands.connect import portal_link, read_api_key
    from dsync.commands.reconcile import ReconcileCommandError, resolve_api_key, resolve_base_url

    base_url = args.workos_base_url
    if args.workos_api_key or os.environ.get("WORKOS_API_KEY"):
        key = args.workos_api_key or read_api_key()
    else:
        target = _target(args)
        try:
            key = resolve_api_key(target, None)  # the stack's secret
        except ReconcileCommandError as error:
            raise CommandError(str(error)) from error
        base_url = resolve_base_url(target, base_url)
    link = portal_link(key, organization_id=args.organization, it_contacts=args.it_contact, base_url=base_url)
    print(link)
    print(
        f"send this link to {', '.join(args.it_contact) or 'the customer'}'s IT admin: it opens WorkOS's Admin Portal "
        f"to connect {args.organization}'s directory; the link is short-lived",
        file=sys.stderr,
    )
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    from dsync.commands.views import find_user

    _print_json(
        find_user(
            _target(args),
            directory_id=args.directory,
            organization_id=args.organization,
            email=args.email,
            idp_id=args.idp_id,
            user_id=args.id,
        )
    )
    return 0


def cmd_directories(args: argparse.Namespace) -> int:
    from dsync.commands.views import list_directories

    rows = list_directories(
        _target(args), organization_id=args.organization, unhealthy=args.unhealthy, drifted=args.drifted
    )
    _print_json(rows)
    print(f"dsync directories: {len(rows)} directory(ies)", file=sys.stderr)
    return 0


def cmd_changes(args: argparse.Namespace) -> int:
    from dsync.commands.views import ChangeFollower, follow_changes

    follower = ChangeFollower(_target(args), detail_types=args.type)
    print(f"dsync changes: following (temporary rule and queue {follower.name}; Ctrl-C to stop)", file=sys.stderr)
    try:
        follow_changes(
            follower,
            emit=lambda event: print(json.dumps(event, sort_keys=True), flush=True),
            max_events=args.max_events,
            seconds=None if args.follow else args.seconds,
        )
    finally:
        follower.close()
        print(f"dsync changes: removed {follower.name}", file=sys.stderr)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from dsync.commands.views import log_group_of, read_logs

    target = _target(args)
    group = log_group_of(target, args.function)
    print(f"dsync logs: {group}", file=sys.stderr)
    read_logs(target, group, since=args.since, follow=args.follow, emit=lambda line: print(line, flush=True))
    return 0


def cmd_fake_workos(args: argparse.Namespace) -> int:
    import random
    import signal
    import threading

    from dsync.fake_workos import DirectoryModel, FakeWorkOS, populate

    model = DirectoryModel(seed=args.seed)
    for index in range(args.directories):
        directory_id = model.create_directory(organization_id=f"org_fake_{index:04d}")["id"]
        populate(model, directory_id, users=args.users, groups=max(1, args.users // 10), rng=random.Random(index))  # noqa: S311 - fake data
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeWorkOS(model, api_key=args.api_key, port=args.port) as fake:
        print(f"workos base url: {fake.base_url}", flush=True)
        print(f"workos api key: {fake.api_key}", flush=True)
        print(
            f"{args.directories} directory(ies) of {args.users} user(s); point the local stack at it with "
            "--workos-base-url and --workos-api-key. Ctrl-C to stop",
            file=sys.stderr,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    from dsync.local.stack import LocalStackOptions, run_local_stack

    secrets = [part.strip() for value in args.webhook_secret or [] for part in value.split(",") if part.strip()]
    if not secrets:
        secrets = [s.strip() for s in os.environ.get("WORKOS_WEBHOOK_SECRET", "").split(",") if s.strip()]
    if not secrets:
        raise CommandError("give a webhook signing secret: --webhook-secret S (repeatable) or WORKOS_WEBHOOK_SECRET")
    options = LocalStackOptions(
        host=args.host,
        port=args.port,
        aws_port=args.aws_port,
        webhook_secrets=tuple(secrets),
        workos_api_key=args.workos_api_key,
        workos_base_url=args.workos_base_url,
        reconcile_every_seconds=args.reconcile_every,
        tail_every_seconds=args.tail_every,
        tail_bootstrap_hours=args.tail_bootstrap_hours,
        postgres=args.postgres,
    )
    return run_local_stack(options)


def cmd_demo(args: argparse.Namespace) -> int:
    from dsync.demo import DemoOptions, run_demo

    return run_demo(DemoOptions(users=args.users, groups=args.groups, seed=args.seed, quiet=args.quiet))


# --- parser -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from dsync.commands.webhooks import SAMPLE_EVENT_TYPES

    parser = argparse.ArgumentParser(prog="dsync", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    send = commands.add_parser("send-test-event", help="sign and POST a realistic sample event; prints the status")
    send.add_argument("--url", required=True, type=http_url, help="webhook URL, e.g. the stack's WebhookUrl output")
    send.add_argument("--secret", required=True, help="the endpoint's webhook signing secret")
    send.add_argument(
        "--event",
        default="dsync.user.created",
        choices=SAMPLE_EVENT_TYPES,
        metavar="TYPE",
        help="event type (default: %(default)s)",
    )
    send.add_argument("--timeout", type=positive_float, default=15.0, help="seconds (default: %(default)s)")
    send.set_defaults(func=cmd_send_test_event)

    from dsync.commands.status_view import add_status_arguments

    status = commands.add_parser(
        "status",
        help="queue depths, the Events API tail (cursor, lag, poll age), each directory's health, counts and progress, "
        "and what needs attention; a few reads per 100 directories, never a partition scan",
    )
    add_status_arguments(status)
    _target_arguments(status)
    status.set_defaults(func=cmd_status)

    export = commands.add_parser("export", help="a directory's readable state as sorted JSON")
    export.add_argument("--directory", required=True, help="WorkOS directory id (directory_…)")
    _target_arguments(export)
    export.set_defaults(func=cmd_export)

    redrive = commands.add_parser("redrive", help="move dead-letter messages back to the event queue")
    redrive.add_argument("--limit", type=positive_int, default=None, help="move at most this many")
    _target_arguments(redrive)
    redrive.set_defaults(func=cmd_redrive)

    reconcile = commands.add_parser("reconcile", help="run one reconcile now and print its report")
    reconcile.add_argument("--directory", default=None, help="only this directory (default: all)")
    _workos_arguments(reconcile)
    reconcile.add_argument(
        "--parallelism", type=positive_int, default=4, help="directories at once (default: %(default)s)"
    )
    reconcile.add_argument(
        "--requests-per-second",
        type=positive_float,
        default=4.0,
        help="per directory; WorkOS allows 4 on /directory_users (default: %(default)s)",
    )
    reconcile.add_argument(
        "--confirm-deletions",
        action="store_true",
        help="carry out deletions past the mass-deletion guard (held ones; see docs/runbook.md). Never overrides the "
        "evidence a deletion needs: a key of another environment still deletes nothing",
    )
    _target_arguments(reconcile)
    reconcile.set_defaults(func=cmd_reconcile)

    check = commands.add_parser(
        "check-key",
        help="what a WorkOS API key sees against the mirror (run it before rotating the key); exit 1: another "
        "environment's key",
    )
    _workos_arguments(check)
    _target_arguments(check)
    check.set_defaults(func=cmd_check_key)

    replay = commands.add_parser(
        "replay", help="re-read a window (at most 30 days back) of WorkOS's Events API into the event queue"
    )
    replay.add_argument(
        "--since", required=True, type=point_in_time, help="start: ISO-8601 (2026-11-30T00:00:00Z) or ago (1h, 2d)"
    )
    replay.add_argument(
        "--until", default=None, type=point_in_time, help="end: ISO-8601 or ago, like --since (default: now)"
    )
    replay.add_argument("--directory", default=None, help="only this directory's events (default: all)")
    _workos_arguments(replay)
    _target_arguments(replay)
    replay.set_defaults(func=cmd_replay)

    _onboarding_commands(commands)
    _view_commands(commands)
    _local_commands(commands)
    _sql_commands(commands)
    return parser


def _sql_commands(commands: Any) -> None:
    from dsync.commands.sql import register

    register(commands)


def _view_commands(commands: Any) -> None:
    """Lookups and views: `user`, `changes`, `logs`, `completion`."""
    from dsync.commands.views import FUNCTION_NAMES
    from shared.changes.derive import DETAIL_TYPES

    user = commands.add_parser("user", help="one user of the mirror, with their groups (by email, IdP id or id)")
    scope = user.add_mutually_exclusive_group(required=True)
    scope.add_argument("--directory", help="WorkOS directory id (directory_...)")
    scope.add_argument("--organization", help="WorkOS organization id (org_...): any of its directories")
    key = user.add_mutually_exclusive_group(required=True)
    key.add_argument("--email", help="case-insensitive")
    key.add_argument("--idp-id", help="the IdP's id (exact case)")
    key.add_argument("--id", help="the directory user id (directory_user_...)")
    _target_arguments(user)
    user.set_defaults(func=cmd_user)

    directories = commands.add_parser(
        "directories", help="the mirror's directories, one summary each (state, health, counts, last reconcile)"
    )
    directories.add_argument("--organization", default=None, help="only this organization's (org_...)")
    directories.add_argument("--unhealthy", action="store_true", help="only those with a problem")
    directories.add_argument("--drifted", action="store_true", help="only those whose last reconcile found drift")
    _target_arguments(directories)
    directories.set_defaults(func=cmd_directories)

    changes = commands.add_parser(
        "changes", help="the change events apps receive, as they happen (a temporary rule and queue, removed on exit)"
    )
    changes.add_argument("--follow", action="store_true", help="until interrupted (default: --seconds)")
    changes.add_argument("--seconds", type=positive_float, default=60.0, help="how long (default: %(default)s)")
    changes.add_argument("--max-events", type=positive_int, default=None, help="stop after this many")
    changes.add_argument(
        "--type", action="append", default=[], choices=DETAIL_TYPES, metavar="DETAIL_TYPE", help="e.g. user.provisioned"
    )
    _target_arguments(changes)
    changes.set_defaults(func=cmd_changes)

    logs = commands.add_parser("logs", help="a function's logs from CloudWatch (deployed stacks)")
    logs.add_argument("function", choices=FUNCTION_NAMES)
    logs.add_argument("--since", type=point_in_time, default="15m", help="ISO-8601 or ago (default: 15m)")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines until interrupted")
    _target_arguments(logs)
    logs.set_defaults(func=cmd_logs)

    completion = commands.add_parser("completion", help="print a shell completion script: eval it in your shell rc")
    completion.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    completion.set_defaults(func=cmd_completion)


def _onboarding_commands(commands: Any) -> None:
    """`dsync connect` and `dsync portal-link`: from nothing to a connected directory."""
    connect = commands.add_parser(
        "connect",
        help="create the WorkOS webhook endpoint for the stack, store its secret and the API key "
        "($WORKOS_API_KEY or prompted, never echoed), and prove it with a smoke test",
    )
    connect.add_argument("--webhook-url", type=http_url, default=None, help="default: the stack's WebhookUrl output")
    connect.add_argument(
        "--workos-base-url",
        type=http_url,
        default=os.environ.get("WORKOS_BASE_URL") or None,
        help="WorkOS API base URL (default: $WORKOS_BASE_URL or https://api.workos.com)",
    )
    connect.add_argument(
        "--wait", type=positive_float, default=90.0, help="seconds to wait for the smoke test (default: %(default)s)"
    )
    _target_arguments(connect)
    connect.set_defaults(func=cmd_connect)

    portal = commands.add_parser(
        "portal-link", help="the Admin Portal link a customer's IT admin opens to connect their directory"
    )
    portal.add_argument("--organization", required=True, help="the customer's WorkOS organization id (org_...)")
    portal.add_argument(
        "--it-contact", action="append", default=[], metavar="EMAIL", help="IT admin email (repeatable, at most 20)"
    )
    _workos_arguments(portal)
    _target_arguments(portal)
    portal.set_defaults(func=cmd_portal_link)


def _local_commands(commands: Any) -> None:
    """`dsync local` and `dsync demo`: the pipeline on this machine."""
    local = commands.add_parser("local", help="run the pipeline locally: moto + a local gateway + pollers")
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--port", type=int, default=8787, help="webhook gateway port (default: %(default)s)")
    local.add_argument("--aws-port", type=int, default=4566, help="moto server port (default: %(default)s)")
    local.add_argument(
        "--webhook-secret",
        action="append",
        help="signing secret; repeat or comma-separate for rotation (default: $WORKOS_WEBHOOK_SECRET)",
    )
    local.add_argument("--workos-api-key", default=os.environ.get("WORKOS_API_KEY"))
    local.add_argument("--workos-base-url", default=os.environ.get("WORKOS_BASE_URL"))
    local.add_argument(
        "--reconcile-every",
        type=float,
        default=0.0,
        help="seconds between scheduled reconciles; 0 = off (default: %(default)s)",
    )
    local.add_argument(
        "--tail-every",
        type=float,
        default=2.0,
        help="Events API tail: seconds between polls while idle (at most 5 is sensible); 0 = no tail "
        "(default: %(default)s; the tail runs whenever a WorkOS API key is given)",
    )
    local.add_argument(
        "--tail-bootstrap-hours",
        type=float,
        default=24.0,
        help="how far back a tail with no cursor starts reading (default: %(default)s)",
    )
    local.add_argument(
        "--postgres",
        default=None,
        metavar="URL|embedded",
        help="feed the SQL sink: a postgresql:// URL, or `embedded` for a PostgreSQL of its own (default: off)",
    )
    local.set_defaults(func=cmd_local)

    demo = commands.add_parser("demo", help="play a directory's life through the local stack and check the result")
    demo.add_argument("--users", type=int, default=250)
    demo.add_argument("--groups", type=int, default=16)
    demo.add_argument("--seed", type=int, default=2026)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    fake = commands.add_parser("fake-workos", help="run the fake WorkOS API (beside `dsync local`) until interrupted")
    fake.add_argument("--port", type=int, default=8788, help="default: %(default)s (0: any free port)")
    fake.add_argument("--api-key", default="sk_test_fake", help="the key it accepts (default: %(default)s)")
    fake.add_argument("--directories", type=int, default=1, help="directories to create (default: %(default)s)")
    fake.add_argument("--users", type=int, default=25, help="users per directory (default: %(default)s)")
    fake.add_argument("--seed", type=int, default=2026)
    fake.set_defaults(func=cmd_fake_workos)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("workos-dsync-pipeline")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def main(argv: Sequence[str] | None = None) -> int:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    from shared.apply.ports import PermanentStoreError, TransientStoreError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CommandError as error:
        print(f"dsync {args.command}: {error}", file=sys.stderr)
    except (ConnectTimeoutError, ReadTimeoutError, EndpointConnectionError) as error:
        print(
            f"dsync {args.command}: cannot reach AWS ({error}); check the endpoint, region and network", file=sys.stderr
        )
    except NoCredentialsError:
        print(f"dsync {args.command}: no AWS credentials (configure a profile, or pass --profile)", file=sys.stderr)
    except ClientError as error:
        details = error.response.get("Error", {})
        print(f"dsync {args.command}: AWS refused: {details.get('Code')}: {details.get('Message')}", file=sys.stderr)
    except BotoCoreError as error:
        print(f"dsync {args.command}: AWS call failed: {error}", file=sys.stderr)
    except (TransientStoreError, PermanentStoreError) as error:  # the table adapter's own translation
        print(f"dsync {args.command}: the table refused or failed: {error}", file=sys.stderr)
    except OSError as error:  # an unreachable URL (urllib), a closed socket
        print(f"dsync {args.command}: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `dsync ... | head`: the reader left; not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115, PTH123 - Python flushes stdout at exit
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
