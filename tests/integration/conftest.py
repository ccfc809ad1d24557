"""Integration fixtures: real handlers, real boto3, AWS emulated in-process by moto."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from dsync.local.provision import LocalResources, provision
from tests.support.webhooks import SECRET


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalResources]:
    """The stack's resources on moto, with the functions' environment set as the CDK stack sets it."""
    with mock_aws():
        resources = provision(webhook_secrets=[SECRET], workos_api_key="sk_test_fake")
        for name, value in resources.environment().items():
            monkeypatch.setenv(name, value)
        yield resources
