"""Local stand-ins for Lambda's event source mappings: SQS (FIFO and standard) and DynamoDB Streams.

`SqsPoller` behaves like the SQS mapping: batches of up to N messages (several FIFO groups per batch; SQS itself
keeps one in-flight batch per group), the function's partial batch response honoured (reported messages stay on the
queue and come back after the visibility timeout; SQS moves them to the DLQ after maxReceiveCount), an error from the
function fails the whole batch. `StreamPoller` reads every shard of the table's stream in order and retries a failed
record (and what follows it) like the stream mapping, up to a limit.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from dsync.local.lambda_events import LocalContext, sqs_event, stream_event
from shared.resources import FunctionSpec

Handler = Callable[[dict[str, Any], Any], Any]
logger = logging.getLogger("dsync.local")
changes_logger = logging.getLogger("dsync.changes")


IDLE_WAIT_SECONDS = (0.05, 0.5)  # first and longest wait between polls that found nothing


class _Loop:
    """Calls `poll_once` until stopped. While it finds nothing, it waits longer between polls (up to half a second):
    every poll is an emulator call, and idle pollers competing with the busy ones for the one emulator slowed both."""

    def __init__(self, name: str, workers: int = 1) -> None:
        self.name = name
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{index}", daemon=True) for index in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        first, longest = IDLE_WAIT_SECONDS
        wait = first
        while not self._stop.is_set():
            try:
                busy = self.poll_once()
            except Exception:
                if not self._stop.is_set():  # errors while shutting down are expected (endpoints closing)
                    logger.exception("%s poller error", self.name)
                busy = False
            if busy:
                wait = first
            else:
                self._stop.wait(wait)
                wait = min(longest, wait * 2)

    def poll_once(self) -> bool:
        raise NotImplementedError


class SqsPoller(_Loop):
    def __init__(
        self,
        *,
        name: str,
        sqs: Any,
        queue_url: str,
        region: str,
        handler: Handler,
        function: FunctionSpec,
        batch_size: int,
        retry_visibility_seconds: int,
        workers: int = 1,
    ) -> None:
        super().__init__(name, workers)
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self._region = region
        self._handler = handler
        self._function = function
        self._batch_size = batch_size
        # In flight, a message stays hidden for the queue's own visibility timeout, as with Lambda. A failed one comes
        # back after `retry_visibility_seconds` instead (AWS: that same timeout, 6 minutes for the event queue), so
        # locally the retry-then-DLQ path takes seconds.
        self._retry_visibility = retry_visibility_seconds
        self.batches = 0

    def poll_once(self) -> bool:
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not messages:
            return False
        event = sqs_event(messages, queue_arn=self._queue_arn, region=self._region)
        context = LocalContext(
            function_name=f"dsync-{self._function.name}", timeout_seconds=self._function.timeout_seconds
        )
        try:
            response = self._handler(event, context) or {}
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        except Exception:
            logger.exception("%s: the function failed; the whole batch will be retried", self.name)
            failed = {message["MessageId"] for message in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        retry = [m for m in messages if m["MessageId"] in failed]
        if retry:
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self._retry_visibility}
                    for i, m in enumerate(retry)
                ],
            )
        self.batches += 1
        return True


class StreamPoller(_Loop):
    MAX_RETRIES = 10

    def __init__(self, *, streams: Any, stream_arn: str, handler: Handler, function: FunctionSpec) -> None:
        super().__init__("stream")
        self._streams = streams
        self._stream_arn = stream_arn
        self._handler = handler
        self._function = function
        self._iterators: dict[str, str | None] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._attempts: dict[str, int] = {}

    def poll_once(self) -> bool:
        shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
        busy = False
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._streams.get_shard_iterator(
                    StreamArn=self._stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            records = self._pending.pop(shard_id, [])
            iterator = self._iterators[shard_id]
            if not records and iterator:
                response = self._streams.get_records(ShardIterator=iterator, Limit=100)
                self._iterators[shard_id] = response.get("NextShardIterator")
                records = response.get("Records", [])
            if records:
                busy = True
                self._deliver(shard_id, records)
        return busy

    def _deliver(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        context = LocalContext(
            function_name=f"dsync-{self._function.name}", timeout_seconds=self._function.timeout_seconds
        )
        try:
            response = self._handler(stream_event(records, stream_arn=self._stream_arn), context) or {}
            failed = [item["itemIdentifier"] for item in response.get("batchItemFailures", [])]
        except Exception:
            logger.exception("stream: the function failed; retrying the batch")
            failed = [records[0]["dynamodb"]["SequenceNumber"]]
        if not failed:
            self._attempts.pop(shard_id, None)
            return
        first = next(i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] in failed)
        attempts = self._attempts.get(shard_id, 0) + 1
        if attempts > self.MAX_RETRIES:
            logger.error("stream: giving up on %d record(s) after %d attempts", len(records) - first, attempts - 1)
            self._attempts.pop(shard_id, None)
            return
        self._attempts[shard_id] = attempts
        self._pending[shard_id] = records[first:]
        time.sleep(min(2.0, 0.1 * 2**attempts))


class Scheduler(_Loop):
    """An EventBridge rate schedule: calls `action` every `every_seconds`."""

    def __init__(self, *, every_seconds: float, action: Callable[[], None]) -> None:
        super().__init__("schedule")
        self._every = every_seconds
        self._action = action
        self._next = time.monotonic() + every_seconds

    def poll_once(self) -> bool:
        if time.monotonic() < self._next:
            return False
        self._next = time.monotonic() + self._every
        self._action()
        return True


class TailPoller(_Loop):
    """The tail's every-minute schedule, back to back: each invocation polls for its window (`TAIL_RUN_SECONDS`),
    then the next one starts. After an invocation that did not poll (busy, not configured, key rejected) it waits
    `retry_seconds`, as the next minute's start would, instead of spinning."""

    def __init__(self, *, handler: Handler, function: FunctionSpec, retry_seconds: float = 5.0) -> None:
        super().__init__("tail")
        self._handler = handler
        self._function = function
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self.totals: dict[str, int] = {}
        self.invocations = 0

    def poll_once(self) -> bool:
        context = LocalContext(
            function_name=f"dsync-{self._function.name}",
            timeout_seconds=self._function.timeout_seconds,
            cancelled=self._stop.is_set,
        )
        result = self._handler({"source": "aws.events", "detail-type": "Scheduled Event"}, context.as_lambda_context())
        with self._lock:
            self.invocations += 1
            for name, value in (result or {}).items():
                if isinstance(value, int) and not isinstance(value, bool):
                    self.totals[name] = self.totals.get(name, 0) + value
        if (result or {}).get("status") != "ok":
            self._stop.wait(self._retry_seconds)
        return True

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.totals)


class ChangeTap(_Loop):
    """A local subscriber on the change bus (a rule → queue): counts and logs every change event published."""

    def __init__(self, *, sqs: Any, queue_url: str) -> None:
        super().__init__("changes")
        self._sqs = sqs
        self._queue_url = queue_url
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def poll_once(self) -> bool:
        messages = self._sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return False
        for message in messages:
            event = json.loads(message["Body"])
            detail_type = str(event.get("detail-type", "?"))
            detail = event.get("detail") or {}
            with self._lock:
                self.counts[detail_type] = self.counts.get(detail_type, 0) + 1
            changes_logger.info(
                detail_type, extra={"directory_id": detail.get("directory_id"), "event_id": detail.get("event_id")}
            )
        self._sqs.delete_message_batch(
            QueueUrl=self._queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        return True

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)
