"""Hand-built WorkOS dsync events with explicit timestamps, for precise unit tests of the write rules.

Shapes follow the SDK fixtures summarised in ../shared/docs/workos-facts.md section 2 (workos/workos-python
tests/fixtures, MIT License, Copyright (c) WorkOS). Property and end-to-end tests use the fake WorkOS model instead.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.apply.ports import InboundMessage

DIRECTORY = "directory_01HT0000000000000000000000"
ORG = "org_01HT0000000000000000000000"
BASE = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
_ids = itertools.count(1)


def at(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user(
    user_id: str = "directory_user_1",
    *,
    updated: float = 0,
    state: str = "active",
    email: str | None = "ada@example.com",
    first_name: str = "Ada",
    directory_id: str = DIRECTORY,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "object": "directory_user",
        "id": user_id,
        "directory_id": directory_id,
        "organization_id": ORG,
        "idp_id": f"idp-{user_id}",
        "email": email,
        "first_name": first_name,
        "last_name": "Lovelace",
        "state": state,
        "raw_attributes": {},
        "custom_attributes": {"department": "Engineering"},
        "role": {"slug": "member"},
        "created_at": at(0),
        "updated_at": at(updated),
        **extra,
    }


def group(
    group_id: str = "directory_group_1", *, updated: float = 0, name: str = "Engineering", directory_id: str = DIRECTORY
) -> dict[str, Any]:
    return {
        "object": "directory_group",
        "id": group_id,
        "idp_id": f"idp-{group_id}",
        "directory_id": directory_id,
        "organization_id": ORG,
        "name": name,
        "raw_attributes": {},
        "created_at": at(0),
        "updated_at": at(updated),
    }


def directory(directory_id: str = DIRECTORY, *, updated: float = 0, state: str = "active") -> dict[str, Any]:
    return {
        "object": "directory",
        "id": directory_id,
        "organization_id": ORG,
        "name": "Acme Okta",
        "type": "okta scim v2.0",
        "state": state,
        "created_at": at(0),
        "updated_at": at(updated),
    }


def event(event_type: str, data: dict[str, Any], *, created: float, event_id: str | None = None) -> dict[str, Any]:
    return {
        "object": "event",
        "id": event_id or f"event_{next(_ids):06d}",
        "event": event_type,
        "data": data,
        "created_at": at(created),
        "context": {},
    }


def membership(
    event_type: str,
    *,
    created: float,
    user_data: dict[str, Any] | None = None,
    group_data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    user_data = user_data or user()
    return event(
        event_type,
        {"directory_id": user_data["directory_id"], "user": user_data, "group": group_data or group()},
        created=created,
    )


def message(document: dict[str, Any], *, message_id: str | None = None) -> InboundMessage:
    data = document.get("data", {})
    group_id = (
        data.get("id") if document.get("event") in ("dsync.activated", "dsync.deleted") else data.get("directory_id")
    )
    return InboundMessage(
        message_id=message_id or f"msg-{next(_ids)}",
        body=json.dumps(document),
        group_id=str(group_id or "unknown"),
        deduplication_id=str(document.get("id", "none")),
    )
