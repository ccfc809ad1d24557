"""FakeWorkOS over loopback HTTP: wire format vs SDK fixtures, and the real SDK 10.8 against it."""

from __future__ import annotations

import http.client
import json
import math
import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from workos import (
    AuthenticationError,
    NotFoundError,
    RateLimitExceededError,
    ServerError,
    UnprocessableEntityError,
    WorkOSClient,
)
from workos.directory_sync.models import Directory, DirectoryUserWithGroups

from dsync.fake_workos import DirectoryModel, FakeWorkOS, SteppingClock, populate

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fake_workos_fixtures"
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def load_fixture(name: str) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return fixture


class World:
    """Two populated directories behind one fake; shared read-only by most tests."""

    def __init__(self, fake: FakeWorkOS) -> None:
        self.fake = fake
        self.model = fake.model
        self.dir_a = self.model.create_directory(name="Acme Okta", domain="acme.test")["id"]
        self.dir_b = self.model.create_directory(name="Beta Azure", type="azure scim v2.0", domain="beta.test")["id"]
        populate(self.model, self.dir_a, users=7, groups=3, memberships_per_user=(1, 2), rng=random.Random(1))
        populate(self.model, self.dir_b, users=5, groups=1, rng=random.Random(2))
        self.model.deactivate_user(self.model.user_ids(self.dir_a)[-1])
        self.client = fake.sdk_client()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with FakeWorkOS(DirectoryModel(clock=SteppingClock(T0), seed=11)) as fake:
        world = World(fake)
        with world.client:
            yield world


