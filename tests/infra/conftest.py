"""One synthesized pipeline stack per test session (bundling skipped, cdk-nag on, as in app.py)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from infra.stack import DirectorySyncStack
from tests.infra.helpers import build_stack


@pytest.fixture(scope="session")
def stack() -> DirectorySyncStack:
    return build_stack()


@pytest.fixture(scope="session")
def template(stack: DirectorySyncStack) -> Template:
    # Synthesizes the stack: raises RuntimeError("ValidationFailed ...") on any unacknowledged cdk-nag finding.
    return Template.from_stack(stack)
