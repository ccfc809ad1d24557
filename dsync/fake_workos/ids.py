"""WorkOS-style object ids: ``<prefix>_<ULID>``.

WorkOS ids are ULIDs (26 Crockford base32 characters, a 48-bit millisecond timestamp followed by
80 random bits). The fake makes them *monotonic*: the time part is the mutation timestamp and the
random part is bumped when two ids share a millisecond, so sorting ids sorts objects by creation.
List pagination in the fake relies on that.
"""

from __future__ import annotations

import random
import re
import threading
from datetime import UTC, datetime

__all__ = ["CROCKFORD_ALPHABET", "ULID_PATTERN", "UlidFactory", "random_token", "ulid_part"]

CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_PATTERN = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")

_TIME_CHARS = 10
_RANDOM_CHARS = 16
_RANDOM_BITS = 80
_MAX_TIME = (1 << 48) - 1
_MAX_RANDOM = (1 << _RANDOM_BITS) - 1
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(CROCKFORD_ALPHABET[digit])
    return "".join(reversed(chars))


def ulid_part(object_id: str) -> str:
    """Return the ULID after the last ``_`` (the part that orders objects)."""
    return object_id.rsplit("_", 1)[-1]


def random_token(rng: random.Random, length: int, alphabet: str = _BASE62) -> str:
    """Random string for external keys and IdP ids; seeded so fixtures are reproducible."""
    return "".join(rng.choice(alphabet) for _ in range(length))


class UlidFactory:
    """Monotonic ULID generator, deterministic for a given ``rng`` and timestamp sequence."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def new(self, prefix: str, at: datetime) -> str:
        """Return ``<prefix>_<ULID>`` whose time part is ``at`` (UTC, ms), never below the last id."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        ms = min(max(int(at.timestamp() * 1000), 0), _MAX_TIME)
        with self._lock:
            if ms > self._last_ms:
                rand = self._rng.getrandbits(_RANDOM_BITS)
            else:
                # Same (or earlier) millisecond: keep ordering by incrementing the random part.
                ms = self._last_ms
                rand = self._last_random + 1
                if rand > _MAX_RANDOM:
                    ms, rand = ms + 1, self._rng.getrandbits(_RANDOM_BITS)
            self._last_ms, self._last_random = ms, rand
        return f"{prefix}_{_encode(ms, _TIME_CHARS)}{_encode(rand, _RANDOM_CHARS)}"
