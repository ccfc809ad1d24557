"""Which directories one reconcile wave takes, so that the wave fits its period under WorkOS's rate limits.

WorkOS allows 6,000 requests per minute per API key, and a full reconcile of a 1,000-user directory takes about 50
(users and groups by pages of 100, then each group's members). 10,000 such directories are 500,000 requests: more
than an hour of the whole key, so "every directory every hour" cannot hold at that size, whatever the concurrency.
A wave therefore takes directories by need until its request budget is spent, and the rest wait for the next one:

1. directories never attempted;
2. directories whose counts at WorkOS differ from the mirror's (the health listing's drift hint);
3. the rest, least recently attempted first: a directory whose runs keep failing (or are refused or held) waits
   its turn like any other instead of heading every wave forever; its failures alarm on their own.

Each directory costs the time its run holds a reconcile function: its requests at 4 per second (estimated from
WorkOS's counts in the wave's listing) plus a job's fixed overhead, or what its last run took if that was longer.
The budget is the functions' time over 90% of the period, at a concurrency within this pipeline's share of the key.
With the webhooks and the Events API tail applying changes in seconds, the full reconcile is the backstop for what
no event carries; the rotation period it achieves is reported by `dsync status` and `docs/scale.md`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PAGE_SIZE = 100  # WorkOS's maximum page size for directory listings
REQUESTS_PER_SECOND_PER_DIRECTORY = 4  # WorkOS: /directory_users, per directory
KEY_REQUESTS_PER_MINUTE = 6_000  # WorkOS: per API key
BUDGET_HEADROOM = 0.9  # the wave plans for 90% of its period: retries and slow pages take the rest
JOB_OVERHEAD_SECONDS = 2.0  # a job's invocation, lease, checkpoint and store writes besides its listing


@dataclass(frozen=True)
class Candidate:
    directory_id: str
    last_finished_at: float | None  # epoch seconds of the last finished run, None if never
    last_requests: int | None  # requests that run took, when known
    users: int = 0  # WorkOS's counts (the wave's listing), for the estimate
    groups: int = 0
    drifted: bool = False  # WorkOS's counts differ from the mirror's
    last_seconds: float | None = None  # how long that run held its function
    last_attempted_at: float | None = None  # epoch seconds the last run ended, finished or not; None if never

    @property
    def requests(self) -> int:
        if self.last_requests:
            return self.last_requests
        return estimated_requests(self.users, self.groups)

    @property
    def cost(self) -> float:
        """Seconds of one reconcile function's time: its requests at WorkOS's pace, or what its last run took."""
        paced = self.requests / REQUESTS_PER_SECOND_PER_DIRECTORY + JOB_OVERHEAD_SECONDS
        return max(paced, self.last_seconds or 0.0)


@dataclass(frozen=True)
class WaveSelection:
    chosen: list[Candidate]
    deferred: list[Candidate]

    @property
    def planned_requests(self) -> int:
        return sum(candidate.requests for candidate in self.chosen)


def estimated_requests(users: int, groups: int) -> int:
    """Users and groups by pages, plus at least one members page per group."""
    return 1 + math.ceil(users / PAGE_SIZE) + math.ceil(groups / PAGE_SIZE) + groups


def max_concurrency(*, key_share: float = 0.8) -> int:
    """How many directories may list at 4 rps at once within `key_share` of the key's 6,000 per minute."""
    return max(1, int(key_share * KEY_REQUESTS_PER_MINUTE / 60 / REQUESTS_PER_SECOND_PER_DIRECTORY))


def wave_budget_seconds(period_seconds: float, concurrency: int) -> float:
    """Function-seconds a wave may plan: `concurrency` functions over 90% of the period."""
    return concurrency * period_seconds * BUDGET_HEADROOM


def select(candidates: Iterable[Candidate], budget: float) -> WaveSelection:
    """Directories by need (see the module docstring) until the budget is spent; at least one per wave, so even a
    directory larger than the whole budget is reconciled (its run checkpoints and continues)."""
    ordered = sorted(candidates, key=_need)
    chosen: list[Candidate] = []
    deferred: list[Candidate] = []
    spent = 0.0
    for candidate in ordered:
        if not chosen or spent + candidate.cost <= budget:
            chosen.append(candidate)
            spent += candidate.cost
        else:
            deferred.append(candidate)
    return WaveSelection(chosen, deferred)


def _need(candidate: Candidate) -> tuple[int, float, str]:
    attempted = candidate.last_attempted_at if candidate.last_attempted_at is not None else candidate.last_finished_at
    if attempted is None:
        return 0, 0.0, candidate.directory_id
    if candidate.drifted and candidate.last_finished_at is not None:
        return 1, candidate.last_finished_at, candidate.directory_id
    return 2, attempted, candidate.directory_id


def rotation_waves(costs: Sequence[float], budget: float) -> int:
    """How many waves it takes to reconcile every directory once, at this budget."""
    return max(1, math.ceil(sum(costs) / max(budget, 1.0)))
