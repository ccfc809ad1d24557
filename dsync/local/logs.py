"""Readable local logs: the handlers' structured (Powertools JSON) log records, rendered as one line each.

The handlers log exactly as in AWS; the local stack only swaps the output, so what a developer reads locally is
what CloudWatch Logs Insights would show, minus the JSON.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

SERVICES = (
    "dsync-ingest",
    "dsync-apply",
    "dsync-reconcile",
    "dsync-publish",
    "dsync-tail",
    "dsync-sql-sink",
    "dsync-sql-verify",
    "shared.tail.poller",
    "dsync.local",
    "dsync.changes",
)
# Fields worth a glance, in display order; everything else stays out of the line.
FIELDS = (
    "status",
    "reason",
    "event_type",
    "event_id",
    "directory_id",
    "messages",
    "applied",
    "noop",
    "ignored",
    "forwarded",
    "retry",
    "duration_ms",
    "drift_total",
    "requests",
    "rate_limited",
    "published",
    "failed",
    "deleted",
    "complete",
    "planned",
    "directories",
    "error",
)


class ReadableFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        service = record.name.removeprefix("dsync-").removeprefix("dsync.")
        message = record.getMessage()
        details = " ".join(
            f"{name}={_short(value)}" for name in FIELDS if (value := getattr(record, name, None)) not in (None, "")
        )
        line = f"{stamp} {service:<9} {record.levelname.lower() + ': ' if record.levelno >= logging.WARNING else ''}"
        line += f"{message}{'  ' + details if details else ''}"
        if record.exc_info and record.levelno >= logging.ERROR:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def install(stream: TextIO | None = None, *, level: int = logging.INFO) -> list[logging.Handler]:
    """Route the handlers' loggers to one readable stream; returns the handlers it added (for removal)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(ReadableFormatter())
    installed: list[logging.Handler] = []
    for name in SERVICES:
        service_logger = logging.getLogger(name)
        for existing in list(service_logger.handlers):
            service_logger.removeHandler(existing)
        service_logger.addHandler(handler)
        service_logger.setLevel(level)
        service_logger.propagate = False
        installed.append(handler)
    return installed


def silence(level: int = logging.WARNING) -> None:
    """Quieter handler logs (the demo prints its own story)."""
    for name in SERVICES:
        logging.getLogger(name).setLevel(level)
