"""The overflow lane: where a directory's batches go while its DynamoDB partition is throttled.

A directory is one partition key, and a partition takes at most 1,000 WCU/s. A large directory's onboarding or
mass update can arrive faster than that. Waiting in place would keep its backlog in the events queue, where SQS
scans only the first 120,000 messages for groups to serve: every small directory behind it would wait too (a
deactivated user keeping access for many minutes). So the events queue's applier gives up on a throttled write
quickly, remembers the directory as hot for a few seconds, and moves the directory's messages (same group, same
deduplication id) to the overflow queue, whose applier writes at the partition's pace. Both appliers are the same
code and the same write rules; the order between them does not matter to a max-register.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shared.model import lanes

HOT_SECONDS = 5.0


class Overflow(Protocol):
    def move(self, messages: Sequence[OverflowMessage]) -> None:
        """Queue every message on the overflow queue, or raise."""


@dataclass(frozen=True)
class OverflowMessage:
    body: str
    group_id: str
    deduplication_id: str


class Movable(Protocol):
    @property
    def body(self) -> str: ...
    @property
    def group_id(self) -> str: ...
    @property
    def deduplication_id(self) -> str: ...


@dataclass
class HotDirectories:
    """Directories seen throttled by this instance, remembered for `seconds`: their messages move at once."""

    seconds: float = HOT_SECONDS
    clock: Callable[[], float] = time.monotonic
    _until: dict[str, float] = field(default_factory=dict)

    def mark(self, directory_id: str) -> None:
        self._until[directory_id] = self.clock() + self.seconds

    def is_hot(self, directory_id: str) -> bool:
        until = self._until.get(directory_id)
        if until is None:
            return False
        if until <= self.clock():
            self._until.pop(directory_id, None)  # applier threads share one instance locally
            return False
        return True


@dataclass
class OverflowLane:
    """The events queue's way out for a throttled directory: the queue, and which directories are hot."""

    queue: Overflow
    hot: HotDirectories = field(default_factory=HotDirectories)

    def is_hot(self, group_id: str) -> bool:
        return self.hot.is_hot(lanes.directory_of_group(group_id))

    def move(self, messages: Sequence[Movable], *, throttled: Iterable[str] = ()) -> str | None:
        """Mark the `throttled` directories hot and queue the messages on the overflow lane (same group, same
        deduplication id). Returns why they could not be moved (they stay on the events queue), or None."""
        for directory_id in throttled:
            self.hot.mark(directory_id)
        if not messages:
            return None
        try:
            self.queue.move([OverflowMessage(m.body, m.group_id, m.deduplication_id) for m in messages])
        except Exception as error:  # not moved: retried on the events queue
            return f"throttled, and could not move to the overflow queue: {error}"
        return None
