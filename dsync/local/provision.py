"""Create the stack's resources on an AWS endpoint (moto's server or in-process moto) from `shared.resources`.

This is the local twin of `infra/`: same table schema, same queue semantics and redrive, same secret formats, so
the handlers run unchanged. Idempotent: provisioning an endpoint that already has the resources reuses them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3

from shared.model.schema import TTL_ATTRIBUTE, create_table_request
from shared.resources import (
    EVENT_DEAD_LETTER_QUEUE,
    EVENT_QUEUE,
    LOCAL_NAMES,
    MAX_RECEIVE_COUNT,
    OVERFLOW_QUEUE,
    WORK_DEAD_LETTER_QUEUE,
    WORK_QUEUE,
    Env,
    LocalNames,
    QueueSpec,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class LocalResources:
    table_name: str
    table_stream_arn: str
    event_queue_url: str
    event_dead_letter_queue_url: str
    overflow_queue_url: str
    work_queue_url: str
    work_dead_letter_queue_url: str
    change_bus_name: str
    webhook_secret_arn: str
    workos_api_key_secret_arn: str

    def environment(self) -> dict[str, str]:
        """The environment variables the functions read, as the CDK stack sets them."""
        return {
            Env.TABLE_NAME: self.table_name,
            Env.EVENT_QUEUE_URL: self.event_queue_url,
            Env.DEAD_LETTER_QUEUE_URL: self.event_dead_letter_queue_url,
            Env.OVERFLOW_QUEUE_URL: self.overflow_queue_url,
            Env.WORK_QUEUE_URL: self.work_queue_url,
            Env.CHANGE_BUS_NAME: self.change_bus_name,
            Env.WEBHOOK_SECRET_ID: self.webhook_secret_arn,
            Env.WORKOS_API_KEY_SECRET_ID: self.workos_api_key_secret_arn,
        }


def provision(
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    names: LocalNames = LOCAL_NAMES,
    webhook_secrets: Sequence[str] = (),
    workos_api_key: str | None = None,
    workos_base_url: str | None = None,
) -> LocalResources:
    session = boto3.session.Session(region_name=region)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    events = session.client("events", endpoint_url=endpoint_url)
    secrets = session.client("secretsmanager", endpoint_url=endpoint_url)

    if names.table not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(**create_table_request(names.table))
        dynamodb.update_time_to_live(
            TableName=names.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
    stream_arn = dynamodb.describe_table(TableName=names.table)["Table"].get("LatestStreamArn", "")

    event_dlq_url, event_dlq_arn = _queue(sqs, names.event_dead_letter_queue, EVENT_DEAD_LETTER_QUEUE, None)
    event_queue_url, _ = _queue(sqs, names.event_queue, EVENT_QUEUE, event_dlq_arn)
    overflow_queue_url, _ = _queue(sqs, names.overflow_queue, OVERFLOW_QUEUE, event_dlq_arn)
    work_dlq_url, work_dlq_arn = _queue(sqs, names.work_dead_letter_queue, WORK_DEAD_LETTER_QUEUE, None)
    work_queue_url, _ = _queue(sqs, names.work_queue, WORK_QUEUE, work_dlq_arn)

    if names.change_bus not in {bus["Name"] for bus in events.list_event_buses()["EventBuses"]}:
        events.create_event_bus(Name=names.change_bus)

    webhook_value = json.dumps({"webhook_secrets": list(webhook_secrets)})
    # The base URL beside the key: `dsync reconcile` on this stack then reaches the fake, not WorkOS.
    api_key_value = json.dumps(
        {"api_key": workos_api_key or "", **({"base_url": workos_base_url} if workos_base_url else {})}
    )
    return LocalResources(
        table_name=names.table,
        table_stream_arn=stream_arn,
        event_queue_url=event_queue_url,
        event_dead_letter_queue_url=event_dlq_url,
        overflow_queue_url=overflow_queue_url,
        work_queue_url=work_queue_url,
        work_dead_letter_queue_url=work_dlq_url,
        change_bus_name=names.change_bus,
        webhook_secret_arn=_secret(secrets, names.webhook_secret, webhook_value),
        workos_api_key_secret_arn=_secret(secrets, names.workos_api_key_secret, api_key_value),
    )


def _queue(sqs: SQSClient, name: str, spec: QueueSpec, dead_letter_arn: str | None) -> tuple[str, str]:
    attributes = {
        "MessageRetentionPeriod": str(spec.retention_seconds),
        "VisibilityTimeout": str(spec.visibility_timeout_seconds),
        "MaximumMessageSize": str(spec.max_message_bytes),
    }
    if spec.fifo:
        attributes |= {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    if dead_letter_arn:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
        )
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _secret(secrets: SecretsManagerClient, name: str, value: str) -> str:
    try:
        return secrets.create_secret(Name=name, SecretString=value)["ARN"]
    except secrets.exceptions.ResourceExistsException:
        return secrets.put_secret_value(SecretId=name, SecretString=value)["ARN"]
