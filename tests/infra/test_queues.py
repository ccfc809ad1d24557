"""Queues, their dead-letter queues, TLS-only policies and the event source mappings that drain them."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

from infra.config import ConfigError, StackConfig
from infra.stack import DirectorySyncStack
from shared.resources import (
    APPLY_FUNCTION,
    APPLY_MAX_CONCURRENCY,
    EVENT_BATCH_SIZE,
    EVENT_DEAD_LETTER_QUEUE,
    EVENT_QUEUE,
    MAX_RECEIVE_COUNT,
    OVERFLOW_MAX_CONCURRENCY,
    RECONCILE_FUNCTION,
    RECONCILE_MAX_CONCURRENCY,
    WORK_DEAD_LETTER_QUEUE,
    WORK_QUEUE,
)
from tests.infra.helpers import get_att_arn, props, ref, resources

pytestmark = pytest.mark.infra


def test_event_queue_is_fifo_with_sender_set_deduplication(stack: DirectorySyncStack, template: Template) -> None:
    queue = props(template, stack.events.queue)
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is False  # dedup ids are WorkOS event ids set by ingest
    assert queue["MaximumMessageSize"] == EVENT_QUEUE.max_message_bytes
    assert queue["MessageRetentionPeriod"] == EVENT_QUEUE.retention_seconds
    assert queue["VisibilityTimeout"] == EVENT_QUEUE.visibility_timeout_seconds
    assert queue["VisibilityTimeout"] >= 6 * APPLY_FUNCTION.timeout_seconds
    assert queue["KmsMasterKeyId"] == get_att_arn(stack.key)
    # High-throughput FIFO: quotas per message group (directory), so the API throttle is not capped at 300 sends/s.
    assert queue["DeduplicationScope"] == "messageGroup"
    assert queue["FifoThroughputLimit"] == "perMessageGroupId"


def test_event_queue_redrives_to_a_fifo_dead_letter_queue(stack: DirectorySyncStack, template: Template) -> None:
    redrive = props(template, stack.events.queue)["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": get_att_arn(stack.events.dead_letter_queue), "maxReceiveCount": 5}
    assert redrive["maxReceiveCount"] >= 5  # AWS guidance: enough receives for transient errors
    assert redrive["maxReceiveCount"] == MAX_RECEIVE_COUNT

    dlq = props(template, stack.events.dead_letter_queue)
    assert dlq["FifoQueue"] is True  # a FIFO queue's DLQ must be FIFO
    assert dlq["ContentBasedDeduplication"] is False
    assert dlq["MaximumMessageSize"] == EVENT_DEAD_LETTER_QUEUE.max_message_bytes
    assert dlq["MessageRetentionPeriod"] == EVENT_DEAD_LETTER_QUEUE.retention_seconds
    assert dlq["KmsMasterKeyId"] == get_att_arn(stack.key)
    # Issue #19: it took dead letters from any queue of the account. Now only from the events and overflow queues,
    # named at synth (no template cycle); StartMessageMoveTask needs the source among them.
    assert dlq["RedriveAllowPolicy"] == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [
            queue_arn("WorkosDsyncPipeline-Events.fifo"),
            queue_arn("WorkosDsyncPipeline-Overflow.fifo"),
        ],
    }
    assert props(template, stack.events.queue)["QueueName"] == "WorkosDsyncPipeline-Events.fifo"
    assert props(template, stack.overflow_queue)["QueueName"] == "WorkosDsyncPipeline-Overflow.fifo"


def test_work_queue_is_standard_with_a_dead_letter_queue(stack: DirectorySyncStack, template: Template) -> None:
    queue = props(template, stack.work.queue)
    assert "FifoQueue" not in queue
    assert queue["VisibilityTimeout"] == WORK_QUEUE.visibility_timeout_seconds
    assert queue["VisibilityTimeout"] >= RECONCILE_FUNCTION.timeout_seconds  # Lambda rejects a shorter one
    assert queue["MessageRetentionPeriod"] == WORK_QUEUE.retention_seconds
    assert queue["KmsMasterKeyId"] == get_att_arn(stack.key)
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": get_att_arn(stack.work.dead_letter_queue),
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    }
    dlq = props(template, stack.work.dead_letter_queue)
    assert dlq["MessageRetentionPeriod"] == WORK_DEAD_LETTER_QUEUE.retention_seconds
    assert dlq["KmsMasterKeyId"] == get_att_arn(stack.key)
    assert dlq["RedriveAllowPolicy"] == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [queue_arn("WorkosDsyncPipeline-Work")],
    }


def test_the_publish_dead_letter_queue_is_no_queues_dead_letter_queue(
    stack: DirectorySyncStack, template: Template
) -> None:
    assert props(template, stack.publish_dead_letter_queue)["RedriveAllowPolicy"] == {"redrivePermission": "denyAll"}


def test_a_stack_name_too_long_for_the_queue_names_fails_synth() -> None:
    with pytest.raises(ConfigError, match="stackName"):
        StackConfig.from_mapping({"stackName": "S" * 59})


def queue_arn(name: str) -> dict[str, object]:
    """The ARN CDK writes for this stack's queue `name` (account and region are pseudo parameters)."""
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":sqs:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":{name}",
            ],
        ]
    }


