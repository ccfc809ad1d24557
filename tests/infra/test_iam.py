"""Least privilege: each function role holds exactly the actions its handler uses, on exactly its resources."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.constructs.pipeline_function import PipelineFunction
from infra.grants import DYNAMODB_READER_KEY_ACTIONS, DYNAMODB_WRITER_KEY_ACTIONS
from infra.stack import DirectorySyncStack
from shared.model import schema
from shared.tail.cursor import TAIL_PK
from tests.infra.helpers import as_list, get_att_arn, logical_id, policy_statements, ref, resources

pytestmark = pytest.mark.infra

LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
SQS_CONSUME = {
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
}
SQS_SEND = {"sqs:SendMessage"}
# SSE-KMS queues: a producer needs GenerateDataKey + Decrypt, a consumer Decrypt.
SQS_KMS = {"kms:GenerateDataKey", "kms:Decrypt"}
# CMK-encrypted table and stream: readers Decrypt (table key) + DescribeKey; writers CDK's grant_write_data set.
TABLE_KMS = set(DYNAMODB_READER_KEY_ACTIONS)
TABLE_WRITER_KMS = set(DYNAMODB_WRITER_KEY_ACTIONS)
# GetSecretValue only (never DescribeSecret); kms:Decrypt on the secrets' own key, through Secrets Manager.
SECRET_READ = {"secretsmanager:GetSecretValue", "kms:Decrypt"}
# UpdateItem: the directories' counter items (ADD), written by apply's and reconcile's transitions
APPLY_ITEMS = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
# Scan: the key check's strongly consistent "has the mirror ever held a directory" read (shared.key_check)
RECONCILE_ITEMS = APPLY_ITEMS | {"dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:Scan"}
TAIL_ITEMS = {"dynamodb:Query", "dynamodb:Scan", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
STREAM_READ = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
# Lambda active tracing (enableTracing): the two X-Ray write actions, which have no resource-level permissions.
XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

EXPECTED_ACTIONS = {
    "ingest": LOGS | SQS_SEND | SQS_KMS | SECRET_READ,
    "apply": LOGS | SQS_CONSUME | SQS_SEND | SQS_KMS | APPLY_ITEMS | {"dynamodb:Query"} | TABLE_WRITER_KMS,
    "reconcile": LOGS
    | SQS_CONSUME
    | SQS_SEND
    | SQS_KMS
    | RECONCILE_ITEMS
    | {"dynamodb:Query"}
    | TABLE_WRITER_KMS
    | SECRET_READ,
    # Query (the directories index), Scan (the key check); its own partition's items under a LeadingKeys condition.
    "tail": LOGS | SQS_SEND | SQS_KMS | TAIL_ITEMS | TABLE_WRITER_KMS | SECRET_READ,
    "publish": LOGS
    | SQS_SEND
    | SQS_KMS
    | STREAM_READ
    | {"dynamodb:ListStreams", "dynamodb:BatchGetItem"}  # the change guard's read
    | TABLE_KMS
    | {"events:PutEvents"},
}


def functions(stack: DirectorySyncStack) -> list[PipelineFunction]:
    assert stack.tail is not None
    return [stack.ingest, stack.apply, stack.reconcile, stack.publish, stack.tail]


def role_grants(template: Template, fn: PipelineFunction) -> dict[str, set[str]]:
    """action -> resources (as JSON) granted to the function's role by identity policies and by the key policy."""
    role_ref = ref(fn.role)
    role_arn = get_att_arn(fn.role)
    grants: dict[str, set[str]] = defaultdict(set)
    for _, resource_type, statement in policy_statements(template):
        if statement["Effect"] != "Allow":
            continue
        if resource_type == "AWS::IAM::Policy":
            continue  # handled below with the attachment check
        if statement.get("Principal", {}).get("AWS") == role_arn:
            for action in as_list(statement["Action"]):
                grants[action].update(json.dumps(r, sort_keys=True) for r in as_list(statement["Resource"]))
    for policy in resources(template, "AWS::IAM::Policy").values():
        if role_ref not in policy["Properties"]["Roles"]:
            continue
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                grants[action].update(json.dumps(r, sort_keys=True) for r in as_list(statement["Resource"]))
    return grants


def arns(*values: Any) -> set[str]:
    return {json.dumps(value, sort_keys=True) for value in values}


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_role_has_exactly_the_expected_actions(stack: DirectorySyncStack, template: Template, name: str) -> None:
    fn = next(fn for fn in functions(stack) if fn.spec.name == name)
    assert set(role_grants(template, fn)) == EXPECTED_ACTIONS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_ACTIONS))
def test_tracing_adds_only_the_xray_write_actions(
    full_stack: DirectorySyncStack, full_template: Template, name: str
) -> None:
    fn = next(fn for fn in functions(full_stack) if fn.spec.name == name)
    grants = role_grants(full_template, fn)
    assert set(grants) == EXPECTED_ACTIONS[name] | XRAY_WRITE
    for action in XRAY_WRITE:
        assert grants[action] == arns("*")


