"""DynamoDB's per-partition write ceiling, and how the SDK's retries meet it.

Rules:
- "A single partition can support a maximum of 3,000 read capacity units (RCUs) or 1,000 write capacity units
  (WCUs)" (DynamoDB DG, "Partitions and data distribution"); on-demand tables have the same per-partition limit.
  The table keeps one partition key per directory, so all of a directory's writes share one ceiling. Adaptive
  capacity and split-for-heat may later spread a hot key by sort key (DynamoDB DG, "burst and adaptive capacity"),
  but not for writes to ever-increasing sort keys, and WorkOS ids are time-ordered: the model conservatively never
  splits (a ceiling that holds is the worst case).
- A write costs one WCU per started KB of the item (DynamoDB DG, "Read/write capacity mode"); a conditional write
  that fails its condition still costs it.
- A throttled request is retried by the SDK as the functions configure it: botocore's standard retry mode (adaptive
  mode backs off the same way and adds a client-side rate limiter). Its delay before a retry is
  rand(0, 1) x min(1 s x 2^i, 20 s) for a throttling error, i the failed attempt (0-based) (botocore
  `retries/standard.py`, `ExponentialBackoff`: "base_scale is 1 second for throttling errors"). The model takes the
  jitter's mean, half of that.

The ceiling is a token bucket drawn as a reservation line: the partition serves WCUs in order at its rate, and a
request is admitted while the work already admitted ends at most `burst_seconds` ahead (a bucket holding one
second of capacity: the per-second limit, with no credit beyond it). Every SDK attempt before that instant is a
throttled request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WCU_PER_SECOND = 1_000.0
SDK_DYNAMODB_ATTEMPTS = 5  # shared.adapters.dynamodb.CLIENT_CONFIG: standard mode, 5 attempts
THROTTLE_BASE_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 20.0
MEAN_JITTER = 0.5


@dataclass(frozen=True)
class WriteResult:
    done_at: float | None  # None: every attempt was throttled (the SDK raises, the message is retried)
    throttled: int  # throttled requests on the way


def retry_delays(attempts: int) -> list[float]:
    """Delays before attempts 2..`attempts` after throttles (botocore standard mode, the jitter at its mean)."""
    return [MEAN_JITTER * min(THROTTLE_BASE_SECONDS * 2**i, MAX_BACKOFF_SECONDS) for i in range(attempts - 1)]


@dataclass
class PartitionCeiling:
    wcu_per_second: float = WCU_PER_SECOND
    burst_seconds: float = 1.0
    throttled: int = 0
    _line: dict[str, float] = field(default_factory=dict)  # partition key -> when its line is next free

    def _admitted_from(self, key: str, now: float) -> float:
        return max(now, self._line.get(key, 0.0) - self.burst_seconds)

    def write(self, key: str, wcu: float, now: float, *, attempts: int = SDK_DYNAMODB_ATTEMPTS) -> WriteResult:
        """Serve `wcu` on `key`'s partition for a request sent at `now`, retried like the SDK does."""
        free_at = self._admitted_from(key, now)
        when, throttled = now, 0
        delays = iter(retry_delays(attempts))
        while when < free_at - 1e-9:
            throttled += 1
            delay = next(delays, None)
            if delay is None:
                self.throttled += throttled
                return WriteResult(None, throttled)
            when += delay
        self._line[key] = max(self._line.get(key, 0.0), free_at) + wcu / self.wcu_per_second
        self.throttled += throttled
        return WriteResult(when, throttled)

    def wait_for(self, key: str, wcu: float, now: float) -> float:
        """A patient writer (client-side rate limiting: botocore's adaptive mode): when `wcu` is served, unthrottled."""
        free_at = self._admitted_from(key, now)
        self._line[key] = max(self._line.get(key, 0.0), free_at) + wcu / self.wcu_per_second
        return free_at
