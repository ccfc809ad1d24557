"""moto's server in its own process, so the emulated AWS gets a CPU core of its own (the handlers, the gateway and
the pollers run in the local stack's process; sharing one interpreter's GIL with moto halves throughput)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time


class MotoServerProcess:
    def __init__(self, host: str = "127.0.0.1", port: int = 4566) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; closed in stop()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        if _listening(self.host, self.port):
            raise OSError(f"port {self.port} on {self.host} is already in use (choose another with --aws-port)")
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter running moto
            [sys.executable, "-m", "dsync.local.moto_server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            # Its own session: a Ctrl-C in the terminal (SIGINT to the whole foreground group) must not kill it
            # before the pollers have stopped; stop() ends it. If we die without stopping, it dies with us.
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl, safe between fork and exec
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._log.seek(0)
                detail = self._log.read().decode("utf-8", "replace").strip().splitlines()[-3:]
                raise OSError(f"moto server exited with {self._process.returncode}: {' '.join(detail)}")
            if _listening(self.host, self.port):
                return
            time.sleep(0.1)
        self.stop()
        raise OSError(f"moto server did not start listening on {self.endpoint} within {timeout:.0f}s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None
        self._log.close()


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM to the moto server when its parent exits, however it exits.

    (Strictly: when the thread that started it exits; `start()` is called from long-lived threads.)
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:  # not Linux/glibc: stop() still ends it on every normal exit
        pass


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
