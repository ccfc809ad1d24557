"""`dsync send-test-event`: a realistic signed `dsync.*` event (the fake WorkOS model makes it), POSTed as WorkOS
would, and marked as a smoke test (`shared.model.smoke`): it travels the real path and leaves no trace."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.ingest.signature import signature_header
from shared.model.events import KNOWN_EVENT_TYPES
from shared.model.smoke import SMOKE_TEST_DIRECTORY_ID, SMOKE_TEST_EVENT_PREFIX

SAMPLE_EVENT_TYPES = tuple(sorted(KNOWN_EVENT_TYPES))


def sample_event(event_type: str, *, seed: int | None = None, smoke_test: bool = True) -> dict[str, Any]:
    """A realistic event of `event_type`, produced by the fake WorkOS model (so it has WorkOS's exact shape), marked
    as a smoke test unless `smoke_test=False` (for a local stack or a test receiver only: it would be stored and
    published as a new tenant, then deleted by the next reconcile)."""
    from dsync.fake_workos import DirectoryModel

    model = DirectoryModel(seed=seed if seed is not None else random.randrange(2**31))  # noqa: S311 - not crypto
    directory = model.create_directory(organization_id=None, name="Example Corp Okta", domain="example.com")["id"]
    user = model.create_user(directory, first_name="Ada", last_name="Lovelace", email="ada.lovelace@example.com")["id"]
    group = model.create_group(directory, name="Engineering")["id"]
    actions: dict[str, Callable[[], object]] = {
        "dsync.user.updated": lambda: model.update_user(user, last_name="King"),
        "dsync.user.deleted": lambda: model.delete_user(user),
        "dsync.group.updated": lambda: model.update_group(group, name="Platform Engineering"),
        "dsync.group.deleted": lambda: model.delete_group(group),
        "dsync.group.user_added": lambda: model.add_user_to_group(group, user),
        "dsync.group.user_removed": lambda: (
            model.add_user_to_group(group, user),
            model.remove_user_from_group(group, user),
        ),
        "dsync.deleted": lambda: model.delete_directory(directory),
        "dsync.deactivated": lambda: model.set_directory_state(directory, "inactive", emit_event=True),
        "dsync.token.created": lambda: model.create_token(directory),
        "dsync.token.revoked": lambda: model.revoke_token(model.create_token(directory)["id"]),
    }
    if event_type in actions:
        actions[event_type]()
    matches = [event for event in model.events if event["event"] == event_type]
    if not matches:
        raise ValueError(f"unknown event type {event_type!r}; choose one of {', '.join(SAMPLE_EVENT_TYPES)}")
    return matches[-1] if not smoke_test else as_smoke_test(matches[-1], directory)


def as_smoke_test(event: dict[str, Any], directory_id: str) -> dict[str, Any]:
    """The event with both reserved markers (`shared.model.smoke`): its id, and its directory's id wherever it
    appears, so apply acknowledges it without storing or publishing anything."""
    text = json.dumps(event).replace(json.dumps(directory_id), json.dumps(SMOKE_TEST_DIRECTORY_ID))
    marked: dict[str, Any] = json.loads(text)
    marked["id"] = SMOKE_TEST_EVENT_PREFIX + str(event["id"]).removeprefix("event_")
    return marked


@dataclass(frozen=True)
class Delivery:
    status: int
    body: str
    event_id: str


def post_signed(
    url: str, document: dict[str, Any] | bytes, *, secret: str, timeout: float = 15.0, timestamp_ms: int | None = None
) -> Delivery:
    """POST a body signed the way WorkOS signs it (fresh timestamp), as WorkOS would deliver it."""
    body = document if isinstance(document, bytes) else json.dumps(document, separators=(",", ":")).encode()
    stamp = timestamp_ms if timestamp_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
    request = urllib.request.Request(  # noqa: S310 - the operator chooses the URL
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "WorkOS-Signature": signature_header(secret, stamp, body),
            "User-Agent": "dsync-cli",
        },
    )
    event_id = json.loads(body).get("id", "") if body.startswith(b"{") else ""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Delivery(response.status, response.read().decode("utf-8", "replace"), event_id)
    except urllib.error.HTTPError as error:
        return Delivery(error.code, error.read().decode("utf-8", "replace"), event_id)
