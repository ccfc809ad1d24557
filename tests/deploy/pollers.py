"""The Lambda service's event source mappings, played with the function's role (as Lambda polls with it): the
requests Lambda makes to read a queue or a stream, and to send a failed stream batch to its on-failure destination,
are checked against the role like the handler's own.

Lambda's documented execution-role permissions: SQS sqs:ReceiveMessage, sqs:DeleteMessage, sqs:GetQueueAttributes
(https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html); DynamoDB Streams dynamodb:DescribeStream,
dynamodb:GetRecords, dynamodb:GetShardIterator, dynamodb:ListStreams, and sqs:SendMessage for an SQS on-failure
destination (https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-eventsourcemapping.html).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config

from dsync.local.lambda_events import sqs_event, stream_event
from tests.deploy.resources import EventSource
from tests.deploy.runtime import Runtime
from tests.deploy.world import REGION

# botocore derives `<account>.streams-ddb...` from a stream ARN, a host moto does not intercept.
STREAMS_CONFIG = Config(account_id_endpoint_mode="disabled")


def sqs_source(runtime: Runtime, queue_arn: str) -> EventSource:
    return next(s for s in runtime.deployment.event_sources if s.source_arn == queue_arn)


def drain_queue(runtime: Runtime, queue_arn: str, *, batches: int = 20) -> list[Any]:
    """Deliver the queue's visible messages to its mapped function, batch by batch, deleting what the function did
    not report failed (reported messages stay, invisible until their timeout). Returns the function's responses."""
    source = sqs_source(runtime, queue_arn)
    url = runtime.deployment.resources.queue_by_arn(queue_arn).url
    responses = []
    with runtime.service_session(source.function) as session:
        session.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])  # mapping validation
    for _ in range(batches):
        with runtime.service_session(source.function) as session:
            received = session.client("sqs").receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=source.batch_size,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        messages = received.get("Messages", [])
        if not messages:
            break
        try:
            response = runtime.invoke(source.function, sqs_event(messages, queue_arn=queue_arn, region=REGION))
        except Exception as error:  # a function error: the whole batch stays on the queue
            response = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages], "error": error}
        responses.append(response)
        failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            with runtime.service_session(source.function) as session:
                session.client("sqs").delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
    return responses


class StreamSource:
    """The table stream's mapping: reads new records in order, delivers them in batches, retries a batch from its
    first failed record up to the mapping's retry limit, then sends the failure record to the destination."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.source = next(s for s in runtime.deployment.event_sources if ":dynamodb:" in s.source_arn)
        self.after: dict[str, str] = {}  # shard -> last sequence number delivered

    def skip(self, deployer: Any) -> None:
        """Start after what the stream holds now, as a mapping created now would (StartingPosition LATEST): read as
        the deployer, so a scenario publishes its own changes only, not every earlier scenario's."""
        streams = deployer.client("dynamodbstreams", config=STREAMS_CONFIG)
        stream_arn = self.source.source_arn
        for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"].get("Shards", []):
            shard_id = shard["ShardId"]
            position: dict[str, Any] = (
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self.after[shard_id]}
                if shard_id in self.after
                else {"ShardIteratorType": "TRIM_HORIZON"}
            )
            iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id, **position)["ShardIterator"]
            while iterator and (page := streams.get_records(ShardIterator=iterator, Limit=1000))["Records"]:
                self.after[shard_id] = page["Records"][-1]["dynamodb"]["SequenceNumber"]
                iterator = page.get("NextShardIterator")

    def drain(self) -> list[Any]:
        responses = []
        while records := self._read():
            batch = records[: self.source.batch_size]
            responses += self._deliver(batch)
            self.after[batch[-1]["_shard"]] = batch[-1]["dynamodb"]["SequenceNumber"]
        return responses

    def _read(self) -> list[dict[str, Any]]:
        stream_arn = self.source.source_arn
        table = self.runtime.deployment.resources.table_of_stream(stream_arn)
        found: list[dict[str, Any]] = []
        with self.runtime.service_session(self.source.function) as session:
            streams = session.client("dynamodbstreams", config=STREAMS_CONFIG)
            streams.list_streams(TableName=table.name)
            for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"].get("Shards", []):
                shard_id = shard["ShardId"]
                position: dict[str, Any] = (
                    {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self.after[shard_id]}
                    if shard_id in self.after
                    else {"ShardIteratorType": "TRIM_HORIZON"}
                )
                iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id, **position)[
                    "ShardIterator"
                ]
                page = streams.get_records(ShardIterator=iterator, Limit=1000)
                found += [{**record, "_shard": shard_id} for record in page["Records"]]
                if found:
                    break
        return found

    def _deliver(self, batch: list[dict[str, Any]]) -> list[Any]:
        responses = []
        pending = batch
        for _attempt in range(1 + (self.source.max_retries or 0)):
            records = [{k: v for k, v in r.items() if k != "_shard"} for r in pending]
            try:
                response = self.runtime.invoke(
                    self.source.function, stream_event(records, stream_arn=self.source.source_arn)
                )
            except Exception as error:  # a function error fails the whole batch
                failures = [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in pending]
                response = {"batchItemFailures": failures, "error": error}
            responses.append(response)
            failed = [item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])]
            if not failed:
                return responses
            first = min(failed, key=int)
            pending = [r for r in pending if int(r["dynamodb"]["SequenceNumber"]) >= int(first)]
        self._on_failure(pending)
        return responses

    def _on_failure(self, records: list[dict[str, Any]]) -> None:
        """Lambda's invocation record for a stream batch that exhausted its retries (metadata only, no data)."""
        destination = self.source.on_failure_arn
        if destination is None:
            return
        url = self.runtime.deployment.resources.queue_by_arn(destination).url
        info = {
            "shardId": records[0]["_shard"],
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "batchSize": len(records),
            "streamArn": self.source.source_arn,
        }
        body = {"requestContext": {"condition": "RetryAttemptsExhausted"}, "DDBStreamBatchInfo": info}
        with self.runtime.service_session(self.source.function) as session:
            session.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(body))
