"""The stdlib verifier against WorkOS's published vectors and, differentially, against the workos SDK itself."""

from __future__ import annotations

import types

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from shared.ingest.signature import (
    SignatureError,
    SignatureFailure,
    compute_signature,
    parse_signature_header,
    signature_header,
    verify_signature,
)

pytestmark = pytest.mark.unit

# Test vectors from workos/workos-python tests/test_webhooks.py at tag v5.46.0 (MIT License, Copyright (c) WorkOS),
# as recorded in ../shared/docs/workos-facts.md section 1.5. The timestamp is from 2024, so the clock is pinned.
VECTOR_SECRET = "2sAZJlbjP8Ce3rwkKEv2GfKef"
VECTOR_TIMESTAMP_MS = 1722443701539
VECTOR_CONNECTION_BODY = (
    b'{"id":"event_01J44T8116Q5M0RYCFA6KWNXN9","data":{"id":"conn_01EHWNC0FCBHZ3BJ7EGKYXK0E6","name":"Foo Corp\'s '
    b'Connection","state":"active","object":"connection","status":"linked","domains":[{"id":"conn_domain_01EHWNFTAF'
    b'CF3CQAE5A9Q0P1YB","domain":"foo-corp.com","object":"connection_domain"}],"created_at":"2021-06-25T19:07:33.155Z'
    b'","updated_at":"2021-06-25T19:07:33.155Z","external_key":"3QMR4u0Tok6SgwY2AWG6u6mkQ","connection_type":"OktaSA'
    b'ML","organization_id":"org_01EHWNCE74X7JSDV0X3SZ3KJNY"},"event":"connection.activated","created_at":"2021-06-2'
    b'5T19:07:33.155Z"}'
)
VECTOR_CONNECTION_SIGNATURE = "bd54a3768f461461c8439c2f97ab0d646ef3976f84d5d5b132d18f2fa89cdad5"
VECTOR_KITTEN_BODY = (
    b'{"id":"event_01J44T8116Q5M0RYCFA6KWNXN9","data":{"id":"meow_123","name":"Meow Corp","object":"kitten","status'
    b'":"cuteness","created_at":"2021-06-25T19:07:33.155Z","updated_at":"2021-06-25T19:07:33.155Z"},"event":"kitten.'
    b'created","created_at":"2021-06-25T19:07:33.155Z"}'
)
VECTOR_KITTEN_SIGNATURE = "f82f88dd60d5bc8a803686a27f83ce148b8c37c54490c52b77d00d62da891f1b"


@pytest.mark.parametrize(
    ("body", "signature"),
    [(VECTOR_CONNECTION_BODY, VECTOR_CONNECTION_SIGNATURE), (VECTOR_KITTEN_BODY, VECTOR_KITTEN_SIGNATURE)],
)
def test_published_vectors_verify(body: bytes, signature: str) -> None:
    assert compute_signature(VECTOR_SECRET, VECTOR_TIMESTAMP_MS, body) == signature
    header = f"t={VECTOR_TIMESTAMP_MS}, v1={signature}"
    verify_signature(body=body, header=header, secrets=[VECTOR_SECRET], now_ms=VECTOR_TIMESTAMP_MS + 1000)


def test_published_vector_fails_with_one_byte_changed() -> None:
    altered = VECTOR_KITTEN_BODY.replace(b"Meow", b"Meew")
    header = f"t={VECTOR_TIMESTAMP_MS}, v1={VECTOR_KITTEN_SIGNATURE}"
    with pytest.raises(SignatureError) as raised:
        verify_signature(body=altered, header=header, secrets=[VECTOR_SECRET], now_ms=VECTOR_TIMESTAMP_MS)
    assert raised.value.failure is SignatureFailure.MISMATCH


@pytest.mark.parametrize(
    "header",
    [
        f"t={VECTOR_TIMESTAMP_MS}, v1={VECTOR_KITTEN_SIGNATURE}",
        f"t={VECTOR_TIMESTAMP_MS},v1={VECTOR_KITTEN_SIGNATURE}",  # no space: the SDK rejects this, we tolerate it
        f"  v1={VECTOR_KITTEN_SIGNATURE} ,  t={VECTOR_TIMESTAMP_MS}  ",
        f"t={VECTOR_TIMESTAMP_MS}, v1={VECTOR_KITTEN_SIGNATURE}, v0=ignored",
    ],
)
def test_header_variants_are_tolerated(header: str) -> None:
    verify_signature(body=VECTOR_KITTEN_BODY, header=header, secrets=[VECTOR_SECRET], now_ms=VECTOR_TIMESTAMP_MS)


@pytest.mark.parametrize(
    ("header", "failure"),
    [
        (None, SignatureFailure.MISSING),
        ("", SignatureFailure.MISSING),
        ("garbage", SignatureFailure.MALFORMED),
        (f"v1={VECTOR_KITTEN_SIGNATURE}", SignatureFailure.MALFORMED),
        (f"t={VECTOR_TIMESTAMP_MS}", SignatureFailure.MALFORMED),
        (f"t=abc, v1={VECTOR_KITTEN_SIGNATURE}", SignatureFailure.MALFORMED),
        (f"t=\uff11\uff12\uff13, v1={VECTOR_KITTEN_SIGNATURE}", SignatureFailure.MALFORMED),  # fullwidth digits
        (f"t={VECTOR_TIMESTAMP_MS}, v1={VECTOR_KITTEN_SIGNATURE.upper()}", SignatureFailure.MALFORMED),
        (f"t={VECTOR_TIMESTAMP_MS}, v1={VECTOR_KITTEN_SIGNATURE[:-1]}", SignatureFailure.MALFORMED),
        (f"t=1, t=2, v1={VECTOR_KITTEN_SIGNATURE}", SignatureFailure.MALFORMED),
        (f"t={VECTOR_TIMESTAMP_MS}, v1={VECTOR_KITTEN_SIGNATURE}" + ", x=y" * 300, SignatureFailure.MALFORMED),
    ],
)
def test_malformed_headers_are_refused(header: str | None, failure: SignatureFailure) -> None:
    with pytest.raises(SignatureError) as raised:
        verify_signature(body=VECTOR_KITTEN_BODY, header=header, secrets=[VECTOR_SECRET], now_ms=VECTOR_TIMESTAMP_MS)
    assert raised.value.failure is failure


