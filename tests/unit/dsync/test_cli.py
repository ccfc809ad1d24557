"""The `dsync` CLI's own behaviour: exit codes, clear one-line errors, and send-test-event's signed delivery."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from dsync.cli import main
from dsync.commands.webhooks import SAMPLE_EVENT_TYPES, sample_event
from shared.ingest.signature import SignatureError, verify_signature
from tests.support.webhooks import now_ms

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint that verifies like the ingest Lambda and records what it got."""

    secret = "whsec_cli_test"
    received: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            verify_signature(
                body=body, header=self.headers.get("WorkOS-Signature"), secrets=[self.secret], now_ms=now_ms()
            )
        except SignatureError as error:
            self._answer(401, {"status": "rejected", "reason": error.failure.value})
            return
        Receiver.received.append(json.loads(body))
        self._answer(200, {"status": "queued"})

    def _answer(self, status: int, document: dict[str, str]) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/workos"
    server.shutdown()
    server.server_close()


def test_send_test_event_signs_a_realistic_event_and_reports_success(
    receiver: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["send-test-event", "--url", receiver, "--secret", Receiver.secret, "--event", "dsync.group.user_added"]
    )
    assert code == 0
    [event] = Receiver.received
    assert event["event"] == "dsync.group.user_added" and {"user", "group", "directory_id"} <= event["data"].keys()
    assert capsys.readouterr().out.startswith("200 ")


def test_send_test_event_with_the_wrong_secret_exits_1(receiver: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send-test-event", "--url", receiver, "--secret", "whsec_wrong"]) == 1
    assert "401" in capsys.readouterr().out and Receiver.received == []


def test_send_test_event_to_nothing_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send-test-event", "--url", "http://127.0.0.1:9/webhooks/workos", "--secret", "s"]) == 1
    assert "could not reach" in capsys.readouterr().err


@pytest.mark.parametrize("event_type", SAMPLE_EVENT_TYPES)
def test_sample_events_have_workos_shape(event_type: str) -> None:
    event = sample_event(event_type, seed=1)
    assert event["event"] == event_type
    assert {"object", "id", "event", "data", "created_at"} <= event.keys()
    assert event["id"].startswith("event_")


def test_commands_without_credentials_or_stack_fail_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    # boto3's default session caches the credentials an earlier test of this process resolved: start a new one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert "no AWS credentials found" in err and "--aws-endpoint" in err and "Traceback" not in err


def test_a_local_endpoint_that_is_not_running_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--aws-endpoint", "http://127.0.0.1:9", "--directory", "directory_x"]) == 1
    assert "no local stack at http://127.0.0.1:9" in capsys.readouterr().err


def test_bad_usage_exits_2() -> None:
    with pytest.raises(SystemExit) as raised:
        main(["export"])  # --directory is required
    assert raised.value.code == 2


@pytest.mark.parametrize(
    "module",
    ["functions.ingest.handler", "functions.apply.handler", "functions.reconcile.handler", "functions.publish.handler"],
)
def test_importing_a_handler_needs_no_environment_and_no_network(module: str) -> None:
    """Fresh interpreter, empty environment, sockets that refuse to connect: the import must still succeed."""
    code = (
        "import socket\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError('network call at import time')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        f"import {module}\n"
        "import sys\n"
        "assert 'workos' not in sys.modules, 'the workos SDK (~1 s) must only load when a reconcile job runs'\n"
    )
    result = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-c", code], cwd=ROOT, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
