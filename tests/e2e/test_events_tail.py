"""The Events API tail through `dsync local`: lost webhooks and a whole outage are repaired in seconds, with
WorkOS's list endpoints down so that no reconcile can be what repaired them."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dsync.commands.webhooks import post_signed
from dsync.fake_workos import DirectoryModel, FakeWorkOS, populate
from tests.e2e.conftest import SECRET, RunningStack, dsync, start_local_stack, stop
from tests.support.histories import project

pytestmark = pytest.mark.e2e
HOLD_BACK_SECONDS = 2.0


@pytest.fixture(scope="module")
def live_workos() -> Iterator[FakeWorkOS]:
    """WorkOS on this machine's clock (events are minutes old, not days), holding new events back as WorkOS does."""
    with FakeWorkOS(DirectoryModel(seed=2027), events_hold_back_seconds=HOLD_BACK_SECONDS) as fake:
        yield fake


@pytest.fixture(scope="module")
def tail_stack(live_workos: FakeWorkOS) -> Iterator[RunningStack]:
    stack = start_local_stack(
        "--webhook-secret",
        SECRET,
        "--workos-api-key",
        live_workos.api_key,
        "--workos-base-url",
        live_workos.base_url,
        "--tail-every",
        "1",
    )
    yield stack
    stop(stack)


def converged(stack: RunningStack, fake: FakeWorkOS, directory_id: str) -> bool:
    truth = fake.model.snapshot(directory_id)
    return project(stack.export(directory_id), truth) == truth


def deliver(stack: RunningStack, events: list[dict[str, Any]], *, lose: float, rng: random.Random) -> int:
    lost = 0
    for event in events:
        if rng.random() < lose:
            lost += 1
            continue
        assert post_signed(stack.webhook_url, event, secret=SECRET).status == 200
    return lost


def test_lost_webhooks_and_an_outage_are_repaired_by_the_tail_alone(
    tail_stack: RunningStack, live_workos: FakeWorkOS
) -> None:
    model, rng = live_workos.model, random.Random(4)
    live_workos.set_outage(503)  # every list and get endpoint is down: only /events answers
    try:
        kept = model.create_directory(organization_id="org_01TAILKEPT")["id"]
        doomed = model.create_directory(organization_id="org_01TAILDOOMED")["id"]
        populate(model, kept, users=30, groups=4, rng=rng)
        populate(model, doomed, users=8, groups=2, rng=rng)
        lost = deliver(tail_stack, model.drain_events(), lose=0.3, rng=rng)
        assert lost > 0

        # The outage: every webhook of this window is lost, a directory deletion among them.
        users = model.user_ids(kept)
        for user_id in users[:5]:
            model.update_user(user_id, last_name="DuringOutage")
        model.deactivate_user(users[5])
        model.delete_user(users[6])
        for group_id in model.group_ids(kept, user_id=users[7]):
            model.remove_user_from_group(group_id, users[7])
        model.delete_directory(doomed)
        outage = model.drain_events()
        assert any(event["event"] == "dsync.deleted" for event in outage)
        last_event_at = time.monotonic()

        for directory_id in (kept, doomed):
            tail_stack.wait_until(
                lambda d=directory_id: converged(tail_stack, live_workos, d),  # type: ignore[misc]
                timeout=90,
                what=f"the tail to repair {directory_id}",
            )
        repaired_in = time.monotonic() - last_event_at
        assert repaired_in < 90
        time.sleep(3)
        assert converged(tail_stack, live_workos, kept) and converged(tail_stack, live_workos, doomed)  # and stays so
        reconciles = [r for r in live_workos.request_log if r.path.startswith("/directory") and r.status == 200]
        assert reconciles == []  # nothing but the tail could have repaired it
    finally:
        live_workos.set_outage(None)

    status = tail_stack.status()
    assert status["tail"]["cursor"] == model.events[-1]["id"]  # webhooks never moved it; its own reads did
    assert status["tail"]["poll_age_seconds"] < 10
    last_events = {d["id"]: d["last_event"] for d in status["directories"]}
    assert last_events[kept] is not None


def test_replay_requeues_a_window_and_changes_nothing(tail_stack: RunningStack, live_workos: FakeWorkOS) -> None:
    model = live_workos.model
    directory_id = model.create_directory(organization_id="org_01REPLAY")["id"]
    populate(model, directory_id, users=6, groups=1, rng=random.Random(8))
    created = len(model.drain_events())
    tail_stack.wait_until(lambda: converged(tail_stack, live_workos, directory_id), timeout=60, what="the tail")
    before = tail_stack.export(directory_id)
    since = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = dsync(
        "replay",
        "--since",
        since,
        "--directory",
        directory_id,
        "--aws-endpoint",
        tail_stack.aws_endpoint,
        "--workos-api-key",
        live_workos.api_key,
        "--workos-base-url",
        live_workos.base_url,
    )
    report = json.loads(result.stdout)
    assert report["events_enqueued"] == created and report["other_directories"] > 0
    tail_stack.wait_drained()
    assert tail_stack.export(directory_id) == before


def test_replay_refuses_a_window_past_retention(tail_stack: RunningStack, live_workos: FakeWorkOS) -> None:
    result = dsync(
        "replay",
        "--since",
        "2020-01-01T00:00:00Z",
        "--aws-endpoint",
        tail_stack.aws_endpoint,
        "--workos-api-key",
        live_workos.api_key,
        check=False,
    )
    assert result.returncode == 1 and "30 days" in result.stderr
