"""Scheduled SQL sink verify: every directory's live rows, mirror against sink (`shared.sql.verify`), as metrics.

`SqlVerifyDirectoriesDifferent` (alarmed on) counts the directories that still differ after the settle delay;
the log names them and the kinds of difference (ids only). Repair: `dsync sql backfill` (docs/runbook.md).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.secrets import SecretText
from shared.observability import MetricsRecorder, get_logger
from shared.sql.connection import SinkSecretError, connect, url_from_secret
from shared.sql.settings import SqlVerifySettings
from shared.sql.verify import verify

SERVICE = "dsync-sql-verify"
logger = get_logger(SERVICE)


@lru_cache(maxsize=1)
def settings() -> SqlVerifySettings:
    return SqlVerifySettings()  # fields come from the environment


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    metrics = MetricsRecorder(service=SERVICE)
    config = settings()
    try:
        value = SecretText(config.sql_sink_secret_id).get(refresh=True)
        if not value:
            raise SinkSecretError("the SQL sink's secret is empty")
        try:
            with connect(url_from_secret(value), application_name=SERVICE) as conn:
                report = verify(
                    DirectoryTable(config.table_name),
                    conn,
                    schema=config.sql_schema,
                    environment=config.sql_environment,
                    settle_seconds=config.sql_verify_settle_seconds,
                )
        except Exception as error:
            metrics.count("SqlVerifyFailed")
            logger.warning("sql verify failed", extra={"error": type(error).__name__})
            raise
        metrics.count("SqlVerifyDirectoriesChecked", len(report.directories))
        metrics.count("SqlVerifyDirectoriesDifferent", len(report.different))
        metrics.record("SqlVerifyDuration", (time.monotonic() - started) * 1000, "Milliseconds")
        for verdict in report.different:
            logger.warning(
                "sql sink differs from the mirror",
                extra={"directory_id": verdict.directory_id, "kinds": sorted(verdict.differences)},
            )
        summary = report.as_dict()
        return {key: summary[key] for key in ("checked", "equal", "different")}
    finally:
        metrics.flush()
