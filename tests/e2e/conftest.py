"""End-to-end fixtures: `dsync local` in its own process, driven over real HTTP, with the fake WorkOS beside it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from dsync.fake_workos import DirectoryModel, FakeWorkOS, SteppingClock

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_e2e_primary"
ROTATED_SECRET = "whsec_e2e_rotated"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"})
    env.update(extra)
    return env


def dsync(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `dsync` CLI, as an operator would."""
    result = subprocess.run(  # noqa: PLW1510 - checked below with a useful message
        [sys.executable, "-m", "dsync.cli", *args],
        cwd=ROOT,
        env=cli_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dsync {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    webhook_url: str
    aws_endpoint: str
    output: list[str]

    def status(self) -> dict[str, Any]:
        return dict(json.loads(dsync("status", "--aws-endpoint", self.aws_endpoint).stdout))

    def export(self, directory_id: str) -> dict[str, Any]:
        """The directory's export; empty when the mirror does not hold it (`dsync export` then exits 1 saying so)."""
        result = dsync("export", "--aws-endpoint", self.aws_endpoint, "--directory", directory_id, check=False)
        if result.returncode == 1 and "in the mirror" in result.stderr:
            return {"directory": None, "users": [], "groups": [], "memberships": []}
        if result.returncode != 0:
            raise AssertionError(f"dsync export exited {result.returncode}:\n{result.stderr}")
        return dict(json.loads(result.stdout))

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.aws_endpoint,  # type: ignore[call-overload]
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}; recent stack output:\n" + "\n".join(self.output[-30:]))

    def wait_drained(self, timeout: float = 90.0) -> None:
        sqs = self.client("sqs")
        urls = [
            sqs.get_queue_url(QueueName=name)["QueueUrl"]
            for name in ("dsync-events.fifo", "dsync-overflow.fifo", "dsync-work")
        ]

        def idle() -> bool:
            for url in urls:
                attributes = sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
                if int(attributes["ApproximateNumberOfMessages"]) + int(
                    attributes["ApproximateNumberOfMessagesNotVisible"]
                ):
                    return False
            return True

        self.wait_until(idle, timeout=timeout, what="the queues to drain")
        time.sleep(0.5)


def start_local_stack(*extra: str) -> RunningStack:
    """`dsync local` on free ports; once more on other ports if another process took one in between (xdist)."""
    try:
        return _start_local_stack(*extra)
    except AssertionError as error:
        if "Address already in use" not in str(error):
            raise
        return _start_local_stack(*extra)


def _start_local_stack(*extra: str) -> RunningStack:
    port, aws_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dsync.cli", "local", "--port", str(port), "--aws-port", str(aws_port), *extra],
        cwd=ROOT,
        env=cli_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    ready: dict[str, str] = {}

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip())
            if line.startswith(("webhook url:", "aws endpoint:")):
                key, _, value = line.partition(": ")
                ready[key] = value.strip()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60
    while len(ready) < 2:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("dsync local did not start:\n" + "\n".join(output))
        time.sleep(0.1)
    return RunningStack(process, ready["webhook url"], ready["aws endpoint"], output)


def stop(stack: RunningStack) -> int:
    stack.process.terminate()
    return stack.process.wait(timeout=30)


@pytest.fixture(scope="session")
def fake_workos() -> Iterator[FakeWorkOS]:
    # WorkOS history from days ago: lost webhooks are old by the time reconcile finds them, as in production.
    clock = SteppingClock(datetime.now(UTC) - timedelta(days=3), timedelta(seconds=1))
    with FakeWorkOS(DirectoryModel(clock=clock, seed=99)) as fake:
        yield fake


@pytest.fixture(scope="session")
def local_stack(fake_workos: FakeWorkOS) -> Iterator[RunningStack]:
    stack = start_local_stack(
        "--webhook-secret",
        f"{SECRET},{ROTATED_SECRET}",
        "--workos-api-key",
        fake_workos.api_key,
        "--workos-base-url",
        fake_workos.base_url,
    )
    yield stack
    stop(stack)
