"""From nothing to a connected directory (issue #20): `dsync connect` on a fresh local stack beside the fake WorkOS,
then `dsync portal-link` for a customer. Its own stack: connect replaces the webhook secret the other tests sign
with."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dsync.fake_workos import FakeWorkOS
from shared.model.events import DSYNC_EVENT_TYPES
from shared.resources import LOCAL_NAMES
from tests.e2e.conftest import ROOT, RunningStack, cli_environment, start_local_stack, stop

pytestmark = pytest.mark.e2e


@pytest.fixture
def fresh_stack() -> Iterator[RunningStack]:
    stack = start_local_stack("--webhook-secret", "whsec_placeholder")
    yield stack
    stop(stack)


def run(*args: str, api_key: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = {"WORKOS_API_KEY": api_key} if api_key else {}
    return subprocess.run(  # noqa: PLW1510 - the tests check the code
        [sys.executable, "-m", "dsync.cli", *args],
        cwd=ROOT,
        env=cli_environment(**extra),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_connect_creates_the_endpoint_stores_the_secrets_and_proves_it(
    fresh_stack: RunningStack, fake_workos: FakeWorkOS
) -> None:
    key = fake_workos.api_key
    result = run(
        "connect",
        "--aws-endpoint",
        fresh_stack.aws_endpoint,
        "--webhook-url",
        fresh_stack.webhook_url,
        "--workos-base-url",
        fake_workos.base_url,
        api_key=key,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (endpoint,) = [e for e in fake_workos.webhook_endpoints() if e["endpoint_url"] == fresh_stack.webhook_url]
    assert sorted(endpoint["events"]) == sorted(DSYNC_EVENT_TYPES)  # every type the pipeline applies (13)
    assert report["endpoint_id"] == endpoint["id"]
    assert report["smoke_test"]["event_id"].startswith("event_dsync_smoke_test_")
    secrets = fresh_stack.client("secretsmanager")
    stored = json.loads(secrets.get_secret_value(SecretId=LOCAL_NAMES.webhook_secret)["SecretString"])
    assert stored["webhook_secrets"][0] == endpoint["secret"]
    api_key = json.loads(secrets.get_secret_value(SecretId=LOCAL_NAMES.workos_api_key_secret)["SecretString"])
    assert api_key == {"api_key": key, "base_url": fake_workos.base_url}  # the fake's URL beside its key
    assert key not in result.stdout + result.stderr  # never printed

    again = run(
        "connect",
        "--aws-endpoint",
        fresh_stack.aws_endpoint,
        "--webhook-url",
        fresh_stack.webhook_url,
        "--workos-base-url",
        fake_workos.base_url,
        api_key=key,
    )
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr


def test_connect_without_a_key_on_a_pipe_says_how_to_give_one(fresh_stack: RunningStack) -> None:
    result = run("connect", "--aws-endpoint", fresh_stack.aws_endpoint, "--webhook-url", fresh_stack.webhook_url)
    assert result.returncode == 1 and "WORKOS_API_KEY" in result.stderr


def test_portal_link_for_a_customer(fresh_stack: RunningStack, fake_workos: FakeWorkOS) -> None:
    fake_workos.add_organization("org_01E2EPORTAL")
    result = run(
        "portal-link",
        "--organization",
        "org_01E2EPORTAL",
        "--it-contact",
        "it@customer.example",
        "--workos-base-url",
        fake_workos.base_url,
        "--aws-endpoint",
        fresh_stack.aws_endpoint,
        api_key=fake_workos.api_key,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("https://")
    unknown = run(
        "portal-link",
        "--organization",
        "org_typo",
        "--workos-base-url",
        fake_workos.base_url,
        api_key=fake_workos.api_key,
    )
    assert unknown.returncode == 1 and "not found" in unknown.stderr.lower()


def test_fake_workos_runs_on_its_own_until_stopped() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dsync.cli", "fake-workos", "--port", "0", "--directories", "2", "--users", "5"],
        cwd=ROOT,
        env=cli_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split(": ", 1)[1].strip()
        api_key = process.stdout.readline().split(": ", 1)[1].strip()
        from workos import WorkOSClient

        client = WorkOSClient(api_key=api_key, base_url=base_url, max_retries=0)
        assert len(client.directory_sync.list_directories().data) == 2
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
