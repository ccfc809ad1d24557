"""Roles through the whole pipeline: IdP group mappings change users' roles, deliveries arrive shuffled, duplicated
and with stale retries, and an app that subscribes to the change bus with its own EventBridge rule hears every role
change with what was added and removed."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from dsync.fake_workos import FakeWorkOS
from dsync.operations import post_signed
from shared.resources import LOCAL_NAMES
from tests.e2e.conftest import SECRET, RunningStack

pytestmark = pytest.mark.e2e


class Subscriber:
    """What an app does: its own rule on the change bus, for the one detail-type it acts on, into its own queue;
    it deduplicates on `event_id` (delivery is at least once)."""

    def __init__(self, stack: RunningStack, name: str) -> None:
        self._sqs, events = stack.client("sqs"), stack.client("events")
        self._url = self._sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name=name,
            EventBusName=LOCAL_NAMES.change_bus,
            EventPattern=json.dumps({"detail-type": ["user.roles_changed"]}),
            State="ENABLED",
        )
        events.put_targets(Rule=name, EventBusName=LOCAL_NAMES.change_bus, Targets=[{"Id": name, "Arn": arn}])
        self._seen: set[str] = set()
        self.by_user: dict[str, list[dict[str, Any]]] = {}

    def poll(self) -> int:
        """Read what arrived; returns how many users have been heard of so far."""
        while messages := self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                envelope = json.loads(message["Body"])
                assert envelope["detail-type"] == "user.roles_changed"
                detail = envelope["detail"]
                if detail["event_id"] not in self._seen:
                    self._seen.add(detail["event_id"])
                    self.by_user.setdefault(detail["user"]["id"], []).append(detail)
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
        return len(self.by_user)


def deliver(
    stack: RunningStack, events: list[dict[str, Any]], history: list[dict[str, Any]], rng: random.Random
) -> None:
    """This phase's events shuffled with duplicates, plus stale retries of anything delivered before."""
    stale = rng.sample(history, k=min(len(history), 8))
    deliveries = events + [e for e in events if rng.random() < 0.4] + stale
    rng.shuffle(deliveries)
    for event in deliveries:
        assert post_signed(stack.webhook_url, event, secret=SECRET).status == 200
    history.extend(events)


def test_role_changes_converge_and_a_subscriber_hears_each_with_added_and_removed(
    local_stack: RunningStack, fake_workos: FakeWorkOS
) -> None:
    model, rng = fake_workos.model, random.Random(11)
    app = Subscriber(local_stack, "app-role-changes")
    directory_id = model.create_directory(organization_id="org_01E2EROLES")["id"]
    users = [
        model.create_user(directory_id, first_name=f"U{i}", last_name="R", email=f"u{i}@roles.test")["id"]
        for i in range(6)
    ]
    admins, billing = (model.create_group(directory_id, name=name)["id"] for name in ("Admins", "Billing"))
    for user_id in users[:3]:
        model.add_user_to_group(admins, user_id)
    for user_id in users[2:5]:
        model.add_user_to_group(billing, user_id)
    history: list[dict[str, Any]] = []
    phases = (
        lambda: model.map_group_to_role(admins, "admin"),  # single role
        lambda: model.map_group_to_role(billing, "billing"),  # several (users[2] has both)
        lambda: (model.map_group_to_role(admins, None), model.map_group_to_role(billing, None)),  # back to default
    )
    for phase in (lambda: None, *phases):
        phase()
        deliver(local_stack, model.drain_events(), history, rng)
        local_stack.wait_drained()

    truth = {user["id"]: user["roles"] for user in model.snapshot(directory_id)["users"]}
    local_stack.wait_until(
        lambda: {u["id"]: u["roles"] for u in local_stack.export(directory_id)["users"]} == truth,
        timeout=30,
        what="the export's roles to equal WorkOS's",
    )
    local_stack.wait_until(lambda: app.poll() == 5, timeout=30, what="the app to hear five users' role changes")
    time.sleep(2)
    app.poll()  # anything still in flight
    changes = app.by_user
    for user_id, events in changes.items():
        roles = ["member"]
        for detail in sorted(events, key=lambda d: d["version"]):
            assert detail["added"] == sorted(set(detail["roles"]) - set(roles)), (user_id, detail)
            assert detail["removed"] == sorted(set(roles) - set(detail["roles"])), (user_id, detail)
            roles = detail["roles"]
        assert roles == truth[user_id] == ["member"]
    assert users[5] not in changes  # never in a mapped group: never changed
    assert ["admin"] in [d["roles"] for d in changes[users[0]]]
    assert ["admin", "billing"] in [d["roles"] for d in changes[users[2]]]
