"""`dsync sql backfill`: the mirror copied into the sink under the feed's own rule, while the feed runs.

Every item of a directory's partition (tombstones included) is written at its version, a page per transaction: a
row the feed already wrote newer stays, one the feed writes later wins, so backfill and feed can race in any order.
Then the sink's live rows of the directory that the partition did not hold are checked one by one against the
mirror (a consistent read): a row whose item is gone (purged, or a tombstone expired after a long outage) becomes a
tombstone at its version with the deletion bit, the rule the feed uses for a removed item; a row whose item has
appeared meanwhile is left to the feed.

Resumable: a directory copied whole is recorded in `<schema>.backfill_progress` under the run's name; a run
started again under the same name skips those, and a run that completes clears its records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from shared.model import records
from shared.sql.mirror import MirrorTable, live_directory_ids
from shared.sql.reader import SinkReader
from shared.sql.rows import (
    DirectoryRow,
    GroupRow,
    MembershipRow,
    SinkRow,
    UserRow,
    row_from_item,
    row_key,
    tombstone_of,
)
from shared.sql.writer import SqlSink, WriteReport

PAGE_SIZE = 500
DEFAULT_RUN = "default"


@dataclass
class DirectoryBackfill:
    directory_id: str
    rows: int = 0
    written: int = 0
    pruned: int = 0
    skipped: bool = False  # copied by an earlier, interrupted run of the same name


@dataclass
class BackfillReport:
    run: str
    directories: list[DirectoryBackfill] = field(default_factory=list)
    totals: WriteReport = field(default_factory=WriteReport)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "directories": len(self.directories),
            "skipped_as_done": sum(d.skipped for d in self.directories),
            "rows_read": sum(d.rows for d in self.directories),
            "rows_written": dict(sorted(self.totals.written.items())),
            "rows_unchanged": dict(sorted(self.totals.unchanged.items())),
            "rows_pruned": sum(d.pruned for d in self.directories),
        }


Progress = Callable[[str, int, int], None]  # (directory id, rows done in it, directories done)


def _pages(items: Iterable[SinkRow], size: int) -> Iterator[list[SinkRow]]:
    page: list[SinkRow] = []
    for item in items:
        page.append(item)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def backfill(
    mirror: MirrorTable,
    sink: SqlSink,
    *,
    directory_id: str | None = None,
    run: str = DEFAULT_RUN,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
) -> BackfillReport:
    reader = SinkReader(sink.connection, schema=sink.schema, environment=sink.environment)
    if directory_id is not None:
        directory_ids = [directory_id]
    else:  # the mirror's live directories, and those the sink holds (a deletion the feed missed)
        directory_ids = sorted(set(live_directory_ids(mirror)) | set(reader.directory_ids()))
    done = _done(sink, run)
    report = BackfillReport(run=run)
    for position, current in enumerate(directory_ids):
        result = DirectoryBackfill(current)
        report.directories.append(result)
        if current in done:
            result.skipped = True
            continue
        seen: set[tuple[str, ...]] = set()
        rows = (row for item in mirror.query_partition(current, "") if (row := row_from_item(item)) is not None)
        for page in _pages(rows, page_size):
            seen.update(row_key(row) for row in page)
            written = sink.write(page)
            report.totals.add(written)
            result.rows += len(page)
            result.written += written.total_written
            if progress:
                progress(current, result.rows, position)
        result.pruned = _prune(mirror, sink, current, seen, report.totals)
        _record_done(sink, run, current, result.rows)
        if progress:
            progress(current, result.rows, position + 1)
    _clear_run(sink, run)
    return report


def _live_sink_rows(sink: SqlSink, directory_id: str) -> list[SinkRow]:
    statement = sql.SQL(
        "SELECT 'user', id, NULL, version FROM {s}.users WHERE environment = %(e)s AND directory_id = %(d)s"
        " AND deleted_at IS NULL"
        " UNION ALL SELECT 'group', id, NULL, version FROM {s}.groups WHERE environment = %(e)s"
        " AND directory_id = %(d)s AND deleted_at IS NULL"
        " UNION ALL SELECT 'membership', group_id, user_id, version FROM {s}.memberships WHERE environment = %(e)s"
        " AND directory_id = %(d)s AND deleted_at IS NULL"
        " UNION ALL SELECT 'directory', id, NULL, version FROM {s}.directories WHERE environment = %(e)s"
        " AND id = %(d)s AND deleted_at IS NULL"
    ).format(s=sql.Identifier(sink.schema))
    found: list[SinkRow] = []
    for kind, first, second, stored in sink.connection.execute(
        statement, {"e": sink.environment, "d": directory_id}
    ).fetchall():
        version = int(stored)
        if kind == "user":
            found.append(UserRow(id=first, directory_id=directory_id, version=version))
        elif kind == "group":
            found.append(GroupRow(id=first, directory_id=directory_id, version=version))
        elif kind == "membership":
            found.append(MembershipRow(directory_id, first, second, version))
        else:
            found.append(DirectoryRow(id=first, organization_id=None, version=version))
    return found


def _mirror_key(row: SinkRow, directory_id: str) -> records.ItemKey:
    if isinstance(row, MembershipRow):
        return records.membership_key(directory_id, row.group_id, row.user_id)
    if isinstance(row, UserRow):
        return records.user_key(directory_id, row.id)
    if isinstance(row, GroupRow):
        return records.group_key(directory_id, row.id)
    return records.directory_key(directory_id)


def _prune(
    mirror: MirrorTable, sink: SqlSink, directory_id: str, seen: set[tuple[str, ...]], totals: WriteReport
) -> int:
    gone: list[SinkRow] = []
    for row in _live_sink_rows(sink, directory_id):
        if row_key(row) in seen:
            continue
        if mirror.get_item(_mirror_key(row, directory_id)) is None:  # consistent: gone now, not only at the query
            gone.append(tombstone_of(row))
    if not gone:
        return 0
    written = sink.write(gone)
    totals.add(written)
    return written.total_written


def _done(sink: SqlSink, run: str) -> set[str]:
    rows = sink.connection.execute(
        sql.SQL("SELECT directory_id FROM {}.backfill_progress WHERE environment = %s AND run = %s").format(
            sql.Identifier(sink.schema)
        ),
        (sink.environment, run),
    ).fetchall()
    return {str(row[0]) for row in rows}


def _record_done(sink: SqlSink, run: str, directory_id: str, rows: int) -> None:
    sink.connection.execute(
        sql.SQL(
            "INSERT INTO {}.backfill_progress (environment, run, directory_id, rows_written) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (environment, run, directory_id) DO UPDATE SET rows_written = EXCLUDED.rows_written,"
            " finished_at = now()"
        ).format(sql.Identifier(sink.schema)),
        (sink.environment, run, directory_id, rows),
    )


def _clear_run(sink: SqlSink, run: str) -> None:
    sink.connection.execute(
        sql.SQL("DELETE FROM {}.backfill_progress WHERE environment = %s AND run = %s").format(
            sql.Identifier(sink.schema)
        ),
        (sink.environment, run),
    )
