"""The FIFO queue between ingest and apply, and its FIFO dead-letter queue."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.encrypted_queue import encrypted_queue
from shared.resources import EVENT_DEAD_LETTER_QUEUE, EVENT_QUEUE, MAX_RECEIVE_COUNT


class EventQueue(Construct):
    """Verified WorkOS events, one message group per directory; failures land in `dead_letter_queue`."""

    def __init__(self, scope: Construct, id_: str, *, key: kms.IKey) -> None:
        super().__init__(scope, id_)
        # The redrive allow policy names who may use this queue as a DLQ. "byQueue" with the source queue would make
        # the two queues reference each other (a template cycle), so allow any queue of the account; that is also
        # the policy StartMessageMoveTask needs to move messages back to the source queue.
        self.dead_letter_queue = encrypted_queue(
            self,
            "DeadLetterQueue",
            spec=EVENT_DEAD_LETTER_QUEUE,
            key=key,
            redrive_allow_policy=sqs.RedriveAllowPolicy(redrive_permission=sqs.RedrivePermission.ALLOW_ALL),
        )
        self.queue = encrypted_queue(
            self,
            "Queue",
            spec=EVENT_QUEUE,
            key=key,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVE_COUNT, queue=self.dead_letter_queue),
            high_throughput_fifo=True,
        )
