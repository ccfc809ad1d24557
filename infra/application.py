"""Builds the pipeline app; `app.py` and the infra tests both go through `build` so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import App, Environment

from infra.config import StackConfig
from infra.nag import acknowledge_findings, register_checks
from infra.stack import DirectorySyncStack


def stack_environment(config: StackConfig, environ: Mapping[str, str]) -> Environment | None:
    """Account/region from context, else from the CDK CLI's CDK_DEFAULT_* when it found credentials; neither ->
    environment-agnostic.

    Without credentials the CLI still sets CDK_DEFAULT_REGION (to us-east-1 when nothing is configured), so an
    offline `make synth` would write that region into the template: the CLI's defaults count only together with
    the account its credentials resolved."""
    cli_account = environ.get("CDK_DEFAULT_ACCOUNT") or None
    account = config.account or cli_account
    region = config.region or (environ.get("CDK_DEFAULT_REGION") if cli_account else None) or None
    if account is None and region is None:
        return None
    return Environment(account=account, region=region)


def build(app: App, *, environ: Mapping[str, str]) -> DirectorySyncStack:
    """Add the pipeline stack (configured from `app`'s context) and the cdk-nag checks to `app`."""
    config = StackConfig.from_context(app.node)
    env = stack_environment(config, environ)
    config.check_rehearsal_account(env.account if env is not None else None)  # rehearsal switches: emulator only
    stack = DirectorySyncStack(app, config.stack_name, config=config, env=env)
    acknowledge_findings(stack)  # here, not in the stack: infra.nag reads the stack, the stack knows nothing of nag
    register_checks(app)
    return stack
