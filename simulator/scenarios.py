"""The scenarios of issue #12, as streams of WorkOS sends fed to `simulator.pipeline`.

(a) onboarding: one directory connects 100,000 users (their `user.created`, then its groups, then one `user_added`
    per membership: about 400,000 events) while 5,000 small directories send a steady trickle;
(c) mass update: one attribute toggled for all of a 250,000-user directory (one `user.updated` each), with the same
    trickle. (b), the reconcile wave, is `simulator.reconcile_wave`.
WorkOS documents no limit on webhook delivery, so each runs at several delivery rates.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from simulator.calibration import Calibration
from simulator.pipeline import Design, Event, Figures, Pipeline

SMALL_DIRECTORIES = 5_000
SMALL_RATE = 25.0  # events/s across all small directories: one every ~200 s each
SMALL_TAIL_SECONDS = 600.0  # the trickle goes on this long after the giant's last send
GIANT = "directory_01GIANT"


@dataclass(frozen=True)
class Outcome:
    scenario: str
    rate: float
    giant_events: int
    last_send: float
    figures: Figures

    @property
    def giant_done_after_last_send(self) -> float:
        return max(0.0, self.figures.giant_last_applied - self.last_send)

    @property
    def giant_complete(self) -> bool:
        return self.figures.giant_applied == self.giant_events


def onboarding_events(users: int, groups: int, memberships_per_user: int) -> Iterator[tuple[str, str]]:
    """(event type, entity id) in WorkOS's initial-sync order."""
    for user in range(users):
        yield "dsync.user.created", f"directory_user_{user:08d}"
    for group in range(groups):
        yield "dsync.group.created", f"directory_group_{group:06d}"
    for _ in range(memberships_per_user):
        for user in range(users):
            yield "dsync.group.user_added", f"directory_user_{user:08d}"


def mass_update_events(users: int) -> Iterator[tuple[str, str]]:
    for user in range(users):
        yield "dsync.user.updated", f"directory_user_{user:08d}"


def run(
    scenario: str,
    design: Design,
    calibration: Calibration,
    *,
    rate: float,
    giant: list[tuple[str, str]],
    seed: int = 12,
) -> Outcome:
    pipeline = Pipeline(design, calibration)
    events = [Event(GIANT, kind, entity, index / rate, small=False) for index, (kind, entity) in enumerate(giant)]
    last_send = events[-1].sent_at if events else 0.0
    pipeline.deliver(events)
    pipeline.deliver(_trickle(random.Random(seed), until=last_send + SMALL_TAIL_SECONDS))
    return Outcome(scenario, rate, len(events), last_send, pipeline.run())


def _trickle(rng: random.Random, *, until: float) -> Iterator[Event]:
    """Poisson arrivals across the small directories: mostly updates (a deactivation is one), some memberships."""
    now = 0.0
    while True:
        now += rng.expovariate(SMALL_RATE)
        if now > until:
            return
        directory = f"directory_{rng.randrange(SMALL_DIRECTORIES):05d}"
        kind = rng.choice(("dsync.user.updated", "dsync.user.updated", "dsync.group.user_added", "dsync.user.created"))
        yield Event(directory, kind, f"directory_user_{directory}_{rng.randrange(200)}", now, small=True)
