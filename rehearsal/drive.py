"""Driving the deployed pipeline: its secrets, signed webhooks through its API, its functions, its change bus.

Everything goes through what the stack deployed: the API's URL (MiniStack serves it under `/_aws/execute-api/`,
while the `WebhookUrl` output names the AWS host), the queues, table and secrets named by its outputs, and the
functions by their physical names. The store is compared with the fake WorkOS the way `dsync demo` compares them:
the `dsync export` document (`shared.read.reader.DirectoryReader`) against the fake model's snapshot, field by field.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from dsync.commands.webhooks import post_signed
from dsync.fake_workos import FakeWorkOS
from rehearsal.cdk import EMULATOR_ACCOUNT
from shared.adapters.dynamodb import DirectoryTable
from shared.model import records
from shared.read.reader import DirectoryReader
from shared.resources import CHANGE_EVENT_SOURCE, Outputs

REGION = "us-east-1"
WEBHOOK_SECRET = "whsec_rehearsal_only"  # noqa: S105 - a secret the rehearsal sets and signs with, nothing else
CHANGE_TAP = "rehearsal-change-tap"
SENDERS = 4


class RehearsalError(AssertionError):
    """The deployed pipeline did not do what the rehearsal expected; the message says what."""


def rewrite_webhook_url(url: str, endpoint: str) -> str:
    """`https://<api id>.execute-api.<region>.amazonaws.com/<stage>/<path>` -> MiniStack's
    `<endpoint>/_aws/execute-api/<api id>/<stage>/<path>`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    api_id, _, rest = host.partition(".")
    if not api_id or not rest.startswith("execute-api."):
        raise RehearsalError(f"the WebhookUrl output {url!r} is not an API Gateway URL")
    return f"{endpoint}/_aws/execute-api/{api_id}{parts.path}"


def differences(exported: dict[str, Any], truth: dict[str, Any]) -> dict[str, int]:
    """Differences per section between `dsync export` and the fake WorkOS's snapshot (as `dsync demo` counts them:
    each field WorkOS has, compared as JSON)."""
    counted = {}
    for section in ("users", "groups", "memberships"):
        keys = truth[section][0].keys() if truth[section] else ()
        ours = {json.dumps({k: item.get(k) for k in keys}, sort_keys=True) for item in exported[section]}
        theirs = {json.dumps(item, sort_keys=True) for item in truth[section]}
        counted[section] = len(ours ^ theirs)
    directory_keys = (truth["directory"] or {}).keys()
    ours_directory = {k: (exported["directory"] or {}).get(k) for k in directory_keys}
    counted["directory"] = int(ours_directory != (truth["directory"] or {}))
    return counted


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.25) -> float | None:
    """Poll `condition` until it holds; the seconds it took, or None past `timeout`."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started >= timeout:
            return None
        time.sleep(interval)


def scheduled_event(rule_arn: str) -> dict[str, Any]:
    """The event EventBridge sends a schedule's target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": EMULATOR_ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


