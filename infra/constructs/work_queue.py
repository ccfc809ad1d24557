"""The standard queue that carries reconcile and purge jobs, and its dead-letter queue."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.encrypted_queue import encrypted_queue
from shared.resources import MAX_RECEIVE_COUNT, WORK_DEAD_LETTER_QUEUE, WORK_QUEUE


class WorkQueue(Construct):
    """One message per directory job; jobs that keep failing land in `dead_letter_queue`."""

    def __init__(self, scope: Construct, id_: str, *, key: kms.IKey) -> None:
        super().__init__(scope, id_)
        self.dead_letter_queue = encrypted_queue(
            self,
            "DeadLetterQueue",
            spec=WORK_DEAD_LETTER_QUEUE,
            key=key,
            redrive_allow_policy=sqs.RedriveAllowPolicy(redrive_permission=sqs.RedrivePermission.ALLOW_ALL),
        )
        self.queue = encrypted_queue(
            self,
            "Queue",
            spec=WORK_QUEUE,
            key=key,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVE_COUNT, queue=self.dead_letter_queue),
        )
