"""The deployed pipeline on moto, driven the way AWS would drive it: API Gateway's proxy event to ingest, the SQS and
stream mappings to apply, reconcile and publish, the schedules to reconcile and the tail. Every function runs as its
own role under the `IamChecker`; the scenarios' own set-up and assertions use the deployer's session."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from moto import mock_aws
from moto.core.responses import BaseResponse

from dsync.fake_workos import DirectoryModel, FakeWorkOS
from shared.resources import Outputs
from tests.deploy.iam_checker import IamChecker
from tests.deploy.pollers import StreamSource, drain_queue
from tests.deploy.runtime import Runtime
from tests.deploy.world import Deployment, Synthesized, admin, deploy
from tests.support.webhooks import SECRET, signed_event

SCHEDULE = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
# Settings the template does not set, and the scenarios need: where the fake WorkOS listens, WorkOS's pace lifted
# (the fake does not limit it), and a tail run of half a second instead of most of a minute.
FAST_WORKOS = {"REQUESTS_PER_SECOND_PER_DIRECTORY": "50", "REQUESTS_PER_SECOND_TOTAL": "100"}
TAIL_SETTINGS = {"TAIL_RUN_SECONDS": "0.5", "TAIL_IDLE_POLL_SECONDS": "0.05"}
_MOTO_DISPATCH = threading.Lock()


class Stage:
    def __init__(self, deployment: Deployment, checker: IamChecker, fake: FakeWorkOS) -> None:
        self.deployment = deployment
        self.checker = checker
        self.runtime = Runtime(deployment, checker)
        self.fake = fake
        self.model: DirectoryModel = fake.model
        self.stream = StreamSource(self.runtime)
        self.admin = admin()
        self._clients: dict[str, Any] = {}
        workos = {"WORKOS_BASE_URL": fake.base_url, **FAST_WORKOS}
        self.runtime.extra = {"reconcile": workos, "tail": {**workos, **TAIL_SETTINGS}}

    def client(self, service: str) -> Any:
        """The deployer's client (one per service: a client is costly to make)."""
        if service not in self._clients:
            self._clients[service] = self.admin.client(service)  # type: ignore[call-overload]
        return self._clients[service]

    def url(self, output: str) -> str:
        return self.deployment.outputs[output]

    def arn(self, output: str) -> str:
        return self.deployment.resources.queue(self.url(output)).arn

    def set_secrets(self, *, api_key: str | None = None) -> None:
        secrets = self.client("secretsmanager")
        webhook = json.dumps({"webhook_secrets": [SECRET]})
        secrets.put_secret_value(SecretId=self.url(Outputs.WEBHOOK_SECRET_ARN), SecretString=webhook)
        key = json.dumps({"api_key": api_key or self.fake.api_key})
        secrets.put_secret_value(SecretId=self.url(Outputs.WORKOS_API_KEY_SECRET_ARN), SecretString=key)

    # --- the functions, as their triggers invoke them ---------------------------------------------------------------

    def deliver(self, *documents: dict[str, Any]) -> list[int]:
        """WorkOS's webhooks through API Gateway's proxy integration: the ingest function's status codes."""
        return [self.runtime.invoke("ingest", signed_event(document))["statusCode"] for document in documents]

    def deliver_workos_events(self) -> list[int]:
        return self.deliver(*self.model.drain_events())

    def apply(self) -> list[Any]:
        return drain_queue(self.runtime, self.arn(Outputs.EVENT_QUEUE_URL))

    def apply_overflow(self) -> list[Any]:
        return drain_queue(self.runtime, self.arn(Outputs.OVERFLOW_QUEUE_URL))

    def work(self) -> list[Any]:
        return drain_queue(self.runtime, self.arn(Outputs.WORK_QUEUE_URL))

    def publish(self) -> list[Any]:
        return self.stream.drain()

    def reconcile_schedule(self) -> Any:
        return self.runtime.invoke("reconcile", SCHEDULE)

    def tail(self) -> Any:
        return self.runtime.invoke("tail", SCHEDULE, timeout_seconds=30)

    # --- the deployer's view --------------------------------------------------------------------------------------

    def peek(self, output: str) -> list[dict[str, Any]]:
        """The queue's visible messages (received and made visible again)."""
        sqs = self.client("sqs")
        found: dict[str, dict[str, Any]] = {}
        while batch := sqs.receive_message(
            QueueUrl=self.url(output), MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=30
        ).get("Messages", []):
            found.update({m["MessageId"]: dict(m) for m in batch})
        for message in found.values():
            sqs.change_message_visibility(
                QueueUrl=self.url(output), ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return list(found.values())

    def empty_table(self) -> None:
        """The table as a new deployment has it: no item at all (the deployer deletes what earlier scenarios left)."""
        dynamodb = self.client("dynamodb")
        table = self.url(Outputs.TABLE_NAME)
        for page in dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="pk, sk"):
            for item in page["Items"]:
                dynamodb.delete_item(TableName=table, Key=item)

    def put(self, output: str, body: str, *, group: str | None = None) -> None:
        """A message from elsewhere (an operator's redrive, a producer bug), sent as the deployer."""
        extra = {"MessageGroupId": group, "MessageDeduplicationId": uuid.uuid4().hex} if group else {}
        self.client("sqs").send_message(QueueUrl=self.url(output), MessageBody=body, **extra)


@contextmanager
def staged(synthesized: Synthesized) -> Iterator[Stage]:
    """A fresh account on moto with the stack deployed, the checker installed and a fake WorkOS listening."""
    original = BaseResponse.call_action

    def one_at_a_time(self: BaseResponse) -> Any:  # moto's backends are not thread-safe; AWS answers atomically
        with _MOTO_DISPATCH:
            return original(self)

    with ExitStack() as stack:
        stack.enter_context(mock_aws())
        stack.enter_context(mock.patch.object(BaseResponse, "call_action", one_at_a_time))
        deployment = deploy(synthesized)
        checker = stack.enter_context(IamChecker(deployment.resources, admin()).installed())
        fake = stack.enter_context(FakeWorkOS(DirectoryModel(seed=19), events_hold_back_seconds=0.0))
        stage = Stage(deployment, checker, fake)
        stack.callback(stage.runtime.close)
        stage.set_secrets()
        yield stage
