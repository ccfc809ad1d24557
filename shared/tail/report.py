"""What one tail invocation reports: metrics for the dashboard and alarms, and one log line.

Poll age (now minus the last read whose page SQS accepted) is the alarm that matters: a stalled sync is silent, its
error rate can be zero. Cursor age (now minus the cursor event's time) warns before WorkOS's retention expires the
cursor. Enqueue failures and parked events (too large for any SQS message) have their own alarms.
"""

from __future__ import annotations

from shared.model.events import parse_time
from shared.observability import MetricsRecorder
from shared.tail.poller import TailReport, TailStatus


def record_tail(metrics: MetricsRecorder, report: TailReport, *, now: float) -> None:
    metrics.count("TailRuns", Status=report.status.value)
    metrics.count("TailPolls", report.polls)
    metrics.count("TailEventsRead", report.events_read)
    metrics.count("TailEventsEnqueued", report.events_enqueued)
    metrics.count("TailFullPages", report.full_pages)
    metrics.count("TailRateLimited", report.rate_limited)
    metrics.count("TailUnavailable", report.unavailable)
    metrics.count("TailEnqueueFailures", report.enqueue_failures)
    metrics.count("TailEventsParked", report.events_parked)
    metrics.count("TailCursorRefused", report.recoveries)
    metrics.count("TailAuthFailures", 1 if report.status is TailStatus.AUTH_FAILED else 0)
    metrics.count("TailEnvironmentChanged", 1 if report.status is TailStatus.ENVIRONMENT_CHANGED else 0)
    for lag in report.lag_seconds:
        metrics.record("TailLagSeconds", lag, "Seconds")
    cursor = report.cursor
    last_read = report.last_read_at or (cursor.polled_ms / 1000 if cursor is not None and cursor.polled_ms else None)
    if last_read is not None:
        metrics.record("TailPollAgeSeconds", max(0.0, now - last_read), "Seconds")
    if cursor is not None and cursor.event_created_at:
        metrics.record(
            "TailCursorAgeSeconds", max(0.0, now - parse_time(cursor.event_created_at).timestamp()), "Seconds"
        )
