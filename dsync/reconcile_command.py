"""`dsync reconcile`: one synchronous reconcile of every directory (or one), with its report."""

from __future__ import annotations

import time
from typing import Any

from dsync.errors import CommandError
from dsync.targets import Target
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.secrets import parse_api_key
from shared.directory_health import HealthRecorder
from shared.reconcile import DirectoryReconciler, ReconcileConfig, RunReport, reconcile_until_complete
from shared.reconcile_jobs import discover


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


def run_reconcile(
    target: Target,
    *,
    directory_id: str | None,
    api_key: str | None,
    base_url: str | None,
    parallelism: int = 4,
    requests_per_second: float = 4.0,
) -> dict[str, Any]:
    from dsync.operations import InlineJobs
    from shared.adapters.workos_api import WorkOSAuthError, WorkOSDirectoryApi, WorkOSError

    try:
        key = resolve_api_key(target, api_key)
    except ReconcileCommandError as error:
        raise CommandError(str(error)) from error
    table = DirectoryTable(target.table_name, client=target.client("dynamodb"))
    jobs = InlineJobs(table)
    started = time.monotonic()
    api = WorkOSDirectoryApi(api_key=key, base_url=base_url, requests_per_second_per_directory=requests_per_second)
    where = base_url or "https://api.workos.com"
    try:
        health = None
        if directory_id:
            directory_ids = [directory_id]
        else:
            wave = discover(api, table, health=HealthRecorder(table))
            directory_ids, health = wave.directory_ids, wave.health
        if directory_id:
            api.get_directory(directory_id)  # fail fast and clearly on a bad key or an unreachable API
        reconciler = DirectoryReconciler(api=api, table=table, work_queue=jobs, config=ReconcileConfig())
        reports = reconcile_until_complete(reconciler, directory_ids, parallelism=parallelism)
    except WorkOSAuthError as error:
        raise CommandError(f"WorkOS rejected the API key ({where}): {error}") from error
    except WorkOSError as error:
        raise CommandError(f"cannot use the WorkOS API at {where}: {error}") from error
    finally:
        api.close()
    stats = api.stats.snapshot()
    report = RunReport(
        directories=reports,
        requests=stats["requests"],
        rate_limited=stats["rate_limited"],
        duration_seconds=time.monotonic() - started,
    ).as_dict()
    report["purged_items"] = jobs.purged
    if health is not None:
        report["health"] = health.as_dict()
    report["target"] = target.description
    return report
