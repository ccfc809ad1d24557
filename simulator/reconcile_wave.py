"""Scenario (b): the scheduled reconcile wave over many directories, under WorkOS's rate limits.

Rules (`../shared/docs/workos-facts.md` 4.1): 6,000 requests per 60 s per API key; `/directory_users` at 4 requests
per second per directory (our client paces every listing of a directory at that rate); pages of at most 100.
The reconcile functions take one directory job at a time from the work queue, at most `concurrency` at once (the
mapping's `MaximumConcurrency`). Requests over the key's limit are answered 429 and retried the next second.
The wave's selection is the real code (`shared.reconcile.wave_budget`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from shared.reconcile import wave_budget

JOB_OVERHEAD_SECONDS = wave_budget.JOB_OVERHEAD_SECONDS  # [assumption] as the planner makes it
TAIL_REQUESTS_PER_SECOND = 0.5  # the Events API tail shares the key: one page every two seconds while idle


@dataclass(frozen=True)
class WaveDesign:
    name: str
    concurrency: int
    budgeted: bool


@dataclass(frozen=True)
class WaveOutcome:
    directories: int
    in_wave: int
    planned_requests: int
    seconds: float
    rate_limited: int
    rotation_waves: int

    @property
    def key_share(self) -> float:
        return self.planned_requests / self.seconds / (wave_budget.KEY_REQUESTS_PER_MINUTE / 60) if self.seconds else 0


def requests_per_directory(users: int, groups: int, memberships_per_user: float) -> int:
    """What a full reconcile lists: users and groups by pages, then each group's members by pages."""
    per_group = users * memberships_per_user / groups if groups else 0
    pages = wave_budget.PAGE_SIZE
    return 1 + math.ceil(users / pages) + math.ceil(groups / pages) + groups * max(1, math.ceil(per_group / pages))


def run_wave(
    design: WaveDesign,
    *,
    directories: int = 10_000,
    users: int = 1_000,
    groups: int = 20,
    memberships_per_user: float = 3.0,
    period_seconds: float = 3_600.0,
) -> WaveOutcome:
    cost = requests_per_directory(users, groups, memberships_per_user)
    candidates = [
        wave_budget.Candidate(f"directory_{n:05d}", last_finished_at=float(n), last_requests=cost)
        for n in range(directories)
    ]
    if design.budgeted:
        budget = wave_budget.wave_budget_seconds(period_seconds, design.concurrency)
        selection = wave_budget.select(candidates, budget)
        jobs = deque(candidate.requests for candidate in selection.chosen)
        rotation = wave_budget.rotation_waves([c.cost for c in candidates], budget)
    else:
        jobs = deque(candidate.requests for candidate in candidates)
        rotation = 1
    in_wave, planned = len(jobs), sum(jobs)
    key_rate = wave_budget.KEY_REQUESTS_PER_MINUTE / 60 - TAIL_REQUESTS_PER_SECOND
    running: list[list[float]] = []  # [requests left, overhead left]
    now, rate_limited = 0.0, 0
    while jobs or running:
        while jobs and len(running) < design.concurrency:
            running.append([float(jobs.popleft()), JOB_OVERHEAD_SECONDS])
        wanting = [job for job in running if job[1] <= 0 and job[0] > 0]
        demand = len(wanting) * wave_budget.REQUESTS_PER_SECOND_PER_DIRECTORY
        admitted_share = min(1.0, key_rate / demand) if demand else 1.0
        rate_limited += round(demand * (1 - admitted_share))
        for job in running:
            if job[1] > 0:
                job[1] -= 1.0
            else:
                job[0] -= wave_budget.REQUESTS_PER_SECOND_PER_DIRECTORY * admitted_share
        running = [job for job in running if job[0] > 0 or job[1] > 0]
        now += 1.0
    return WaveOutcome(directories, in_wave, planned, now, rate_limited, rotation)
