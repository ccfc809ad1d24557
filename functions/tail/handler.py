"""Tail Lambda: every minute, poll WorkOS's Events API for most of the minute and queue what it reads.

The schedule starts it; reserved concurrency 1 and a lease keep it single; `shared.tail.poller.EventsTail` does the
work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.secrets import ApiKeyStore
from shared.adapters.sqs import SqsEventQueue, SqsWorkQueue
from shared.adapters.workos_client import NotConfiguredError, api_from_secret, tail_errors
from shared.key_check import KeyCheck
from shared.lease import Lease
from shared.observability import MetricsRecorder, get_logger
from shared.reconcile.jobs import WavePlanner
from shared.settings import TailSettings
from shared.tail.cursor import LEASE_KEY, CursorStore
from shared.tail.poller import EventsTail, TailConfig
from shared.tail.report import record_tail

logger = get_logger("dsync-tail")


@dataclass
class TailDependencies:
    settings: TailSettings
    table: DirectoryTable
    queue: SqsEventQueue
    work_queue: SqsWorkQueue
    api_keys: ApiKeyStore


@lru_cache(maxsize=1)
def dependencies() -> TailDependencies:
    settings = TailSettings()
    return TailDependencies(
        settings=settings,
        table=DirectoryTable(settings.table_name),
        queue=SqsEventQueue(settings.event_queue_url),
        work_queue=SqsWorkQueue(settings.work_queue_url),
        api_keys=ApiKeyStore(settings.workos_api_key_secret_id),
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics = MetricsRecorder(service="dsync-tail")
    try:
        deps = dependencies()
        try:
            api = api_from_secret(deps.api_keys, deps.settings)
        except NotConfiguredError as error:
            logger.warning("tail skipped", extra={"reason": str(error)})
            metrics.count("TailNotConfigured")
            return {"status": "not_configured"}
        settings = deps.settings
        tail = EventsTail(
            api=api,
            errors=tail_errors(),
            queue=deps.queue,
            cursors=CursorStore(deps.table),
            lease=Lease(deps.table, LEASE_KEY),
            reconciles=WavePlanner(api, deps.table, deps.work_queue, deletions=settings.deletion_policy()),
            environment=KeyCheck(api, deps.table),  # a refused cursor under another environment's key stops it
            config=TailConfig(
                bootstrap_hours=settings.tail_bootstrap_hours,
                idle_poll_seconds=settings.tail_idle_poll_seconds,
                run_seconds=settings.tail_run_seconds,
            ),
        )
        report = tail.run(lambda: context.get_remaining_time_in_millis() / 1000)
        record_tail(metrics, report, now=time.time())
        (logger.error if report.error else logger.info)("tail %s", report.status.value, extra=report.as_dict())
        return report.as_dict()
    finally:
        metrics.flush()
