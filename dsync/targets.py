"""Where the operator commands act: the local stack (an AWS endpoint such as moto's server) or a deployed stack.

`--aws-endpoint URL` (or `AWS_ENDPOINT_URL`) selects the local stack and its fixed names; otherwise the deployed
stack's resources come from its CloudFormation outputs (`--stack NAME`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from shared.resources import DEFAULT_STACK_NAME, LOCAL_NAMES, Outputs


class TargetError(Exception):
    """The stack or endpoint cannot be used; the message says what to do."""


# Seconds, not botocore's 60 s connect and read timeouts: an endpoint that accepts and never answers (an https
# typo on a local port, a blackholed network) fails in seconds with a message, as the Lambdas' clients do.
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 20
# Room for reconcile's parallel writers: botocore's default pool (10) opens a new connection per extra call.
CLIENT_CONFIG = Config(
    max_pool_connections=32,
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "max_attempts": 3},
)
# The local stack's region (`dsync.local.stack.REGION`): it answers whatever region the shell names.
LOCAL_REGION = "us-east-1"


@dataclass(frozen=True)
class Target:
    description: str
    region: str
    endpoint_url: str | None
    table_name: str
    event_queue_url: str
    dead_letter_queue_url: str
    work_queue_url: str
    overflow_queue_url: str | None = None  # None for a stack deployed before the overflow lane
    webhook_secret_id: str | None = None
    workos_api_key_secret_id: str | None = None
    webhook_url: str | None = None  # the deployed stack's API (the local stack's gateway is not known here)
    change_bus_name: str | None = None
    stack_name: str | None = None  # a deployed stack's (its log groups are found through it)
    sql_sink_secret_id: str | None = None  # the SQL sink's connection secret, when the stack has the sink
    session: boto3.Session | None = field(default=None, compare=False, repr=False)

    def client(self, service: str) -> Any:
        session = self.session or boto3.Session()
        return session.client(  # type: ignore[call-overload]
            service, region_name=self.region, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG
        )


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or LOCAL_REGION


def aws_session(profile: str | None) -> boto3.Session:
    """Credentials and region as the AWS CLI finds them: --profile, else $AWS_PROFILE, else the default chain."""
    try:
        return boto3.Session(profile_name=profile) if profile else boto3.Session()
    except ProfileNotFound as error:
        raise TargetError(f"{error}; check --profile / $AWS_PROFILE against ~/.aws/config") from error


def resolve_target(
    *, aws_endpoint: str | None, stack: str | None, region: str | None = None, profile: str | None = None
) -> Target:
    """The local stack (an endpoint) or a deployed stack. The region: --region, else $AWS_REGION, else the profile's
    (or $AWS_DEFAULT_REGION), as the AWS CLI resolves it; the local stack always answers in its own."""
    endpoint = aws_endpoint or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return _local(endpoint)
    session = aws_session(profile)
    chosen = region or os.environ.get("AWS_REGION") or session.region_name
    if not chosen:
        raise TargetError(
            "no AWS region: pass --region, set AWS_REGION, or set the profile's region (aws configure set region ...)"
        )
    return _deployed(stack or DEFAULT_STACK_NAME, chosen, session)


def local_credentials() -> None:
    """moto's server accepts any credentials; make sure boto3 has some, without touching real ones."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")


def _local(endpoint: str) -> Target:
    local_credentials()
    region = LOCAL_REGION
    sqs = boto3.client("sqs", region_name=region, endpoint_url=endpoint, config=CLIENT_CONFIG)
    try:
        urls = {
            name: sqs.get_queue_url(QueueName=name)["QueueUrl"]
            for name in (
                LOCAL_NAMES.event_queue,
                LOCAL_NAMES.event_dead_letter_queue,
                LOCAL_NAMES.work_queue,
                LOCAL_NAMES.overflow_queue,
            )
        }
    except (ClientError, BotoCoreError) as error:
        raise TargetError(
            f"no local stack at {endpoint} ({_short(error)}); start one with `dsync local` or check --aws-endpoint"
        ) from error
    return Target(
        description=f"the local stack at {endpoint} ({region})",
        region=region,
        endpoint_url=endpoint,
        table_name=LOCAL_NAMES.table,
        event_queue_url=urls[LOCAL_NAMES.event_queue],
        dead_letter_queue_url=urls[LOCAL_NAMES.event_dead_letter_queue],
        work_queue_url=urls[LOCAL_NAMES.work_queue],
        overflow_queue_url=urls[LOCAL_NAMES.overflow_queue],
        webhook_secret_id=LOCAL_NAMES.webhook_secret,
        workos_api_key_secret_id=LOCAL_NAMES.workos_api_key_secret,
        change_bus_name=LOCAL_NAMES.change_bus,
        sql_sink_secret_id=LOCAL_NAMES.sql_sink_secret,
    )


def _deployed(stack: str, region: str, session: boto3.Session) -> Target:
    try:
        cloudformation = session.client("cloudformation", region_name=region, config=CLIENT_CONFIG)
        response = cloudformation.describe_stacks(StackName=stack)
    except NoCredentialsError as error:
        raise TargetError(
            "no AWS credentials found: configure them for the deployed stack, or pass --aws-endpoint "
            "(e.g. http://127.0.0.1:4566) for the local stack"
        ) from error
    except (ClientError, BotoCoreError) as error:
        raise TargetError(f"cannot read stack {stack!r} in {region}: {_short(error)}") from error
    outputs = {o["OutputKey"]: o["OutputValue"] for o in response["Stacks"][0].get("Outputs", [])}
    # arn:aws:cloudformation:<region>:<account>:stack/<name>/<id>: the account without another call
    account = str(response["Stacks"][0].get("StackId", "")).split(":")[4:5] or ["?"]
    try:
        return Target(
            description=f"stack {stack} in account {account[0]} ({region})",
            region=region,
            endpoint_url=None,
            session=session,
            table_name=outputs[Outputs.TABLE_NAME],
            event_queue_url=outputs[Outputs.EVENT_QUEUE_URL],
            dead_letter_queue_url=outputs[Outputs.DEAD_LETTER_QUEUE_URL],
            work_queue_url=outputs[Outputs.WORK_QUEUE_URL],
            overflow_queue_url=outputs.get(Outputs.OVERFLOW_QUEUE_URL),
            webhook_secret_id=outputs.get(Outputs.WEBHOOK_SECRET_ARN),
            workos_api_key_secret_id=outputs.get(Outputs.WORKOS_API_KEY_SECRET_ARN),
            webhook_url=outputs.get(Outputs.WEBHOOK_URL),
            change_bus_name=outputs.get(Outputs.CHANGE_BUS_NAME),
            stack_name=stack,
            sql_sink_secret_id=outputs.get(Outputs.SQL_SINK_SECRET_ARN),
        )
    except KeyError as error:
        raise TargetError(f"stack {stack!r} has no output {error}: is it this project's stack?") from error


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:300]
