"""The SQL sink's feed: the directory table's stream, batch by batch, into PostgreSQL.

## Why the table's stream, and not the change bus

Both carry every change of the mirror; they differ in what they carry, what they cost and how they fail.

- **What arrives.** A stream record holds the item's whole new image (old image on removal), the same item a
  backfill reads, so the feed and `dsync sql backfill` share one mapping (`shared.sql.rows.row_from_item`) and
  write identical rows for one version. The change bus carries the readable projection of *changes*: by design no
  event for a rewrite whose readable fields did not move (a new `updated_at` alone), none for a directory's rename
  (only activation, deactivation, deletion), and bodies truncated past EventBridge's 256 KB. A sink fed by the bus
  would drift on those and need reads of the table to repair them; one fed by the stream equals the export.
- **Cost.** Lambda's reads of a DynamoDB stream are free; the bus path adds an SQS queue behind a rule (an SQS
  send, receive and delete per change, ~$0.40-1.20 per million changes) on top of the PutEvents publish already
  pays. Both are small; the stream is the cheaper.
- **Ordering.** Neither matters: the sink's write rule keeps the newest version whatever the order (a stream gives
  one item's records in order, the bus none, SQS retries reorder). The convergence property test delivers the
  stream's records shuffled and duplicated on purpose.
- **The stream's two readers.** DynamoDB documents at most two processes reading one stream shard at once (more
  are throttled). The publish function is one, the sink is the second: the table's stream is then full, and any
  further consumer must subscribe to the change bus (which is what it is for). The sink takes that slot because it
  is the one consumer that needs the items themselves.
- **Failure.** While PostgreSQL is down the batch fails and Lambda retries it, holding the sink's position in each
  shard (the publish function reads on, unaffected): nothing is lost for the stream's 24 hours. A batch that
  exhausts its retries is recorded on the sink's failure queue (shard and sequence range) with an alarm, and
  `dsync sql backfill` repairs it from the mirror (under the same rule, so racing the feed is safe). The bus path
  would keep messages 14 days in SQS instead; the sink needs no more than 24 hours because the mirror itself is
  its replay log.

## One batch, one transaction

A batch's rows are written in one transaction (`shared.sql.writer.SqlSink.write`). A connection or server failure
fails the whole batch (Lambda retries it). A row PostgreSQL refuses for its data (it is not the database's
fault: a value it cannot store) would block the shard for a day, so then the batch is written row by row and the
refused rows are counted (`SqlSinkRowsRejected`, an alarm) and left to `dsync sql verify` to show. A record that is
not a readable stream record is counted and skipped the same way (`SqlSinkRecordsUnreadable`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from shared.sql.rows import SinkRow, UnreadableStreamRecordError, row_from_stream_record
from shared.sql.writer import SqlSink, WriteReport


@dataclass
class FeedOutcome:
    records: int = 0
    rows: int = 0
    report: WriteReport = field(default_factory=WriteReport)
    unreadable: int = 0
    rejected: list[str] = field(default_factory=list)  # the refused rows' error names (no data)
    lag_seconds: list[float] = field(default_factory=list)  # per record: now - the table's change time


def created_at(record: Mapping[str, Any]) -> float | None:
    stream = record.get("dynamodb")
    value = stream.get("ApproximateCreationDateTime") if isinstance(stream, Mapping) else None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):  # the dynamodbstreams API (boto3) gives a datetime
        return value.timestamp()
    return None


def feed_stream_records(
    sink: SqlSink, records: Sequence[Mapping[str, Any]], *, now: float | None = None
) -> FeedOutcome:
    """Write the rows a stream batch implies, in one transaction. Raises `psycopg.OperationalError` (and any error
    not about the data) for Lambda to retry the batch."""
    outcome = FeedOutcome(records=len(records))
    rows: list[SinkRow] = []
    for record in records:
        try:
            row = row_from_stream_record(record)
        except UnreadableStreamRecordError:
            outcome.unreadable += 1
            continue
        if row is not None:
            rows.append(row)
    outcome.rows = len(rows)
    if rows:
        try:
            outcome.report = sink.write(rows)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError):
            outcome.report = _row_by_row(sink, rows, outcome.rejected)
    now = time.time() if now is None else now
    outcome.lag_seconds = [max(0.0, now - at) for record in records if (at := created_at(record)) is not None]
    return outcome


def _row_by_row(sink: SqlSink, rows: Sequence[SinkRow], rejected: list[str]) -> WriteReport:
    report = WriteReport()
    for row in rows:
        try:
            report.add(sink.write([row]))
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as error:
            rejected.append(type(error).__name__)
    return report
