"""WorkOS adapter over real loopback HTTP against FakeWorkOS: full listings, resume, errors, real-time pacing.

Rates are high where the point is not the rate; the pacing tests run the fake's 4 rps limiter in real time.
"""

from __future__ import annotations

import itertools
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from dsync.fake_workos import DirectoryModel, FakeWorkOS, RateLimitBody, RequestRecord, SteppingClock, populate
from shared.adapters.workos_api import (
    WorkOSAuthError,
    WorkOSDirectoryApi,
    WorkOSRateLimitedError,
    WorkOSUnavailableError,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FAST: dict[str, Any] = {"requests_per_second_per_directory": 50.0, "requests_per_second_total": 100.0}


def short_sleep(seconds: float) -> None:
    """For tests about retries, not timing: backoffs shrink to at most 20 ms."""
    time.sleep(min(seconds, 0.02))


@dataclass
class Tenant:
    model: DirectoryModel
    big: str  # 250 users, 12 groups
    small: str  # 16 users, 2 groups
    other: str  # 16 users, 2 groups


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    model = DirectoryModel(clock=SteppingClock(T0), seed=5)
    big = model.create_directory(name="Acme Okta", domain="acme.test")["id"]
    small = model.create_directory(name="Beta Azure", type="azure scim v2.0", domain="beta.test")["id"]
    other = model.create_directory(name="Gamma Google", type="gsuite directory", domain="gamma.test")["id"]
    populate(model, big, users=250, groups=12, memberships_per_user=(1, 3), rng=random.Random(1))
    populate(model, small, users=16, groups=2, rng=random.Random(2))
    populate(model, other, users=16, groups=2, rng=random.Random(3))
    model.deactivate_user(model.user_ids(big)[7])
    return Tenant(model, big, small, other)


@pytest.fixture
def fake(tenant: Tenant) -> Iterator[FakeWorkOS]:
    with FakeWorkOS(tenant.model) as server:
        yield server


def adapter(server: FakeWorkOS, *, api_key: str | None = None, **options: Any) -> WorkOSDirectoryApi:
    return WorkOSDirectoryApi(api_key=api_key or server.api_key, base_url=server.base_url, **{**FAST, **options})


def achieved_rate(records: list[RequestRecord]) -> float:
    times = [r.time for r in records]
    return (len(times) - 1) / (times[-1] - times[0])


# ------------------------------------------------------------------------------------------------ correctness


def test_full_listing_matches_the_model(fake: FakeWorkOS, tenant: Tenant) -> None:
    model, directory_id = tenant.model, tenant.big
    with adapter(fake) as api:
        users = list(api.iter_users(directory_id))
        groups = list(api.iter_groups(directory_id))
        members = {g["id"]: set(api.iter_group_member_ids(directory_id, g["id"])) for g in groups}
        directories = list(api.list_directories())
        stats = api.stats.snapshot()
    assert users == model.users(directory_id)  # API user minus deprecated `groups` == the event snapshot
    assert len(users) == 250
    assert [u["state"] for u in users].count("inactive") == 1
    assert groups == model.groups(directory_id)
    assert members == {g: model.members(g) for g in model.group_ids(directory_id)}
    assert sum(map(len, members.values())) >= 250
    assert [d["id"] for d in directories] == model.directory_ids()
    assert {d["state"] for d in directories} == {"active"}  # the API's "linked", normalised
    assert directories[0]["metadata"] == {"users": {"active": 249, "inactive": 1}, "groups": 12}
    assert all(r.query["limit"] == "100" and r.query["order"] == "asc" for r in fake.request_log)
    assert stats["requests"] == fake.requests_total
    assert stats["rate_limited"] == stats["retries"] == stats["server_errors"] == 0


def test_listings_resume_after_a_checkpointed_id(fake: FakeWorkOS, tenant: Tenant) -> None:
    model, directory_id = tenant.model, tenant.big
    user_ids, group_ids = model.user_ids(directory_id), model.group_ids(directory_id)
    busiest = max(group_ids, key=lambda g: len(model.members(g)))
    member_ids = sorted(model.members(busiest))
    with adapter(fake, page_size=40) as api:
        # the engine checkpoints the last id it processed and resumes after it
        assert [u["id"] for u in api.iter_users(directory_id, after=user_ids[99])] == user_ids[100:]
        assert [u["id"] for u in api.iter_users(directory_id, after=user_ids[137])] == user_ids[138:]
        assert [g["id"] for g in api.iter_groups(directory_id, after=group_ids[5])] == group_ids[6:]
        middle = len(member_ids) // 2
        assert (
            list(api.iter_group_member_ids(directory_id, busiest, after=member_ids[middle])) == member_ids[middle + 1 :]
        )
        assert list(api.iter_users(directory_id, after=user_ids[-1])) == []
        # a listing interrupted mid-page and resumed from its last item yields each item exactly once
        first = list(itertools.islice(api.iter_users(directory_id), 57))
        rest = list(api.iter_users(directory_id, after=first[-1]["id"]))
    assert [u["id"] for u in first + rest] == user_ids


def test_gets_and_404(fake: FakeWorkOS, tenant: Tenant) -> None:
    model, directory_id = tenant.model, tenant.small
    user_id, group_id = model.user_ids(directory_id)[0], model.group_ids(directory_id)[0]
    with adapter(fake) as api:
        assert api.get_user(directory_id, user_id) == model.get_user(user_id)
        assert api.get_group(directory_id, group_id) == model.get_group(group_id)
        directory = api.get_directory(directory_id)
        assert directory is not None
        assert (directory["id"], directory["state"]) == (directory_id, "active")
        assert api.get_user(directory_id, "directory_user_01HZZZZZZZZZZZZZZZZZZZZZZZ") is None
        assert api.get_group(directory_id, "directory_group_01HZZZZZZZZZZZZZZZZZZZZZZZ") is None
        assert api.get_directory("directory_01HZZZZZZZZZZZZZZZZZZZZZZZ") is None
        assert api.stats.requests == 6  # 404s are answers, not retried


def test_wrong_api_key(fake: FakeWorkOS, tenant: Tenant) -> None:
    with adapter(fake, api_key="sk_test_not_the_key") as api:
        with pytest.raises(WorkOSAuthError, match=r"rejected the API key \(401\)") as raised:
            list(api.iter_users(tenant.small))
        assert "sk_test_not_the_key" not in str(raised.value)
        with pytest.raises(WorkOSAuthError):
            api.get_directory(tenant.small)
    assert fake.requests_total == 2  # never retried


# --------------------------------------------------------------------------------------------------- pacing


@pytest.mark.parametrize("body", ["json_string", "text"])
def test_paced_at_4_rps_meets_a_4_rps_limit_without_429s(tenant: Tenant, body: RateLimitBody) -> None:
    with FakeWorkOS(tenant.model, rate_limit_per_second=4, rate_limit_body=body) as server:
        api = adapter(server, requests_per_second_per_directory=4.0, page_size=2)
        with api:
            users = list(api.iter_users(tenant.small))  # 16 users / 2 per page = 8 requests
        records = server.request_log
    assert [u["id"] for u in users] == tenant.model.user_ids(tenant.small)
    assert len(records) == 8
    assert server.rate_limited_total == 0
    assert api.stats.snapshot() == {"requests": 8, "rate_limited": 0, "retries": 0, "server_errors": 0}
    # Never faster than configured (that is what keeps the 429s away); how close to 4 rps it gets on a quiet
    # machine is measured by bench/bench_reconcile.py, not asserted here, where CI load would make it flaky.
    assert achieved_rate(records) <= 4.0 * 1.05


@pytest.mark.parametrize("body", ["json_string", "text"])
def test_misconfigured_20_rps_against_4_rps_completes_and_counts_429s(tenant: Tenant, body: RateLimitBody) -> None:
    with FakeWorkOS(tenant.model, rate_limit_per_second=4, rate_limit_body=body) as server:
        api = adapter(server, requests_per_second_per_directory=20.0, page_size=2)
        with api:
            users = list(api.iter_users(tenant.small))  # no AttributeError, whatever the 429 body
        limited = server.rate_limited_total
    assert [u["id"] for u in users] == tenant.model.user_ids(tenant.small)
    assert limited > 0
    assert api.stats.rate_limited == api.stats.retries == limited
    assert api.stats.requests == server.requests_total == 8 + limited


def test_directories_are_paced_in_parallel(tenant: Tenant) -> None:
    with (
        FakeWorkOS(tenant.model, rate_limit_per_second=4) as server,
        adapter(server, requests_per_second_per_directory=4.0, page_size=4) as api,
    ):
        results: dict[str, list[str]] = {}

        def run(directory_id: str) -> None:
            results[directory_id] = [u["id"] for u in api.iter_users(directory_id)]

        threads = [threading.Thread(target=run, args=(d,)) for d in (tenant.small, tenant.other)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        rate_limited = server.rate_limited_total
        records = server.request_log
    assert results == {d: tenant.model.user_ids(d) for d in (tenant.small, tenant.other)}
    assert rate_limited == 0
    assert elapsed >= 0.7  # 4 requests per directory at 4 rps: at least 0.75 s of pacing each
    # In parallel: each directory's requests went out while the other's were still being paced.
    spans = {
        directory: [r.time for r in records if r.query.get("directory") == directory]
        for directory in (tenant.small, tenant.other)
    }
    (first_start, first_end), (second_start, second_end) = ((min(t), max(t)) for t in spans.values())
    assert first_start < second_end and second_start < first_end


# ------------------------------------------------------------------------------------------ faults and retries


def test_server_errors_are_retried(fake: FakeWorkOS, tenant: Tenant) -> None:
    fake.fail_next(2, 503)
    with adapter(fake, sleep=short_sleep) as api:
        groups = list(api.iter_groups(tenant.small))
    assert [g["id"] for g in groups] == tenant.model.group_ids(tenant.small)
    assert [r.status for r in fake.request_log] == [503, 503, 200]
    assert api.stats.snapshot() == {"requests": 3, "rate_limited": 0, "retries": 2, "server_errors": 2}


def test_an_outage_raises_unavailable(fake: FakeWorkOS, tenant: Tenant) -> None:
    fake.fail_next(10, 502)
    with adapter(fake, sleep=short_sleep) as api, pytest.raises(WorkOSUnavailableError, match="502"):
        list(api.iter_users(tenant.small))
    assert fake.requests_total == 4


@pytest.mark.parametrize("body", ["json_string", "text"])
def test_persistent_429_raises_rate_limited(tenant: Tenant, body: RateLimitBody) -> None:
    with FakeWorkOS(tenant.model, rate_limit_body=body) as server:
        server.fail_next(10, 429)
        with adapter(server, sleep=short_sleep, max_rate_limit_retries=3) as api, pytest.raises(WorkOSRateLimitedError):
            list(api.iter_users(tenant.small))
        assert server.requests_total == 4
    assert api.stats.rate_limited == 4


def test_connection_refused_raises_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    recording_sleep: Callable[[float], None] = sleeps.append
    api = WorkOSDirectoryApi(api_key="sk_test_x", base_url=f"http://127.0.0.1:{port}", sleep=recording_sleep, **FAST)
    with api, pytest.raises(WorkOSUnavailableError, match="connection failed") as raised:
        api.get_directory("directory_01")
    assert "sk_test_x" not in str(raised.value)
    assert api.stats.snapshot() == {"requests": 4, "rate_limited": 0, "retries": 3, "server_errors": 4}
