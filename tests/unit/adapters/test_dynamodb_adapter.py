"""The table adapter's failure handling, against a client that fails the way DynamoDB does."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from shared.adapters.dynamodb import DirectoryTable
from shared.apply.ports import StoreThrottledError, TransientStoreError
from shared.model import records

pytestmark = pytest.mark.unit

RECORD = records.membership_record("d", "g", "u", vkey=42, present=True, expires_at=0)


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "PutItem")


class FlakyClient:
    """Answers each put with the next scripted outcome: an exception to raise, or "ok" (the item is stored)."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.stored: dict[str, Any] | None = None
        self.puts = 0

    def put_item(self, **request: Any) -> dict[str, Any]:
        self.puts += 1
        outcome = self.outcomes.pop(0)
        if outcome == "committed-then-timeout":
            self.stored = request["Item"]
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        if isinstance(outcome, Exception):
            raise outcome
        if self.stored is not None and int(self.stored["vkey"]["N"]) >= RECORD.vkey:
            raise client_error("ConditionalCheckFailedException")
        self.stored = request["Item"]
        return {}

    def get_item(self, **request: Any) -> dict[str, Any]:
        return {"Item": self.stored} if self.stored is not None else {}


def table(client: FlakyClient, attempts: int) -> DirectoryTable:
    return DirectoryTable("t", client=client, transient_attempts=attempts)  # type: ignore[arg-type]


def test_a_passing_500_is_retried_instead_of_stalling_the_lane() -> None:
    client = FlakyClient(client_error("InternalServerError"), "ok")
    assert table(client, 3).put_if_newer(RECORD) is True and client.puts == 2


def test_a_write_that_landed_before_its_timeout_counts_as_written() -> None:
    client = FlakyClient("committed-then-timeout", "ok")
    assert table(client, 3).put_if_newer(RECORD) is True  # the retry is refused, the read shows our version


def test_a_throttle_is_not_retried_here_it_moves_to_the_overflow_lane() -> None:
    client = FlakyClient(client_error("ThrottlingException"), "ok")
    with pytest.raises(StoreThrottledError):
        table(client, 3).put_if_newer(RECORD)
    assert client.puts == 1


def test_transient_failures_past_the_attempts_are_raised() -> None:
    client = FlakyClient(client_error("InternalServerError"), client_error("InternalServerError"))
    with pytest.raises(TransientStoreError):
        table(client, 2).put_if_newer(RECORD)
