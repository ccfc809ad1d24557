"""Least-privilege grant helpers. They say *how* a permission is written; `infra/stack.py` decides who gets what.

CDK's convenience grants are broader than these functions need: `grant_send_messages` adds
`kms:ReEncrypt*`/`kms:GenerateDataKey*` wildcards and `grant_read_write_data` a dozen DynamoDB actions. These
helpers use the same grant machinery with exact action lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import jsii
from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

# What SQS asks of a producer on a KMS-encrypted queue (SQS developer guide, "Key management").
SQS_PRODUCER_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
# What DynamoDB asks of a caller on a CMK-encrypted table. Readers: decrypting the table key (cached per principal),
# the set of CDK's grant_read_data / grant_stream_read. Writers: CDK's grant_write_data set. Whether DynamoDB's own
# grants make the writers' encrypt actions unnecessary is something only a real account can show (issue #19), so the
# writers take the set AWS's own construct library grants rather than a narrower one no test here can prove.
DYNAMODB_READER_KEY_ACTIONS = ("kms:Decrypt", "kms:DescribeKey")
# (CDK's ReEncrypt* and GenerateDataKey* spelled out: cdk-nag refuses action wildcards, and these are all they match.)
DYNAMODB_WRITER_KEY_ACTIONS = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
)
DYNAMODB_WRITE_ACTIONS = frozenset(
    {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
)
# What a caller of GetSecretValue on a CMK-encrypted secret needs: kms:Decrypt through Secrets Manager only.
SECRETS_READER_KEY_ACTIONS = ("kms:Decrypt",)
# What an AWS service publishing to a KMS-encrypted SNS topic needs on its key (SNS developer guide, "Enable
# compatibility between event sources from AWS services and encrypted topics").
SNS_PUBLISHER_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey*")
# Item operations apply to the table only; indexes support Query (and Scan, which nothing here uses).
INDEX_ACTIONS = frozenset({"dynamodb:Query"})


def grant_send(queue: sqs.Queue, grantee: iam.IGrantable) -> iam.Grant:
    """sqs:SendMessage on `queue`, plus the KMS actions a producer needs on its key."""
    return queue.grants.actions(grantee, ["sqs:SendMessage"], key_actions=list(SQS_PRODUCER_KEY_ACTIONS))


def grant_table_actions(
    table: dynamodb.Table,
    index_arns: Sequence[str],
    key: kms.IKey,
    grantee: iam.IGrantable,
    actions: Sequence[str],
    *,
    query_table: bool = True,
    partition_actions: Sequence[str] = (),
    leading_keys: Sequence[str] = (),
) -> None:
    """Exactly `actions` on the table; those that work on indexes also on `index_arns`, the exact indexes the
    function reads (no `index/*`); `query_table=False` for a function that queries only indexes.

    `partition_actions` are granted only on the partitions `leading_keys` names (the `dynamodb:LeadingKeys`
    condition key), for a function that reads and writes one partition of its own."""
    item_actions = sorted(set(actions) - INDEX_ACTIONS)
    index_actions = sorted(set(actions) & INDEX_ACTIONS)
    if item_actions:
        iam.Grant.add_to_principal(grantee=grantee, actions=item_actions, resource_arns=[table.table_arn])
    if index_actions:
        resources = [table.table_arn] if query_table else []
        iam.Grant.add_to_principal(grantee=grantee, actions=index_actions, resource_arns=[*resources, *index_arns])
    if partition_actions:
        if not leading_keys or INDEX_ACTIONS.intersection(partition_actions) or "dynamodb:Scan" in partition_actions:
            # A Scan carries no leading key, so ForAllValues would allow it on every partition.
            raise ValueError("partition_actions need leading_keys and must be item actions (no Query or Scan)")
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=sorted(partition_actions),
            resource_arns=[table.table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": list(leading_keys)}},
        )
    writes = DYNAMODB_WRITE_ACTIONS.intersection([*actions, *partition_actions])
    key.grant(grantee, *(DYNAMODB_WRITER_KEY_ACTIONS if writes else DYNAMODB_READER_KEY_ACTIONS))


def grant_secret_read(secret: secretsmanager.ISecret, key: kms.IKey, grantee: iam.IGrantable) -> None:
    """secretsmanager:GetSecretValue on `secret` (the functions never call DescribeSecret, which CDK's `grant_read`
    adds) and kms:Decrypt on its key, only through Secrets Manager (kms:ViaService)."""
    iam.Grant.add_to_principal(
        grantee=grantee, actions=["secretsmanager:GetSecretValue"], resource_arns=[secret.secret_arn]
    )
    stack = Stack.of(key)
    iam.Grant.add_to_principal(
        grantee=grantee,
        actions=list(SECRETS_READER_KEY_ACTIONS),
        resource_arns=[key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{stack.region}.{stack.url_suffix}"}},
    )


@jsii.implements(lambda_.IEventSourceDlq)
class QueueOnFailure:
    """An event source mapping's on-failure destination, like `SqsDlq` but granting only what sending needs."""

    def __init__(self, queue: sqs.Queue) -> None:
        self._queue = queue

    def bind(
        self, target: lambda_.IEventSourceMapping, target_handler: lambda_.IFunction
    ) -> lambda_.DlqDestinationConfig:
        grant_send(self._queue, target_handler)
        return lambda_.DlqDestinationConfig(destination=self._queue.queue_arn)


def allow_cloudwatch_alarms(topic: sns.Topic, key: kms.Key, *, alarm_name_prefix: str) -> None:
    """Let this account's CloudWatch alarms named `<alarm_name_prefix>*` publish to a KMS-encrypted topic.

    The topic policy admits the CloudWatch service principal only for those alarms (aws:SourceArn,
    aws:SourceAccount: no confused deputy). The key policy lets CloudWatch encrypt the message for SNS; the SNS
    developer guide documents kms:GenerateDataKey* and kms:Decrypt for AWS services publishing to encrypted topics.
    The key encrypts only this topic, which the topic policy already guards.
    """
    stack = Stack.of(topic)
    cloudwatch = iam.ServicePrincipal("cloudwatch.amazonaws.com")
    alarms = stack.format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name=f"{alarm_name_prefix}*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[cloudwatch],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={"ArnLike": {"aws:SourceArn": alarms}, "StringEquals": {"aws:SourceAccount": stack.account}},
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(principals=[cloudwatch], actions=list(SNS_PUBLISHER_KEY_ACTIONS), resources=["*"])
    )
