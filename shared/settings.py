"""Settings of the apply, reconcile and publish Lambdas and the CLI: pydantic-settings models, loaded once.

Environment variable names are the field names upper-cased (see `shared.resources.Env`). Values are resource
names and ARNs; secrets are only ever referenced by id and read from Secrets Manager at runtime.
(The ingest Lambda uses the stdlib `shared.ingest.settings` for cold-start reasons.)
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.reconcile.deletion_guard import (
    DEFAULT_MAX_DIRECTORY_DELETIONS_PER_WAVE,
    DEFAULT_MAX_REMOVAL_SHARE,
    DeletionPolicy,
)
from shared.resources import DEFAULT_TOMBSTONE_TTL_DAYS, MIN_TOMBSTONE_TTL_DAYS


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)


class ApplySettings(_Settings):
    table_name: str = Field(min_length=1)
    dead_letter_queue_url: str = Field(min_length=1)
    work_queue_url: str = Field(min_length=1)
    # Tombstones outlive the longest life of a stale event (`shared.resources.LONGEST_EVENT_LIFE_DAYS`), so no
    # stale event can resurrect what was deleted.
    tombstone_ttl_days: int = Field(default=DEFAULT_TOMBSTONE_TTL_DAYS, ge=MIN_TOMBSTONE_TTL_DAYS, le=3650)
    apply_parallelism: int = Field(default=10, ge=1, le=50)
    # Set: batches of a throttled directory move there (`shared.apply.overflow`); the stack always sets it.
    overflow_queue_url: str | None = None


class PublishSettings(_Settings):
    change_bus_name: str = Field(min_length=1)
    change_event_source: str = Field(default="workos.dsync.pipeline", min_length=1)
    table_name: str | None = None  # for `shared.changes.guard`'s read; unset turns the guard off


class _DeletionLimits(_Settings):
    """No single input erases a tenant (`shared.reconcile.deletion_guard`): past these, reconcile's deletions wait for
    an operator's `dsync reconcile --confirm-deletions`. Read by reconcile and by the tail, which plans a wave of its
    own after WorkOS refused its cursor."""

    max_directory_deletions_per_wave: int = Field(default=DEFAULT_MAX_DIRECTORY_DELETIONS_PER_WAVE, ge=0, le=10_000)
    max_removal_share: float = Field(default=DEFAULT_MAX_REMOVAL_SHARE, ge=0, le=1)

    def deletion_policy(self) -> DeletionPolicy:
        return DeletionPolicy(
            max_directory_deletions_per_wave=self.max_directory_deletions_per_wave,
            max_removal_share=self.max_removal_share,
        )


class ReconcileSettings(_DeletionLimits):
    table_name: str = Field(min_length=1)
    work_queue_url: str = Field(min_length=1)
    workos_api_key_secret_id: str = Field(min_length=1)
    workos_base_url: str | None = None
    tombstone_ttl_days: int = Field(default=DEFAULT_TOMBSTONE_TTL_DAYS, ge=MIN_TOMBSTONE_TTL_DAYS, le=3650)
    # WorkOS: 4 requests/s per directory on /directory_users; 6,000 requests/min per API key overall.
    requests_per_second_per_directory: float = Field(default=4.0, gt=0, le=50)
    requests_per_second_total: float = Field(default=90.0, gt=0, le=100)
    # The schedule's period: a wave takes only the directories that fit in it (`shared.reconcile.wave_budget`); unset
    # (the local stack, `dsync reconcile`) takes every directory.
    reconcile_period_seconds: int | None = Field(default=None, ge=60)
    directory_parallelism: int = Field(default=4, ge=1, le=32)
    # Membership repairs are versioned this far behind the run's start, so a webhook newer than the run wins even
    # with clock skew between WorkOS and AWS.
    clock_skew_allowance_seconds: int = Field(default=300, ge=0, le=3600)
    # A directory unhealthy (invalid_credentials, unlinked, validating) this long counts in DirectoriesUnhealthyTooLong.
    directory_unhealthy_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)


class TailSettings(_DeletionLimits):
    """The Events API tail. Its WorkOS budget is separate from reconcile's: 10 + 90 requests/s stay within
    WorkOS's 6,000 requests/min per key."""

    table_name: str = Field(min_length=1)
    event_queue_url: str = Field(min_length=1)
    work_queue_url: str = Field(min_length=1)
    workos_api_key_secret_id: str = Field(min_length=1)
    workos_base_url: str | None = None
    requests_per_second_per_directory: float = Field(default=4.0, gt=0, le=50)
    requests_per_second_total: float = Field(default=10.0, gt=0, le=100)
    tail_bootstrap_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    tail_idle_poll_seconds: float = Field(default=3.0, gt=0, le=60)
    tail_run_seconds: float = Field(default=50.0, gt=0, le=840)
