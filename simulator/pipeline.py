"""The production pipeline as a model: WorkOS → ingest → SQS FIFO → apply → DynamoDB, with the design's lanes and
its overflow queue.

What is ours is real code: `shared.model.lanes` picks every message group, and the apply cost per batch comes from the
real applier (`simulator.calibration`). What is AWS's is a rule with its source (`simulator.fifo`,
`simulator.esm`, `simulator.partitions`). Assumed figures carry their reason here.
"""

from __future__ import annotations

import functools
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from shared.model import lanes
from simulator.calibration import ROUND_TRIP_SECONDS, Calibration
from simulator.engine import Simulation
from simulator.esm import EventSourceMapping
from simulator.fifo import FifoQueue, Message
from simulator.partitions import SDK_DYNAMODB_ATTEMPTS, PartitionCeiling

# API Gateway plus the ingest function's verify and SendMessage: tens of milliseconds [assumption].
INGEST_SECONDS = 0.030
# The mapping's receive, the invocation and its DeleteMessageBatch around the handler's own work [assumption].
INVOCATION_OVERHEAD_SECONDS = 0.030
SQS_SEND_SECONDS = 0.015  # one SendMessageBatch from the applier (the overflow lane) [assumption]
APPLY_TIMEOUT_SECONDS = 60.0  # shared.resources.APPLY_FUNCTION
VISIBILITY_TIMEOUT_SECONDS = 6 * APPLY_TIMEOUT_SECONDS  # shared.resources.EVENT_QUEUE
MAX_RECEIVE_COUNT = 5  # infra.constructs.dead_lettered_queue
HOT_PARTITION_SECONDS = 5.0  # shared.apply.overflow: how long an applier remembers a throttled directory
# WorkOS retries a failed delivery "with exponential back-off for up to 3 days"; the first delay is undocumented
# (workos-facts 1.2): a minute is assumed.
WORKOS_FIRST_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class Design:
    """The choices the simulator compares. `BASELINE` is the design before #12; `CURRENT` is what the stack deploys."""

    name: str
    lanes_per_directory: int  # 1: one FIFO group per directory
    apply_max_concurrency: int
    overflow: bool  # throttled directories' batches move to an overflow queue instead of waiting in the main one
    overflow_max_concurrency: int = 0
    main_lane_attempts: int = SDK_DYNAMODB_ATTEMPTS  # SDK attempts per write on the main queue's applier
    # API Gateway's stage throttle: a token bucket of `api_burst` refilled at `api_rate` per second; a delivery
    # beyond it is answered 429 and WorkOS retries it later (API Gateway DG, "Throttle API requests").
    api_rate: float = 10_000.0
    api_burst: float = 5_000.0


@dataclass
class Event:
    directory_id: str
    event_type: str
    entity_id: str
    sent_at: float
    small: bool


@dataclass
class Figures:
    delivered: int = 0
    small_latencies: list[float] = field(default_factory=list)
    giant_last_applied: float = 0.0
    giant_applied: int = 0
    dead_lettered: int = 0
    overflowed: int = 0
    peak_main_backlog: int = 0
    peak_overflow_backlog: int = 0
    peak_concurrency: int = 0
    throttled_requests: int = 0
    rejected_deliveries: int = 0  # answered 429 by the API's throttle, retried by WorkOS

    def small_percentile(self, q: float) -> float:
        data = sorted(self.small_latencies)
        if not data:
            return 0.0
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def small_max(self) -> float:
        return max(self.small_latencies, default=0.0)

    @property
    def small_p50(self) -> float:
        return statistics.median(self.small_latencies) if self.small_latencies else 0.0


