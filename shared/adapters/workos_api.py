"""WorkOS Directory Sync read adapter: the one place that talks to the `workos` SDK, paced under WorkOS's rate limits.

WorkOS allows 4 requests/s per directory on `/directory_users` and 6,000 requests/min per API key overall. The SDK
has no throttling and retries blindly (and, with a JSON-string 429 body, crashes with `AttributeError` instead of
raising `RateLimitExceededError`), so the SDK client is built with `max_retries=0` and every request goes through
`PacedBackend`, our implementation of the SDK's documented `workos.HTTPBackend` protocol (`http_client=`):

- before each attempt it takes a token from the directory's bucket (when the request is for one directory) and from
  the global bucket; buckets admit one request every `1/rate` seconds, with no bursts. A directory's bucket runs a
  safety margin below the configured rate and adapts to 429s (AIMD), because WorkOS documents the rate ("4 requests
  per second per directory") but not the algorithm: against a strict sliding window a request that lands a few ms
  early is a 429, which costs a whole second (see `TokenBucket`);
- 429s are retried here, so the SDK never parses one: `Retry-After` (capped) pushes the bucket's next slot back, so the
  retry - and the directory's next request - wait it out; without one, exponential backoff with jitter;
- 5xx, timeouts and connection failures are retried a few times with backoff, then `WorkOSUnavailableError`.

The adapter tells the backend which directory a request is for through a context variable that it sets around each
SDK call and around each step of the lazy paging generators (the SDK fetches the next page inside `next()`), and
resets before every `yield`, so nothing leaks into the caller between items. One thread per directory is the
intended use; the buckets and `ApiStats` are thread-safe. The SDK (~1 s) and httpx2 are imported in the
constructor, never at module import.
"""

from __future__ import annotations

import contextvars
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, Self, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from types import TracebackType

    import httpx2
    from workos import HTTPResponse, SyncPage

__all__ = [
    "ApiStats",
    "EventsPage",
    "PacedBackend",
    "RequestPacer",
    "TokenBucket",
    "WorkOSAuthError",
    "WorkOSDirectoryApi",
    "WorkOSError",
    "WorkOSInvalidRequestError",
    "WorkOSNotFoundError",
    "WorkOSRateLimitedError",
    "WorkOSUnavailableError",
    "current_directory",
]

logger = logging.getLogger(__name__)


class _SdkModel(Protocol):
    """What `workos.SyncPage` requires of its items (the SDK's own protocol is private)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self: ...


_T = TypeVar("_T", bound=_SdkModel)

#: REST API directory states -> the event vocabulary the rest of the pipeline stores.
_DIRECTORY_STATE: Final = {"linked": "active", "unlinked": "inactive"}
_RETRYABLE_SERVER_STATUSES: Final = frozenset({500, 502, 503, 504})
_UNAVAILABLE_RETRIES: Final = 3
_UNAVAILABLE_BACKOFF_SECONDS: Final = 0.5
_UNAVAILABLE_BACKOFF_CAP_SECONDS: Final = 8.0
_RATE_LIMIT_BACKOFF_SECONDS: Final = 1.0
#: A directory's bucket sends at `rate / (1 + margin)`: see `TokenBucket`.
_PACING_MARGIN: Final = 0.05
#: AIMD after a 429: rate x 0.8, then + 0.5% of the configured rate per admitted request, within [25%, ceiling].
_AIMD_DECREASE: Final = 0.8
_AIMD_INCREASE: Final = 0.005
_AIMD_FLOOR: Final = 0.25
_MAX_PAGE_SIZE: Final = 100

_current_directory: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "workos_api_current_directory", default=None
)


def current_directory() -> str | None:
    """The directory the request being sent right now is for (None: not directory-scoped)."""
    return _current_directory.get()


# ---------------------------------------------------------------------------------------------------------- errors


class WorkOSError(Exception):
    """Base of the adapter's errors; messages never contain the API key."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WorkOSAuthError(WorkOSError):
    """401/403: the API key is wrong, revoked, or lacks permission."""


