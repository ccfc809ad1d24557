"""A queue and its dead-letter queue, both KMS-encrypted and TLS-only, from `shared.resources` specs.

Used twice: the FIFO event queue between ingest and apply (one message group per directory), and the standard work
queue of reconcile and purge jobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.encrypted_queue import encrypted_queue
from shared.resources import MAX_RECEIVE_COUNT, QueueSpec

# SQS queue names: at most 80 characters, ".fifo" included (CreateQueue, QueueName).
MAX_QUEUE_NAME_LENGTH = 80


def queue_name(prefix: str, name: str, *, fifo: bool) -> str:
    """`<prefix>-<name>[.fifo]`: a name known at synth time, so a dead-letter queue's redrive allow policy can name
    its source queues' ARNs without the two queues referencing each other (a template cycle)."""
    full = f"{prefix}-{name}" + (".fifo" if fifo else "")
    if len(full) > MAX_QUEUE_NAME_LENGTH:
        raise ValueError(f"queue name {full!r} is longer than SQS's {MAX_QUEUE_NAME_LENGTH} characters")
    return full


def queue_arn(scope: Construct, name: str) -> str:
    """The ARN of this stack's queue called `name` (account and region are the stack's)."""
    return Stack.of(scope).format_arn(service="sqs", resource=name, arn_format=ArnFormat.NO_RESOURCE_NAME)


class DeadLetteredQueue(Construct):
    """`queue`, whose messages land in `dead_letter_queue` after `MAX_RECEIVE_COUNT` failed receives.

    The dead-letter queue takes dead letters only from `queue` and the queues named in `other_sources` (a redrive
    allow policy "byQueue"), never from any other queue of the account; redrive back to a source (StartMessageMoveTask)
    needs only that the source is among them.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        spec: QueueSpec,
        dead_letter_spec: QueueSpec,
        key: kms.IKey,
        name_prefix: str,
        other_sources: Sequence[str] = (),
        high_throughput_fifo: bool = False,
    ) -> None:
        super().__init__(scope, id_)
        self.queue_name = queue_name(name_prefix, id_, fifo=spec.fifo)
        sources = [
            sqs.Queue.from_queue_arn(self, f"Source{index}", queue_arn(self, name))
            for index, name in enumerate([self.queue_name, *other_sources])
        ]
        self.dead_letter_queue = encrypted_queue(
            self,
            "DeadLetterQueue",
            spec=dead_letter_spec,
            key=key,
            queue_name=queue_name(name_prefix, f"{id_}DeadLetter", fifo=dead_letter_spec.fifo),
            redrive_allow_policy=sqs.RedriveAllowPolicy(
                redrive_permission=sqs.RedrivePermission.BY_QUEUE, source_queues=sources
            ),
        )
        self.queue = encrypted_queue(
            self,
            "Queue",
            spec=spec,
            key=key,
            queue_name=self.queue_name,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVE_COUNT, queue=self.dead_letter_queue),
            high_throughput_fifo=high_throughput_fifo,
        )
