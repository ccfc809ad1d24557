"""Integration fixtures: real handlers, real boto3, AWS emulated in-process by moto."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from dsync.local.provision import LocalResources, provision
from dsync.targets import Target
from tests.support.webhooks import SECRET


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalResources]:
    """The stack's resources on moto, with the functions' environment set as the CDK stack sets it."""
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
