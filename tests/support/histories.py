"""Random but valid WorkOS histories, produced by driving the fake WorkOS model (which emits the real events).

A history is a list of operations decoded from integers that hypothesis shrinks well: each step picks an
operation and two choice numbers that select the users/groups it applies to.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from dsync.fake_workos import DirectoryModel
from dsync.fake_workos.model import SteppingClock

OPERATIONS = (
    "create_user",
    "create_user",
    "update_user",
    "deactivate_user",
    "reactivate_user",
    "delete_user",
    "create_group",
    "rename_group",
    "delete_group",
    "add_member",
    "add_member",
    "add_member",
    "remove_member",
    "remove_member",
    "map_role",
    "map_role",
    "set_roles",
    "create_token",
    "revoke_token",
    "deactivate_directory",
    "reactivate_directory",
    "delete_directory",
)
ROLES = ("admin", "billing", "viewer", None)  # None removes a group's mapping
# Every history starts with a few users and groups so that most generated steps do something.
PRELUDE = (("create_user", 0, 0), ("create_user", 1, 0), ("create_group", 0, 0), ("create_group", 1, 1))
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus")

steps = st.lists(
    st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 11), st.integers(0, 11)), min_size=8, max_size=60
)


def build_history(operations: list[tuple[str, int, int]], *, seed: int = 7) -> tuple[DirectoryModel, str]:
    """Run the operations against a fresh model; returns it and the directory id (its events are the history)."""
    clock = SteppingClock(datetime(2026, 3, 1, tzinfo=UTC), timedelta(seconds=1))
    model = DirectoryModel(clock=clock, seed=seed)
    directory_id = model.create_directory(organization_id="org_01PROPERTY")["id"]
    for operation, first, second in [*PRELUDE, *operations]:
        if not _step(model, directory_id, operation, first, second):
            break  # the directory is gone: nothing else can happen to it
    return model, directory_id


def _step(model: DirectoryModel, directory_id: str, operation: str, first: int, second: int) -> bool:
    users = model.user_ids(directory_id)
    groups = model.group_ids(directory_id)
    pick_user = users[first % len(users)] if users else None
    pick_group = groups[second % len(groups)] if groups else None
    if operation == "create_user":
        name = FIRST_NAMES[first % len(FIRST_NAMES)]
        model.create_user(directory_id, first_name=name, last_name=f"N{first}", email=f"{name}.{first}@acme.test")
    elif operation == "update_user" and pick_user:
        model.update_user(pick_user, last_name=f"Renamed{second}", custom_attributes={"level": second % 5})
    elif operation == "deactivate_user" and pick_user:
        model.deactivate_user(pick_user)
    elif operation == "reactivate_user" and pick_user:
        model.reactivate_user(pick_user)
    elif operation == "delete_user" and pick_user:
        model.delete_user(pick_user)
    elif operation == "create_group":
        model.create_group(directory_id, name=f"Team {first}")
    elif operation == "rename_group" and pick_group:
        model.update_group(pick_group, name=f"Team {second}")
    elif operation == "delete_group" and pick_group:
        model.delete_group(pick_group)
    elif operation == "add_member" and pick_group and pick_user:
        model.add_user_to_group(pick_group, pick_user)
    elif operation == "remove_member" and pick_group and pick_user:
        model.remove_user_from_group(pick_group, pick_user)
    elif operation == "map_role" and pick_group:
        model.map_group_to_role(pick_group, ROLES[first % len(ROLES)])
    elif operation == "set_roles" and pick_user:
        model.update_user(pick_user, roles=[role for role in ROLES[: second % 4] if role] or ["member"])
    elif operation == "create_token":
        model.create_token(directory_id)
    elif operation == "revoke_token" and model.tokens(directory_id):
        tokens = model.tokens(directory_id)
        model.revoke_token(tokens[first % len(tokens)]["id"])
    elif operation == "deactivate_directory":
        model.set_directory_state(directory_id, "inactive", emit_event=True)
    elif operation == "reactivate_directory":
        model.set_directory_state(directory_id, "active", emit_event=True)
    elif operation == "delete_directory" and first == second == 0:  # rare: it ends the history
        model.delete_directory(directory_id)
        return False
    return True


def deliveries(
    events: list[dict[str, Any]], rng: random.Random, *, duplicate_rate: float = 0.3
) -> list[dict[str, Any]]:
    """Every event at least once, some several times (WorkOS retries), in an arbitrary order."""
    delivered = list(events)
    delivered += [event for event in events if rng.random() < duplicate_rate]
    rng.shuffle(delivered)
    return delivered


def batches(items: list[Any], rng: random.Random, *, max_size: int = 10) -> list[list[Any]]:
    """Split into consecutive batches of 1..max_size, as the event source mapping would."""
    out: list[list[Any]] = []
    index = 0
    while index < len(items):
        size = rng.randint(1, max_size)
        out.append(items[index : index + size])
        index += size
    return out


def project(state: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """Our export restricted to the fields the fake's truth has, for comparison."""
    if truth["directory"] is None:
        return state
    directory_keys = truth["directory"].keys()
    user_keys = truth["users"][0].keys() if truth["users"] else ()
    group_keys = truth["groups"][0].keys() if truth["groups"] else ()
    return {
        "directory": {k: state["directory"][k] for k in directory_keys} if state["directory"] else None,
        "users": [{k: user[k] for k in user_keys} for user in state["users"]],
        "groups": [{k: group[k] for k in group_keys} for group in state["groups"]],
        "memberships": state["memberships"],
    }
