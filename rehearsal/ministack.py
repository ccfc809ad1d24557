"""MiniStack as a child process: its own process group, a free loopback port, a scratch TMPDIR, stopped whole.

MiniStack runs each Python function in a worker process it starts with its own environment (plus the function's
variables, which win), so what is set here reaches every Lambda: the fake WorkOS's base URL and the settings the
template leaves to their defaults. A busy worker can outlive MiniStack's own SIGTERM, so `stop` ends the whole
process group; the unzipped worker folders live under the scratch TMPDIR, which the caller removes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO

HEALTH_PATH = "/_ministack/health"
# Only these of the caller's variables reach MiniStack (and so every Lambda worker): no AWS profile, no endpoint,
# no credentials of the machine.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "SSL_CERT_FILE")


class MiniStackError(RuntimeError):
    """MiniStack did not start or answer."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class MiniStack:
    """One MiniStack server: `start()`, `endpoint`, `stop()` (idempotent; also as a context manager)."""

    def __init__(
        self, executable: Path, *, scratch: Path, function_environment: Mapping[str, str], host: str = "127.0.0.1"
    ) -> None:
        self._executable = executable
        self._scratch = scratch
        self._function_environment = dict(function_environment)
        self._host = host
        self.port = 0
        self.log_path = scratch / "ministack.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self, *, timeout: float = 60.0) -> MiniStack:
        if not self._executable.is_file():
            raise MiniStackError(
                f"{self._executable} not found: `make rehearse` installs it (requirements-rehearse.txt)"
            )
        self.port = free_port(self._host)
        tmpdir = self._scratch / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        environment = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        environment |= self._function_environment
        environment |= {
            "GATEWAY_PORT": str(self.port),
            "BIND_HOST": self._host,
            "TMPDIR": str(tmpdir),  # worker folders, the pid file
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(  # noqa: S603 - our own venv's console script, fixed arguments
            [str(self._executable)],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the workers with it
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise MiniStackError(f"MiniStack exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.endpoint + HEALTH_PATH, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise MiniStackError(f"MiniStack did not answer on {self.endpoint} within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, *, grace: float = 2.0) -> bool:
        """SIGTERM to the whole group, then SIGKILL to whatever of it is left (a busy worker can outlive MiniStack).

        Returns whether no process of the group is left."""
        process, self._process = self._process, None
        gone = True
        if process is not None:
            group = process.pid  # start_new_session: the group id is the leader's pid
            _signal_group(group, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
            _signal_group(group, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
            deadline = time.monotonic() + grace
            while (alive := _group_alive(group)) and time.monotonic() < deadline:  # orphaned workers being reaped
                time.sleep(0.05)
            gone = not alive
        if self._log is not None:
            self._log.close()
            self._log = None
        return gone

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no MiniStack log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> MiniStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    """Whether any process of `group` is still running."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