def test_every_queue_is_encrypted_with_the_pipeline_key(stack: DirectorySyncStack, template: Template) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    assert len(queues) == 6  # event + DLQ, overflow, work + DLQ, publish DLQ
    for queue in queues.values():
        assert queue["Properties"]["KmsMasterKeyId"] == get_att_arn(stack.key)
        assert "SqsManagedSseEnabled" not in queue["Properties"]


def test_every_queue_denies_requests_without_tls(template: Template) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    guarded: set[str] = set()
    for policy in resources(template, "AWS::SQS::QueuePolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert {
            "Action": "sqs:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
        }.items() <= statements[0].items()
        guarded.update(queue["Ref"] for queue in policy["Properties"]["Queues"])
    assert guarded == set(queues)


def test_apply_drains_the_event_queue_with_partial_batch_failures(
    stack: DirectorySyncStack, template: Template
) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": get_att_arn(stack.events.queue),
            "FunctionName": ref(stack.apply.function),
            "BatchSize": EVENT_BATCH_SIZE,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "MaximumBatchingWindowInSeconds": Match.absent(),  # not supported for FIFO
            "ScalingConfig": {"MaximumConcurrency": APPLY_MAX_CONCURRENCY},
        },
    )
    assert EVENT_BATCH_SIZE == 10


def test_apply_also_drains_the_overflow_queue_which_dead_letters_into_the_events_dlq(
    stack: DirectorySyncStack, template: Template
) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": get_att_arn(stack.overflow_queue),
            "FunctionName": ref(stack.apply.function),
            "BatchSize": EVENT_BATCH_SIZE,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": OVERFLOW_MAX_CONCURRENCY},
        },
    )
    overflow = props(template, stack.overflow_queue)
    assert overflow["FifoQueue"] is True
    assert overflow["DeduplicationScope"] == "messageGroup"  # the same group ids as the events queue
    assert overflow["FifoThroughputLimit"] == "perMessageGroupId"
    assert overflow["RedrivePolicy"]["deadLetterTargetArn"] == get_att_arn(stack.events.dead_letter_queue)
    assert overflow["VisibilityTimeout"] >= 6 * APPLY_FUNCTION.timeout_seconds


def test_reconcile_drains_the_work_queue_one_job_at_a_time(stack: DirectorySyncStack, template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": get_att_arn(stack.work.queue),
            "FunctionName": ref(stack.reconcile.function),
            "BatchSize": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": RECONCILE_MAX_CONCURRENCY},
        },
    )


def test_publish_reads_the_table_stream_with_bisect_and_an_on_failure_queue(
    stack: DirectorySyncStack, template: Template
) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": get_att_arn(stack.directory.table, "StreamArn"),
            "FunctionName": ref(stack.publish.function),
            "StartingPosition": "LATEST",
            "BatchSize": 100,
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "DestinationConfig": {"OnFailure": {"Destination": get_att_arn(stack.publish_dead_letter_queue)}},
        },
    )
    publish_dlq = props(template, stack.publish_dead_letter_queue)
    assert "FifoQueue" not in publish_dlq
    assert publish_dlq["KmsMasterKeyId"] == get_att_arn(stack.key)


def test_exactly_four_event_source_mappings(template: Template) -> None:
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 4)  # events, overflow, work, stream
