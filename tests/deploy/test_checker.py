"""The checker's own rules, without moto: IAM's action names and resources for each request, the KMS calls services
make for the caller, conditions, key policies, and a grant taken out of a policy document."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.iam_checker import decide
from tests.deploy.policy import UnevaluableError, statements
from tests.deploy.requests import Authorization, authorizations
from tests.deploy.resources import Queue, Resources, Secret, Table
from tests.deploy.usage import without

pytestmark = pytest.mark.deploy

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/fn"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k1"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t"
QUEUE_URL = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/q.fifo"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:q.fifo"
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:s-AbCdEf"
DELEGATING = {
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}
    ]
}
INSECURE_DENIED = {
    "Statement": [
        {
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "sqs:*",
            "Resource": QUEUE,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
}
RESOURCES = Resources(
    ACCOUNT,
    "us-east-1",
    queues={QUEUE_URL: Queue(QUEUE_URL, QUEUE, KEY, INSECURE_DENIED)},
    tables={"t": Table("t", TABLE, "pk", KEY, f"{TABLE}/stream/1")},
    secrets={SECRET: Secret(SECRET, "s", KEY, None)},
    buses={},
    key_policies={KEY: DELEGATING},
)


def names(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(a.action, a.resource, a.via) for a in authorizations(service, operation, params, RESOURCES)]


def allowed(auth: Authorization, *grants: dict[str, Any]) -> bool:
    return decide(auth, ROLE, statements({"Statement": list(grants)}, "policy"), ACCOUNT)[0]


def test_sqs_batches_are_authorized_as_the_single_actions_with_the_producers_and_consumers_kms_calls() -> None:
    entries = {"QueueUrl": QUEUE_URL, "Entries": []}
    assert names("sqs", "SendMessageBatch", entries) == [
        ("sqs:SendMessage", QUEUE, None),
        ("kms:GenerateDataKey", KEY, "sqs"),
        ("kms:Decrypt", KEY, "sqs"),
    ]
    assert names("sqs", "DeleteMessageBatch", entries) == [("sqs:DeleteMessage", QUEUE, None)]
    assert names("sqs", "ReceiveMessage", {"QueueUrl": QUEUE_URL}) == [
        ("sqs:ReceiveMessage", QUEUE, None),
        ("kms:Decrypt", KEY, "sqs"),
    ]


def test_dynamodb_requests_name_the_table_or_index_and_the_table_keys_kms_calls() -> None:
    query = {"TableName": "t", "IndexName": "directories", "KeyConditionExpression": "x = :x"}
    assert names("dynamodb", "Query", query)[0] == ("dynamodb:Query", f"{TABLE}/index/directories", None)
    writes = {
        "RequestItems": {
            "t": [{"PutRequest": {"Item": {"pk": {"S": "a"}}}}, {"DeleteRequest": {"Key": {"pk": {"S": "b"}}}}]
        }
    }
    [batch, decrypt, describe] = authorizations("dynamodb", "BatchWriteItem", writes, RESOURCES)
    assert (batch.action, batch.context["dynamodb:LeadingKeys"]) == ("dynamodb:BatchWriteItem", ("a", "b"))
    assert (decrypt.action, describe.action, decrypt.via) == ("kms:Decrypt", "kms:DescribeKey", "dynamodb")
    transaction = {
        "TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}}}},
            {"Delete": {"TableName": "t", "Key": {"pk": {"S": "a"}}}},
        ]
    }
    assert [a for a, _, via in names("dynamodb", "TransactWriteItems", transaction) if not via] == [
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    ]


def test_a_secret_read_needs_decrypt_through_secrets_manager_and_unmapped_requests_fail_loudly() -> None:
    assert names("secretsmanager", "GetSecretValue", {"SecretId": "s"}) == [
        ("secretsmanager:GetSecretValue", SECRET, None),
        ("kms:Decrypt", KEY, "secretsmanager"),
    ]
    with pytest.raises(UnevaluableError):
        authorizations("dynamodbstreams", "GetRecords", {"ShardIterator": "never issued"}, RESOURCES)
    with pytest.raises(UnevaluableError):
        authorizations("lambda", "Invoke", {}, RESOURCES)


PARTITION_GRANT = {
    "Effect": "Allow",
    "Action": ["dynamodb:GetItem", "dynamodb:Scan"],
    "Resource": TABLE,
    "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["~TAIL#events"]}},
}


def item(action: str, partition: str | None) -> Authorization:
    params: dict[str, Any] = (
        {"TableName": "t"} if partition is None else {"TableName": "t", "Key": {"pk": {"S": partition}}}
    )
    return authorizations("dynamodb", action, params, RESOURCES)[0]


def test_leading_keys_bound_item_requests_and_not_a_scan() -> None:
    """ForAllValues on an absent key holds: a Scan (no leading key) passes a LeadingKeys condition, which is why
    `infra.grants` refuses Scan among partition actions."""
    assert allowed(item("GetItem", "~TAIL#events"), PARTITION_GRANT)
    assert not allowed(item("GetItem", "DIR#other"), PARTITION_GRANT)
    assert allowed(item("Scan", None), PARTITION_GRANT)


def test_exact_arns_wildcards_and_conditions_the_checker_cannot_evaluate() -> None:
    get = item("GetItem", "DIR#a")
    assert allowed(get, {"Effect": "Allow", "Action": "dynamodb:Get*", "Resource": TABLE})
    assert not allowed(get, {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": f"{TABLE}/index/*"})
    assert not allowed(
        get,
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "dynamodb:*", "Resource": "*"},
    )
    unknown_key = {
        "Effect": "Allow",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceVpc": "v"}},
    }
    verdict = decide(get, ROLE, statements({"Statement": [unknown_key]}, "policy"), ACCOUNT)
    assert not verdict[0] and "not evaluable" in verdict[1]


def test_kms_needs_the_key_policy_to_allow_and_a_queue_policy_deny_applies_only_as_written() -> None:
    [send, generate, _] = authorizations("sqs", "SendMessage", {"QueueUrl": QUEUE_URL}, RESOURCES)
    assert allowed(send, {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE})  # over TLS
    key_grant = {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": KEY}
    assert allowed(generate, key_grant)
    undelegated = Authorization(generate.action, KEY, generate.context, generate.modelled, key_policy={"Statement": []})
    assert not allowed(undelegated, key_grant)
    via_secrets = {
        "Statement": [
            {
                **DELEGATING["Statement"][0],
                "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}},
            }
        ]
    }
    only_via_secrets = Authorization(generate.action, KEY, generate.context, generate.modelled, key_policy=via_secrets)
    assert not allowed(only_via_secrets, key_grant)  # SQS's call, not Secrets Manager's


def test_a_grant_taken_out_keeps_the_rest_of_its_statements() -> None:
    document = {"Statement": [{"Effect": "Allow", "Action": ["a:One", "a:Two"], "Resource": ["r1", "r2"]}]}
    assert without(document, "a:One", "r1")["Statement"] == [
        {"Effect": "Allow", "Action": ["a:Two"], "Resource": ["r1", "r2"]},
        {"Effect": "Allow", "Action": "a:One", "Resource": ["r2"]},
    ]
