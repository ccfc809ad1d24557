"""Lambda's event source mapping on a FIFO queue: how many batches run at once, and how that number grows.

Rules (Lambda DG services-sqs-scaling and services-sqs-parameters, quoted in `../shared/docs/aws-serverless-facts.md`
3.2 and the addendum):
- Concurrency on FIFO is at most min(active message groups, `ScalingConfig.MaximumConcurrency`); the group limit
  needs no code here, because a group is in at most one batch (`simulator.fifo`).
- `BatchSize` is at most 10 and FIFO has no batching window: a poller invokes with whatever one receive returned.
- Scale-up: the mapping starts with 5 concurrent pollers and adds up to 300 per minute while messages wait (the
  documented standard-queue rate; AWS documents no other rate for FIFO, so the model uses it) [assumption].
- An invocation that finishes frees its slot at once; a slot with nothing to receive is given back (scale-down).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from simulator.fifo import FifoQueue, Message

INITIAL_POLLERS = 5
SCALE_UP_PER_SECOND = 300 / 60


@dataclass
class EventSourceMapping:
    queue: FifoQueue
    maximum_concurrency: int
    invoke: Callable[[list[Message], Callable[[], None]], None]  # (batch, done) — the function, asynchronously
    now: Callable[[], float]
    running: int = 0
    peak: int = 0
    _allowed: float = INITIAL_POLLERS
    _last_growth: float = field(default=0.0)

    def poll(self) -> None:
        """Start batches while a slot is free and the queue returns messages."""
        self._grow()
        while self.running < min(int(self._allowed), self.maximum_concurrency):
            batch = self.queue.receive()
            if not batch:
                return
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.invoke(batch, self._finished)

    def _finished(self) -> None:
        self.running -= 1
        self.poll()

    def _grow(self) -> None:
        now = self.now()
        elapsed, self._last_growth = now - self._last_growth, now
        if self.queue.stored > 0:
            self._allowed = min(self.maximum_concurrency, self._allowed + elapsed * SCALE_UP_PER_SECOND)
        else:
            self._allowed = max(INITIAL_POLLERS, min(self._allowed, self.running + INITIAL_POLLERS))
