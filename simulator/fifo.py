"""SQS FIFO as the event source mapping sees it: groups, in-flight locks, the scan window, visibility and redrive.

Rules, each from AWS's documentation (quoted in `../shared/docs/aws-serverless-facts.md`, sections 3.1-3.2 and the
2026-12 addendum):

- Order within a group: messages of one group are delivered in the order they were sent (SQS DG, FIFO queues).
- One batch in flight per group: while any message of a group is in flight, no other message of that group is
  returned ("the function attempts all retries on the affected messages before Lambda receives additional messages
  from the same group", Lambda DG services-sqs-scaling).
- Batches of at most 10 that may mix groups; SQS "first attempts to return as many messages with the same message
  group ID as possible" (SQS DG, ReceiveMessage on FIFO queues), then fills up from other groups.
- The scan window: SQS "scans the first 120,000 messages to determine available message groups" (SQS DG
  quotas-fifo, "Avoid large message backlogs with the same message group ID"). A group whose first message lies
  beyond the first 120,000 stored messages is not seen, however idle it is.
- Visibility timeout: a received message that is not deleted becomes visible again after the timeout; its group
  stays locked until then. After `max_receive_count` receives it moves to the dead-letter queue, which unblocks
  the group (SQS DG, dead-letter queues).
"""

from __future__ import annotations

import functools
import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SCAN_WINDOW = 120_000
MAX_BATCH = 10


@dataclass
class Message:
    seq: int
    group: str
    payload: Any
    sent_at: float
    receives: int = 0
    in_flight: bool = False


class _Ranks:
    """A Fenwick tree over arrival numbers: how many stored messages arrived before a given one, in O(log n)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._values = [0] * capacity
        self._tree = [0] * (capacity + 1)

    def add(self, index: int, delta: int) -> None:
        if index >= len(self._values):
            self._grow(index)
        self._values[index] += delta
        tree, position = self._tree, index + 1
        while position < len(tree):
            tree[position] += delta
            position += position & -position

    def before(self, index: int) -> int:
        """Stored messages whose arrival number is below `index`."""
        total, tree, position = 0, self._tree, min(index, len(self._values))
        while position > 0:
            total += tree[position]
            position -= position & -position
        return total

    def _grow(self, index: int) -> None:
        capacity = len(self._values)
        while capacity <= index:
            capacity *= 2
        self._values.extend([0] * (capacity - len(self._values)))
        tree = [0] * (capacity + 1)
        for position, value in enumerate(self._values, start=1):  # the linear build
            tree[position] += value
            parent = position + (position & -position)
            if parent <= capacity:
                tree[parent] += tree[position]
        self._tree = tree


@dataclass
class FifoQueue:
    """One FIFO queue. `on_available` is called whenever a group may have become receivable (for idle pollers)."""

    name: str
    visibility_timeout: float
    max_receive_count: int
    schedule: Callable[[float, Callable[[], None]], None]  # (delay, action)
    now: Callable[[], float]
    scan_window: int = SCAN_WINDOW
    on_available: Callable[[], None] = lambda: None
    stored: int = 0
    peak_stored: int = 0
    dead_lettered: list[Message] = field(default_factory=list)
    _groups: dict[str, deque[Message]] = field(default_factory=dict)
    _locked: dict[str, int] = field(default_factory=dict)  # group -> messages in flight
    _heads: list[tuple[int, str]] = field(default_factory=list)  # (head seq, group) of maybe-available groups
    _ranks: _Ranks = field(default_factory=_Ranks)
    _next_seq: int = 0

    def send(self, group: str, payload: Any, *, sent_at: float | None = None) -> Message:
        message = Message(self._next_seq, group, payload, self.now() if sent_at is None else sent_at)
        self._next_seq += 1
        queue = self._groups.setdefault(group, deque())
        queue.append(message)
        self._ranks.add(message.seq, 1)
        self.stored += 1
        self.peak_stored = max(self.peak_stored, self.stored)
        if len(queue) == 1 and group not in self._locked:
            heapq.heappush(self._heads, (message.seq, group))
            self.on_available()
        return message

    def receive(self, limit: int = MAX_BATCH) -> list[Message]:
        """Up to `limit` (≤ 10) messages: as many as possible from the first available group, then the next ones."""
        limit = min(limit, MAX_BATCH)
        batch: list[Message] = []
        while len(batch) < limit and self._heads:
            head_seq, group = self._heads[0]
            queue = self._groups.get(group)
            if group in self._locked or not queue or queue[0].seq != head_seq:
                heapq.heappop(self._heads)  # stale entry: the group is locked, empty, or its head moved
                continue
            if self._ranks.before(head_seq) >= self.scan_window:
                break  # every remaining group's first message is beyond the scan window
            heapq.heappop(self._heads)
            taken = 0
            for message in queue:
                if len(batch) >= limit:
                    break
                message.in_flight = True
                message.receives += 1
                batch.append(message)
                taken += 1
            self._locked[group] = taken
            for message in batch[-taken:]:
                self.schedule(self.visibility_timeout, functools.partial(self._timeout, message))
        return batch

    def delete(self, message: Message) -> None:
        if not message.in_flight:
            return
        queue = self._groups[message.group]
        if queue[0] is message:
            queue.popleft()
        else:
            queue.remove(message)
        self._forget(message)
        self._release(message)
        self.on_available()  # the window moved up by one: a group beyond it may now be seen

    def _forget(self, message: Message) -> None:
        message.in_flight = False
        self._ranks.add(message.seq, -1)
        self.stored -= 1
        queue = self._groups.get(message.group)
        if queue is not None and not queue:
            del self._groups[message.group]

    def _release(self, message: Message) -> None:
        group = message.group
        remaining = self._locked.get(group, 0) - 1
        if remaining > 0:
            self._locked[group] = remaining
            return
        self._locked.pop(group, None)
        queue = self._groups.get(group)
        if queue:
            heapq.heappush(self._heads, (queue[0].seq, group))
            self.on_available()

    def _timeout(self, message: Message) -> None:
        """The visibility timeout passed without a delete: visible again, or dead-lettered after too many receives."""
        if not message.in_flight:
            return
        if message.receives >= self.max_receive_count:
            queue = self._groups[message.group]
            queue.remove(message)
            self._forget(message)
            self.dead_lettered.append(message)
        else:
            message.in_flight = False
        self._release(message)