def test_function_roles_have_no_managed_or_inline_policies(stack: DirectorySyncStack, template: Template) -> None:
    raw = template.to_json()["Resources"]
    for fn in functions(stack):
        role = raw[logical_id(fn.role)]["Properties"]
        assert "ManagedPolicyArns" not in role, fn.spec.name  # no AWSLambdaBasicExecutionRole
        assert "Policies" not in role, fn.spec.name
        assert role["AssumeRolePolicyDocument"]["Statement"] == [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
        ]


def test_each_function_writes_only_its_own_log_group(stack: DirectorySyncStack, template: Template) -> None:
    for fn in functions(stack):
        grants = role_grants(template, fn)
        for action in LOGS:
            assert grants[action] == arns(get_att_arn(fn.log_group)), fn.spec.name


def test_queue_grants_name_exact_queues(stack: DirectorySyncStack, template: Template) -> None:
    expected_send = {
        "ingest": arns(get_att_arn(stack.events.queue)),
        "apply": arns(
            get_att_arn(stack.events.dead_letter_queue),
            get_att_arn(stack.work.queue),
            get_att_arn(stack.overflow_queue),
        ),
        "reconcile": arns(get_att_arn(stack.work.queue)),
        "publish": arns(get_att_arn(stack.publish_dead_letter_queue)),
        "tail": arns(get_att_arn(stack.events.queue), get_att_arn(stack.work.queue)),
    }
    expected_consume = {
        "apply": arns(get_att_arn(stack.events.queue), get_att_arn(stack.overflow_queue)),
        "reconcile": arns(get_att_arn(stack.work.queue)),
    }
    for fn in functions(stack):
        grants = role_grants(template, fn)
        assert grants["sqs:SendMessage"] == expected_send[fn.spec.name]
        for action in SQS_CONSUME:
            assert grants.get(action, set()) == expected_consume.get(fn.spec.name, set()), (fn.spec.name, action)


def test_table_grants_name_the_table_and_only_the_indexes_each_function_queries(
    stack: DirectorySyncStack, template: Template
) -> None:
    """Issue #19: Query was granted on all four indexes to apply, reconcile and the tail; each needs at most one."""
    table_arn = get_att_arn(stack.directory.table)
    directories = {json.dumps(stack.resolve(stack.directory.index_arn(schema.DIRECTORIES_INDEX)), sort_keys=True)}
    for fn, items in ((stack.apply, APPLY_ITEMS), (stack.reconcile, RECONCILE_ITEMS)):
        grants = role_grants(template, fn)
        for action in items:
            assert grants[action] == arns(table_arn), (fn.spec.name, action)  # item operations: table only
    assert role_grants(template, stack.apply)["dynamodb:Query"] == arns(table_arn)  # partitions, no index
    assert role_grants(template, stack.reconcile)["dynamodb:Query"] == arns(table_arn) | directories
    assert stack.tail is not None
    assert role_grants(template, stack.tail)["dynamodb:Query"] == directories  # no partition of the table
    assert "index/*" not in json.dumps(template.to_json())


def test_secret_bus_and_stream_grants(stack: DirectorySyncStack, template: Template) -> None:
    ingest = role_grants(template, stack.ingest)
    assert ingest["secretsmanager:GetSecretValue"] == arns(ref(stack.secrets.webhook_secret))
    assert stack.tail is not None
    for fn in (stack.reconcile, stack.tail):
        assert role_grants(template, fn)["secretsmanager:GetSecretValue"] == arns(ref(stack.secrets.workos_api_key))
    assert all("secretsmanager:DescribeSecret" not in role_grants(template, fn) for fn in functions(stack))
    publish = role_grants(template, stack.publish)
    assert publish["events:PutEvents"] == arns(get_att_arn(stack.change_bus.bus))
    for action in STREAM_READ:
        assert publish[action] == arns(get_att_arn(stack.directory.table, "StreamArn"))


def test_kms_grants_name_their_keys_and_the_secrets_key_only_through_secrets_manager(
    stack: DirectorySyncStack, template: Template
) -> None:
    """Issue #19: one key encrypted the table, the queues and the secrets. The secrets now have their own key, of
    which a function gets kms:Decrypt only, only if it reads a secret, and only through Secrets Manager."""
    key_arn = arns(get_att_arn(stack.key))
    secrets_key_arn = get_att_arn(stack.secrets_key)
    readers = {stack.ingest.spec.name, stack.reconcile.spec.name, "tail"}
    for fn in functions(stack):
        for action, granted in role_grants(template, fn).items():
            if action.startswith("kms:"):
                # identity policies name the key; the key policy's own statements say "*" (= this key)
                assert granted <= key_arn | arns("*", secrets_key_arn), (fn.spec.name, action)
        on_secrets_key = [
            statement
            for statement in policy_statements_of(template, fn)
            if secrets_key_arn in as_list(statement["Resource"])
        ]
        if fn.spec.name not in readers:
            assert on_secrets_key == [], fn.spec.name
            continue
        ((statement,),) = [on_secrets_key]
        assert statement["Action"] == "kms:Decrypt"
        via = statement["Condition"]["StringEquals"]["kms:ViaService"]
        assert "secretsmanager." in json.dumps(via)