@pytest.mark.parametrize("skew_ms", [-180_001, 180_001, -86_400_000, 86_400_000])
def test_timestamps_outside_tolerance_are_refused_both_ways(skew_ms: int) -> None:
    header = signature_header(VECTOR_SECRET, VECTOR_TIMESTAMP_MS, VECTOR_KITTEN_BODY)
    with pytest.raises(SignatureError) as raised:
        verify_signature(
            body=VECTOR_KITTEN_BODY, header=header, secrets=[VECTOR_SECRET], now_ms=VECTOR_TIMESTAMP_MS + skew_ms
        )
    assert raised.value.failure is SignatureFailure.STALE


@pytest.mark.parametrize("skew_ms", [-180_000, 0, 180_000])
def test_timestamps_at_the_tolerance_edge_are_accepted(skew_ms: int) -> None:
    header = signature_header(VECTOR_SECRET, VECTOR_TIMESTAMP_MS, VECTOR_KITTEN_BODY)
    verify_signature(
        body=VECTOR_KITTEN_BODY, header=header, secrets=[VECTOR_SECRET], now_ms=VECTOR_TIMESTAMP_MS + skew_ms
    )


def test_any_configured_secret_verifies_during_rotation() -> None:
    header = signature_header("new-secret", VECTOR_TIMESTAMP_MS, VECTOR_KITTEN_BODY)
    verify_signature(
        body=VECTOR_KITTEN_BODY, header=header, secrets=["old-secret", "new-secret"], now_ms=VECTOR_TIMESTAMP_MS
    )
    with pytest.raises(SignatureError):
        verify_signature(body=VECTOR_KITTEN_BODY, header=header, secrets=["old-secret"], now_ms=VECTOR_TIMESTAMP_MS)


def test_parse_keeps_every_v1_signature() -> None:
    parsed = parse_signature_header(f"t=5, v1={'a' * 64}, v1={'b' * 64}")
    assert parsed.timestamp_ms == 5
    assert parsed.signatures == ("a" * 64, "b" * 64)


# --- Differential test against the workos SDK (installed, pinned) -------------------------------------------------


def sdk_accepts(monkeypatch: pytest.MonkeyPatch, *, body: bytes, header: str, secret: str, now_ms: int) -> bool:
    from workos.webhooks import _verification

    monkeypatch.setattr(_verification, "time", types.SimpleNamespace(time=lambda: now_ms / 1000))
    try:
        _verification.verify_header(event_body=body, event_signature=header, secret=secret, tolerance=180)
    except ValueError:
        return False
    return True


def ours_accepts(*, body: bytes, header: str, secret: str, now_ms: int) -> bool:
    try:
        verify_signature(body=body, header=header, secrets=[secret], now_ms=now_ms, tolerance_seconds=180)
    except SignatureError:
        return False
    return True


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


secrets_strategy = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
bodies = st.one_of(
    st.binary(max_size=200).filter(_is_utf8),
    st.text(max_size=200).map(str.encode),
)
mutations = st.sampled_from(["none", "wrong_secret", "altered_body", "stale", "future", "truncated", "no_space"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    secret=secrets_strategy,
    body=bodies,
    timestamp_ms=st.integers(min_value=1_500_000_000_000, max_value=2_500_000_000_000),
    skew_ms=st.integers(min_value=-400_000, max_value=400_000),
    mutation=mutations,
)
@example(secret="s", body=b"{}", timestamp_ms=1_700_000_000_000, skew_ms=180_001, mutation="none")
def test_verifier_agrees_with_the_sdk(
    monkeypatch: pytest.MonkeyPatch, secret: str, body: bytes, timestamp_ms: int, skew_ms: int, mutation: str
) -> None:
    # Exactly at the tolerance the SDK's float seconds can round either way; that edge has its own test above.
    assume(abs(skew_ms) != 180_000)
    signing_secret = secret + "x" if mutation == "wrong_secret" else secret
    header = signature_header(signing_secret, timestamp_ms, body)
    now_ms = timestamp_ms + skew_ms
    if mutation == "altered_body":
        body = body + b" " if not body else bytes([body[0] ^ 0x01]) + body[1:]
        if not _is_utf8(body):
            body = b"x" + body[1:]
    elif mutation == "stale":
        now_ms = timestamp_ms + 181_000 + abs(skew_ms)
    elif mutation == "future":
        now_ms = timestamp_ms - 181_000 - abs(skew_ms)
    elif mutation == "truncated":
        header = header[:-1]
    ours = ours_accepts(body=body, header=header, secret=secret, now_ms=now_ms)
    if mutation == "no_space":
        # The one documented difference: the SDK needs exactly ", ", we accept the header without the space.
        header = header.replace(", ", ",")
        assert not sdk_accepts(monkeypatch, body=body, header=header, secret=secret, now_ms=now_ms)
        assert ours_accepts(body=body, header=header, secret=secret, now_ms=now_ms) == ours
        return
    assert ours == sdk_accepts(monkeypatch, body=body, header=header, secret=secret, now_ms=now_ms)
