"""The local stack's moto server: its lazily computed queue attributes are moto's own, key for key."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from moto.sqs.models import Queue, sqs_backends

from dsync.local.moto_server import LazyQueueAttributes

pytestmark = pytest.mark.unit


@pytest.fixture
def queues() -> Iterator[list[Queue]]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        fifo = sqs.create_queue(
            QueueName="events.fifo",
            Attributes={
                "FifoQueue": "true",
                "ContentBasedDeduplication": "false",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
                "KmsMasterKeyId": "alias/aws/sqs",
                "VisibilityTimeout": "360",
            },
        )["QueueUrl"]
        standard = sqs.create_queue(QueueName="work")["QueueUrl"]
        for index in range(3):
            sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g", MessageDeduplicationId=str(index))
            sqs.send_message(QueueUrl=standard, MessageBody="y", DelaySeconds=index)
        sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=1)
        backend = sqs_backends["123456789012"]["us-east-1"]
        yield [backend.queues[name] for name in ("events.fifo", "work", "dlq.fifo")]


def test_lazy_attributes_equal_moto_s_own_in_keys_order_and_values(queues: list[Queue]) -> None:
    for queue in queues:
        original = Queue.attributes.fget(queue)  # type: ignore[attr-defined]
        lazy = LazyQueueAttributes(queue)
        assert list(lazy) == list(original)
        assert dict(lazy) == original
        assert lazy == original
        assert lazy.get("ApproximateNumberOfMessages") == original["ApproximateNumberOfMessages"]
        assert lazy.get("NoSuchAttribute") is None


def test_counts_are_live_and_only_asked_attributes_are_computed(queues: list[Queue]) -> None:
    fifo = queues[0]
    lazy = LazyQueueAttributes(fifo)
    assert (lazy["ApproximateNumberOfMessages"], lazy["ApproximateNumberOfMessagesNotVisible"]) == (2, 1)
    assert lazy["ContentBasedDeduplication"] == "false" and lazy["FifoQueue"] == "true"
    assert json.loads(lazy["RedrivePolicy"])["maxReceiveCount"] == 5


def test_the_fast_clock_is_moto_s_clock() -> None:
    from datetime import UTC, datetime

    from moto.core import utils

    from dsync.local.moto_server import unix_time, unix_time_millis

    assert abs(unix_time() - utils.unix_time()) < 0.05
    assert abs(unix_time_millis() - utils.unix_time_millis()) < 50
    moment = datetime(2026, 12, 2, 12, 0, tzinfo=UTC).replace(tzinfo=None)
    assert unix_time(moment) == utils.unix_time(moment)
