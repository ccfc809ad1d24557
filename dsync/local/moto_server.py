"""moto's server as the local stack runs it: moto itself, minus three costs that grew with use, found by profiling.

moto (5.2) builds a queue's whole attribute dictionary, including ApproximateNumberOfMessages* (a scan of every
message, reading the clock per message), whenever any one attribute is read, and it reads one on every
SendMessage (ContentBasedDeduplication) and once per message considered by ReceiveMessage (MessageRetentionPeriod).
Every queue call therefore costs O(queue length), and a receive O(length²): the local stack slowed down as its
queues grew, and everything sharing the emulator slowed with it. `LazyQueueAttributes` is the same mapping (same
keys, order and values; `tests/unit/test_moto_server.py` compares them) whose values are computed when read, so a
call pays only for the attributes it asks for.

Three more: EventBridge recompiles the same JSONPath expressions (its default input template) with a fresh parser
for every target of every event (`jsonpath_ng.ext.parse`, a pure function: its results are cached); routing lists
moto's package directories on disk for every request, under the server's one dispatch lock (listed once); and the
server logs every request to stderr (werkzeug's access log; only warnings are kept). Behaviour is moto's own.

    python -m dsync.local.moto_server -H 127.0.0.1 -p 4566      # the arguments of `python -m moto.server`
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
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


def patch_moto() -> None:
    import functools
    import logging

    import jsonpath_ng.ext
    from moto import backends
    from moto.sqs.models import Queue

    Queue.attributes = property(LazyQueueAttributes)  # type: ignore[assignment,method-assign]
    compile_path = getattr(jsonpath_ng.ext, "parse")  # noqa: B009 - the module does not re-export it for typing
    setattr(jsonpath_ng.ext, "parse", functools.lru_cache(maxsize=256)(compile_path))  # noqa: B010
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Routing lists moto's package directories on disk for every request, under the server's dispatch lock.
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def main() -> None:
    patch_moto()
    from moto.server import main as moto_main

    moto_main()


if __name__ == "__main__":
    main()
