"""Reconcile Lambda: the schedule plans one job per directory; the work queue runs them (and purges).

- EventBridge schedule → discover directories (WorkOS's list and the store's) → one `reconcile` job each;
- work queue job `{"kind": "reconcile", "directory_id": …}` → `DirectoryReconciler.run` within the time budget; an
  unfinished run checkpoints and queues its own continuation;
- work queue job `{"kind": "purge", "directory_id": …}` → erase a deleted directory's items, continuing likewise.
The workos SDK is imported only when a reconcile job needs it (it costs ~1 s), never for schedules or purges.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.secrets import ApiKeyStore
from shared.adapters.sqs import SqsWorkQueue
from shared.observability import MetricsRecorder, get_logger
from shared.purge import purge_directory
from shared.reconcile import (
    DirectoryReconciler,
    DirectoryReport,
    ReconcileConfig,
    RunStatus,
    discover_directories,
)
from shared.settings import ReconcileSettings

if TYPE_CHECKING:
    from shared.adapters.workos_api import WorkOSDirectoryApi

logger = get_logger("dsync-reconcile")
RATE_LIMITED_DELAY_SECONDS = 60
BUSY_RETRY_DELAY_SECONDS = 30


class JobFailedError(Exception):
    """The job did not finish and did not checkpoint a continuation: SQS retries it (then the work DLQ)."""


class NotConfiguredError(Exception):
    """The WorkOS API key secret still holds its placeholder."""


@dataclass
class ReconcileDependencies:
    settings: ReconcileSettings
    table: DirectoryTable
    work_queue: SqsWorkQueue
    api_keys: ApiKeyStore


@lru_cache(maxsize=1)
def dependencies() -> ReconcileDependencies:
    settings = ReconcileSettings()
    return ReconcileDependencies(
        settings=settings,
        table=DirectoryTable(settings.table_name),
        work_queue=SqsWorkQueue(settings.work_queue_url),
        api_keys=ApiKeyStore(settings.workos_api_key_secret_id),
    )


@lru_cache(maxsize=2)
def workos_api(api_key: str, base_url: str | None, per_directory: float, total: float) -> WorkOSDirectoryApi:
    """One paced client per key (a rotated key gets a new one); kept warm across invocations."""
    from shared.adapters.workos_api import WorkOSDirectoryApi

    return WorkOSDirectoryApi(
        api_key=api_key,
        base_url=base_url,
        requests_per_second_per_directory=per_directory,
        requests_per_second_total=total,
        # One request waits out at most 3 x 10 s of 429s, inside the run's 45 s reserve, so a throttled run still
        # checkpoints before the Lambda timeout; then a follow-up job retries a minute later.
        max_rate_limit_retries=3,
        max_retry_after_seconds=10.0,
    )


def api_for(deps: ReconcileDependencies) -> WorkOSDirectoryApi:
    api_key = deps.api_keys.get()
    if not api_key:
        raise NotConfiguredError("the WorkOS API key secret is not set; see README 'Configure secrets'")
    settings = deps.settings
    return workos_api(
        api_key,
        settings.workos_base_url,
        settings.requests_per_second_per_directory,
        settings.requests_per_second_total,
    )


def reconciler_for(deps: ReconcileDependencies, api: WorkOSDirectoryApi) -> DirectoryReconciler:
    return DirectoryReconciler(
        api=api,
        table=deps.table,
        work_queue=deps.work_queue,
        config=ReconcileConfig(
            tombstone_ttl_seconds=deps.settings.tombstone_ttl_days * 86_400,
            clock_skew_allowance_seconds=deps.settings.clock_skew_allowance_seconds,
        ),
    )


def job_message(directory_id: str, reason: str) -> dict[str, Any]:
    return {
        "kind": "reconcile",
        "directory_id": directory_id,
        "reason": reason,
        "requested_at_ms": int(time.time() * 1000),
    }


def plan(deps: ReconcileDependencies, metrics: MetricsRecorder) -> dict[str, Any]:
    """The scheduled wave: one reconcile job per directory, so directories run in parallel invocations."""
    try:
        api = api_for(deps)
    except NotConfiguredError as error:
        logger.warning("reconcile skipped", extra={"reason": str(error)})
        metrics.count("ReconcileNotConfigured")
        return {"planned": 0, "skipped": str(error)}
    directory_ids = discover_directories(api, deps.table)
    for directory_id in directory_ids:
        deps.work_queue.submit(job_message(directory_id, "schedule"))
    metrics.count("ReconcileJobsPlanned", len(directory_ids))
    logger.info("reconcile planned", extra={"directories": len(directory_ids)})
    return {"planned": len(directory_ids)}


def run_job(job: dict[str, Any], deps: ReconcileDependencies, context: LambdaContext, metrics: MetricsRecorder) -> None:
    kind, directory_id = job.get("kind"), job.get("directory_id")
    if not isinstance(directory_id, str) or kind not in ("reconcile", "purge"):
        logger.error("unknown job dropped", extra={"kind": kind})
        metrics.count("WorkJobsInvalid")
        return

    def remaining() -> float:
        return context.get_remaining_time_in_millis() / 1000

    if kind == "purge":
        result = purge_directory(deps.table, directory_id, remaining_seconds=remaining)
        metrics.count("PurgedItems", result.deleted_items)
        logger.info(
            "purge",
            extra={
                "directory_id": directory_id,
                "deleted": result.deleted_items,
                "complete": result.complete,
                "refused": result.refused,
            },
        )
        if not result.complete:
            deps.work_queue.submit({**job, "reason": "continuation"})
        return
    api = api_for(deps)
    before = api.stats.snapshot()
    report = reconciler_for(deps, api).run(directory_id, remaining_seconds=remaining)
    after = api.stats.snapshot()
    record_report(
        metrics,
        report,
        requests=after["requests"] - before["requests"],
        rate_limited=after["rate_limited"] - before["rate_limited"],
    )
    if report.status is RunStatus.CONTINUE:
        deps.work_queue.submit(job_message(directory_id, "continuation"))
    elif report.status is RunStatus.BUSY and int(job.get("requested_at_ms", 0)) > (report.busy_since_ms or 0):
        # The run in progress started before this request: it may miss what prompted it, so come back after it.
        deps.work_queue.submit({**job, "reason": "retry after busy"}, delay_seconds=BUSY_RETRY_DELAY_SECONDS)
    elif report.status is RunStatus.FAILED:
        if report.error and report.error.startswith("WorkOSRateLimitedError"):
            # Checkpointed: come back once WorkOS's window has passed instead of burning retries.
            deps.work_queue.submit(job_message(directory_id, "rate limited"), delay_seconds=RATE_LIMITED_DELAY_SECONDS)
            return
        raise JobFailedError(report.error or "reconcile failed")


def record_report(metrics: MetricsRecorder, report: DirectoryReport, *, requests: int, rate_limited: int) -> None:
    metrics.count("ReconcileRuns", Status=report.status.value)
    metrics.count("ReconcileRequests", requests)
    metrics.count("ReconcileRateLimited", rate_limited)
    metrics.record("ReconcileDuration", report.duration_seconds, "Seconds")
    if report.status is RunStatus.FAILED:
        metrics.count("ReconcileFailures")
    if report.status in (RunStatus.COMPLETE, RunStatus.DELETED):
        drift = report.drift.total()
        metrics.count("ReconcileDrift", drift)
        # 1 per finished run that had to repair something: the "drift twice in a row" alarm watches this.
        metrics.count("ReconcileDriftFound", 1 if drift else 0)
        for name, value in vars(report.drift).items():
            if value:
                metrics.count("ReconcileRepairs", value, Kind=name)
    log = logger.error if report.status is RunStatus.FAILED else logger.info
    log(
        "reconcile %s",
        report.status.value,
        extra={**report.as_dict(), "requests": requests, "rate_limited": rate_limited},
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse | dict[str, Any]:
    started = time.monotonic()
    metrics = MetricsRecorder(service="dsync-reconcile")
    try:
        deps = dependencies()
        if "Records" not in event:  # the EventBridge schedule
            return plan(deps, metrics)

        def record_handler(record: SQSRecord) -> None:
            try:
                job = json.loads(record.body)
            except ValueError:
                logger.error("unparseable job dropped", extra={"message_id": record.message_id})
                return
            run_job(job if isinstance(job, dict) else {}, deps, context, metrics)

        return process_partial_response(
            event=event, record_handler=record_handler, processor=BatchProcessor(EventType.SQS), context=context
        )
    finally:
        metrics.record("InvocationDuration", time.monotonic() - started, "Seconds")
        metrics.flush()
