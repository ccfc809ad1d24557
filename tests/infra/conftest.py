"""Synthesized pipeline stacks shared by the infra tests (bundling skipped, cdk-nag on, as in app.py).

`stack`: the default context. `full_stack`: every optional feature on. `alternative_stack`: the other branch of each
option (see `tests.infra.helpers`). Each is built once per test session (per xdist worker), on first use.
"""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from infra.stack import DirectorySyncStack
from tests.infra.helpers import ALTERNATIVE_CONTEXT, FULL_CONTEXT, build_stack


@pytest.fixture(scope="session")
def stack() -> DirectorySyncStack:
    return build_stack()


@pytest.fixture(scope="session")
def template(stack: DirectorySyncStack) -> Template:
    # Synthesizes the stack: raises RuntimeError("ValidationFailed ...") on any unacknowledged cdk-nag finding.
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def full_stack() -> DirectorySyncStack:
    return build_stack(FULL_CONTEXT)


@pytest.fixture(scope="session")
def full_template(full_stack: DirectorySyncStack) -> Template:
    return Template.from_stack(full_stack)


@pytest.fixture(scope="session")
def alternative_stack() -> DirectorySyncStack:
    return build_stack(ALTERNATIVE_CONTEXT)


@pytest.fixture(scope="session")
def alternative_template(alternative_stack: DirectorySyncStack) -> Template:
    return Template.from_stack(alternative_stack)


VARIANTS = {
    "default": ("stack", "template"),
    "full": ("full_stack", "full_template"),
    "alternative": ("alternative_stack", "alternative_template"),
}


@pytest.fixture(params=list(VARIANTS))
def variant(request: pytest.FixtureRequest) -> tuple[DirectorySyncStack, Template]:
    """Each stack variant in turn, for properties every option combination must keep (cdk-nag, cfn-lint, IAM)."""
    stack_fixture, template_fixture = VARIANTS[request.param]
    return request.getfixturevalue(stack_fixture), request.getfixturevalue(template_fixture)
