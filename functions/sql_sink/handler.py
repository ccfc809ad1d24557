"""SQL sink Lambda: the directory table's stream into the app's PostgreSQL (`shared.sql.feed`: why the stream, one
batch one transaction, what fails and what is retried).

The connection is opened on the first batch and reused across invocations; a failed one is dropped, and the secret
re-read (a rotated password), on the next. A batch PostgreSQL cannot take (down, unreachable, a timeout) raises:
Lambda retries it from the same position of the shard, and after its retries records it on the failure queue.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import psycopg
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.secrets import SecretText
from shared.observability import MetricsRecorder, get_logger
from shared.sql.connection import ReusedConnection, SinkSecretError, url_from_secret
from shared.sql.feed import FeedOutcome, feed_stream_records
from shared.sql.settings import SqlSinkSettings
from shared.sql.writer import SqlSink

SERVICE = "dsync-sql-sink"
logger = get_logger(SERVICE)


@lru_cache(maxsize=1)
def settings() -> SqlSinkSettings:
    return SqlSinkSettings()  # fields come from the environment


@lru_cache(maxsize=1)
def secret() -> SecretText:
    return SecretText(settings().sql_sink_secret_id)


def _url(refresh: bool = False) -> str:
    value = secret().get(refresh=refresh)
    if not value:
        raise SinkSecretError("the SQL sink's secret is empty")
    return url_from_secret(value)


class _Connections:
    """The reused connection; after a failure the next one re-reads the secret."""

    def __init__(self) -> None:
        self._refresh = False
        self.reused = ReusedConnection(lambda: _url(self._refresh))

    def get(self) -> psycopg.Connection[Any]:
        conn = self.reused.get()
        self._refresh = False
        return conn

    def failed(self) -> None:
        self.reused.discard()
        self._refresh = True


connections = _Connections()


def record_metrics(metrics: MetricsRecorder, outcome: FeedOutcome) -> None:
    metrics.count("SqlSinkRowsWritten", outcome.report.total_written)
    metrics.count("SqlSinkRowsUnchanged", outcome.report.total_unchanged)
    metrics.count("SqlSinkRowsRejected", len(outcome.rejected))
    metrics.count("SqlSinkRecordsUnreadable", outcome.unreadable)
    if outcome.lag_seconds:
        metrics.record("SqlSinkLag", max(outcome.lag_seconds) * 1000, "Milliseconds")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    metrics = MetricsRecorder(service=SERVICE)
    try:
        records = event.get("Records") or []
        if not records:
            return {"batchItemFailures": []}
        config = settings()
        try:
            sink = SqlSink(connections.get(), schema=config.sql_schema, environment=config.sql_environment)
            outcome = feed_stream_records(sink, records)
        except Exception as error:
            connections.failed()
            metrics.count("SqlSinkBatchesFailed")
            # The error's class only: a driver message can quote a row's values.
            logger.warning("sql sink batch failed", extra={"records": len(records), "error": type(error).__name__})
            raise
        record_metrics(metrics, outcome)
        metrics.record("BatchDuration", (time.monotonic() - started) * 1000, "Milliseconds")
        logger.info(
            "sql sink batch written",
            extra={
                "records": outcome.records,
                "rows": outcome.rows,
                "written": outcome.report.total_written,
                "unchanged": outcome.report.total_unchanged,
                "rejected": len(outcome.rejected),
                "unreadable": outcome.unreadable,
                "lag_ms": round(max(outcome.lag_seconds, default=0.0) * 1000),
            },
        )
        return {"batchItemFailures": []}
    finally:
        metrics.flush()