class Pipeline:
    def __init__(self, design: Design, calibration: Calibration, sim: Simulation | None = None) -> None:
        self.design = design
        self.calibration = calibration
        self.sim = sim or Simulation()
        self.ceiling = PartitionCeiling()
        self.figures = Figures()
        # Directories an applier saw throttled, until when. Each Lambda instance learns this from its own first
        # throttled write; the model shares it across instances, which is optimistic by one throttled batch per
        # instance per HOT_PARTITION_SECONDS.
        self._hot: dict[str, float] = {}
        self._api_tokens, self._api_refilled = design.api_burst, 0.0
        self.main = self._queue("events")
        self.main_mapping = EventSourceMapping(
            self.main, design.apply_max_concurrency, lambda b, d: self._apply(b, d, main=True), lambda: self.sim.now
        )
        self.main.on_available = self.main_mapping.poll
        self.overflow = self._queue("overflow")
        self.overflow_mapping = EventSourceMapping(
            self.overflow,
            max(design.overflow_max_concurrency, 1),
            lambda b, d: self._apply(b, d, main=False),
            lambda: self.sim.now,
        )
        self.overflow.on_available = self.overflow_mapping.poll

    def _queue(self, name: str) -> FifoQueue:
        return FifoQueue(
            name,
            visibility_timeout=VISIBILITY_TIMEOUT_SECONDS,
            max_receive_count=MAX_RECEIVE_COUNT,
            schedule=self.sim.after,
            now=lambda: self.sim.now,
        )

    # --- WorkOS and ingest ----------------------------------------------------------------------------------------

    def deliver(self, events: Iterable[Event]) -> None:
        """Schedule WorkOS's sends (each event's `sent_at`); the ingest queues each one `INGEST_SECONDS` later."""
        for event in events:
            self.sim.at(event.sent_at + INGEST_SECONDS, functools.partial(self._ingest, event))

    def _ingest(self, event: Event) -> None:
        now = self.sim.now
        self._api_tokens = min(
            self.design.api_burst, self._api_tokens + (now - self._api_refilled) * self.design.api_rate
        )
        self._api_refilled = now
        if self._api_tokens < 1.0:
            self.figures.rejected_deliveries += 1
            self.sim.after(WORKOS_FIRST_RETRY_SECONDS, functools.partial(self._ingest, event))
            return
        self._api_tokens -= 1.0
        self.figures.delivered += 1
        self.main.send(self._group(event), event, sent_at=event.sent_at)

    def _group(self, event: Event) -> str:
        if self.design.lanes_per_directory <= 1:
            return event.directory_id
        data = _event_data(event)
        lane = lanes.lane_of(event.event_type, data, lanes=self.design.lanes_per_directory)
        return f"{event.directory_id}:{lane}"

    # --- apply ----------------------------------------------------------------------------------------------------

    def _apply(self, batch: list[Message], done: Callable[[], None], *, main: bool) -> None:
        now = self.sim.now
        by_directory: dict[str, list[Message]] = {}
        for message in batch:
            by_directory.setdefault(message.payload.directory_id, []).append(message)
        types = Counter(message.payload.event_type for message in batch)
        dominant = types.most_common(1)[0][0]
        compute = self.calibration.cost(dominant).seconds_per_batch
        hot = main and self.design.overflow and all(self._hot.get(d, -1.0) > now for d in by_directory)
        # The invocation, then the batch read (skipped when every directory is known hot: the batch moves at once).
        finish = now + INVOCATION_OVERHEAD_SECONDS + (0.0 if hot else ROUND_TRIP_SECONDS)
        applied: list[Message] = []
        moved: list[Message] = []
        for directory_id, messages in by_directory.items():
            wcu = sum(self.calibration.cost(m.payload.event_type).wcu_per_event for m in messages)
            start = finish
            if main and self.design.overflow and self._hot.get(directory_id, -1.0) > start:
                moved.extend(messages)
                continue
            if main or not self.design.overflow:
                attempts = self.design.main_lane_attempts if main else SDK_DYNAMODB_ATTEMPTS
                result = self.ceiling.write(directory_id, wcu, start, attempts=attempts)
                if result.done_at is None:
                    if main and self.design.overflow:
                        self._hot[directory_id] = start + HOT_PARTITION_SECONDS
                        moved.extend(messages)
                    # else: left in flight, visible again after the visibility timeout (or dead-lettered)
                    continue
                finish = max(finish, result.done_at + compute - ROUND_TRIP_SECONDS)
            else:  # the overflow applier writes at the partition's pace (client-side rate limiting)
                served = self.ceiling.wait_for(directory_id, wcu, start)
                finish = max(finish, served + compute - ROUND_TRIP_SECONDS)
            applied.extend(messages)
        if moved:
            finish += SQS_SEND_SECONDS
        self.sim.at(finish, lambda: self._finish(applied, moved, done, main=main))

    def _finish(self, applied: list[Message], moved: list[Message], done: Callable[[], None], *, main: bool) -> None:
        queue = self.main if main else self.overflow
        now = self.sim.now
        for message in applied:
            event: Event = message.payload
            if event.small:
                self.figures.small_latencies.append(now - event.sent_at)
            else:
                self.figures.giant_applied += 1
                self.figures.giant_last_applied = max(self.figures.giant_last_applied, now)
            queue.delete(message)
        for message in moved:
            queue.delete(message)
            self.overflow.send(message.group, message.payload, sent_at=message.sent_at)
            self.figures.overflowed += 1
        done()

    def run(self) -> Figures:
        self.sim.run()
        self.figures.throttled_requests = self.ceiling.throttled
        self.figures.peak_concurrency = max(
            self.figures.peak_concurrency, self.main_mapping.peak + self.overflow_mapping.peak
        )
        self.figures.dead_lettered = len(self.main.dead_lettered) + len(self.overflow.dead_lettered)
        self.figures.peak_main_backlog = self.main.peak_stored
        self.figures.peak_overflow_backlog = self.overflow.peak_stored
        return self.figures


def _event_data(event: Event) -> dict[str, object]:
    """The part of a WorkOS event body that `shared.model.lanes` reads."""
    if event.event_type in ("dsync.group.user_added", "dsync.group.user_removed"):
        return {"user": {"id": event.entity_id}, "group": {"id": "g"}}
    return {"id": event.entity_id}
