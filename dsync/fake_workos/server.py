"""A loopback HTTP fake of the WorkOS Directory Sync read API, backed by :class:`DirectoryModel`.

It speaks the wire format the official ``workos`` SDK expects (checked against the SDK's own
fixtures and by running SDK 10.8.0 against it), so the reconcile Lambda can be tested with the
real client pointed at ``base_url``. Beyond the happy path it reproduces what matters for a
reconciler: bearer auth, cursor pagination in every ``order``, the documented per-directory
rate limit on ``/directory_users`` (including the 429 body that trips an SDK bug), and injected
faults. Stdlib only; binds to 127.0.0.1 by default.

Deliberate choices where the real API is unverified:

* a list filtered by an unknown ``directory``/``group``/``user`` returns an empty list, not 404;
* ``idp_id``/``email`` filters without ``directory`` are rejected with 422 (the docs say they
  "require" it); listing users with no filter at all returns every user;
* ``order=normal`` pages exactly like ``desc`` (the SDK documents "reversed cursor semantics",
  which would stop ``auto_paging_iter()`` after one page; nobody has observed it live);
* a cursor that is not a ULID-suffixed id is a 422; a well-formed cursor whose object is gone
  still positions the page (ids are time-ordered, as WorkOS ULIDs are);
* only GET is served; any other method is a 404 like an unknown route;
* ``GET /events``: ``events`` is required (422 without it, as in the spec's example), ``after`` and
  ``range_start`` together are a 422, ``order`` is accepted and ignored (the live API always answers oldest
  first), an ``after`` that names no retained event (unknown, or older than the retention) is a 422, and cursor
  (``after``) reads hold back events younger than ``events_hold_back_seconds``, as WorkOS does; time-range reads
  are not held back. ``list_metadata.after`` is the last id of the page (or the cursor sent, on an empty page).
"""

from __future__ import annotations

import bisect
import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self
from urllib.parse import parse_qs, unquote, urlsplit

from dsync.fake_workos.ids import ULID_PATTERN, ulid_part
from dsync.fake_workos.model import DirectoryModel, JsonDict, parse_timestamp
from dsync.fake_workos.setup_api import SetupEndpoints, SetupError
from shared.model.events import KNOWN_EVENT_TYPES

if TYPE_CHECKING:
    from workos import WorkOSClient

__all__ = ["FakeWorkOS", "RateLimitBody", "RateLimitShape", "RequestRecord"]

RateLimitBody = Literal["json_string", "text"]
#: How the per-directory limit is enforced (WorkOS does not document it): see `_TokenBucket` and `_SlidingWindow`.
RateLimitShape = Literal["token_bucket", "sliding_window"]

_DEFAULT_LIMIT: Final = 10
_MAX_LIMIT: Final = 100
_ORDERS: Final = frozenset({"asc", "desc", "normal"})
# Event-payload directory states -> REST API vocabulary (Directory.state in the API reference).
_API_DIRECTORY_STATE: Final = {"active": "linked", "inactive": "unlinked"}
_JSON: Final = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the fake saw it, for assertions on what the client actually sent."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    time: float


@dataclass(slots=True)
class _Response:
    status: int
    body: bytes
    content_type: str = _JSON
    headers: dict[str, str] = field(default_factory=dict)


class _HttpError(Exception):
    """Short-circuits request handling with a WorkOS-shaped JSON error."""

    def __init__(self, status: int, message: str, code: str, **extra: Any) -> None:
        super().__init__(message)
        self.response = _json_response(status, {"message": message, "code": code, **extra})


def _json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> _Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _Response(status, body, _JSON, headers or {})


def _not_found(kind: str, object_id: str) -> _HttpError:
    return _HttpError(404, f"{kind} not found: '{object_id}'.", "entity_not_found", entity_id=object_id)


def _invalid(field_name: str, message: str) -> _HttpError:
    return _HttpError(
        422,
        "Validation failed",
        "invalid_request_parameters",
        errors=[{"field": field_name, "code": message}],
    )


