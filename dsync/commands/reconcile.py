"""`dsync reconcile`: one synchronous reconcile of every directory (or one), with its report."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from typing import Any

from dsync.errors import CLI_WORKOS_TIMEOUT_SECONDS, CLI_WORKOS_UNAVAILABLE_RETRIES, CommandError
from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.secrets import parse_api_base_url, parse_api_key
from shared.apply.purge import purge_directory
from shared.key_check import KeyCheck
from shared.model import records
from shared.reconcile.deletion_guard import DeletionPolicy
from shared.reconcile.health import HealthRecorder, workos_counts
from shared.reconcile.jobs import discover
from shared.reconcile.run import DirectoryReconciler, ReconcileConfig, RunProgress, RunReport, reconcile_until_complete


class ReconcileCommandError(Exception):
    pass


def resolve_api_key(target: Target, explicit: str | None) -> str:
    if explicit:
        return explicit
    if target.workos_api_key_secret_id:
        try:
            value = target.client("secretsmanager").get_secret_value(SecretId=target.workos_api_key_secret_id)
        except Exception:
            value = {}
        key = parse_api_key(value.get("SecretString"))
        if key:
            return key
    raise ReconcileCommandError(
        "no WorkOS API key: pass --workos-api-key, set WORKOS_API_KEY, or store it in the stack's secret"
    )


def resolve_base_url(target: Target, explicit: str | None) -> str | None:
    """--workos-base-url / $WORKOS_BASE_URL, else the one stored beside the key (the local stack stores its fake's),
    else WorkOS's own (None)."""
    if explicit or not target.workos_api_key_secret_id:
        return explicit
    try:
        value = target.client("secretsmanager").get_secret_value(SecretId=target.workos_api_key_secret_id)
    except Exception:
        return None
    return parse_api_base_url(value.get("SecretString"))


class ReconcileProgress:
    """One tqdm bar over every directory of the run: WorkOS items listed (total: WorkOS's own counts, so the ETA is
    real), with the directory and phase last reported, store writes, requests and 429s. Off when stderr is not a
    terminal: then the command prints its JSON report only."""

    def __init__(self, api: Any, *, enabled: bool) -> None:
        from tqdm import tqdm

        self._api = api
        self._lock = threading.Lock()
        self._listed: dict[str, int] = {}
        self._written: dict[str, int] = {}
        self._bar = tqdm(total=None, unit="item", desc="reconcile", disable=not enabled, file=sys.stderr)

    def expect(self, total: int | None) -> None:
        if total:
            self._bar.total = total
            self._bar.refresh()

    def update(self, progress: RunProgress) -> None:
        with self._lock:
            self._listed[progress.directory_id] = progress.listed
            self._written[progress.directory_id] = progress.written
            stats = self._api.stats.snapshot()
            self._bar.set_postfix(
                directory=progress.directory_id[-8:],
                phase=progress.phase,
                written=sum(self._written.values()),
                requests=stats["requests"],
                r429=stats["rate_limited"],
                refresh=False,
            )
            self._bar.update(sum(self._listed.values()) - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def expected_items(wave: Any | None, directory_ids: list[str], api: Any) -> int | None:
    """Users plus groups WorkOS says the directories have (its `metadata` counts), if it says."""
    checks = {check.directory_id: check.workos for check in wave.health.checks} if wave and wave.health else {}
    if not checks and len(directory_ids) == 1:
        listed = api.get_directory(directory_ids[0])
        checks = {directory_ids[0]: workos_counts(listed or {})}
    counts = [checks.get(directory_id) for directory_id in directory_ids]
    values = [(c.users_active or 0) + (c.users_inactive or 0) + (c.groups or 0) for c in counts if c is not None]
    return sum(values) or None


def run_reconcile(
    target: Target,
    *,
    directory_id: str | None,
    api_key: str | None,
    base_url: str | None,
    parallelism: int = 4,
    requests_per_second: float = 4.0,
    show_progress: bool | None = None,
    confirm_deletions: bool = False,
) -> dict[str, Any]:
    """Reconcile every directory (or one) to the end. A key that sees none of the mirror refuses the whole run
    (`CommandError`, nothing written); deletions past the guard are held unless `confirm_deletions`."""
    from shared.adapters.workos_api import WorkOSAuthError, WorkOSDirectoryApi, WorkOSError

    try:
        key = resolve_api_key(target, api_key)
    except ReconcileCommandError as error:
        raise CommandError(str(error)) from error
    base_url = resolve_base_url(target, base_url)
    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    jobs = InlineJobs(table)
    started = time.monotonic()
    api = WorkOSDirectoryApi(
        api_key=key,
        base_url=base_url,
        requests_per_second_per_directory=requests_per_second,
        request_timeout_seconds=CLI_WORKOS_TIMEOUT_SECONDS,
        unavailable_retries=CLI_WORKOS_UNAVAILABLE_RETRIES,
    )
    where = base_url or "https://api.workos.com"
    progress = ReconcileProgress(api, enabled=sys.stderr.isatty() if show_progress is None else show_progress)
    wave = None
    policy = DeletionPolicy(confirmed=confirm_deletions)
    try:
        if directory_id:
            if api.get_directory(directory_id) is None and table.get_item(records.directory_key(directory_id)) is None:
                raise CommandError(
                    f"neither WorkOS ({where}) nor the mirror knows directory {directory_id!r}: check the id "
                    "(`dsync status` lists the mirror's); nothing was changed"
                )
            directory_ids = [directory_id]
        else:
            wave = discover(api, table, health=HealthRecorder(table), deletions=policy)
            if wave.refused:
                raise CommandError(f"reconcile refused ({where}): {wave.refused}")
            directory_ids = wave.directory_ids
        held = set(wave.held) if wave is not None else set()
        # For one directory this reads it first: a bad key or an unreachable API fails fast and clearly.
        progress.expect(expected_items(wave, directory_ids, api))
        reconciler = DirectoryReconciler(
            api=api, table=table, work_queue=jobs, config=ReconcileConfig(), on_progress=progress.update
        )
        reports = reconcile_until_complete(
            reconciler,
            directory_ids,
            parallelism=parallelism,
            deletions=lambda d: replace(policy, hold_directory_deletion=d in held),
        )
    except WorkOSAuthError as error:
        raise CommandError(f"WorkOS rejected the API key ({where}): {error}") from error
    except WorkOSError as error:
        raise CommandError(f"cannot use the WorkOS API at {where}: {error}") from error
    finally:
        progress.close()
        api.close()
    stats = api.stats.snapshot()
    report = RunReport(
        directories=reports,
        requests=stats["requests"],
        rate_limited=stats["rate_limited"],
        duration_seconds=time.monotonic() - started,
    ).as_dict()
    report["purged_items"] = jobs.purged
    if wave is not None and wave.health is not None:
        report["health"] = wave.health.as_dict()
    if wave is not None:
        report["key"] = wave.view.as_dict() if wave.view is not None else None
        report["held_directories"] = list(wave.held)
    report["target"] = target.description
    return report


def check_key(target: Target, *, api_key: str | None, base_url: str | None) -> dict[str, Any]:
    """What a WorkOS API key sees against the mirror (`shared.key_check`), before it is put in the secret: the
    directories both know, the mirror's that the key does not see, and the key's that the mirror does not hold."""
    from shared.adapters.workos_api import WorkOSAuthError, WorkOSDirectoryApi, WorkOSError

    try:
        key = resolve_api_key(target, api_key)
    except ReconcileCommandError as error:
        raise CommandError(str(error)) from error
    base_url = resolve_base_url(target, base_url)
    where = base_url or "https://api.workos.com"
    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    try:
        with WorkOSDirectoryApi(
            api_key=key,
            base_url=base_url,
            request_timeout_seconds=CLI_WORKOS_TIMEOUT_SECONDS,
            unavailable_retries=CLI_WORKOS_UNAVAILABLE_RETRIES,
        ) as api:
            view = KeyCheck(api, table).view()
    except WorkOSAuthError as error:
        raise CommandError(f"WorkOS rejected the API key ({where}): {error}") from error
    except WorkOSError as error:
        raise CommandError(f"cannot use the WorkOS API at {where}: {error}") from error
    return {**view.as_dict(), "target": target.description, "workos": where}


class InlineJobs:
    """The work queue for a synchronous `dsync reconcile`: purges run at once instead of being queued."""

    def __init__(self, table: DirectoryTable) -> None:
        self._table = table
        self.purged: dict[str, int] = {}

    def submit(self, job: Any, delay_seconds: int = 0) -> None:
        if dict(job).get("kind") == "purge":
            directory_id = str(job["directory_id"])
            result = purge_directory(self._table, directory_id, remaining_seconds=lambda: float("inf"))
            self.purged[directory_id] = self.purged.get(directory_id, 0) + result.deleted_items