def raw_get(
    fake: FakeWorkOS, path: str, *, key: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """Plain http.client (no proxies, no SDK) so the exact wire format is visible."""
    host, port = fake.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        headers = {} if key == "" else {"Authorization": f"Bearer {key or fake.api_key}"}
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def raw_json(fake: FakeWorkOS, path: str) -> Any:
    status, headers, body = raw_get(fake, path)
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    return json.loads(body)


# ---------------------------------------------------------------- wire format vs SDK fixtures


def test_directory_responses_match_fixture_keys(world: World) -> None:
    one = raw_json(world.fake, f"/directories/{world.dir_a}")
    assert set(one) == set(load_fixture("directory"))
    assert set(one["metadata"]) == set(load_fixture("directory")["metadata"])
    assert one["state"] == "linked"  # API vocabulary, not the event's "active"
    assert one["domain"] == "acme.test"
    assert one["metadata"] == {"users": {"active": 6, "inactive": 1}, "groups": 3}
    listing = raw_json(world.fake, "/directories")
    fixture = load_fixture("list_directory")
    assert set(listing) == set(fixture) | {"object"}
    assert listing["object"] == "list"
    assert set(listing["list_metadata"]) == set(fixture["list_metadata"])
    assert all(set(d) == set(fixture["data"][0]) for d in listing["data"])


def test_user_responses_match_fixture_keys(world: World) -> None:
    user_id = world.model.user_ids(world.dir_a)[0]
    one = raw_json(world.fake, f"/directory_users/{user_id}")
    assert set(one) == set(load_fixture("directory_user_with_groups"))
    assert one["groups"] == []  # deprecated, empty for teams created after May 2026
    listing = raw_json(world.fake, f"/directory_users?directory={world.dir_a}&limit=100")
    fixture = load_fixture("list_directory_user_with_groups")
    assert set(listing) == set(fixture) | {"object"}
    assert len(listing["data"]) == 7
    assert all(set(u) == set(fixture["data"][0]) for u in listing["data"])
    assert listing["list_metadata"] == {"before": None, "after": None}


def test_group_responses_match_fixture_keys(world: World) -> None:
    group_id = world.model.group_ids(world.dir_a)[0]
    assert set(raw_json(world.fake, f"/directory_groups/{group_id}")) == set(load_fixture("directory_group"))
    listing = raw_json(world.fake, f"/directory_groups?directory={world.dir_a}")
    fixture = load_fixture("list_directory_group")
    assert set(listing) == set(fixture) | {"object"}
    assert all(set(g) == set(fixture["data"][0]) for g in listing["data"])


def test_api_user_is_the_event_snapshot_plus_groups(world: World) -> None:
    user_id = world.model.user_ids(world.dir_a)[0]
    api_user = raw_json(world.fake, f"/directory_users/{user_id}")
    assert api_user == {**world.model.get_user(user_id), "groups": []}


# ---------------------------------------------------------------- the real SDK against the fake


def test_sdk_directories(world: World) -> None:
    client = world.client
    page = client.directory_sync.list_directories()
    assert [d.id for d in page.data] == [world.dir_b, world.dir_a]  # default order=desc
    assert all(isinstance(d, Directory) for d in page.data)
    org = world.model.get_directory(world.dir_b)["organization_id"]
    assert [d.id for d in client.directory_sync.list_directories(organization_id=org).data] == [world.dir_b]
    assert [d.id for d in client.directory_sync.list_directories(search="acme").data] == [world.dir_a]
    directory = client.directory_sync.get_directory(world.dir_a)
    assert directory.state == "linked"
    assert directory.type == "okta scim v2.0"
    assert directory.metadata is not None and directory.metadata.groups == 3


@pytest.mark.parametrize("order", ["asc", "desc", "normal"])
def test_sdk_auto_paging_walks_every_user_exactly_once(world: World, order: str) -> None:
    world.fake.clear_request_log()
    users = list(world.client.directory_sync.list_users(directory=world.dir_a, limit=2, order=order).auto_paging_iter())
    ids = [u.id for u in users]
    expected = world.model.user_ids(world.dir_a)
    assert ids == (expected if order == "asc" else expected[::-1])
    assert all(isinstance(u, DirectoryUserWithGroups) for u in users)
    log = [r for r in world.fake.request_log if r.path == "/directory_users"]
    assert len(log) == math.ceil(7 / 2)
    assert log[0].query == {"limit": "2", "order": order, "directory": world.dir_a}
    assert [r.query.get("after") for r in log[1:]] == [ids[1], ids[3], ids[5]]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sdk_auto_paging_by_group_and_groups_by_directory(world: World, order: str) -> None:
    client = world.client
    for group_id in world.model.group_ids(world.dir_a):
        members = [
            u.id for u in client.directory_sync.list_users(group=group_id, limit=1, order=order).auto_paging_iter()
        ]
        assert sorted(members) == sorted(world.model.members(group_id))
        assert len(members) == len(set(members))
    groups = [
        g.id for g in client.directory_sync.list_groups(directory=world.dir_a, limit=2, order=order).auto_paging_iter()
    ]
    expected = world.model.group_ids(world.dir_a)
    assert groups == (expected if order == "asc" else expected[::-1])


def test_sdk_groups_by_user_and_single_objects(world: World) -> None:
    client = world.client
    user_id = world.model.user_ids(world.dir_a)[0]
    groups = client.directory_sync.list_groups(user=user_id, limit=100).data
    assert {g.id for g in groups} == {g["id"] for g in world.model.groups(user_id=user_id)}
    user = client.directory_sync.get_user(user_id)
    assert user.id == user_id and user.groups == []
    assert user.updated_at == datetime.fromisoformat(world.model.get_user(user_id)["updated_at"])
    group = client.directory_sync.get_group(groups[0].id)
    assert group.name == world.model.get_group(groups[0].id)["name"]
    inactive = client.directory_sync.get_user(world.model.user_ids(world.dir_a)[-1])
    assert inactive.state == "inactive"


def test_sdk_unknown_filters_give_empty_lists(world: World) -> None:
    client = world.client
    assert client.directory_sync.list_users(directory="directory_01UNKNOWN").data == []
    assert client.directory_sync.list_users(group="directory_group_01UNKNOWN").data == []
    assert client.directory_sync.list_groups(user="directory_user_01UNKNOWN").data == []


def test_sdk_not_found(world: World) -> None:
    client = world.client
    for call in (
        lambda: client.directory_sync.get_user("directory_user_01MISSING"),
        lambda: client.directory_sync.get_group("directory_group_01MISSING"),
        lambda: client.directory_sync.get_directory("directory_01MISSING"),
    ):
        with pytest.raises(NotFoundError) as excinfo:
            call()
        assert excinfo.value.code == "entity_not_found"
        assert "not found" in str(excinfo.value)


def test_sdk_wrong_api_key(world: World) -> None:
    with (
        WorkOSClient(api_key="sk_test_wrong", base_url=world.fake.base_url, max_retries=0) as client,
        pytest.raises(AuthenticationError),
    ):
        client.directory_sync.list_directories()


def test_sdk_validation_errors(world: World) -> None:
    with pytest.raises(UnprocessableEntityError):
        world.client.directory_sync.list_users(directory=world.dir_a, limit=101)
    with pytest.raises(UnprocessableEntityError):
        world.client.directory_sync.list_users(email="x@acme.test")  # email requires directory


# ---------------------------------------------------------------- raw HTTP edge cases


def test_auth_routes_and_validation_over_raw_http(world: World) -> None:
    fake = world.fake
    status, headers, body = raw_get(fake, "/directories", key="")
    assert status == 401 and json.loads(body)["message"] == "Unauthorized"
    assert headers["content-type"].startswith("application/json")
    assert raw_get(fake, "/directories", key="sk_test_other")[0] == 401
    status, _, body = raw_get(fake, "/organizations")
    assert status == 404 and json.loads(body)["message"] == "Not Found"
    assert raw_get(fake, f"/directories/{world.dir_a}", method="DELETE")[0] == 404
    assert raw_get(fake, f"/directories/{world.dir_a}/extra")[0] == 404
    status, _, body = raw_get(fake, "/directory_users/directory_user_01MISSING")
    assert status == 404
    assert json.loads(body) == {
        "message": "Directory User not found: 'directory_user_01MISSING'.",
        "code": "entity_not_found",
        "entity_id": "directory_user_01MISSING",
    }
    for query in ("limit=0", "limit=101", "limit=ten", "order=sideways", "after=not-an-id"):
        status, _, body = raw_get(fake, f"/directory_groups?{query}")
        assert status == 422, query
        assert json.loads(body)["errors"]
    assert len(raw_json(fake, "/directory_users")["data"]) == 10  # default limit
    assert len(raw_json(fake, "/directory_users?limit=100")["data"]) == 7 + 5
    email = world.model.users(world.dir_b)[0]["email"]
    found = raw_json(fake, f"/directory_users?directory={world.dir_b}&email={email.upper()}")["data"]
    assert [u["email"] for u in found] == [email]


@pytest.mark.parametrize("order", ["asc", "desc", "normal"])
def test_before_cursor_walks_backwards(world: World, order: str) -> None:
    base = f"/directory_users?directory={world.dir_a}&limit=3&order={order}"
    forward: list[str] = []
    page = raw_json(world.fake, base)
    assert page["list_metadata"]["before"] is None
    while True:
        forward += [u["id"] for u in page["data"]]
        if page["list_metadata"]["after"] is None:
            break
        page = raw_json(world.fake, f"{base}&after={page['list_metadata']['after']}")
    assert len(forward) == 7 and len(set(forward)) == 7
    backward: list[str] = [u["id"] for u in page["data"]]
    while page["list_metadata"]["before"] is not None:
        page = raw_json(world.fake, f"{base}&before={page['list_metadata']['before']}")
        assert len(page["data"]) == 3  # pages before a cursor are the ones closest to it
        backward = [u["id"] for u in page["data"]] + backward
    assert backward == forward


def test_cursor_of_a_deleted_object_still_positions_the_page() -> None:
    with FakeWorkOS(DirectoryModel(seed=3)) as fake:
        directory = fake.model.create_directory()["id"]
        ids = [fake.model.create_user(directory, first_name="U", last_name=str(i), email=None)["id"] for i in range(5)]
        fake.model.delete_user(ids[2])
        page = raw_json(fake, f"/directory_users?directory={directory}&order=asc&after={ids[2]}")
        assert [u["id"] for u in page["data"]] == ids[3:]
        assert page["list_metadata"] == {"before": ids[3], "after": None}


# ---------------------------------------------------------------- rate limiting


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_is_per_directory_and_only_on_directory_users() -> None:
    clock = FakeMonotonic()
    model = DirectoryModel(seed=1)
    with FakeWorkOS(model, rate_limit_per_second=4, rate_limit_clock=clock) as fake:
        dir_a, dir_b = model.create_directory()["id"], model.create_directory()["id"]
        user_a = model.create_user(dir_a, first_name="A", last_name="A", email=None)["id"]
        group_a = model.create_group(dir_a, name="G")["id"]

        statuses = [raw_get(fake, f"/directory_users?directory={dir_a}")[0] for _ in range(10)]
        assert statuses == [200] * 4 + [429] * 6  # burst = rate
        assert [raw_get(fake, f"/directory_users?directory={dir_b}")[0] for _ in range(4)] == [200] * 4
        # The same directory's budget covers group-filtered lists and single-user reads ...
        assert raw_get(fake, f"/directory_users?group={group_a}")[0] == 429
        assert raw_get(fake, f"/directory_users/{user_a}")[0] == 429
        # ... but not /directory_groups or /directories.
        assert {raw_get(fake, f"/directory_groups?directory={dir_a}")[0] for _ in range(10)} == {200}
        assert raw_get(fake, f"/directories/{dir_a}")[0] == 200

        clock.now += 0.5  # 4/s * 0.5 s = 2 tokens
        assert [raw_get(fake, f"/directory_users/{user_a}")[0] for _ in range(3)] == [200, 200, 429]
        clock.now += 10  # refills to the burst, no more
        assert [raw_get(fake, f"/directory_users?group={group_a}")[0] for _ in range(5)] == [200] * 4 + [429]
        assert fake.rate_limited_total == 6 + 2 + 1 + 1

        status, headers, body = raw_get(fake, f"/directory_users?directory={dir_a}")
        assert status == 429 and headers["retry-after"] == "1" and body == b'"Ratelimited"'
        assert headers["content-type"].startswith("application/json")

        fake.set_rate_limit(None)
        assert raw_get(fake, f"/directory_users?directory={dir_a}")[0] == 200


def test_retry_after_is_the_time_until_a_token_frees() -> None:
    clock = FakeMonotonic()
    model = DirectoryModel(seed=1)
    with FakeWorkOS(model, rate_limit_per_second=0.2, rate_limit_clock=clock, rate_limit_body="text") as fake:
        directory = model.create_directory()["id"]
        assert raw_get(fake, f"/directory_users?directory={directory}")[0] == 200
        clock.now += 1.5
        status, headers, body = raw_get(fake, f"/directory_users?directory={directory}")
        assert (status, headers["retry-after"], body) == (429, "4", b"Ratelimited")  # 5 s per token - 1.5 s
        assert headers["content-type"].startswith("text/plain")


def handled(fake: FakeWorkOS, path: str) -> tuple[int, str | None]:
    """Status and Retry-After of one GET answered by `FakeWorkOS.handle()` (no socket: the limiter's clock is exact)."""
    response = fake.handle("GET", path, {"Authorization": f"Bearer {fake.api_key}"})
    return response.status, response.headers.get("Retry-After")


def test_sliding_window_admits_at_most_n_in_any_one_second_window_and_saves_nothing_up() -> None:
    clock = FakeMonotonic()
    model = DirectoryModel(seed=1)
    fake = FakeWorkOS(model, rate_limit_per_second=4, rate_limit_clock=clock, rate_limit_shape="sliding_window")
    assert fake.rate_limit_shape == "sliding_window"
    dir_a, dir_b = model.create_directory()["id"], model.create_directory()["id"]
    users_a = f"/directory_users?directory={dir_a}"

    def at(moment: float, path: str = users_a) -> int:
        clock.now = 1000.0 + moment
        return handled(fake, path)[0]

    # 4 admitted at 0.0, 0.1, 0.2, 0.3; the 5th in the same second is refused, as is every later one until 0.0
    # leaves the window at exactly 1.0 (a request admitted at t counts in (t - 1, t]).
    assert [at(t) for t in (0.0, 0.1, 0.2, 0.3, 0.4, 0.999)] == [200] * 4 + [429] * 2
    assert at(0.5, f"/directory_users?directory={dir_b}") == 200  # per directory
    assert at(1.0) == 200
    # The refusals did not count: 0.1 leaves at 1.1, so 1.1 is admitted although 0.4 and 0.999 were tried.
    assert [at(t) for t in (1.05, 1.1)] == [429, 200]
    # Unlike the token bucket (burst 4, then a token every 0.25 s), nothing refills before the window has moved on:
    # 4 at once after an idle, then nothing until the first of them leaves.
    assert [at(10.0 + i * 0.01) for i in range(4)] + [at(10.3), at(10.99), at(11.0)] == [200] * 4 + [429] * 2 + [200]
    # Exactly 1/rate apart is admitted only while every arrival is on time: one 1 ms early and it is a 429.
    assert [at(20.0 + i * 0.25) for i in range(8)] == [200] * 8
    assert at(22.0 - 0.001) == 429


def test_sliding_window_never_exceeds_n_per_window_and_refuses_only_when_full() -> None:
    clock = FakeMonotonic()
    model = DirectoryModel(seed=1)
    fake = FakeWorkOS(model, rate_limit_per_second=4, rate_limit_clock=clock, rate_limit_shape="sliding_window")
    directory = model.create_directory()["id"]
    rng = random.Random(5)
    admitted: list[float] = []
    for _ in range(2_000):  # arrivals averaging 6/s, jittered
        clock.now += rng.expovariate(6.0)
        status, _ = handled(fake, f"/directory_users?directory={directory}")
        in_window = [t for t in admitted if t > clock.now - 1.0]
        if status == 200:
            assert len(in_window) < 4
            admitted.append(clock.now)
        else:
            assert status == 429 and len(in_window) == 4
    assert 0 < fake.rate_limited_total < 2_000


@pytest.mark.parametrize(
    ("rate", "arrivals", "retry_after"),
    [
        (4, [0.0, 0.1, 0.2, 0.3, 0.4], "1"),  # the oldest leaves in 0.6 s: rounded up to whole seconds
        (4, [0.0, 0.1, 0.2, 0.3, 0.999], "1"),  # 1 ms to go is still "1", never "0"
        (0.2, [0.0, 1.5], "4"),  # 1 request per 5 s window: 3.5 s to go
        (0.4, [0.0, 0.5], "2"),  # 1 request per 2.5 s window: 2.0 s to go
    ],
)
def test_sliding_window_retry_after_is_when_the_oldest_admitted_request_leaves(
    rate: float, arrivals: list[float], retry_after: str
) -> None:
    clock = FakeMonotonic()
    model = DirectoryModel(seed=1)
    fake = FakeWorkOS(model, rate_limit_per_second=rate, rate_limit_clock=clock, rate_limit_shape="sliding_window")
    directory = model.create_directory()["id"]
    answers = []
    for moment in arrivals:
        clock.now = 1000.0 + moment
        answers.append(handled(fake, f"/directory_users?directory={directory}"))
    assert answers == [(200, None)] * (len(arrivals) - 1) + [(429, retry_after)]


def test_rate_limit_shape_is_kept_across_reconfiguration_and_validated() -> None:
    clock = FakeMonotonic()
    model = DirectoryModel(seed=1)
    fake = FakeWorkOS(model, rate_limit_clock=clock, rate_limit_shape="sliding_window")
    directory = model.create_directory()["id"]
    fake.set_rate_limit(2)  # keeps the sliding window: 2 in any second, nothing saved up
    assert [handled(fake, f"/directory_users?directory={directory}")[0] for _ in range(3)] == [200, 200, 429]
    fake.set_rate_limit(2, shape="token_bucket")
    clock.now += 1.0
    assert fake.rate_limit_shape == "token_bucket"
    assert [handled(fake, f"/directory_users?directory={directory}")[0] for _ in range(3)] == [200, 200, 429]
    assert FakeWorkOS(model).rate_limit_shape == "token_bucket"  # the default is unchanged
    with pytest.raises(ValueError, match="rate_limit_shape"):
        fake.set_rate_limit(4, shape="leaky")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate_limit_shape"):
        FakeWorkOS(model, rate_limit_shape="fixed_window")  # type: ignore[arg-type]


def test_rate_limiter_admits_about_rate_per_second_in_real_time() -> None:
    model = DirectoryModel(seed=1)
    with FakeWorkOS(model, rate_limit_per_second=20) as fake:
        directory = model.create_directory()["id"]
        start = time.monotonic()
        admitted = attempts = 0
        while (elapsed := time.monotonic() - start) < 0.5:
            attempts += 1
            admitted += raw_get(fake, f"/directory_users?directory={directory}")[0] == 200
        expected = 20 + 20 * elapsed  # burst + refill
        assert admitted <= expected + 1
        # Timing-free lower bound: the first 20 requests are the burst, admitted however slow the machine is (a
        # bound from the refill raced the clock on a loaded 2-core machine).
        assert admitted >= min(attempts, 20)


def test_sdk_raises_rate_limit_exceeded_for_a_text_body() -> None:
    model = DirectoryModel(seed=1)
    with FakeWorkOS(model, rate_limit_per_second=1, rate_limit_body="text") as fake:
        directory = model.create_directory()["id"]
        with fake.sdk_client() as client:
            client.directory_sync.list_users(directory=directory)
            with pytest.raises(RateLimitExceededError) as excinfo:
                client.directory_sync.list_users(directory=directory)
        assert excinfo.value.retry_after == 1.0


def test_sdk_bug_json_string_429_body_raises_attribute_error() -> None:
    """WorkOS types the 429 body as the JSON string "Ratelimited". SDK 10.x calls ``.get`` on it
    and raises AttributeError instead of RateLimitExceededError. The fake reproduces the wire
    format, so this test documents the real SDK bug; if it starts failing, the SDK was fixed."""
    model = DirectoryModel(seed=1)
    with FakeWorkOS(model, rate_limit_per_second=1) as fake:
        directory = model.create_directory()["id"]
        with fake.sdk_client() as client:
            client.directory_sync.list_users(directory=directory)
            with pytest.raises(AttributeError, match="'str' object has no attribute 'get'"):
                client.directory_sync.list_users(directory=directory)


# ---------------------------------------------------------------- faults, observability, lifecycle


def test_fail_next_injects_errors_before_auth() -> None:
    model = DirectoryModel(seed=1)
    with FakeWorkOS(model) as fake:
        directory = model.create_directory()["id"]
        fake.fail_next(2, 503)
        assert raw_get(fake, "/directories", key="")[0] == 503
        with fake.sdk_client() as client, pytest.raises(ServerError):
            client.directory_sync.list_directories()
        assert raw_get(fake, "/directories")[0] == 200
        fake.fail_next(1, 429, path="/directory_users")
        assert raw_get(fake, "/directories")[0] == 200
        status, headers, _ = raw_get(fake, f"/directory_users?directory={directory}")
        assert status == 429 and headers["retry-after"] == "1"
        assert raw_get(fake, f"/directory_users?directory={directory}")[0] == 200
        assert fake.rate_limited_total == 0
        with pytest.raises(ValueError, match="status"):
            fake.fail_next(1, 200)


def test_counters_and_request_log() -> None:
    model = DirectoryModel(seed=1)
    with FakeWorkOS(model) as fake:
        directory = model.create_directory()["id"]
        before = time.time()
        raw_get(fake, f"/directory_users?directory={directory}&limit=5")
        raw_get(fake, "/directories/directory_01NOPE")
        raw_get(fake, "/directories", key="")
        assert fake.requests_total == 3
        assert fake.path_counts == {"/directory_users": 1, "/directories/directory_01NOPE": 1, "/directories": 1}
        first, second, third = fake.request_log
        assert (first.method, first.path, first.status) == ("GET", "/directory_users", 200)
        assert first.query == {"directory": directory, "limit": "5"}
        assert before <= first.time <= time.time()
        assert (second.status, third.status) == (404, 401)
        fake.clear_request_log()
        assert fake.request_log == [] and fake.requests_total == 3
        fake.reset_stats()
        assert (fake.requests_total, fake.path_counts) == (0, {})
        assert fake.server_errors == []


def test_lifecycle_start_stop_and_keep_alive() -> None:
    fake = FakeWorkOS()
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.base_url
    fake.start()
    assert fake.start() is fake  # idempotent
    url = fake.base_url
    assert url.startswith("http://127.0.0.1:")
    with fake.sdk_client() as client:
        client.directory_sync.list_directories()
        client.directory_sync.list_directories()  # second call reuses the keep-alive connection
        started = time.monotonic()
        fake.stop()  # while the client still holds an idle keep-alive connection
        assert time.monotonic() - started < 10  # a hang on the idle connection would take far longer
    fake.stop()
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_concurrent_sdk_clients() -> None:
    """ThreadingHTTPServer + one model lock: parallel readers and a writer stay consistent."""
    model = DirectoryModel(seed=9)
    with FakeWorkOS(model) as fake:
        directory = model.create_directory()["id"]
        populate(model, directory, users=30, groups=4, rng=random.Random(3))
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                with fake.sdk_client() as client:
                    for _ in range(5):
                        pages = client.directory_sync.list_users(directory=directory, limit=7)
                        ids = [u.id for u in pages.auto_paging_iter()]
                        assert len(ids) == len(set(ids)) >= 30
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=reader) for _ in range(6)]
        for thread in threads:
            thread.start()
        for i in range(20):
            model.create_user(directory, first_name="New", last_name=str(i), email=None)
        for thread in threads:
            thread.join()
        assert errors == []
        assert fake.server_errors == []
        assert fake.requests_total == sum(fake.path_counts.values()) == len(fake.request_log)


def test_percent_encoded_ids_are_decoded(world: World) -> None:
    user_id = world.model.user_ids(world.dir_a)[0]
    encoded = "".join(f"%{ord(c):02X}" for c in user_id)
    assert raw_json(world.fake, f"/directory_users/{encoded}")["id"] == user_id