class _TokenBucket:
    """Per-key token buckets: ``rate`` tokens/s, burst ``max(1, rate)``.

    The kind shape: WorkOS documents "4 requests per second per directory" on ``/directory_users`` (docs
    reference/rate-limits; ../shared/docs/workos-facts.md section 4.1) but not the algorithm, and a bucket holding a
    second's worth of tokens forgives a client whose requests arrive a few milliseconds early.
    """

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Consume a token; return None if admitted, else seconds until a token frees up."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class _SlidingWindow:
    """Per-key strict sliding windows: at most ``limit`` admitted requests in any ``window`` seconds.

    The unkind shape. It models the strictest reading of WorkOS's documented "4 requests per second per directory"
    on ``/directory_users`` (docs reference/rate-limits; ../shared/docs/workos-facts.md section 4.1 and
    ../shared/docs/events-api-and-2026-facts.md): WorkOS does not document which algorithm enforces it, and under
    this one nothing is saved up. A client that sends exactly ``1/rate`` apart is refused whenever network jitter
    makes its request arrive a millisecond before the one ``limit`` requests earlier has left the window, which is
    what the issue's 16.7% of 429s were. For ``rate`` >= 1 the window is 1 s and ``limit`` is ``floor(rate)``
    (4 rps: at most 4 in any second); a slower rate gets a ``1/rate`` s window holding one request. Only admitted
    requests count; a refusal says how long until the oldest admitted one leaves the window (the caller rounds
    that up to whole seconds, as the real ``Retry-After`` header is).
    """

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.window = max(1.0, 1.0 / rate)
        self.limit = max(1, math.floor(rate * self.window + 1e-9))
        self._clock = clock
        self._admitted: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Admit (None) if fewer than ``limit`` requests were admitted in the last ``window`` seconds, else return
        the seconds until the oldest of them leaves it. A request admitted at t counts in (t - window, t]: it has
        left the window at exactly t + window."""
        with self._lock:
            now = self._clock()
            admitted = self._admitted.setdefault(key, deque())
            while admitted and admitted[0] <= now - self.window:
                admitted.popleft()
            if len(admitted) < self.limit:
                admitted.append(now)
                return None
            return admitted[0] + self.window - now


@dataclass(slots=True)
class _Fault:
    remaining: int
    status: int
    path: str | None


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that can drop idle keep-alive connections when the fake stops."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeWorkOS) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: client disconnects are normal here and handler bugs become 500s anyway."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind a load balancer
    server_version = "FakeWorkOS/1.0"
    timeout = 60  # idle keep-alive connections are closed eventually
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """No per-request logging to stderr; use ``FakeWorkOS.request_log`` instead."""

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""  # read it all: the connection stays usable
        response = self.server.fake.handle(self.command, self.path, dict(self.headers.items()), body)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        with suppress(ConnectionError):
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class FakeWorkOS:
    """In-process fake of the WorkOS Directory Sync API on a loopback port.

    Use as a context manager (or ``start()``/``stop()``); point the SDK at ``base_url``::

        with FakeWorkOS(model) as fake:
            client = fake.sdk_client()
            client.directory_sync.list_users(directory=dir_id).auto_paging_iter()
    """

    def __init__(
        self,
        model: DirectoryModel | None = None,
        *,
        api_key: str = "sk_test_fake",
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_per_second: float | None = None,
        rate_limit_body: RateLimitBody = "json_string",
        rate_limit_clock: Callable[[], float] = time.monotonic,
        rate_limit_shape: RateLimitShape = "token_bucket",
        events_hold_back_seconds: float = 3.0,
        event_retention_days: float = 30.0,
        events_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        unkind_events: bool = False,
    ) -> None:
        if rate_limit_body not in ("json_string", "text"):
            raise ValueError(f"rate_limit_body must be 'json_string' or 'text', got {rate_limit_body!r}")
        self._primary = model if model is not None else DirectoryModel()
        self._api_key = api_key
        # API key -> the environment it belongs to (see `add_environment`); the request's one is thread-local.
        self._environments: dict[str, DirectoryModel] = {api_key: self._primary}
        self._request_environment = threading.local()
        self._host = host
        self._port = port
        self._rate_limit_clock = rate_limit_clock
        self._limiter: _TokenBucket | _SlidingWindow | None = None
        self._rate_limit_shape: RateLimitShape = "token_bucket"
        self.set_rate_limit(rate_limit_per_second, shape=rate_limit_shape)
        self.rate_limit_body: RateLimitBody = rate_limit_body
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stats_lock = threading.Lock()
        self._requests_total = 0
        self._rate_limited_total = 0
        self._path_counts: dict[str, int] = {}
        self._request_log: list[RequestRecord] = []
        self._faults: deque[_Fault] = deque()
        self._outage: tuple[int, tuple[str, ...]] | None = None
        self.events_hold_back_seconds = events_hold_back_seconds
        self.event_retention_days = event_retention_days
        self._events_clock = events_clock
        # The unkind reading of what WorkOS leaves undocumented: a `range_start` older than the retention is refused
        # (422) instead of clamped, and time-range reads are held back like cursor reads.
        self.unkind_events = unkind_events
        self._server_errors: list[BaseException] = []
        self._request_ids = 0
        self._organizations: set[str] = set()
        self.setup = SetupEndpoints(known_events=frozenset(KNOWN_EVENT_TYPES), base_url="https://setup.workos.test")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Bind the port and serve from a daemon thread (idempotent)."""
        if self._server is None:
            server = _Server((self._host, self._port), self)
            self._port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-workos", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and close the listening socket (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server, self._thread = None, None
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ properties

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``; only valid once started."""
        if self._server is None:
            raise RuntimeError("FakeWorkOS is not running; call start() or use it as a context manager")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def api_key(self) -> str:
        """The only bearer token the fake accepts."""
        return self._api_key

    @property
    def model(self) -> DirectoryModel:
        """The backing model of the primary key's environment; mutate it to change what the API returns."""
        return self._primary

    def add_environment(self, api_key: str, model: DirectoryModel | None = None) -> DirectoryModel:
        """Another WorkOS environment (staging beside production) with its own API key and directories.

        Models WorkOS's environments: each environment (staging, production) has its own API keys (`sk_test_...`,
        `sk_live_...`), and the Sync Engine mirrors several environments with one key each ("Mirror several
        environments", ../shared/docs/events-api-and-2026-facts.md section 1). Under one key, the
        directories, users, groups and events of every other environment do not exist: gets answer 404, lists
        leave them out, and a cursor (`after`) naming another environment's event is refused (422) like any unknown
        cursor. This is the world in which a key pasted from the wrong environment must erase nothing.
        """
        environment = model if model is not None else DirectoryModel()
        self._environments[api_key] = environment
        return environment

    @property
    def _model(self) -> DirectoryModel:
        """The environment of the request being answered (the primary one outside a request)."""
        environment: DirectoryModel | None = getattr(self._request_environment, "model", None)
        return environment if environment is not None else self._primary

    def sdk_client(self, *, max_retries: int = 0, request_timeout: int = 10) -> WorkOSClient:
        """A real ``workos.WorkOSClient`` aimed at this fake (imported lazily: it costs ~1 s)."""
        from workos import WorkOSClient

        return WorkOSClient(
            api_key=self._api_key, base_url=self.base_url, max_retries=max_retries, request_timeout=request_timeout
        )

    # ------------------------------------------------------------------ knobs and observability

    def set_rate_limit(self, per_second: float | None, *, shape: RateLimitShape | None = None) -> None:
        """(Re)configure the ``/directory_users`` limiter; None disables it. Resets all buckets.

        ``shape`` (default: keep the current one, initially ``token_bucket``) picks the algorithm: ``token_bucket``
        (burst of one second's worth) or ``sliding_window`` (at most ``per_second`` in any one-second window).
        """
        if per_second is not None and not per_second > 0:
            raise ValueError("rate_limit_per_second must be positive or None")
        if shape is not None and shape not in ("token_bucket", "sliding_window"):
            raise ValueError(f"rate_limit_shape must be 'token_bucket' or 'sliding_window', got {shape!r}")
        self._rate_limit_shape = shape or self._rate_limit_shape
        limiter = _SlidingWindow if self._rate_limit_shape == "sliding_window" else _TokenBucket
        self._limiter = None if per_second is None else limiter(per_second, self._rate_limit_clock)

    @property
    def rate_limit_shape(self) -> RateLimitShape:
        """The algorithm of the ``/directory_users`` limiter (see `set_rate_limit`)."""
        return self._rate_limit_shape

    def fail_next(self, n: int, status: int = 500, *, path: str | None = None) -> None:
        """Answer the next ``n`` requests (optionally only those whose path starts with ``path``)
        with ``status``, before authentication, as an upstream outage would."""
        if n < 0 or not 400 <= status <= 599:
            raise ValueError("n must be >= 0 and status a 4xx/5xx code")
        if n == 0:
            return
        with self._stats_lock:
            self._faults.append(_Fault(n, status, path))

    def set_outage(self, status: int | None, *, paths: tuple[str, ...] = ("/directories", "/directory_")) -> None:
        """Answer every request under `paths` with `status` until `set_outage(None)` (a long upstream outage)."""
        if status is not None and not 400 <= status <= 599:
            raise ValueError("status must be a 4xx/5xx code")
        with self._stats_lock:
            self._outage = None if status is None else (status, paths)

    @property
    def requests_total(self) -> int:
        """All requests answered, whatever the status."""
        with self._stats_lock:
            return self._requests_total

    @property
    def rate_limited_total(self) -> int:
        """429s produced by the rate limiter (injected faults are not counted)."""
        with self._stats_lock:
            return self._rate_limited_total

    @property
    def path_counts(self) -> dict[str, int]:
        """Requests per raw path (``/directory_users``, ``/directory_users/<id>``, ...)."""
        with self._stats_lock:
            return dict(self._path_counts)

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request since the last clear, oldest first."""
        with self._stats_lock:
            return list(self._request_log)

    @property
    def server_errors(self) -> list[BaseException]:
        """Exceptions raised while handling requests (each was answered with a 500)."""
        with self._stats_lock:
            return list(self._server_errors)

    def clear_request_log(self) -> None:
        """Forget logged requests but keep the counters."""
        with self._stats_lock:
            self._request_log.clear()

    def reset_stats(self) -> None:
        """Zero every counter and clear the request log and pending faults."""
        with self._stats_lock:
            self._requests_total = 0
            self._rate_limited_total = 0
            self._path_counts.clear()
            self._request_log.clear()
            self._faults.clear()
            self._server_errors.clear()

    # ------------------------------------------------------------------ request handling

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> _Response:
        """Answer one request; public so the routing can be unit-tested without a socket."""
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        rate_limited = False
        try:
            response = self._injected_fault(path)
            if response is None:
                self._request_environment.model = self._authenticate(headers)
                if method == "POST":
                    response = self._post(path, headers, body)
                else:
                    response, rate_limited = self._route(method, path, query)
        except _HttpError as error:
            response = error.response
        except Exception as error:  # a bug in the fake must not kill the connection silently
            with self._stats_lock:
                self._server_errors.append(error)
            response = _json_response(500, {"message": "Internal Server Error", "code": "server_error"})
        finally:
            self._request_environment.model = None
        with self._stats_lock:
            self._request_ids += 1
            response.headers.setdefault("X-Request-ID", f"req_fake_{self._request_ids:08d}")
            self._requests_total += 1
            self._rate_limited_total += int(rate_limited)
            self._path_counts[path] = self._path_counts.get(path, 0) + 1
            self._request_log.append(RequestRecord(method, path, query, response.status, time.time()))
        return response

    def _injected_fault(self, path: str) -> _Response | None:
        with self._stats_lock:
            outage = self._outage
            if outage is not None and path.startswith(outage[1]):
                return _json_response(outage[0], {"message": HTTPStatus(outage[0]).phrase, "code": "server_error"})
            for fault in self._faults:
                if fault.remaining > 0 and (fault.path is None or path.startswith(fault.path)):
                    fault.remaining -= 1
                    status = fault.status
                    break
            else:
                return None
            while self._faults and self._faults[0].remaining == 0:
                self._faults.popleft()
        if status == 429:
            return self._rate_limit_response(1.0)
        return _json_response(status, {"message": HTTPStatus(status).phrase, "code": "server_error"})

    def _post(self, path: str, headers: dict[str, str], body: bytes) -> _Response:
        """The setup endpoints (`dsync.fake_workos.setup_api`), per environment (the bearer key's)."""
        environment = str(id(self._model))
        organizations = self._organizations | {d["organization_id"] for d in self._model.directories()}
        parts = [unquote(part) for part in path.strip("/").split("/")]
        try:
            return _json_response(201, self.setup.post(environment, parts, body, organizations))
        except SetupError as error:
            return _json_response(error.status, {"message": error.message, "code": error.code})

    def add_organization(self, organization_id: str) -> None:
        """An organization of the environments (WorkOS's Organizations API is not faked: they are given)."""
        self._organizations.add(organization_id)

    def webhook_endpoints(self, api_key: str | None = None) -> list[JsonDict]:
        """The endpoints created in the environment of `api_key` (default: the primary)."""
        model = self._environments[api_key or self._api_key]
        return list(self.setup.webhook_endpoints.get(str(id(model)), []))

    def _authenticate(self, headers: dict[str, str]) -> DirectoryModel:
        """The environment the bearer key belongs to; 401 for a key of none."""
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = auth.partition(" ")
        environment = self._environments.get(token.strip()) if scheme.lower() == "bearer" else None
        if environment is None:
            raise _HttpError(401, "Unauthorized", "unauthorized")
        return environment

    def _route(self, method: str, path: str, query: dict[str, str]) -> tuple[_Response, bool]:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if method != "GET" or len(parts) > 2:
            raise _HttpError(404, "Not Found", "not_found")
        resource, object_id = parts[0], (parts[1] if len(parts) == 2 else None)
        if resource == "directory_users":
            throttled = self._throttle(self._users_rate_limit_key(object_id, query))
            if throttled is not None:
                return throttled, True
        handler = self._ROUTES.get((resource, object_id is not None))
        if handler is None:
            raise _HttpError(404, "Not Found", "not_found")
        return _json_response(200, handler(self, object_id, query)), False

    # ------------------------------------------------------------------ rate limiting

    def _users_rate_limit_key(self, user_id: str | None, query: dict[str, str]) -> str | None:
        """The directory a ``/directory_users`` request counts against (WorkOS: 4 rps per directory)."""
        if user_id is not None:
            try:
                return str(self._model.get_user(user_id)["directory_id"])
            except KeyError:
                return None
        if query.get("directory"):
            return query["directory"]
        if query.get("group"):
            try:
                return str(self._model.get_group(query["group"])["directory_id"])
            except KeyError:
                return f"group:{query['group']}"
        return None

    def _throttle(self, key: str | None) -> _Response | None:
        limiter = self._limiter
        if limiter is None or key is None:
            return None
        wait = limiter.take(key)
        return None if wait is None else self._rate_limit_response(wait)

    def _rate_limit_response(self, wait: float) -> _Response:
        # WorkOS' OpenAPI spec types this 429 body as the JSON string "Ratelimited"; SDK 10.x then
        # raises AttributeError instead of RateLimitExceededError. Reproduce, don't work around.
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        if self.rate_limit_body == "json_string":
            return _Response(429, b'"Ratelimited"', _JSON, headers)
        return _Response(429, b"Ratelimited", "text/plain; charset=utf-8", headers)

    # ------------------------------------------------------------------ endpoints

    def _api_directory(self, directory: JsonDict) -> JsonDict:
        return {
            "object": "directory",
            "id": directory["id"],
            "organization_id": directory["organization_id"],
            "external_key": directory["external_key"],
            "type": directory["type"],
            "state": _API_DIRECTORY_STATE.get(directory["state"], directory["state"]),
            "name": directory["name"],
            "domain": directory["domains"][0]["domain"] if directory["domains"] else None,
            "metadata": self._model.directory_metadata(directory["id"]),
            "created_at": directory["created_at"],
            "updated_at": directory["updated_at"],
        }

    def _list_directories(self, _: str | None, query: dict[str, str]) -> JsonDict:
        organization_id, search, domain = query.get("organization_id"), query.get("search"), query.get("domain")
        directories = [
            d
            for d in self._model.directories()
            if (not organization_id or d["organization_id"] == organization_id)
            and (not search or search.lower() in d["name"].lower())
            and (not domain or any(x["domain"] == domain for x in d["domains"]))
        ]
        by_id = {d["id"]: d for d in directories}

        def render(ids: list[str]) -> list[JsonDict]:
            rendered = []
            for directory_id in ids:
                with suppress(KeyError):  # deleted while rendering: the API would not show it
                    rendered.append(self._api_directory(by_id[directory_id]))
            return rendered

        return _paginate(list(by_id), query, render)

    def _get_directory(self, directory_id: str | None, _: dict[str, str]) -> JsonDict:
        assert directory_id is not None
        try:
            return self._api_directory(self._model.get_directory(directory_id))
        except KeyError:
            raise _not_found("Directory", directory_id) from None

    def _list_users(self, _: str | None, query: dict[str, str]) -> JsonDict:
        directory_id, group_id = query.get("directory") or None, query.get("group") or None
        idp_id, email = query.get("idp_id") or None, query.get("email") or None
        if (idp_id or email) and not directory_id:
            raise _invalid("directory", "directory is required when filtering by idp_id or email")
        ids = self._model.user_ids(directory_id, group_id)
        if idp_id or email:
            users = {u["id"]: u for u in self._model.users(directory_id, group_id)}
            ids = [
                i
                for i in ids
                if i in users
                and (not idp_id or users[i]["idp_id"] == idp_id)
                and (not email or (users[i]["email"] or "").lower() == email.lower())
            ]
        return _paginate(ids, query, self._users_with_groups)

    def _users_with_groups(self, ids: list[str]) -> list[JsonDict]:
        users = []
        for user_id in ids:
            try:
                users.append(self._user_with_groups(self._model.get_user(user_id)))
            except KeyError:  # deleted between listing and rendering: the API would not show it
                continue
        return users

    @staticmethod
    def _user_with_groups(user: JsonDict) -> JsonDict:
        # DirectoryUserWithGroups; ``groups`` is deprecated and [] for teams created since May 2026.
        return {**user, "groups": []}

    def _get_user(self, user_id: str | None, _: dict[str, str]) -> JsonDict:
        assert user_id is not None
        try:
            return self._user_with_groups(self._model.get_user(user_id))
        except KeyError:
            raise _not_found("Directory User", user_id) from None

    def _list_groups(self, _: str | None, query: dict[str, str]) -> JsonDict:
        ids = self._model.group_ids(query.get("directory") or None, query.get("user") or None)
        return _paginate(ids, query, self._groups_by_id)

    def _groups_by_id(self, ids: list[str]) -> list[JsonDict]:
        groups = []
        for group_id in ids:
            with suppress(KeyError):
                groups.append(self._model.get_group(group_id))
        return groups

    def _get_group(self, group_id: str | None, _: dict[str, str]) -> JsonDict:
        assert group_id is not None
        try:
            return self._model.get_group(group_id)
        except KeyError:
            raise _not_found("Directory Group", group_id) from None

    def _list_events(self, _: str | None, query: dict[str, str]) -> JsonDict:
        types = frozenset(part.strip() for part in (query.get("events") or "").split(",") if part.strip())
        if not types:
            raise _HttpError(
                422, "Validation failed", "invalid_request_parameters", errors=[{"field": "events", "code": "required"}]
            )
        after, range_start = query.get("after") or None, query.get("range_start") or None
        if after and range_start:
            raise _invalid("after", "after and range_start cannot be used together")
        limit = _parse_page_params({"limit": query.get("limit", "")})[0]
        now = self._events_clock()
        oldest = now - timedelta(days=self.event_retention_days)
        created_from, created_until = oldest, _event_time(query, "range_end")
        start = 0
        if range_start:
            requested = _event_time(query, "range_start") or oldest
            if self.unkind_events and requested < oldest:
                raise _invalid("range_start", f"range_start '{range_start}' is past the event retention")
            created_from = max(oldest, requested)
            if self.unkind_events:
                held_back = now - timedelta(seconds=self.events_hold_back_seconds)
                created_until = held_back if created_until is None else min(created_until, held_back)
        if after:
            position = self._model.event_position(after)
            if position is None or position[1] < oldest:
                raise _invalid("after", f"cursor '{after}' is unknown or past the event retention")
            start = position[0]
            held_back = now - timedelta(seconds=self.events_hold_back_seconds)
            created_until = held_back if created_until is None else min(created_until, held_back)
        page = self._model.events_between(
            start=start, created_from=created_from, created_until=created_until, types=types, limit=limit
        )
        cursor = page[-1]["id"] if page else after
        return {"object": "list", "data": page, "list_metadata": {"before": None, "after": cursor}}

    _ROUTES: Final[dict[tuple[str, bool], Callable[[FakeWorkOS, str | None, dict[str, str]], JsonDict]]] = {
        ("directories", False): _list_directories,
        ("directories", True): _get_directory,
        ("directory_users", False): _list_users,
        ("directory_users", True): _get_user,
        ("directory_groups", False): _list_groups,
        ("directory_groups", True): _get_group,
        ("events", False): _list_events,
    }


def _event_time(query: dict[str, str], name: str) -> datetime | None:
    value = query.get(name) or None
    if value is None:
        return None
    if not value.endswith("Z"):
        raise _invalid(name, f"{name} must be an ISO 8601 UTC timestamp with a Z suffix")
    try:
        return parse_timestamp(value)
    except ValueError:
        raise _invalid(name, f"{name} must be an ISO 8601 UTC timestamp with a Z suffix") from None


def _parse_page_params(query: dict[str, str]) -> tuple[int, str, str | None, str | None]:
    raw_limit = query.get("limit", "")
    try:
        limit = int(raw_limit) if raw_limit != "" else _DEFAULT_LIMIT
    except ValueError:
        raise _invalid("limit", "limit must be an integer") from None
    if not 1 <= limit <= _MAX_LIMIT:
        raise _invalid("limit", f"limit must be between 1 and {_MAX_LIMIT}")
    order = query.get("order") or "desc"
    if order not in _ORDERS:
        raise _invalid("order", "order must be one of asc, desc, normal")
    cursors: list[str | None] = []
    for name in ("before", "after"):
        cursor = query.get(name) or None
        if cursor is not None and not ULID_PATTERN.fullmatch(ulid_part(cursor)):
            raise _invalid(name, f"{name} must be an object id")
        cursors.append(cursor)
    return limit, order, cursors[0], cursors[1]


def _paginate(ids: list[str], query: dict[str, str], render: Callable[[list[str]], list[JsonDict]]) -> JsonDict:
    """Cursor-paginate ids (in creation order) into a WorkOS list envelope.

    ``after``/``before`` select the items that follow/precede the cursor in the requested order;
    the response's ``after`` is the last id when more items follow, ``before`` the first id when
    more precede, so ``auto_paging_iter()`` visits every item exactly once.
    """
    limit, order, before, after = _parse_page_params(query)
    descending = order != "asc"
    ordered = sorted(ids, key=ulid_part, reverse=descending)
    # Sorted keys ascending (negated order for descending) so cursors are found by bisection, not a scan: the
    # reconcile benchmarks page through 50,000 users.
    keys = [ulid_part(object_id) for object_id in ordered]

    def first_following(cursor: str) -> int:
        """Index of the first item that follows `cursor` in the requested order."""
        cursor_key = ulid_part(cursor)
        if descending:
            return len(keys) - bisect.bisect_left(keys[::-1], cursor_key)
        return bisect.bisect_right(keys, cursor_key)

    def first_not_preceding(cursor: str) -> int:
        """Index of the first item that does not precede `cursor` in the requested order."""
        cursor_key = ulid_part(cursor)
        if descending:
            return len(keys) - bisect.bisect_right(keys[::-1], cursor_key)
        return bisect.bisect_left(keys, cursor_key)

    start, end = 0, len(ordered)
    if after is not None:
        start = first_following(after)
    if before is not None:
        end = max(start, first_not_preceding(before))
    if before is not None and after is None:
        start = max(start, end - limit)  # the page closest to the ``before`` cursor
    else:
        end = min(end, start + limit)
    page = ordered[start:end]
    return {
        "object": "list",
        "data": render(page),
        "list_metadata": {
            "before": page[0] if page and start > 0 else None,
            "after": page[-1] if page and end < len(ordered) else None,
        },
    }
