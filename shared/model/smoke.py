"""The smoke test's reserved marker: an event that travels the whole real path (signature, queue, apply) and is then
acknowledged without touching the mirror or the change bus.

`dsync send-test-event` and `dsync connect` send it to a deployed endpoint. A made-up event would be stored, published
as a new tenant, then deleted by the next reconcile (WorkOS does not know it): every subscribed app would see a
phantom tenant come and go. A smoke test is recognised only when both ids carry the marker, and neither can occur in
WorkOS: its event ids are `event_` + a 26-character upper-case ULID, its directory ids `directory_` + a ULID.
The applier records the last one it saw (`shared.apply.smoke`: an item outside every directory partition, so
nothing is published), and `dsync status` shows it.

Standard library only: the ingest bundle, which checks the marker, carries no pydantic.
"""

from __future__ import annotations

SMOKE_TEST_EVENT_PREFIX = "event_dsync_smoke_test_"
SMOKE_TEST_DIRECTORY_ID = "directory_dsync_smoke_test"
# The item that records the last smoke test applied (partition, sort key): no directory's partition.
SMOKE_TEST_PK = "~SMOKE#test"
SMOKE_TEST_SK = "#LAST"


class AmbiguousSmokeTestError(ValueError):
    """Only one of the two ids carries the marker: neither a smoke test nor a WorkOS event."""


def is_smoke_test(event_id: str, directory_id: str) -> bool:
    """True for a smoke test; raises `AmbiguousSmokeTestError` when only one id is marked."""
    marked_event = event_id.startswith(SMOKE_TEST_EVENT_PREFIX)
    marked_directory = directory_id == SMOKE_TEST_DIRECTORY_ID
    if marked_event != marked_directory:
        raise AmbiguousSmokeTestError(
            f"event {event_id!r} in directory {directory_id!r}: a smoke test marks both ids, a WorkOS event neither"
        )
    return marked_event
