"""A queue and its dead-letter queue, both KMS-encrypted and TLS-only, from `shared.resources` specs.

Used twice: the FIFO event queue between ingest and apply (one message group per directory), and the standard work
queue of reconcile and purge jobs.
"""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.encrypted_queue import encrypted_queue
from shared.resources import MAX_RECEIVE_COUNT, QueueSpec


class DeadLetteredQueue(Construct):
    """`queue`, whose messages land in `dead_letter_queue` after `MAX_RECEIVE_COUNT` failed receives."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        spec: QueueSpec,
        dead_letter_spec: QueueSpec,
        key: kms.IKey,
        high_throughput_fifo: bool = False,
    ) -> None:
        super().__init__(scope, id_)
        # The redrive allow policy names who may use this queue as a DLQ. "byQueue" with the source queue would make
        # the two queues reference each other (a template cycle), so allow any queue of the account; that is also
        # the policy StartMessageMoveTask needs to move messages back to the source queue.
        self.dead_letter_queue = encrypted_queue(
            self,
            "DeadLetterQueue",
            spec=dead_letter_spec,
            key=key,
            redrive_allow_policy=sqs.RedriveAllowPolicy(redrive_permission=sqs.RedrivePermission.ALLOW_ALL),
        )
        self.queue = encrypted_queue(
            self,
            "Queue",
            spec=spec,
            key=key,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVE_COUNT, queue=self.dead_letter_queue),
            high_throughput_fifo=high_throughput_fifo,
        )
