"""Connections to the sink's PostgreSQL: the URL from its secret, short timeouts, one connection reused.

The secret (Secrets Manager, `sqlSinkSecretArn`) holds either a `postgresql://` URL, `{"url": "postgresql://…"}`,
or the JSON RDS and Aurora secrets carry (`username`, `password`, `host`, `port`, `dbname`): a secret RDS rotates
works as it is. Behind RDS Proxy, point `host` at the proxy's endpoint.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import psycopg

CONNECT_TIMEOUT_SECONDS = 5
# A statement that waits longer (a lock held by someone else, a server in trouble) fails the batch, which is retried.
STATEMENT_TIMEOUT_MS = 20_000
APPLICATION_NAME = "dsync-sql-sink"


class SinkSecretError(ValueError):
    """The secret holds no usable connection (the message never repeats the secret)."""


def url_from_secret(value: str) -> str:
    text = value.strip()
    if text.startswith(("postgresql://", "postgres://")):
        return text
    try:
        document = json.loads(text)
    except ValueError:
        raise SinkSecretError("the SQL sink's secret is neither a postgresql:// URL nor JSON") from None
    if not isinstance(document, dict):
        raise SinkSecretError("the SQL sink's secret is JSON but not an object")
    if isinstance(document.get("url"), str):
        return url_from_secret(document["url"])
    try:
        user, password, host = (str(document[name]) for name in ("username", "password", "host"))
    except KeyError:
        raise SinkSecretError("the SQL sink's secret needs url, or username, password and host") from None
    port = int(document.get("port") or 5432)
    database = str(document.get("dbname") or document.get("database") or "postgres")
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(database, safe='')}"


def connect(url: str, *, application_name: str = APPLICATION_NAME) -> psycopg.Connection[Any]:
    """Autocommit: the sink opens one explicit transaction per batch; between them it holds no lock."""
    conn = psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name=application_name,
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
    )
    return conn


class ReusedConnection:
    """One connection kept across Lambda invocations (a cold start pays the TLS handshake once); a broken one is
    replaced on the next call."""

    def __init__(self, url_source: Any) -> None:
        self._url_source = url_source  # () -> str, read only when a connection is needed
        self._conn: psycopg.Connection[Any] | None = None

    def get(self) -> psycopg.Connection[Any]:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._conn = None
        if self._conn is None:
            self._conn = connect(self._url_source())
        return self._conn

    def discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