def test_the_secrets_have_their_own_key(stack: DirectorySyncStack, template: Template) -> None:
    for secret in (stack.secrets.webhook_secret, stack.secrets.workos_api_key):
        properties = template.to_json()["Resources"][logical_id(secret)]["Properties"]
        assert properties["KmsKeyId"] == get_att_arn(stack.secrets_key)
    # and nothing else uses the secrets key
    text = json.dumps({k: v for k, v in template.to_json()["Resources"].items() if v["Type"] != "AWS::IAM::Policy"})
    assert text.count(logical_id(stack.secrets_key)) == 2 + 1  # two secrets, and the key itself


def test_the_tail_writes_only_its_own_partition(stack: DirectorySyncStack, template: Template) -> None:
    """Issue #19: PutItem and DeleteItem on the whole table for a function that touches only `pk = ~TAIL#events`."""
    assert stack.tail is not None
    table_arn = get_att_arn(stack.directory.table)
    item_statements = [
        statement
        for statement in policy_statements_of(template, stack.tail)
        if {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"} & set(as_list(statement["Action"]))
    ]
    ((statement,),) = [item_statements]
    assert set(as_list(statement["Action"])) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
    assert statement["Resource"] == table_arn
    assert statement["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [TAIL_PK]}}


def policy_statements_of(template: Template, fn: PipelineFunction) -> list[dict[str, Any]]:
    """The statements of the identity policies attached to the function's role."""
    role_ref = ref(fn.role)
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if role_ref in policy["Properties"]["Roles"]
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"])
    ]


def test_no_wildcard_actions(variant: tuple[DirectorySyncStack, Template]) -> None:
    """No Allow statement grants "*" or a whole service, except the key policy's account-root statement.

    That statement (`kms:*` for arn:aws:iam::<account>:root) is the default key policy: it lets IAM policies of the
    account govern the key and keeps the key manageable; without it the key could become unmanageable.
    """
    _, template = variant
    for resource_id, resource_type, statement in policy_statements(template):
        if statement["Effect"] != "Allow":
            continue  # the TLS-only queue policies deny sqs:*
        for action in as_list(statement["Action"]):
            service_wide = action == "*" or action.endswith(":*")
            if service_wide:
                assert resource_type == "AWS::KMS::Key", (resource_id, action)
                assert action == "kms:*"
                assert "Condition" not in statement
                assert json.dumps(statement["Principal"]["AWS"]).endswith(':root"]]}')
            if resource_type == "AWS::IAM::Policy":
                assert "*" not in action, (resource_id, action)  # no kms:ReEncrypt* / kms:GenerateDataKey*


@pytest.mark.parametrize(
    ("template_fixture", "expected"),
    [
        ("template", {"dynamodb:ListStreams"}),
        ("full_template", {"dynamodb:ListStreams"} | XRAY_WRITE),  # enableTracing
        ("alternative_template", {"dynamodb:ListStreams"}),
    ],
)
def test_resource_star_only_where_aws_requires_it(
    request: pytest.FixtureRequest, template_fixture: str, expected: set[str]
) -> None:
    """Identity policies use Resource "*" only for dynamodb:ListStreams and, with tracing on, the X-Ray write
    actions: none of them has resource-level permissions.

    Key policies always say Resource "*": in a key policy it means the key itself.
    """
    template: Template = request.getfixturevalue(template_fixture)
    star_actions: set[str] = set()
    for _, resource_type, statement in policy_statements(template):
        if statement["Effect"] == "Allow" and "*" in as_list(statement.get("Resource", [])):
            if resource_type == "AWS::KMS::Key":
                continue
            assert resource_type == "AWS::IAM::Policy"
            assert as_list(statement["Resource"]) == ["*"]
            star_actions.update(as_list(statement["Action"]))
    assert star_actions == expected


def test_only_the_api_gateway_logging_role_uses_a_managed_policy(stack: DirectorySyncStack, template: Template) -> None:
    with_managed = {
        role_id: role["Properties"]["ManagedPolicyArns"]
        for role_id, role in resources(template, "AWS::IAM::Role").items()
        if "ManagedPolicyArns" in role["Properties"]
    }
    cloudwatch_role = stack.api.rest_api.node.find_child("CloudWatchRole")
    assert list(with_managed) == [logical_id(cloudwatch_role)]
    assert "AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(with_managed)
