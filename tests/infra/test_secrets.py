"""Secrets hold no value in the template: a generated placeholder the Lambdas read as "not configured yet"."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from infra.stack import DirectorySyncStack
from tests.infra.helpers import get_att_arn, props, resources

pytestmark = pytest.mark.infra


def test_no_secret_value_in_the_template(template: Template) -> None:
    secrets = resources(template, "AWS::SecretsManager::Secret")
    assert len(secrets) == 2
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
    assert '"SecretString"' not in json.dumps(template.to_json())


@pytest.mark.parametrize(
    ("attribute", "secret_template"),
    [("webhook_secret", {"webhook_secrets": []}), ("workos_api_key", {"api_key": ""})],
)
def test_secret_starts_as_a_generated_placeholder(
    stack: DirectorySyncStack, template: Template, attribute: str, secret_template: dict[str, object]
) -> None:
    secret = props(template, getattr(stack.secrets, attribute))
    generated = secret["GenerateSecretString"]
    assert json.loads(generated["SecretStringTemplate"]) == secret_template
    assert generated["GenerateStringKey"] == "placeholder"
    assert secret["KmsKeyId"] == get_att_arn(stack.secrets_key)
