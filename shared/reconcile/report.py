"""What a reconcile or purge job reports: metrics and one log line per job, the same on Lambda and locally."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.observability import MetricsRecorder
from shared.reconcile.health import HealthReport
from shared.reconcile.jobs import JobOutcome, Wave
from shared.reconcile.run import NOT_OK, DirectoryReport, RunStatus


class _Stats(Protocol):
    def snapshot(self) -> dict[str, int]: ...


class _HasStats(Protocol):
    @property
    def stats(self) -> _Stats: ...


class Logger(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def error(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclass
class RequestCounter:
    """WorkOS requests and 429s made by one job (the paced client is shared, so take the difference)."""

    _api: _HasStats | None = None
    _before: dict[str, int] = field(default_factory=dict)

    def watch(self, api: Any) -> Any:
        self._api, self._before = api, api.stats.snapshot()
        return api

    def delta(self) -> tuple[int, int]:
        if self._api is None:
            return 0, 0
        after = self._api.stats.snapshot()
        return after["requests"] - self._before["requests"], after["rate_limited"] - self._before["rate_limited"]


def record_job(logger: Logger, metrics: MetricsRecorder, outcome: JobOutcome, requests: tuple[int, int]) -> None:
    if outcome.invalid:
        logger.error("unknown job dropped", extra={"kind": outcome.kind})
        metrics.count("WorkJobsInvalid")
    elif outcome.purge is not None:
        result = outcome.purge
        metrics.count("PurgedItems", result.deleted_items)
        logger.info(
            "purge",
            extra={
                "directory_id": result.directory_id,
                "deleted": result.deleted_items,
                "complete": result.complete,
                "refused": result.refused,
            },
        )
    elif outcome.report is not None:
        record_report(logger, metrics, outcome.report, requests=requests[0], rate_limited=requests[1])


def record_report(
    logger: Logger, metrics: MetricsRecorder, report: DirectoryReport, *, requests: int, rate_limited: int
) -> None:
    metrics.count("ReconcileRuns", Status=report.status.value)
    metrics.count("ReconcileRequests", requests)
    metrics.count("ReconcileRateLimited", rate_limited)
    metrics.record("ReconcileDuration", report.duration_seconds, "Seconds")
    if report.status is RunStatus.FAILED:
        metrics.count("ReconcileFailures")
    if report.skipped:
        metrics.count("ReconcileItemsSkipped", report.skipped)  # listed objects that can never be stored
    if report.status is RunStatus.REFUSED:
        metrics.count("ReconcileRefused")  # alarmed: a deletion without evidence (another environment's key?)
    if report.status is RunStatus.HELD:
        metrics.count("ReconcileDeletionsHeld")  # alarmed: deletions wait for `dsync reconcile --confirm-deletions`
    if report.status in (RunStatus.COMPLETE, RunStatus.DELETED):
        drift = report.drift.total()
        metrics.count("ReconcileDrift", drift)
        # 1 per finished run that had to repair something: the "drift twice in a row" alarm watches this.
        metrics.count("ReconcileDriftFound", 1 if drift else 0)
        for name, value in vars(report.drift).items():
            if value:
                metrics.count("ReconcileRepairs", value, Kind=name)
    log = logger.error if report.status in NOT_OK else logger.info
    log(
        "reconcile %s",
        report.status.value,
        extra={**report.as_dict(), "requests": requests, "rate_limited": rate_limited},
    )


def record_health(logger: Logger, metrics: MetricsRecorder, report: HealthReport) -> None:
    """The wave's directory health: gauges the unhealthy-directory alarm watches, and one log line that names them."""
    metrics.count("DirectoriesUnhealthy", len(report.unhealthy))
    metrics.count("DirectoriesUnhealthyTooLong", len(report.unhealthy_too_long))
    metrics.count("DirectoryCountMismatches", len(report.count_mismatches))
    log = logger.error if report.unhealthy_too_long else logger.info
    log("directory health", extra=report.as_dict())


def record_wave(logger: Logger, metrics: MetricsRecorder, wave: Wave) -> None:
    """A planned wave: its jobs, and loudly, a refusal (the key sees none of the mirror) or held deletions."""
    metrics.count("ReconcileJobsPlanned", len(wave.directory_ids))
    metrics.count("ReconcileJobsDeferred", wave.deferred)
    if wave.refused:
        metrics.count("ReconcileRefused")
        logger.error("reconcile wave refused: %s", wave.refused, extra=wave.as_dict())
        return
    if wave.held:
        metrics.count("ReconcileDeletionsHeld", len(wave.held))
    if wave.health is not None:
        record_health(logger, metrics, wave.health)
    (logger.error if wave.held else logger.info)("reconcile planned", extra=wave.as_dict())
