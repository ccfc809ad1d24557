"""`dsync status` for a human: the status document (`dsync.commands.mirror.status`) as a few lines of totals and a
fixed-width table of each directory's key figures, then what needs attention. JSON stays the format for scripts.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS = ("DIRECTORY", "STATE", "HEALTH", "ACTIVE", "INACTIVE", "GROUPS", "LAST EVENT APPLIED", "LAST RECONCILE")
NUMERIC = frozenset({"ACTIVE", "INACTIVE", "GROUPS"})


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds (or minutes) above 0; anything else is a usage error (exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def add_status_arguments(status: argparse.ArgumentParser) -> None:
    """`dsync status`'s own options (where it reads from is added by `dsync.options.target_arguments`)."""
    from shared.read.status import DEFAULT_TAIL_POLL_AGE_ALARM_SECONDS, DEFAULT_UNHEALTHY_MINUTES

    status.add_argument("--directory", default=None, help="only this directory (an unknown id exits 1)")
    status.add_argument(
        "--unhealthy",
        action="store_true",
        help="only directories with a problem: WorkOS reports their connection unhealthy, or their last reconcile "
        "failed, was refused or held (the totals still cover every directory)",
    )
    status.add_argument("--summary", action="store_true", help="totals only, no per-directory list")
    status.add_argument(
        "--output", choices=("json", "table"), default=None, help="default: a table on a terminal, JSON when piped"
    )
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when something needs a human (dead letters, a tail not polling, a directory unhealthy too "
        "long, a reconcile failed, refused or held), each reason on stderr",
    )
    status.add_argument(
        "--tail-poll-age-alarm",
        type=positive_seconds,
        default=DEFAULT_TAIL_POLL_AGE_ALARM_SECONDS,
        metavar="SECONDS",
        help="for --check: the tail's poll age that needs a human (default: %(default)g, the stack's alarm)",
    )
    status.add_argument(
        "--unhealthy-minutes",
        type=positive_seconds,
        default=DEFAULT_UNHEALTHY_MINUTES,
        metavar="MINUTES",
        help="for --check: how long a directory may stay unhealthy (default: %(default)g, the stack's alarm)",
    )


def render_table(document: Mapping[str, Any]) -> str:
    lines = [
        f"queues       {_queues(document)}",
        f"tail         {_tail(document.get('tail'))}",
        f"smoke test   {_smoke(document.get('last_smoke_test'))}",
        f"directories  {_summary(document['summary'])}",
    ]
    directories = document.get("directories")
    if directories is not None:
        lines += ["", *_table([_row(entry) for entry in directories])] if directories else ["", "(no directories)"]
    reasons = document.get("attention") or []
    lines.append("")
    lines += ["needs attention:", *(f"  - {reason}" for reason in reasons)] if reasons else ["nothing needs attention"]
    return "\n".join(lines)


def _queues(document: Mapping[str, Any]) -> str:
    parts = [f"events {document['queued']} queued, {document['in_flight']} in flight"]
    if "overflow_queued" in document:
        parts.append(f"overflow {document['overflow_queued']} queued, {document['overflow_in_flight']} in flight")
    parts.append(f"dead letters {document['dead_letters']}")
    return " | ".join(parts)


def _tail(tail: Mapping[str, Any] | None) -> str:
    if tail is None:
        return "has not run"
    parts = [
        f"polled {_seconds(tail.get('poll_age_seconds'))} ago",
        f"cursor event {_seconds(tail.get('cursor_age_seconds'))} old",
        f"lag {_seconds(tail.get('lag_seconds'))}",
        "running" if tail.get("running") else "idle",
    ]
    if tail.get("recovered_at"):
        parts.append(f"recovered {tail['recovered_at']} ({tail.get('recovery_reason')})")
    return " | ".join(parts)


def _smoke(smoke: Mapping[str, Any] | None) -> str:
    if smoke is None:
        return "none received"
    return f"{smoke.get('event_type')} {smoke.get('event_id')} applied {smoke.get('applied_at')}"


def _summary(summary: Mapping[str, Any]) -> str:
    counts = summary["mirror_counts"]
    text = (
        f"{summary['directories']}: {summary['unhealthy']} unhealthy ({summary['unhealthy_too_long']} too long), "
        f"{summary['reconcile_not_ok']} reconcile not ok, {summary['never_reconciled']} never reconciled | "
        f"users {counts['users_active']:,} active, {counts['users_inactive']:,} inactive | groups {counts['groups']:,}"
    )
    if summary.get("uncounted"):
        text += f" | {summary['uncounted']} not counted yet"
    return text


def _row(entry: Mapping[str, Any]) -> dict[str, str]:
    health = entry.get("health") or {}
    counts = entry["mirror_counts"]
    event = entry.get("last_event") or {}
    run = entry.get("last_reconcile") or {}
    return {
        "DIRECTORY": str(entry["id"]),
        "STATE": str(entry.get("state") or "-"),
        "HEALTH": str(health.get("state") or "-") + (" !" if entry.get("problems") else ""),
        "ACTIVE": _count(counts["users_active"]),
        "INACTIVE": _count(counts["users_inactive"]),
        "GROUPS": _count(counts["groups"]),
        "LAST EVENT APPLIED": _time(event.get("applied_at")),
        "LAST RECONCILE": f"{run['status']} {_time(run.get('finished_at'))} drift {run.get('drift_total', 0)}"
        if run
        else "-",
    }


def _table(rows: Sequence[Mapping[str, str]]) -> list[str]:
    widths = {column: max(len(column), *(len(row[column]) for row in rows)) for column in COLUMNS}

    def line(cells: Mapping[str, str]) -> str:
        return "  ".join(
            cells[c].rjust(widths[c]) if c in NUMERIC else cells[c].ljust(widths[c]) for c in COLUMNS
        ).rstrip()

    return [line({column: column for column in COLUMNS}), *(line(row) for row in rows)]


def _time(value: str | None) -> str:
    return value.replace("+00:00", "Z") if value else "-"


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g} s"
