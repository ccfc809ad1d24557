"""Integration fixtures: real handlers, real boto3, AWS emulated in-process by moto."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws
from moto.core.responses import BaseResponse

from dsync.local.provision import LocalResources, provision
from dsync.targets import Target
from tests.support.webhooks import SECRET

_MOTO_DISPATCH = threading.Lock()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalResources]:
    """The stack's resources on moto, with the functions' environment set as the CDK stack sets it.

    Each request is handled whole before the next, as moto's own server does (one dispatch lock) and as DynamoDB and
    SQS answer every request atomically: in process, moto's backends are not thread-safe, and the pipeline's thread
    pools (parallel writes, pipelined reconcile pages) made one request fail inside moto now and then ("dictionary
    changed size during iteration"), a failure no AWS service produces."""
    original = BaseResponse.call_action

    def one_at_a_time(self: BaseResponse) -> Any:
        with _MOTO_DISPATCH:
            return original(self)

    monkeypatch.setattr(BaseResponse, "call_action", one_at_a_time)
    with mock_aws():
        resources = provision(webhook_secrets=[SECRET], workos_api_key="sk_test_fake")
        for name, value in resources.environment().items():
            monkeypatch.setenv(name, value)
        yield resources


@pytest.fixture
def target(aws: LocalResources) -> Target:
    """What the CLI's commands act on, resolved to the resources on moto."""
    return Target(
        description="moto",
        region="us-east-1",
        endpoint_url=None,
        table_name=aws.table_name,
        event_queue_url=aws.event_queue_url,
        dead_letter_queue_url=aws.event_dead_letter_queue_url,
        work_queue_url=aws.work_queue_url,
    )