class WorkOSUnavailableError(WorkOSError):
    """Connection errors, timeouts or 5xx that outlasted our retries."""


class WorkOSRateLimitedError(WorkOSError):
    """Still 429 after `max_rate_limit_retries` retries (whatever the 429 body looked like)."""


class WorkOSNotFoundError(WorkOSError):
    """404. The `get_*` methods turn it into None; a list that 404s raises it."""


class WorkOSInvalidRequestError(WorkOSError):
    """400/422: WorkOS refused the request's parameters (for the Events API: an unknown or expired cursor)."""


@dataclass(frozen=True)
class EventsPage:
    """One `GET /events` page: the events exactly as WorkOS sent them, and the cursor after the last one."""

    events: list[dict[str, Any]]
    after: str | None


def _auth_error(status: int) -> WorkOSAuthError:
    return WorkOSAuthError(
        f"WorkOS rejected the API key ({status}): check the secret / --workos-api-key", status=status
    )


# ----------------------------------------------------------------------------------------------------------- stats


@dataclass
class ApiStats:
    """Counters shared by all directories of one run (thread-safe).

    `requests`: HTTP attempts sent; `rate_limited`: 429 answers; `retries`: attempts re-sent for any reason;
    `server_errors`: 5xx answers plus timeouts and connection failures.
    """

    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    server_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, requests: int = 0, rate_limited: int = 0, retries: int = 0, server_errors: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.rate_limited += rate_limited
            self.retries += retries
            self.server_errors += server_errors

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.requests,
                "rate_limited": self.rate_limited,
                "retries": self.retries,
                "server_errors": self.server_errors,
            }


# --------------------------------------------------------------------------------------------------------- pacing


