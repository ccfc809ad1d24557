"""`dsync replay`: re-read a window of WorkOS's Events API into the event queue, with progress on a terminal."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from dsync.commands.reconcile import ReconcileCommandError, resolve_api_key, resolve_base_url
from dsync.errors import CLI_WORKOS_TIMEOUT_SECONDS, CLI_WORKOS_UNAVAILABLE_RETRIES, CommandError
from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.sqs import SqsEventQueue
from shared.key_check import WRONG_ENVIRONMENT, KeyCheck
from shared.model.events import parse_time
from shared.tail.replay import ReplayWindowError, check_window, replay


def parse_moment(value: str, option: str) -> datetime:
    try:
        moment = parse_time(value)
    except ValueError:
        raise CommandError(f"{option} {value!r} is not an ISO-8601 time, e.g. 2026-11-30T00:00:00Z") from None
    return moment


def run_replay(
    target: Target,
    *,
    since: str,
    until: str | None,
    directory_id: str | None,
    api_key: str | None,
    base_url: str | None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    from tqdm import tqdm

    from shared.adapters.workos_api import WorkOSAuthError, WorkOSDirectoryApi, WorkOSError

    now = datetime.now(UTC)
    start, end = parse_moment(since, "--since"), min(parse_moment(until, "--until") if until else now, now)
    try:
        check_window(start, end, now=now)
        key = resolve_api_key(target, api_key)
    except (ReplayWindowError, ReconcileCommandError) as error:
        raise CommandError(str(error)) from error
    base_url = resolve_base_url(target, base_url)
    queue = SqsEventQueue(target.event_queue_url, client=target.client("sqs"))
    api = WorkOSDirectoryApi(
        api_key=key,
        base_url=base_url,
        request_timeout_seconds=CLI_WORKOS_TIMEOUT_SECONDS,
        unavailable_retries=CLI_WORKOS_UNAVAILABLE_RETRIES,
    )
    total = max(1, int((end - start).total_seconds()))
    bar = tqdm(
        total=total,
        unit="s",
        desc="replaying (seconds of history)",
        disable=not (sys.stderr.isatty() if show_progress is None else show_progress),
        file=sys.stderr,
    )

    def advance(reached: datetime) -> None:
        bar.update(max(0, min(total, int((reached - start).total_seconds())) - bar.n))

    where = base_url or "https://api.workos.com"
    try:
        # Events are read by time, and a time range has no cursor WorkOS could refuse: under another environment's
        # key the replay would import that environment. Check the key against the mirror first.
        view = KeyCheck(api, DirectoryTable(target.table_name, client=target.client("dynamodb"))).view()
        if not view.same_environment:
            raise CommandError(f"replay refused ({where}): {WRONG_ENVIRONMENT}")
        report = replay(api, queue, since=start, until=end, now=now, directory_id=directory_id, progress=advance)
    except WorkOSAuthError as error:
        raise CommandError(f"WorkOS rejected the API key ({where}): {error}") from error
    except WorkOSError as error:
        raise CommandError(f"cannot read the WorkOS Events API at {where}: {error}") from error
    finally:
        bar.close()
        api.close()
    for event in report.too_large:
        print(
            f"event {event['event_id']} ({event['size_bytes']} bytes) is too large for any SQS message and was not "
            f"queued: run `dsync reconcile --directory {event['directory_id']}` to repair what it carried",
            file=sys.stderr,
        )
    return {**report.as_dict(), "target": target.description}