class BusTap:
    """An app's subscription to the deployed change bus: its own rule (every event the pipeline publishes) into its
    own queue. Delivery is at least once, so it keeps the first of each `event_id`."""

    def __init__(self, *, sqs: Any, events: Any, bus_name: str) -> None:
        self._sqs, self._events, self._bus = sqs, events, bus_name
        self._url = str(sqs.create_queue(QueueName=CHANGE_TAP)["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule_arn = events.put_rule(
            Name=CHANGE_TAP,
            EventBusName=bus_name,
            EventPattern=json.dumps({"source": [CHANGE_EVENT_SOURCE]}),
            State="ENABLED",
        )["RuleArn"]
        policy = {  # what AWS needs for EventBridge to deliver into the queue (MiniStack does not check it)
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        sqs.set_queue_attributes(QueueUrl=self._url, Attributes={"Policy": json.dumps(policy)})
        events.put_targets(Rule=CHANGE_TAP, EventBusName=bus_name, Targets=[{"Id": "tap", "Arn": arn}])
        self._seen: set[str] = set()
        self.heard: list[tuple[str, dict[str, Any]]] = []

    def poll(self) -> int:
        """Read what has arrived; how many new events."""
        new = 0
        while messages := self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                envelope = json.loads(message["Body"])
                detail = envelope["detail"]
                if envelope.get("source") == CHANGE_EVENT_SOURCE and detail["event_id"] not in self._seen:
                    self._seen.add(detail["event_id"])
                    self.heard.append((str(envelope["detail-type"]), detail))
                    new += 1
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
        return new

    def subjects(self, detail_type: str) -> list[str]:
        """The subject of each event of `detail_type` heard so far (a user, group or directory id, or
        "group_id/user_id" for memberships), in arrival order."""
        found = []
        for kind, detail in self.heard:
            if kind == detail_type:
                if "membership" in detail:
                    found.append(f"{detail['membership']['group_id']}/{detail['membership']['user_id']}")
                else:
                    subject = detail.get("user") or detail.get("group") or detail.get("directory") or {}
                    found.append(str(subject.get("id")))
        return found

    def close(self) -> None:
        """Remove the subscription, as an app leaving would (a bus with rules cannot be deleted in AWS)."""
        self._events.remove_targets(Rule=CHANGE_TAP, EventBusName=self._bus, Ids=["tap"])
        self._events.delete_rule(Name=CHANGE_TAP, EventBusName=self._bus)
        self._sqs.delete_queue(QueueUrl=self._url)


class DeployedPipeline:
    """The stack's resources as the harness uses them."""

    def __init__(
        self,
        *,
        endpoint: str,
        outputs: dict[str, str],
        functions: dict[str, str],
        fake: FakeWorkOS,
        clients: Callable[[str], Any],
        rng: random.Random,
    ) -> None:
        self.endpoint = endpoint
        self.outputs = outputs
        self.functions = functions  # "ingest", "apply", ... -> physical function name
        self.fake = fake
        self.clients = clients
        self.rng = rng
        self.webhook_url = rewrite_webhook_url(outputs[Outputs.WEBHOOK_URL], endpoint)
        self.table_name = outputs[Outputs.TABLE_NAME]
        self.table = DirectoryTable(self.table_name, client=clients("dynamodb"))

    def configure_secrets(self) -> None:
        """What the runbook has an operator do after the first deploy, in the shapes the secrets' descriptions give."""
        secrets = self.clients("secretsmanager")
        secrets.put_secret_value(
            SecretId=self.outputs[Outputs.WEBHOOK_SECRET_ARN],
            SecretString=json.dumps({"webhook_secrets": [WEBHOOK_SECRET]}),
        )
        secrets.put_secret_value(
            SecretId=self.outputs[Outputs.WORKOS_API_KEY_SECRET_ARN],
            SecretString=json.dumps({"api_key": self.fake.api_key}),
        )

    def deliver(self, events: list[dict[str, Any]], *, lose: int = 0, duplicates: float = 0.15) -> list[dict[str, Any]]:
        """POST events as WorkOS would (signed, concurrently, shuffled, some twice), except `lose` of them, which are
        never sent. Returns the lost ones."""
        shuffled = list(events)
        self.rng.shuffle(shuffled)
        lost, kept = shuffled[:lose], shuffled[lose:]
        deliveries = kept + [event for event in kept if self.rng.random() < duplicates]
        self.rng.shuffle(deliveries)

        def send(event: dict[str, Any]) -> int:
            status = 0
            for _attempt in range(5):  # like WorkOS: anything but 2xx is retried
                status = post_signed(self.webhook_url, event, secret=WEBHOOK_SECRET).status
                if 200 <= status < 300:
                    break
                time.sleep(0.2)
            return status

        with ThreadPoolExecutor(max_workers=SENDERS) as pool:
            failed = [status for status in pool.map(send, deliveries) if not 200 <= status < 300]
        if failed:
            raise RehearsalError(f"{len(failed)} deliveries kept failing (HTTP {sorted(set(failed))})")
        return lost

    def forged_delivery_status(self, event: dict[str, Any]) -> int:
        return post_signed(self.webhook_url, event, secret="whsec_not_the_one_stored").status  # noqa: S106

    def compare(self, directory_id: str) -> dict[str, int]:
        """Differences between the store and WorkOS (the directory not in the store yet: all of it)."""
        truth = self.fake.model.snapshot(directory_id)
        if self.table.get_item(records.directory_key(directory_id)) is None:
            return {section: len(truth[section]) for section in ("users", "groups", "memberships")} | {"directory": 1}
        return differences(DirectoryReader(self.table).export(directory_id), truth)

    def converged(self, directory_id: str) -> bool:
        return sum(self.compare(directory_id).values()) == 0

    def _messages(self, output: str, *, in_flight: bool = True) -> int:
        names = ["ApproximateNumberOfMessages"] + (["ApproximateNumberOfMessagesNotVisible"] if in_flight else [])
        attributes = self.clients("sqs").get_queue_attributes(QueueUrl=self.outputs[output], AttributeNames=names)
        return sum(int(value) for value in attributes["Attributes"].values())

    def busy(self) -> int:
        """Messages waiting or in flight on the event, overflow and work queues."""
        queues = (Outputs.EVENT_QUEUE_URL, Outputs.OVERFLOW_QUEUE_URL, Outputs.WORK_QUEUE_URL)
        return sum(self._messages(output) for output in queues)

    def dead_letters(self) -> int:
        return self._messages(Outputs.DEAD_LETTER_QUEUE_URL, in_flight=False)

    def invoke(self, function: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A synchronous invocation of one of the stack's functions; its JSON response."""
        response = self.clients("lambda").invoke(
            FunctionName=self.functions[function], InvocationType="RequestResponse", Payload=json.dumps(payload)
        )
        body = response["Payload"].read().decode() or "null"
        if response.get("FunctionError"):
            raise RehearsalError(f"{function} failed: {body[:500]}")
        document = json.loads(body)
        return document if isinstance(document, dict) else {"response": document}