class TokenBucket:
    """Token bucket with burst 1: admits one request every `interval` seconds, never a burst (thread-safe).

    Implemented as a slot scheduler: `reserve()` books the next free slot and returns how long to wait for it, so
    concurrent callers queue in arrival order without polling and the caller sleeps outside the lock.

    `rate` is the limit the server enforces. Two optional behaviours (off by default; `RequestPacer` turns both on for
    directory buckets) keep a client at that limit out of 429s whatever algorithm enforces it:

    - `margin`: send at `rate / (1 + margin)`. Against a strict sliding window (at most N in any second) requests
      sent exactly `1/rate` apart are refused whenever the one N requests later arrives a millisecond less delayed
      than the first - about every other time, with real latency jitter. With the margin, N + 1 consecutive
      requests span `1 + margin` seconds, so up to `margin` seconds of jitter (50 ms at 5%) is absorbed; a token
      bucket with a burst never needed it, and it costs 5% of the rate.
    - `adaptive` (AIMD, as TCP does): a 429 (`back_off()`) multiplies the sending rate by 0.8, never below 25% of
      `rate`; each admitted request (`recover()`) adds 0.5% of `rate` back, never above `rate / (1 + margin)`. So
      when jitter outgrows the margin the client slows down instead of paying a whole second of `Retry-After` for
      every other request, and it takes ~40 admitted requests (~10 s at 4 rps) to probe back up to full speed, so
      even a limiter stricter than the margin allows answers only a few percent with a 429 (simulated: 4% when
      WorkOS allows 3 rps to a client configured for 4, against 25% without adapting).

    `mark_sent()` counts the next slot from when the request actually left (after every wait), not from when its
    slot was due: a thread that woke late (GIL, a global-bucket wait) must not squeeze the following gap.
    """

    def __init__(
        self, rate: float, *, monotonic: Callable[[], float], margin: float = 0.0, adaptive: bool = False
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        if not 0 <= margin < math.inf:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        self.rate = rate
        self.margin = margin
        self.adaptive = adaptive
        self.ceiling = rate / (1.0 + margin)
        self.floor = min(self.ceiling, rate * _AIMD_FLOOR)
        self._current = self.ceiling
        self._monotonic = monotonic
        self._next_slot = -math.inf
        self._lock = threading.Lock()

    @property
    def current_rate(self) -> float:
        """The rate requests are sent at now (the ceiling unless 429s lowered it)."""
        with self._lock:
            return self._current

    @property
    def interval(self) -> float:
        """Seconds between two slots at the current rate."""
        with self._lock:
            return 1.0 / self._current

    def reserve(self) -> float:
        """Book the next slot; returns the seconds to wait before sending (0 if one is free now)."""
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self._current
            return slot - now

    def mark_sent(self) -> None:
        """The request is leaving now: keep the next slot at least one interval after now."""
        with self._lock:
            self._next_slot = max(self._next_slot, self._monotonic() + 1.0 / self._current)

    def push_back(self, delay: float) -> None:
        """Keep the next slot at least `delay` seconds away (after a 429's Retry-After)."""
        with self._lock:
            self._next_slot = max(self._next_slot, self._monotonic() + delay)

    def back_off(self) -> None:
        """A 429: lower the rate multiplicatively (adaptive buckets only), never below the floor."""
        if self.adaptive:
            with self._lock:
                self._current = max(self.floor, self._current * _AIMD_DECREASE)

    def recover(self) -> None:
        """An admitted request: raise the rate additively (adaptive buckets only), never above the ceiling."""
        if self.adaptive:
            with self._lock:
                self._current = min(self.ceiling, self._current + self.rate * _AIMD_INCREASE)

    def next_slot_in(self) -> float:
        """Seconds until the next free slot (0 if free now); for observability and tests."""
        with self._lock:
            return max(0.0, self._next_slot - self._monotonic())


class RequestPacer:
    """A global bucket for the API key plus one bucket per directory, created on first use.

    Directory buckets get the safety `margin` and adapt to 429s (see `TokenBucket`): the per-directory limit
    (4 rps on `/directory_users`) is the tight one a reconcile runs at. The global bucket gets no margin (its
    default 90 rps is already 10% under WorkOS's 6,000 per minute, a window in which milliseconds do not matter)
    but adapts too, since unscoped requests' 429s land on it. `margin=0, adaptive=False` is the old pacing.
    """

    def __init__(
        self,
        *,
        per_directory_rate: float,
        total_rate: float,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        margin: float = _PACING_MARGIN,
        adaptive: bool = True,
    ) -> None:
        self._per_directory_rate = per_directory_rate
        self._margin = margin
        self._adaptive = adaptive
        self._monotonic = monotonic
        self._sleep = sleep
        self.total = TokenBucket(total_rate, monotonic=monotonic, adaptive=adaptive)
        # Fail fast on a bad per-directory rate or margin instead of at the first directory-scoped request.
        self._new_directory_bucket()
        self._directories: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def _new_directory_bucket(self) -> TokenBucket:
        return TokenBucket(
            self._per_directory_rate, monotonic=self._monotonic, margin=self._margin, adaptive=self._adaptive
        )

    def bucket(self, directory_id: str | None) -> TokenBucket:
        """The bucket that a 429 for this directory (or for an unscoped request) pushes back."""
        if directory_id is None:
            return self.total
        with self._lock:
            bucket = self._directories.get(directory_id)
            if bucket is None:
                bucket = self._new_directory_bucket()
                self._directories[directory_id] = bucket
            return bucket

    def acquire(self, directory_id: str | None) -> float:
        """Wait for the directory's slot, then for a global one; returns the seconds waited.

        The directory slot comes first so a thread never holds a global slot while it sits out its own
        directory's pacing (which would waste the shared budget). The directory's next slot is then counted from
        now, when the request actually leaves.
        """
        waited = 0.0
        bucket = None if directory_id is None else self.bucket(directory_id)
        if bucket is not None:
            waited += self._wait(bucket.reserve())
        waited += self._wait(self.total.reserve())
        if bucket is not None:
            bucket.mark_sent()
        return waited

    def push_back(self, directory_id: str | None, delay: float) -> None:
        self.bucket(directory_id).push_back(delay)

    def rate_limited(self, directory_id: str | None, delay: float) -> None:
        """A 429: the bucket waits `delay` (Retry-After) before its next slot and slows down."""
        bucket = self.bucket(directory_id)
        bucket.back_off()
        bucket.push_back(delay)

    def admitted(self, directory_id: str | None) -> None:
        """An answer that was not a 429: the bucket speeds back up towards its ceiling."""
        self.bucket(directory_id).recover()

    def _wait(self, seconds: float) -> float:
        if seconds > 0:
            self._sleep(seconds)
        return max(seconds, 0.0)


def parse_retry_after(value: str | None, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """`Retry-After` as seconds (delay-seconds or an HTTP-date); None if absent or unparseable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return max(0.0, (moment - now()).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


# -------------------------------------------------------------------------------------------------------- backend


class PacedBackend:
    """`workos.HTTPBackend` that paces, retries and counts every request the SDK sends.

    Answers that are worth retrying never reach the SDK: 429s and 5xx/transport failures that outlast the
    retries raise our own errors (which the SDK lets through untouched); every other answer is returned for the SDK
    to parse or map to its errors.
    """

    def __init__(
        self,
        *,
        http: httpx2.Client,
        pacer: RequestPacer,
        stats: ApiStats,
        max_rate_limit_retries: int,
        max_retry_after_seconds: float,
        request_timeout_seconds: float,
        sleep: Callable[[float], None],
        unavailable_retries: int = _UNAVAILABLE_RETRIES,
        rng: random.Random | None = None,
    ) -> None:
        import httpx2
        from workos import HTTPResponse

        self._httpx2 = httpx2
        self._response_type = HTTPResponse
        self._http = http
        self._pacer = pacer
        self._stats = stats
        self._max_rate_limit_retries = max_rate_limit_retries
        self._max_retry_after = max_retry_after_seconds
        self._timeout = request_timeout_seconds
        self._sleep = sleep
        self._unavailable_retries = unavailable_retries
        # Jitter only; not security relevant.
        self._rng = rng or random.Random()  # noqa: S311
        self._local = threading.local()

    @property
    def last_status(self) -> int | None:
        """Status of the last answer this thread received (lets the adapter recognise the SDK's 429 crash)."""
        status: int | None = getattr(self._local, "last_status", None)
        return status

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        content: bytes | None,
        timeout: float,
    ) -> HTTPResponse:
        # The SDK's `timeout` is an int (its constructor takes whole seconds); ours is the configured float.
        del timeout
        directory_id = current_directory()
        path = urlsplit(url).path or "/"  # never log or raise with the query: it may carry filters
        where = f"{method} {path}" + (f" (directory {directory_id})" if directory_id else "")
        rate_limited = unavailable = 0
        self._local.last_status = None
        while True:
            self._pacer.acquire(directory_id)
            self._stats.add(requests=1)
            try:
                response = self._http.request(method, url, headers=headers, content=content, timeout=self._timeout)
            except self._httpx2.TransportError as exc:
                self._stats.add(server_errors=1)
                reason = "timed out" if isinstance(exc, self._httpx2.TimeoutException) else "connection failed"
                if unavailable >= self._unavailable_retries:
                    raise WorkOSUnavailableError(
                        f"WorkOS {where} {reason} ({type(exc).__name__}) after {unavailable + 1} attempts"
                    ) from exc
                unavailable += 1
                self._retry(where, reason, sleep_seconds=self._backoff(unavailable, _UNAVAILABLE_BACKOFF_SECONDS))
                continue
            except self._httpx2.HTTPError as exc:  # decoding errors, too many redirects: not worth retrying
                raise WorkOSError(f"WorkOS {where} failed: {type(exc).__name__}") from exc

            status = response.status_code
            self._local.last_status = status
            if status == 429:
                self._stats.add(rate_limited=1)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if rate_limited >= self._max_rate_limit_retries:
                    raise WorkOSRateLimitedError(
                        f"WorkOS kept answering 429 to {where} after {rate_limited} retries", status=429
                    )
                rate_limited += 1
                delay = (
                    min(retry_after, self._max_retry_after)
                    if retry_after is not None
                    else self._backoff(rate_limited, _RATE_LIMIT_BACKOFF_SECONDS, cap=self._max_retry_after)
                )
                # Pushing the bucket (not sleeping here) also holds back the directory's next request; it slows down.
                self._pacer.rate_limited(directory_id, delay)
                self._retry(where, f"429, next attempt in {delay:.2f}s", sleep_seconds=0.0)
                continue
            if status in _RETRYABLE_SERVER_STATUSES:
                self._stats.add(server_errors=1)
                if unavailable >= self._unavailable_retries:
                    raise WorkOSUnavailableError(
                        f"WorkOS answered {status} to {where} after {unavailable + 1} attempts", status=status
                    )
                unavailable += 1
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                delay = (
                    min(retry_after, self._max_retry_after)
                    if retry_after is not None
                    else self._backoff(unavailable, _UNAVAILABLE_BACKOFF_SECONDS, cap=_UNAVAILABLE_BACKOFF_CAP_SECONDS)
                )
                self._retry(where, f"status {status}", sleep_seconds=delay)
                continue
            self._pacer.admitted(directory_id)
            return self._response_type(
                status_code=status,
                headers=response.headers,
                content=response.content,
                request_method=method,
                request_url=url,
            )

    def _backoff(self, attempt: int, base: float, *, cap: float = _UNAVAILABLE_BACKOFF_CAP_SECONDS) -> float:
        """`base * 2^(attempt-1)`, capped, times a jitter factor in [0.5, 1.5), capped again."""
        delay = min(base * 2.0 ** (attempt - 1), cap)
        return min(delay * (0.5 + self._rng.random()), cap)

    def _retry(self, where: str, reason: str, *, sleep_seconds: float) -> None:
        self._stats.add(retries=1)
        logger.info("Retrying WorkOS request", extra={"request": where, "reason": reason})
        if sleep_seconds > 0:
            self._sleep(sleep_seconds)

    def close(self) -> None:
        self._http.close()


# -------------------------------------------------------------------------------------------------------- adapter


class _SdkSession:
    """The SDK client behind the adapter: built with our paced backend, closed once, and every call scoped to a
    directory and its errors translated (`_call`, `_iterate`). The reads themselves are `WorkOSDirectoryApi`'s."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        requests_per_second_per_directory: float = 4.0,
        requests_per_second_total: float = 90.0,
        pacing_margin: float = _PACING_MARGIN,
        adaptive_pacing: bool = True,
        max_rate_limit_retries: int = 5,
        max_retry_after_seconds: float = 60.0,
        request_timeout_seconds: float = 20.0,
        unavailable_retries: int = _UNAVAILABLE_RETRIES,
        page_size: int = 100,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            # The SDK would silently fall back to WORKOS_API_KEY; a missing secret must fail loudly instead.
            raise WorkOSAuthError("No WorkOS API key configured: check the secret / --workos-api-key")
        if not 1 <= page_size <= _MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {_MAX_PAGE_SIZE}, got {page_size}")
        if max_rate_limit_retries < 0 or max_retry_after_seconds < 0 or not request_timeout_seconds > 0:
            raise ValueError("retry counts and Retry-After cap must be >= 0 and the timeout positive")

        import httpx2
        import workos

        self._workos = workos
        self._page_size = page_size
        self.stats = ApiStats()
        self._pacer = RequestPacer(
            per_directory_rate=requests_per_second_per_directory,
            total_rate=requests_per_second_total,
            sleep=sleep,
            monotonic=monotonic,
            margin=pacing_margin,
            adaptive=adaptive_pacing,
        )
        self._backend = PacedBackend(
            # follow_redirects like the SDK's own default client.
            http=httpx2.Client(transport=transport, timeout=request_timeout_seconds, follow_redirects=True),
            pacer=self._pacer,
            stats=self.stats,
            max_rate_limit_retries=max_rate_limit_retries,
            max_retry_after_seconds=max_retry_after_seconds,
            request_timeout_seconds=request_timeout_seconds,
            unavailable_retries=unavailable_retries,
            sleep=sleep,
        )
        self._client = workos.WorkOSClient(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,  # we retry in exactly one place (the backend), so we can count and pace
            request_timeout=max(1, math.ceil(request_timeout_seconds)),
            http_client=self._backend,
        )
        self._directory_sync = self._client.directory_sync  # a cached_property: resolve it before threads start
        self._closed = False

    @property
    def pacer(self) -> RequestPacer:
        return self._pacer

    # ------------------------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the HTTP connections (idempotent)."""
        if not self._closed:
            self._closed = True
            self._client.close()
            self._backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- internals

    def _iterate(self, directory_id: str | None, first_page: Callable[[], SyncPage[_T]]) -> Iterator[_T]:
        """All items of a listing; the directory context is set only while a page is being fetched.

        `auto_paging_iter()` fetches page n+1 inside `next()`, so each `next()` runs in the context and error
        translation; the context is reset before every `yield` so it never leaks into the caller's code.
        """
        with self._call(directory_id):
            items = first_page().auto_paging_iter()
        while True:
            with self._call(directory_id):
                item = next(items, None)
            if item is None:
                return
            yield item

    @contextmanager
    def _call(self, directory_id: str | None) -> Iterator[None]:
        """Scope SDK work to a directory and translate whatever it raises into our errors."""
        if self._closed:
            raise WorkOSError("the WorkOS client is closed")
        workos = self._workos
        token = _current_directory.set(directory_id)
        try:
            yield
        except WorkOSError:
            raise
        except (workos.AuthenticationError, workos.AuthorizationError) as exc:
            raise _auth_error(exc.status_code or 401) from exc
        except workos.NotFoundError as exc:
            raise WorkOSNotFoundError(f"WorkOS answered 404: {exc}", status=404) from exc
        except (workos.BadRequestError, workos.UnprocessableEntityError) as exc:
            raise WorkOSInvalidRequestError(f"WorkOS refused the request: {exc}", status=exc.status_code) from exc
        except workos.RateLimitExceededError as exc:  # safety net: the backend never hands a 429 to the SDK
            raise WorkOSRateLimitedError(f"WorkOS rate limited the request: {exc}", status=429) from exc
        except workos.ServerError as exc:
            raise WorkOSUnavailableError(f"WorkOS server error: {exc}", status=exc.status_code) from exc
        except workos.WorkOSError as exc:
            raise WorkOSError(f"WorkOS request failed: {exc}", status=getattr(exc, "status_code", None)) from exc
        except AttributeError as exc:
            # Safety net for the SDK's JSON-string 429 bug ('str' object has no attribute 'get').
            if self._backend.last_status == 429:
                raise WorkOSRateLimitedError("WorkOS rate limited the request", status=429) from exc
            raise
        finally:
            _current_directory.reset(token)


class WorkOSDirectoryApi(_SdkSession):
    """Directory Sync reads for the reconcile engine: plain dicts, resumable listings, paced, typed errors.

    `directory_id` arguments scope the request to that directory's rate-limit bucket. Listings are lazy, ascending
    by creation (`order="asc"`) and resume after the item id given as `after`. `pacing_margin` and
    `adaptive_pacing` are the directory buckets' safety margin and AIMD (see `TokenBucket`; 0 and False restore
    pacing exactly at the configured rate). `transport` (an httpx2 transport) exists for tests; production leaves it
    None.
    """

    # ---------------------------------------------------------------------------------------------- listings

    def list_directories(self) -> Iterator[dict[str, Any]]:
        """Every directory of the API key's environment; `state` linked->active, unlinked->inactive (the events'
        vocabulary), and WorkOS's own API state kept as `api_state` (for directory health), `metadata` included."""
        pages = self._iterate(None, lambda: self._directory_sync.list_directories(limit=self._page_size, order="asc"))
        for directory in pages:
            listed = directory.to_dict()
            api_state = listed.get("state")
            yield {**_normalise_directory(listed), "api_state": api_state}

    def iter_groups(self, directory_id: str, *, after: str | None = None) -> Iterator[dict[str, Any]]:
        """The directory's groups (`DirectoryGroup.to_dict()`), oldest first, after the group id `after`."""
        pages = self._iterate(
            directory_id,
            lambda: self._directory_sync.list_groups(
                directory=directory_id, limit=self._page_size, after=after, order="asc"
            ),
        )
        for group in pages:
            yield group.to_dict()

    def iter_users(self, directory_id: str, *, after: str | None = None) -> Iterator[dict[str, Any]]:
        """The directory's users (without the deprecated `groups`), oldest first, after the user id `after`."""
        pages = self._iterate(
            directory_id,
            lambda: self._directory_sync.list_users(
                directory=directory_id, limit=self._page_size, after=after, order="asc"
            ),
        )
        for user in pages:
            yield _user_dict(user.to_dict())

    def iter_group_member_ids(self, directory_id: str, group_id: str, *, after: str | None = None) -> Iterator[str]:
        """Ids of the group's members (`list_users(group=...)`), oldest first, after the user id `after`."""
        pages = self._iterate(
            directory_id,
            lambda: self._directory_sync.list_users(group=group_id, limit=self._page_size, after=after, order="asc"),
        )
        for user in pages:
            yield user.id

    def list_events(
        self,
        *,
        events: Sequence[str],
        after: str | None = None,
        range_start: str | None = None,
        range_end: str | None = None,
        limit: int = _MAX_PAGE_SIZE,
    ) -> EventsPage:
        """One page of `GET /events`, oldest first (`order="asc"` is sent explicitly: older SDKs sent `desc`).

        Raw dicts through the SDK's own request path (pacing, retries and errors as for every call): the events
        go on the queue as WorkOS sent them, including types the SDK's models do not know.
        """
        params = {
            "events": ",".join(events),
            "limit": limit,
            "order": "asc",
            "after": after,
            "range_start": range_start,
            "range_end": range_end,
        }
        with self._call(None):
            raw = self._client.request("get", ("events",), params={k: v for k, v in params.items() if v is not None})
        document = raw if isinstance(raw, dict) else {}
        data = [event for event in document.get("data") or [] if isinstance(event, dict)]
        metadata = document.get("list_metadata") or {}
        cursor = metadata.get("after") if isinstance(metadata, dict) else None
        return EventsPage(events=data, after=cursor if isinstance(cursor, str) and cursor else None)

    # ------------------------------------------------------------------------------------------------- gets

    def get_directory(self, directory_id: str) -> dict[str, Any] | None:
        """The directory (state normalised), or None if WorkOS answers 404."""
        try:
            with self._call(directory_id):
                directory = self._directory_sync.get_directory(directory_id)
        except WorkOSNotFoundError:
            return None
        return _normalise_directory(directory.to_dict())

    def get_user(self, directory_id: str, user_id: str) -> dict[str, Any] | None:
        """The user (without `groups`), or None if WorkOS answers 404."""
        try:
            with self._call(directory_id):
                user = self._directory_sync.get_user(user_id)
        except WorkOSNotFoundError:
            return None
        return _user_dict(user.to_dict())

    def get_group(self, directory_id: str, group_id: str) -> dict[str, Any] | None:
        """The group, or None if WorkOS answers 404."""
        try:
            with self._call(directory_id):
                group = self._directory_sync.get_group(group_id)
        except WorkOSNotFoundError:
            return None
        return group.to_dict()


def _normalise_directory(directory: dict[str, Any]) -> dict[str, Any]:
    state = directory.get("state")
    if isinstance(state, str):
        directory["state"] = _DIRECTORY_STATE.get(state, state)
    return directory


def _user_dict(user: dict[str, Any]) -> dict[str, Any]:
    user.pop("groups", None)  # deprecated: memberships come from iter_group_member_ids
    return user
