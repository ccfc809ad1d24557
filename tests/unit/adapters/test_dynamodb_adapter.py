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


def test_a_write_that_landed_before_its_timeout_does_not_know_what_it_replaced() -> None:
    replaced = table(FlakyClient("committed-then-timeout", "ok"), 3).replace_if_newer(RECORD)
    assert (replaced.written, replaced.old_known) == (True, False)  # the counts take it as unobserved


def test_a_put_answers_with_the_replaced_item() -> None:
    client = FlakyClient("ok")
    client.stored = {"pk": {"S": "DIR#d"}, "sk": {"S": "USER#u"}, "vkey": {"N": "1"}, "state": {"S": "active"}}
    original = client.put_item

    def put_item(**request: Any) -> dict[str, Any]:
        assert request["ReturnValues"] == "ALL_OLD"
        old = client.stored
        original(**request)
        return {"Attributes": old}

    client.put_item = put_item  # type: ignore[method-assign]
    replaced = table(client, 1).replace_if_newer(RECORD)
    assert replaced.written and replaced.old == {"pk": "DIR#d", "sk": "USER#u", "vkey": 1, "state": "active"}


class CountsClient:
    """UpdateItem with the counter's token condition: each scripted outcome, then DynamoDB's answer."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.last_token: str | None = None
        self.added = 0
        self.requests: list[dict[str, Any]] = []

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, Exception):
            raise outcome
        token = request["ExpressionAttributeValues"][":tok"]["S"]
        if self.last_token == token:
            raise client_error("ConditionalCheckFailedException")
        self.last_token, self.added = token, self.added + 1
        if outcome == "committed-then-timeout":
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        return {}


CHANGE = records.CountChange("d", {"users_active": 2, "groups": -1}, token="t1", unobserved=1, created=True)


def test_a_counts_change_retried_after_its_timeout_is_added_once() -> None:
    client = CountsClient("committed-then-timeout")
    DirectoryTable("t", client=client, transient_attempts=3).add_counts(CHANGE)  # type: ignore[arg-type]
    assert client.added == 1 and len(client.requests) == 2  # the retry was refused by its own token
    request = client.requests[0]
    assert request["UpdateExpression"].startswith("ADD #seq :one, #c0 :c0, #c1 :c1, #u :u SET #tok = :tok")
    assert "#b = if_not_exists(#b, :b)" in request["UpdateExpression"]
    assert request["ConditionExpression"] == "attribute_not_exists(#tok) OR #tok <> :tok"


def test_a_throttled_counts_change_is_raised_for_its_caller_to_retry() -> None:
    client = CountsClient(client_error("ThrottlingException"))
    with pytest.raises(StoreThrottledError):
        DirectoryTable("t", client=client, transient_attempts=3).add_counts(CHANGE)  # type: ignore[arg-type]
