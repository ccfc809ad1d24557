"""The CLI at 3 a.m. (issue #20): a typo is a usage error (exit 2, one line naming the option), a dead endpoint is
reported in seconds, every command says where it reads, and the region comes from where the AWS CLI takes it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

import dsync.targets
from dsync.arguments import point_in_time
from dsync.cli import main
from dsync.targets import TargetError, resolve_target

pytestmark = pytest.mark.unit


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "usage: dsync" in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["status", "--aws-endpoint", "127.0.0.1:4566"], "--aws-endpoint"),
        (["status", "--aws-endpoint", "http://127.0.0.1:port"], "--aws-endpoint"),
        (["reconcile", "--requests-per-second", "0"], "--requests-per-second"),
        (["reconcile", "--parallelism", "0"], "--parallelism"),
        (["reconcile", "--parallelism", "two"], "--parallelism"),
        (["redrive", "--limit", "-1"], "--limit"),
        (["replay", "--since", "yesterday"], "--since"),
        (["replay", "--since", "1h", "--until", "soon"], "--until"),
        (["send-test-event", "--url", "example.com/hook", "--secret", "s"], "--url"),
        (["reconcile", "--workos-base-url", "api.workos.com"], "--workos-base-url"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_the_option(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert named in usage_error(argv, capsys)


def test_a_bad_endpoint_in_the_environment_is_a_usage_error_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:4566")
    assert "AWS_ENDPOINT_URL" in usage_error(["status"], capsys)


def test_relative_and_absolute_times() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert point_in_time("1h", now=now) == "2026-12-04T11:00:00Z"
    assert point_in_time("2d", now=now) == "2026-12-02T12:00:00Z"
    assert point_in_time("90s", now=now) == "2026-12-04T11:58:30Z"
    assert point_in_time("2026-11-30T00:00:00Z") == "2026-11-30T00:00:00Z"
    assert point_in_time("2026-11-30T01:00:00+01:00") == "2026-11-30T00:00:00Z"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out.startswith("dsync ")


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """Accepts connections and never answers: an https typo on a local port, a blackholed proxy."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_an_endpoint_that_never_answers_fails_in_seconds_with_a_message(
    silent_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """botocore's defaults wait 60 s per attempt; the CLI's clients time out in seconds (here shortened to 1 s)."""
    monkeypatch.setattr(
        dsync.targets,
        "CLIENT_CONFIG",
        dsync.targets.CLIENT_CONFIG.merge(Config(read_timeout=1, retries={"mode": "standard", "max_attempts": 2})),
    )
    started = time.monotonic()
    assert main(["status", "--aws-endpoint", silent_endpoint]) == 1
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert "no local stack at" in err and "timeout" in err.lower() and "Traceback" not in err


def test_the_clients_time_out_in_seconds_not_minutes() -> None:
    config = dsync.targets.CLIENT_CONFIG
    assert config.connect_timeout <= 5 and config.read_timeout <= 20  # type: ignore[attr-defined]


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An AWS config with a profile in eu-west-2, and a stand-in for the stack lookup (no network in tests)."""
    config = tmp_path / "config"
    config.write_text("[profile ops]\nregion = eu-west-2\n[default]\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    seen: dict[str, Any] = {}

    def deployed(stack: str, region: str, session: boto3.Session) -> str:
        seen.update(stack=stack, region=region, profile=session.profile_name)
        return "target"

    monkeypatch.setattr(dsync.targets, "_deployed", deployed)
    return seen


def test_the_region_comes_from_the_profile_as_the_aws_cli_takes_it(
    profiles: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolve_target(aws_endpoint=None, stack="S", profile="ops")
    assert profiles == {"stack": "S", "region": "eu-west-2", "profile": "ops"}
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")  # the environment beats the profile
    resolve_target(aws_endpoint=None, stack="S", profile="ops")
    assert profiles["region"] == "ap-southeast-2"
    resolve_target(aws_endpoint=None, stack="S", profile="ops", region="ca-central-1")  # --region beats both
    assert profiles["region"] == "ca-central-1"


def test_no_region_anywhere_is_an_error_not_a_guess(profiles: dict[str, Any]) -> None:
    with pytest.raises(TargetError, match="no AWS region"):
        resolve_target(aws_endpoint=None, stack="S")


def test_an_unknown_profile_is_an_error(profiles: dict[str, Any]) -> None:
    with pytest.raises(TargetError, match="--profile"):
        resolve_target(aws_endpoint=None, stack="S", profile="typo")


def test_completion_scripts_know_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    for command in ("status", "connect", "portal-link", "user", "changes", "logs", "fake-workos"):
        assert command in script
