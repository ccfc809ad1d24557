"""The two credentials WorkOS issues to us, stored in Secrets Manager under the pipeline's CMK.

Neither value is in the template: each secret starts as a generated placeholder that the Lambdas read as
"not configured yet"; operators set the real value with `aws secretsmanager put-secret-value` (see the runbook).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

_PLACEHOLDER_KEY = "placeholder"


class PipelineSecrets(Construct):
    """`webhook_secret`: the webhook signing secret(s); `workos_api_key`: the WorkOS API key used by reconcile."""

    def __init__(self, scope: Construct, id_: str, *, key: kms.IKey) -> None:
        super().__init__(scope, id_)
        self.webhook_secret = secretsmanager.Secret(
            self,
            "WebhookSigningSecret",
            description='WorkOS webhook signing secret(s): {"webhook_secrets": ["<current>", "<previous>"]}',
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template='{"webhook_secrets": []}',  # noqa: S106 - a JSON shape, not a credential
                generate_string_key=_PLACEHOLDER_KEY,
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.workos_api_key = secretsmanager.Secret(
            self,
            "WorkosApiKey",
            description='WorkOS API key for directory reconciliation: {"api_key": "sk_..."}',
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template='{"api_key": ""}',  # noqa: S106 - a JSON shape, not a credential
                generate_string_key=_PLACEHOLDER_KEY,
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
