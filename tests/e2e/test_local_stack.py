"""The whole pipeline over real HTTP: signed deliveries to `dsync local`, operator commands through the CLI."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest

from dsync.commands.webhooks import post_signed
from dsync.fake_workos import FakeWorkOS, populate
from dsync.local.subscriber import BusSubscriber
from shared.changes.derive import DETAIL_TYPES
from shared.model.smoke import SMOKE_TEST_DIRECTORY_ID
from tests.e2e.conftest import (
    ROOT,
    ROTATED_SECRET,
    SECRET,
    RunningStack,
    cli_environment,
    dsync,
    start_local_stack,
    stop,
)
from tests.support.histories import project

pytestmark = pytest.mark.e2e


def deliver(stack: RunningStack, events: list[dict[str, Any]], *, seed: int, duplicates: float = 0.3) -> None:
    rng = random.Random(seed)
    deliveries = events + [event for event in events if rng.random() < duplicates]
    rng.shuffle(deliveries)
    for event in deliveries:
        secret = SECRET if rng.random() < 0.5 else ROTATED_SECRET  # both secrets are live during a rotation
        assert post_signed(stack.webhook_url, event, secret=secret).status == 200


def matches_truth(stack: RunningStack, fake: FakeWorkOS, directory_id: str) -> bool:
    truth = fake.model.snapshot(directory_id)
    return project(stack.export(directory_id), truth) == truth


def test_shuffled_duplicated_deliveries_converge_to_workos(local_stack: RunningStack, fake_workos: FakeWorkOS) -> None:
    model = fake_workos.model
    directory_id = model.create_directory(organization_id="org_01E2ECONVERGE")["id"]
    populate(model, directory_id, users=40, groups=5, rng=random.Random(1))
    users, groups = model.user_ids(directory_id), model.group_ids(directory_id)
    model.update_user(users[0], last_name="Renamed")
    model.deactivate_user(users[1])
    model.delete_user(users[2])
    model.update_group(groups[0], name="Renamed")
    model.delete_group(groups[1])
    deliver(local_stack, model.drain_events(), seed=2)
    local_stack.wait_drained()
    local_stack.wait_until(lambda: matches_truth(local_stack, fake_workos, directory_id), timeout=30, what="export")
    exported = local_stack.export(directory_id)
    assert exported["directory"]["id"] == directory_id
    assert {u["id"]: u["state"] for u in exported["users"]}[users[1]] == "inactive"


def test_bad_signatures_are_refused_and_nothing_is_stored(local_stack: RunningStack, fake_workos: FakeWorkOS) -> None:
    model = fake_workos.model
    directory_id = model.create_directory(organization_id="org_01E2EFORGED")["id"]
    model.create_user(directory_id, first_name="Mallory", last_name="X", email="mallory@evil.test")
    events = model.drain_events()
    before = local_stack.status()
    for event in events:
        assert post_signed(local_stack.webhook_url, event, secret="whsec_wrong").status == 401
        stale = post_signed(local_stack.webhook_url, event, secret=SECRET, timestamp_ms=1_000_000)
        assert stale.status == 401 and json.loads(stale.body)["reason"] == "stale_timestamp"
    assert queues(local_stack.status()) == queues(before)
    refused = dsync("export", "--aws-endpoint", local_stack.aws_endpoint, "--directory", directory_id, check=False)
    assert refused.returncode == 1 and "unknown in the mirror" in refused.stderr  # nothing stored


def test_drift_from_lost_webhooks_is_repaired_by_reconcile(local_stack: RunningStack, fake_workos: FakeWorkOS) -> None:
    model = fake_workos.model
    directory_id = model.create_directory(organization_id="org_01E2EDRIFT")["id"]
    activation = model.drain_events()  # lost: so nothing in the stack starts an initial sync by itself
    populate(model, directory_id, users=30, groups=4, rng=random.Random(3))
    rng = random.Random(4)
    delivered = [event for event in model.drain_events() if rng.random() < 0.6]  # 40% lost for good
    deliver(local_stack, delivered, seed=5, duplicates=0.0)
    local_stack.wait_drained()
    assert activation and not matches_truth(local_stack, fake_workos, directory_id)

    result = dsync(
        "reconcile",
        "--aws-endpoint",
        local_stack.aws_endpoint,
        "--directory",
        directory_id,
        "--workos-api-key",
        fake_workos.api_key,
        "--workos-base-url",
        fake_workos.base_url,
        "--requests-per-second",
        "50",
    )
    report = json.loads(result.stdout)
    assert report["ok"] and report["directories"][0]["status"] == "complete"
    assert report["drift_total"] > 0 and report["requests"] > 0
    assert matches_truth(local_stack, fake_workos, directory_id)


def test_reconcile_reports_a_bad_api_key_clearly(local_stack: RunningStack, fake_workos: FakeWorkOS) -> None:
    result = dsync(
        "reconcile",
        "--aws-endpoint",
        local_stack.aws_endpoint,
        "--workos-api-key",
        "sk_test_wrong",
        "--workos-base-url",
        fake_workos.base_url,
        check=False,
    )
    assert result.returncode == 1
    assert "WorkOS rejected the API key" in result.stderr and "Traceback" not in result.stderr


def test_a_poison_message_is_parked_while_other_directories_flow(
    local_stack: RunningStack, fake_workos: FakeWorkOS
) -> None:
    model = fake_workos.model
    healthy = model.create_directory(organization_id="org_01E2EHEALTHY")["id"]
    populate(model, healthy, users=10, groups=2, rng=random.Random(6))
    poisoned = "directory_01E2EPOISONED0000000000000"
    poison = {  # signed and well-formed enough to be queued, but no user can be built from it
        "object": "event",
        "id": "event_01E2EPOISON",
        "event": "dsync.user.created",
        "data": {"directory_id": poisoned, "first_name": "no id, no timestamps"},
        "created_at": "2026-01-01T00:00:00.000Z",
    }
    dead_before = local_stack.status()["dead_letters"]
    assert post_signed(local_stack.webhook_url, poison, secret=SECRET).status == 200
    deliver(local_stack, model.drain_events(), seed=7)
    local_stack.wait_drained()
    assert matches_truth(local_stack, fake_workos, healthy)
    assert local_stack.status()["dead_letters"] == dead_before + 1

    # It can never apply: redrive leaves it parked and says so, instead of moving it round in circles.
    result = dsync("redrive", "--aws-endpoint", local_stack.aws_endpoint)
    redriven = json.loads(result.stdout)
    assert redriven["moved"] == 0 and redriven["left"] == {"invalid event": dead_before + 1}
    assert "left 1 message(s) that can never apply" in result.stderr
    local_stack.wait_drained()
    assert local_stack.status()["dead_letters"] == dead_before + 1


def queues(status: dict[str, Any]) -> dict[str, int]:
    return {
        name: status[name] for name in ("queued", "in_flight", "dead_letters", "overflow_queued", "overflow_in_flight")
    }


def test_status_reports_queues_the_tail_and_every_directory(local_stack: RunningStack) -> None:
    local_stack.wait_drained()
    status = local_stack.status()
    assert set(status) == {
        "queued",
        "in_flight",
        "dead_letters",
        "overflow_queued",
        "overflow_in_flight",
        "tail",
        "last_smoke_test",
        "summary",
        "attention",
        "directories",
    }
    assert all(isinstance(value, int) for value in queues(status).values())
    assert status["tail"] is None or status["tail"]["poll_age_seconds"] < 60  # the tail runs with the stack
    assert status["summary"]["directories"] == len(status["directories"])
    for directory in status["directories"]:
        assert set(directory) == {
            "id",
            "state",
            "health",
            "mirror_counts",
            "mirror_counts_basis",
            "last_event",
            "last_reconcile",
            "problems",
        }
        assert set(directory["mirror_counts"]) == {"users_active", "users_inactive", "groups"}
        assert all(isinstance(count, int) for count in directory["mirror_counts"].values())
        # The counter item the writers keep equals what the partition holds (the export's users and groups).
        exported = local_stack.export(directory["id"])
        active = sum(1 for user in exported["users"] if user["state"] == "active")
        assert directory["mirror_counts"] == {
            "users_active": active,
            "users_inactive": len(exported["users"]) - active,
            "groups": len(exported["groups"]),
        }


def test_status_flags_one_directory_a_summary_a_table_and_a_check(local_stack: RunningStack) -> None:
    listed = local_stack.status()["directories"]
    endpoint = ["--aws-endpoint", local_stack.aws_endpoint]
    if listed:
        one = json.loads(dsync("status", *endpoint, "--directory", listed[0]["id"]).stdout)
        assert [directory["id"] for directory in one["directories"]] == [listed[0]["id"]]
    typo = dsync("status", *endpoint, "--directory", "directory_01TYPO", check=False)
    assert typo.returncode == 1 and "is unknown in the mirror" in typo.stderr.splitlines()[-1]
    assert "directories" not in json.loads(dsync("status", *endpoint, "--summary").stdout)
    table = dsync("status", *endpoint, "--output", "table").stdout
    assert table.startswith("queues ") and ("DIRECTORY" in table) == bool(listed)
    check = dsync("status", *endpoint, "--check", check=False)
    assert check.returncode == (1 if json.loads(check.stdout)["attention"] else 0)


def test_sigterm_stops_cleanly_and_leaves_nothing_running() -> None:
    stack = start_local_stack("--webhook-secret", SECRET)
    gateway_port = urlsplit(stack.webhook_url).port
    aws_port = urlsplit(stack.aws_endpoint).port
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=30) == 0
    assert "stopped" in stack.output[-1]
    for port in (gateway_port, aws_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port or 0)) != 0, f"port {port} still open"


def test_local_refuses_to_start_without_a_secret() -> None:
    result = dsync("local", "--port", "0", check=False)
    assert result.returncode == 1 and "webhook signing secret" in result.stderr


__all__ = ["stop"]


def test_the_smoke_test_travels_the_real_path_and_leaves_no_trace(
    local_stack: RunningStack, fake_workos: FakeWorkOS
) -> None:
    """Issue #20: the documented smoke test stored a phantom tenant, published it, and the next reconcile deleted it
    again, so every subscribed app heard a tenant come and go. Now: nothing in the mirror, nothing on the bus."""
    app = BusSubscriber(
        sqs=local_stack.client("sqs"),
        events=local_stack.client("events"),
        name="app-smoke-test-watch",
        detail_types=list(DETAIL_TYPES),
    )
    dead_before = local_stack.status()["dead_letters"]
    sent = []
    for event_type in ("dsync.user.created", "dsync.group.user_added", "dsync.activated"):
        result = dsync("send-test-event", "--url", local_stack.webhook_url, "--secret", SECRET, "--event", event_type)
        assert result.stdout.startswith("200 "), result.stdout
        assert SMOKE_TEST_DIRECTORY_ID in result.stderr  # it says what it sent
        sent.append(result.stdout.split()[-1].rstrip(")"))
    # A real delivery beside it, so that hearing nothing below means something.
    control = fake_workos.model.create_directory(organization_id="org_01E2ESMOKE")["id"]
    fake_workos.model.create_user(control, first_name="C", last_name="Ontrol", email="control@smoke.test")
    deliver(local_stack, fake_workos.model.drain_events(), seed=5, duplicates=0)
    local_stack.wait_drained()
    local_stack.wait_until(
        lambda: any(control in json.dumps(detail) for _, detail in app.poll() + app.heard),
        timeout=30,
        what="the control directory's change events",
    )
    status = local_stack.status()
    assert status["last_smoke_test"]["event_id"] in sent
    assert SMOKE_TEST_DIRECTORY_ID not in [directory["id"] for directory in status["directories"]]
    assert not any(SMOKE_TEST_DIRECTORY_ID in json.dumps(detail) for _, detail in app.heard)
    assert status["dead_letters"] == dead_before


def test_the_local_stack_answers_whatever_region_the_shell_names(local_stack: RunningStack) -> None:
    """Issue #20: with AWS_REGION=eu-west-1 in the shell, `dsync status` said there was no local stack."""
    result = subprocess.run(  # noqa: PLW1510 - checked below
        [sys.executable, "-m", "dsync.cli", "status", "--aws-endpoint", local_stack.aws_endpoint],
        cwd=ROOT,
        env=cli_environment(AWS_REGION="eu-west-1", AWS_DEFAULT_REGION="eu-west-1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "queued" in json.loads(result.stdout)
    assert f"the local stack at {local_stack.aws_endpoint}" in result.stderr  # it says where it reads
