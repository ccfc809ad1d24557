"""Argument types of the `dsync` CLI: a bad value is a usage error (exit 2, one line naming the option), never a
traceback or a command that runs with nonsense."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

_RELATIVE = re.compile(r"^\s*(?P<amount>\d+)\s*(?P<unit>s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of 0 or more, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of 0 or more, got {text!r}")
    return value


def http_url(text: str) -> str:
    """An http(s) URL with a host: `127.0.0.1:4566` (no scheme) would otherwise become a botocore traceback."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http(s) URL such as http://127.0.0.1:4566 (check $AWS_ENDPOINT_URL too)"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has an invalid port") from None
    return text.strip()


def point_in_time(text: str, *, now: datetime | None = None) -> str:
    """ISO-8601 (`2026-11-30T00:00:00Z`) or a time before now (`90s`, `15m`, `1h`, `2d`, `1w`), as ISO-8601 UTC."""
    now = now or datetime.now(UTC)
    relative = _RELATIVE.match(text)
    if relative:
        try:
            delta = timedelta(**{_UNITS[relative["unit"]]: int(relative["amount"])})
            return (now - delta).isoformat(timespec="seconds").replace("+00:00", "Z")
        except OverflowError:
            raise argparse.ArgumentTypeError(f"{text!r} is further back than any date") from None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither ISO-8601 (2026-11-30T00:00:00Z) nor a time ago (90s, 15m, 1h, 2d, 1w)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
