"""Reconcile Lambda: the schedule plans one job per directory; the work queue runs them (and purges).

- EventBridge schedule → `WavePlanner.plan`: one `reconcile` job per directory (WorkOS's list and the store's);
- work queue job → `shared.reconcile.jobs.run_job`, which also queues whatever must follow (continuations, retries).
The workos SDK is imported only when a reconcile job needs it (it costs ~1 s), never for schedules or purges.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.secrets import ApiKeyStore
from shared.adapters.sqs import SqsWorkQueue
from shared.adapters.workos_client import NotConfiguredError, api_from_secret, workos_api
from shared.observability import MetricsRecorder, get_logger
from shared.reconcile import wave_budget
from shared.reconcile.health import HealthRecorder
from shared.reconcile.jobs import WavePlanner, run_job
from shared.reconcile.report import RequestCounter, record_job, record_wave
from shared.reconcile.run import DirectoryReconciler, ReconcileConfig
from shared.resources import RECONCILE_MAX_CONCURRENCY
from shared.settings import ReconcileSettings

__all__ = ["JobFailedError", "dependencies", "handler", "workos_api"]
logger = get_logger("dsync-reconcile")


class JobFailedError(Exception):
    """The job did not finish and did not checkpoint a continuation: SQS retries it (then the work DLQ)."""


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


def plan(deps: ReconcileDependencies, metrics: MetricsRecorder) -> dict[str, Any]:
    try:
        api = api_from_secret(deps.api_keys, deps.settings)
    except NotConfiguredError as error:
        logger.warning("reconcile skipped", extra={"reason": str(error)})
        metrics.count("ReconcileNotConfigured")
        return {"planned": 0, "skipped": str(error)}
    health = HealthRecorder(deps.table, unhealthy_after_seconds=deps.settings.directory_unhealthy_minutes * 60)
    period = deps.settings.reconcile_period_seconds
    budget = wave_budget.wave_budget_seconds(period, RECONCILE_MAX_CONCURRENCY) if period else None
    planner = WavePlanner(
        api,
        deps.table,
        deps.work_queue,
        health=health,
        budget_seconds=budget,
        deletions=deps.settings.deletion_policy(),
    )
    wave = planner.plan_wave("schedule")
    record_wave(logger, metrics, wave)
    result: dict[str, Any] = {"planned": len(wave.directory_ids), "deferred": wave.deferred}
    if wave.refused:
        result["refused"] = wave.refused
    if wave.held:
        result["held"] = list(wave.held)
    return result


def job(body: dict[str, Any], deps: ReconcileDependencies, context: LambdaContext, metrics: MetricsRecorder) -> None:
    settings = deps.settings
    requests = RequestCounter()

    def reconciler() -> DirectoryReconciler:
        api = requests.watch(api_from_secret(deps.api_keys, settings))
        config = ReconcileConfig(
            tombstone_ttl_seconds=settings.tombstone_ttl_days * 86_400,
            clock_skew_allowance_seconds=settings.clock_skew_allowance_seconds,
        )
        return DirectoryReconciler(api=api, table=deps.table, work_queue=deps.work_queue, config=config)

    outcome = run_job(
        body,
        table=deps.table,
        work_queue=deps.work_queue,
        reconciler=reconciler,
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
        deletions=settings.deletion_policy(),
    )
    record_job(logger, metrics, outcome, requests.delta())
    if outcome.retry_error:
        raise JobFailedError(outcome.retry_error)


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
                body = json.loads(record.body)
            except ValueError:
                logger.error("unparseable job dropped", extra={"message_id": record.message_id})
                return
            job(body if isinstance(body, dict) else {}, deps, context, metrics)

        return process_partial_response(
            event=event, record_handler=record_handler, processor=BatchProcessor(EventType.SQS), context=context
        )
    finally:
        metrics.record("InvocationDuration", time.monotonic() - started, "Seconds")
        metrics.flush()
