"""Faults AWS can answer, injected after the IAM check (`IamChecker.before_send`), to reach the paths that use a
grant of their own: a throttled partition (overflow), a lost response to a write that landed (the read-back's
GetItem), a change bus that refuses (the stream mapping's on-failure destination). The request is authorized
first: a fault never hides a denial."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.exceptions import ClientError

from tests.deploy.iam_checker import IamChecker

Fault = Callable[[str, str, Mapping[str, Any]], None]


def _error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected by the deploy check"}}, operation)


@contextmanager
def injected(checker: IamChecker, fault: Fault) -> Iterator[list[str]]:
    """Install `fault`; yields the list of operations it answered (a scenario asserts the path was reached)."""
    answered: list[str] = []

    def recording(service: str, operation: str, params: Mapping[str, Any]) -> None:
        try:
            fault(service, operation, params)
        except ClientError:
            answered.append(f"{service}:{operation}")
            raise

    checker.before_send.append(recording)
    try:
        yield answered
    finally:
        checker.before_send.remove(recording)


def throttled_partition(partition: str) -> Fault:
    """DynamoDB refuses writes to one partition: ProvisionedThroughputExceeded (its 1,000 WCU/s are taken)."""

    def fault(service: str, operation: str, params: Mapping[str, Any]) -> None:
        if service == "dynamodb" and operation == "PutItem" and params["Item"]["pk"].get("S") == partition:
            raise _error("ProvisionedThroughputExceededException", operation)

    return fault


def lost_write_response(partition: str, deployer: boto3.Session) -> Fault:
    """The first PutItem into `partition` lands, and its response is lost (a timeout after the commit): the write is
    made (as the deployer, with the same parameters), then an InternalServerError is answered."""
    lost: list[bool] = []
    client = deployer.client("dynamodb")

    def fault(service: str, operation: str, params: Mapping[str, Any]) -> None:
        if lost or service != "dynamodb" or operation != "PutItem" or params["Item"]["pk"].get("S") != partition:
            return
        lost.append(True)
        client.put_item(**params)
        raise _error("InternalServerError", operation)

    return fault


def refusing_bus() -> Fault:
    """EventBridge answers every PutEvents with an internal error."""

    def fault(service: str, operation: str, params: Mapping[str, Any]) -> None:
        if service == "events" and operation == "PutEvents":
            raise _error("InternalException", operation)

    return fault
