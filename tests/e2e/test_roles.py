"""Roles through the whole pipeline: IdP group mappings change users' roles, deliveries arrive shuffled, duplicated
and with stale retries, and an app that subscribes to the change bus with its own EventBridge rule hears every role
change with what was added and removed."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from dsync.commands.webhooks import post_signed
from dsync.fake_workos import FakeWorkOS
from dsync.local.subscriber import BusSubscriber
from tests.e2e.conftest import SECRET, RunningStack

pytestmark = pytest.mark.e2e


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
    app = BusSubscriber(
        sqs=local_stack.client("sqs"),
        events=local_stack.client("events"),
        name="app-role-changes",
        detail_types=["user.roles_changed"],
    )
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
    changes: dict[str, list[dict[str, Any]]] = {}

    def hear() -> int:
        for detail_type, detail in app.poll():
            assert detail_type == "user.roles_changed"
            changes.setdefault(detail["user"]["id"], []).append(detail)
        return len(changes)

    local_stack.wait_until(lambda: hear() == 5, timeout=30, what="the app to hear five users' role changes")
    time.sleep(2)
    hear()  # anything still in flight
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
