"""WorkOS webhook signature verification with the standard library only.

WorkOS signs `"{t}.{raw body}"` with HMAC-SHA256 and sends `WorkOS-Signature: t=<unix ms>, v1=<hex>`. The workos
SDK implements the same check but costs ~1 s to import, which the ingest Lambda pays on every cold start; this
module costs ~25 ms. `tests/unit/ingest/test_signature.py` proves equivalence with the SDK (its published vectors and a
differential test on generated cases). The one deliberate difference: the SDK splits on exactly ", " and rejects
`t=…,v1=…` without the space; we tolerate missing or extra whitespace.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

SIGNATURE_HEADER = "workos-signature"
DEFAULT_TOLERANCE_SECONDS = 180
# A real header is ~80 characters; anything far longer is garbage and not worth parsing.
MAX_HEADER_LENGTH = 1024
_HEX_DIGITS = frozenset("0123456789abcdef")
_SHA256_HEX_LENGTH = 64


class SignatureFailure(StrEnum):
    """Why a request was refused; used as the metric dimension and the 401 reason."""

    MISSING = "missing_signature"
    MALFORMED = "malformed_signature"
    STALE = "stale_timestamp"
    MISMATCH = "signature_mismatch"


class SignatureError(Exception):
    def __init__(self, failure: SignatureFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class SignatureHeader:
    timestamp_ms: int
    signatures: tuple[str, ...]


def parse_signature_header(value: str | None) -> SignatureHeader:
    """Parse `t=<ms>, v1=<hex>`; order-insensitive, whitespace-tolerant, unknown schemes ignored."""
    if value is None or not value.strip():
        raise SignatureError(SignatureFailure.MISSING, "no WorkOS-Signature header")
    if len(value) > MAX_HEADER_LENGTH:
        raise SignatureError(SignatureFailure.MALFORMED, "WorkOS-Signature header is too long")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            raise SignatureError(SignatureFailure.MALFORMED, "WorkOS-Signature parts must be key=value")
        key, item = key.strip(), item.strip()
        if key == "t":
            timestamps.append(item)
        elif key == "v1":
            signatures.append(item)
    if len(timestamps) != 1 or not timestamps[0].isascii() or not timestamps[0].isdigit():
        raise SignatureError(SignatureFailure.MALFORMED, "WorkOS-Signature needs exactly one numeric t=")
    if not signatures or any(len(sig) != _SHA256_HEX_LENGTH or not _HEX_DIGITS.issuperset(sig) for sig in signatures):
        raise SignatureError(SignatureFailure.MALFORMED, "WorkOS-Signature needs a lowercase hex v1=")
    return SignatureHeader(timestamp_ms=int(timestamps[0]), signatures=tuple(signatures))


def compute_signature(secret: str, timestamp_ms: int | str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of `"{t}.{body}"`, as WorkOS computes it."""
    message = f"{timestamp_ms}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp_ms: int, body: bytes) -> str:
    """The header WorkOS would send for `body` at `timestamp_ms` (used by the CLI, the demo and tests)."""
    return f"t={timestamp_ms}, v1={compute_signature(secret, timestamp_ms, body)}"


def verify_signature(
    *,
    body: bytes,
    header: str | None,
    secrets: Sequence[str],
    now_ms: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> SignatureHeader:
    """Raise `SignatureError` unless `header` is a fresh signature of the exact `body` by one of `secrets`.

    Several secrets are accepted so that a webhook secret can be rotated without downtime. The timestamp must be
    within `tolerance_seconds` of `now_ms` in either direction (like the SDK, future timestamps are refused too).
    """
    parsed = parse_signature_header(header)
    if abs(now_ms - parsed.timestamp_ms) > tolerance_seconds * 1000:
        raise SignatureError(SignatureFailure.STALE, "timestamp outside the tolerance zone")
    if not _matches_any(body, parsed, secrets):
        raise SignatureError(SignatureFailure.MISMATCH, "signature does not match any configured secret")
    return parsed


def _matches_any(body: bytes, parsed: SignatureHeader, secrets: Iterable[str]) -> bool:
    matched = False
    for secret in secrets:
        expected = compute_signature(secret, parsed.timestamp_ms, body)
        for candidate in parsed.signatures:
            # Keep comparing after a match so timing does not reveal which secret or position matched.
            matched |= hmac.compare_digest(expected, candidate)
    return matched
