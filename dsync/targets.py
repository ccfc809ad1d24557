"""Where the operator commands act: the local stack (an AWS endpoint such as moto's server) or a deployed stack.

`--aws-endpoint URL` (or `AWS_ENDPOINT_URL`) selects the local stack and its fixed names; otherwise the deployed
stack's resources come from its CloudFormation outputs (`--stack NAME`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from shared.resources import DEFAULT_STACK_NAME, LOCAL_NAMES, Outputs


class TargetError(Exception):
    """The stack or endpoint cannot be used; the message says what to do."""


CLIENT_CONFIG = Config(max_pool_connections=32)


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

    def client(self, service: str) -> Any:
        # Room for reconcile's parallel writers: botocore's default pool (10) opens a new connection per extra call.
        return boto3.client(  # type: ignore[call-overload]
            service, region_name=self.region, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG
        )


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def resolve_target(*, aws_endpoint: str | None, stack: str | None, region: str | None = None) -> Target:
    endpoint = aws_endpoint or os.environ.get("AWS_ENDPOINT_URL")
    region = region or default_region()
    if endpoint:
        return _local(endpoint, region)
    return _deployed(stack or DEFAULT_STACK_NAME, region)


def local_credentials() -> None:
    """moto's server accepts any credentials; make sure boto3 has some, without touching real ones."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")


def _local(endpoint: str, region: str) -> Target:
    local_credentials()
    sqs = boto3.client("sqs", region_name=region, endpoint_url=endpoint)
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
        description=f"local stack at {endpoint}",
        region=region,
        endpoint_url=endpoint,
        table_name=LOCAL_NAMES.table,
        event_queue_url=urls[LOCAL_NAMES.event_queue],
        dead_letter_queue_url=urls[LOCAL_NAMES.event_dead_letter_queue],
        work_queue_url=urls[LOCAL_NAMES.work_queue],
        overflow_queue_url=urls[LOCAL_NAMES.overflow_queue],
        webhook_secret_id=LOCAL_NAMES.webhook_secret,
        workos_api_key_secret_id=LOCAL_NAMES.workos_api_key_secret,
    )


def _deployed(stack: str, region: str) -> Target:
    try:
        response = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack)
    except NoCredentialsError as error:
        raise TargetError(
            "no AWS credentials found: configure them for the deployed stack, or pass --aws-endpoint "
            "(e.g. http://127.0.0.1:4566) for the local stack"
        ) from error
    except (ClientError, BotoCoreError) as error:
        raise TargetError(f"cannot read stack {stack!r} in {region}: {_short(error)}") from error
    outputs = {o["OutputKey"]: o["OutputValue"] for o in response["Stacks"][0].get("Outputs", [])}
    try:
        return Target(
            description=f"stack {stack} ({region})",
            region=region,
            endpoint_url=None,
            table_name=outputs[Outputs.TABLE_NAME],
            event_queue_url=outputs[Outputs.EVENT_QUEUE_URL],
            dead_letter_queue_url=outputs[Outputs.DEAD_LETTER_QUEUE_URL],
            work_queue_url=outputs[Outputs.WORK_QUEUE_URL],
            overflow_queue_url=outputs.get(Outputs.OVERFLOW_QUEUE_URL),
            webhook_secret_id=outputs.get(Outputs.WEBHOOK_SECRET_ARN),
            workos_api_key_secret_id=outputs.get(Outputs.WORKOS_API_KEY_SECRET_ARN),
        )
    except KeyError as error:
        raise TargetError(f"stack {stack!r} has no output {error}: is it this project's stack?") from error


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:300]
