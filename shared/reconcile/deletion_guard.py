"""No single input may erase a tenant: what reconcile may delete on its own, and what waits for an operator.

Reconcile deletes what WorkOS no longer has. Its inputs can be wrong in ways that look exactly like deletions: an
API key of another environment (every directory answers 404), a truncated listing, a WorkOS incident. So:

- **Positive evidence.** A directory is tombstoned only if `GET /directories/{id}` answers 404 *and* a complete,
  successful `GET /directories` listing under the same key leaves it out while listing at least one directory or
  organization the mirror already knows (`shared.key_check`). Otherwise the run is *refused*: nothing is written.
- **Mass deletions wait for a human.** One wave tombstones at most `max_directory_deletions_per_wave`
  directories; one directory run removes at most `max_removal_share` of the directory's live users (and of its
  groups), or `removal_floor`, whichever is larger. Past that the deletions are *held*: nothing is removed, the run
  says so (a metric and an alarm), and `dsync reconcile --confirm-deletions` carries them out.

Deletions that arrive as signed events (`dsync.deleted`, `dsync.user.deleted`, ...) are evidence themselves and are
not limited here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

DEFAULT_MAX_DIRECTORY_DELETIONS_PER_WAVE = 3
DEFAULT_MAX_REMOVAL_SHARE = 0.2
DEFAULT_REMOVAL_FLOOR = 10


class DeletionRefusedError(Exception):
    """The evidence for a deletion is missing or contradictory (most likely a key of another environment)."""


class DeletionsHeldError(Exception):
    """More deletions than one run may make on its own: they wait for `dsync reconcile --confirm-deletions`."""


@dataclass(frozen=True)
class DeletionPolicy:
    max_directory_deletions_per_wave: int = DEFAULT_MAX_DIRECTORY_DELETIONS_PER_WAVE
    max_removal_share: float = DEFAULT_MAX_REMOVAL_SHARE
    removal_floor: int = DEFAULT_REMOVAL_FLOOR
    confirmed: bool = False  # an operator confirmed this run's deletions (`--confirm-deletions`)
    hold_directory_deletion: bool = False  # the wave found more directories gone than it may delete

    def __post_init__(self) -> None:
        if self.max_directory_deletions_per_wave < 0 or self.removal_floor < 0:
            raise ValueError("deletion limits must be >= 0")
        if not 0.0 <= self.max_removal_share <= 1.0:
            raise ValueError("max_removal_share must be between 0 and 1")

    def removals_allowed(self, live: int) -> float:
        """How many of `live` users (or groups) one run may remove without an operator."""
        if self.confirmed:
            return math.inf
        return max(self.removal_floor, math.floor(self.max_removal_share * live))

    def directory_deletions_to_hold(self, gone: int) -> bool:
        """Whether a wave that finds `gone` directories missing must hold their deletion for an operator."""
        return not self.confirmed and gone > self.max_directory_deletions_per_wave

    def for_job(self, job: dict[str, object]) -> DeletionPolicy:
        """This policy as a job message asks for it (the wave's decision travels with each directory's job)."""
        return replace(
            self,
            confirmed=self.confirmed or job.get("confirmed_deletions") is True,
            hold_directory_deletion=job.get("hold_directory_deletion") is True,
        )
