"""The one way this stack makes an SQS queue: attributes from a `shared.resources.QueueSpec`, the pipeline's CMK,
TLS-only access."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from shared.resources import QueueSpec


def encrypted_queue(
    scope: Construct,
    id_: str,
    *,
    spec: QueueSpec,
    key: kms.IKey,
    queue_name: str | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
    redrive_allow_policy: sqs.RedriveAllowPolicy | None = None,
    high_throughput_fifo: bool = False,
) -> sqs.Queue:
    """A queue whose semantics come from `spec`. FIFO queues never use content-based deduplication: the sender
    sets the deduplication id (the WorkOS event id)."""
    if high_throughput_fifo and not spec.fifo:
        raise ValueError(f"{id_}: high-throughput mode applies to FIFO queues only")
    return sqs.Queue(
        scope,
        id_,
        queue_name=queue_name,
        fifo=spec.fifo or None,
        content_based_deduplication=False if spec.fifo else None,
        # High-throughput FIFO: deduplication and the throughput quota per message group (= per directory) instead
        # of per queue, so the ingest API's throttle is not capped by the queue's 300 sends/s default.
        deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP if high_throughput_fifo else None,
        fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID if high_throughput_fifo else None,
        retention_period=Duration.seconds(spec.retention_seconds),
        visibility_timeout=Duration.seconds(spec.visibility_timeout_seconds),
        max_message_size_bytes=spec.max_message_bytes,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        dead_letter_queue=dead_letter_queue,
        redrive_allow_policy=redrive_allow_policy,
    )
