"""moto's server as the local stack runs it: moto itself, behind a keep-alive HTTP server, minus costs found by
profiling.

moto (5.2) builds a queue's whole attribute dictionary, including ApproximateNumberOfMessages* (a scan of every
message, reading the clock per message), whenever any one attribute is read, and it reads one on every
SendMessage (ContentBasedDeduplication) and once per message considered by ReceiveMessage (MessageRetentionPeriod).
Every queue call therefore costs O(queue length), and a receive O(length²): the local stack slowed down as its
queues grew, and everything sharing the emulator slowed with it. `LazyQueueAttributes` is the same mapping (same
keys, order and values; `tests/unit/dsync/test_moto_server.py` compares them) whose values are computed when read, so a
call pays only for the attributes it asks for.

Also: SQS reads the clock for every message it looks at through datetime arithmetic (it now gets `time.time()`,
the same value); EventBridge recompiles the same JSONPath expressions (its default input template) with a fresh
parser for every target of every event (`jsonpath_ng.ext.parse` is pure: its results are cached); routing lists
moto's package directories on disk for every request, under the server's one dispatch lock (listed once); and
werkzeug's development server logs every request and closes every connection (waitress serves instead, see
`main`). Behaviour is moto's own.

    python -m dsync.local.moto_server -H 127.0.0.1 -p 4566
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any


class LazyQueueAttributes(Mapping[str, Any]):
    """`moto.sqs.models.Queue.attributes`, value by value."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def _names(self) -> list[str]:
        queue = self._queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        return names

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names():
            raise KeyError(name)
        queue = self._queue
        value = getattr(queue, camelcase_to_underscores(name))
        if name == "Policy" and queue.policy:
            value = queue.policy
        elif name == "RedrivePolicy" and queue.redrive_policy:
            value = json.dumps(queue.redrive_policy)
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def unix_time(dt: datetime | None = None) -> float:
    """`moto.core.utils.unix_time` without building two datetimes when asked for now (SQS asks per message)."""
    return time.time() if dt is None else _moto_unix_time(dt)


def unix_time_millis(dt: datetime | None = None) -> float:
    return unix_time(dt) * 1000.0


def _moto_unix_time(dt: datetime) -> float:
    from moto.core.utils import unix_time as moto_unix_time

    return float(moto_unix_time(dt))


def patch_moto() -> None:
    import functools

    import jsonpath_ng.ext
    from moto import backends
    from moto.sqs import models as sqs_models
    from moto.sqs.models import Queue

    Queue.attributes = property(LazyQueueAttributes)  # type: ignore[assignment,method-assign]
    # SQS reads the clock for every message it looks at (visibility, delay), through datetime arithmetic.
    setattr(sqs_models, "unix_time", unix_time)  # noqa: B010
    setattr(sqs_models, "unix_time_millis", unix_time_millis)  # noqa: B010
    compile_path = getattr(jsonpath_ng.ext, "parse")  # noqa: B009 - the module does not re-export it for typing
    setattr(jsonpath_ng.ext, "parse", functools.lru_cache(maxsize=256)(compile_path))  # noqa: B010
    # Routing lists moto's package directories on disk for every request, under the server's dispatch lock.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def main(argv: list[str] | None = None) -> None:
    """moto's WSGI application, served by waitress instead of werkzeug's development server: werkzeug answers every
    request with `Connection: close`, so each AWS call paid a new TCP connection (and a new server thread), about a
    quarter of the local stack's own CPU. waitress keeps connections alive and serves from a fixed thread pool."""
    import argparse
    import os

    import waitress
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    parser = argparse.ArgumentParser(description="moto's server for the local stack")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    patch_moto()
    application = DomainDispatcherApplication(create_backend_app)
    waitress.serve(
        application,
        host=args.host,
        port=args.port,
        threads=16,
        connection_limit=200,
        channel_timeout=300,
        ident="moto",
        _quiet=True,
    )


if __name__ == "__main__":
    main()
