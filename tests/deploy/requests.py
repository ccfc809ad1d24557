"""Each AWS request a function makes, as the authorizations IAM evaluates for it.

Action names are IAM's, not the API's: SendMessageBatch is authorized as sqs:SendMessage, DeleteMessageBatch as
sqs:DeleteMessage, a transaction as the per-item action on each table, a stream read as dynamodb:GetRecords. Resources
are exact ARNs (a table's index as `<table>/index/<name>`). A request the module cannot map raises
`UnevaluableError`, which fails the check.

The KMS calls a service makes for the caller count as the caller's requests, checked against the caller's policy
and the key policy, with kms:ViaService set:
- SQS, SSE-KMS: a producer needs kms:GenerateDataKey and kms:Decrypt, a consumer kms:Decrypt
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html);
- Secrets Manager: GetSecretValue of a secret under a customer managed key needs kms:Decrypt
  (https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html);
- DynamoDB and its streams under a customer managed key: kms:Decrypt and kms:DescribeKey for a principal reading or
  writing (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/encryption.howitworks.html). Whether a
  writer also needs Encrypt/GenerateDataKey is what only a real account settles (issue #19): not asserted here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.deploy.policy import UnevaluableError
from tests.deploy.resources import Document, Resources

RENAMED = {
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
}
TABLE_OPERATIONS = {"GetItem", "PutItem", "DeleteItem", "UpdateItem", "Query", "Scan", "DescribeTable"}
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
SQS_SENDS = {"SendMessage", "SendMessageBatch"}
NO_AUTHORIZATION = {("sts", "GetCallerIdentity")}


@dataclass(frozen=True)
class Authorization:
    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    modelled: frozenset[str] = frozenset()
    resource_policy: Document | None = None
    key_policy: Document | None = None  # KMS: the key policy must allow (itself, or by delegating to IAM)
    via: str | None = None  # the service that calls KMS for the caller


def authorizations(
    service: str, operation: str, params: Mapping[str, Any], resources: Resources
) -> list[Authorization]:
    if (service, operation) in NO_AUTHORIZATION:
        return []
    mapper = _MAPPERS.get(service)
    if mapper is None:
        raise UnevaluableError(f"no IAM mapping for {service}:{operation}: add it to tests/deploy/requests.py")
    return list(mapper(operation, params, resources))


def _dynamodb(operation: str, params: Mapping[str, Any], resources: Resources) -> Iterator[Authorization]:
    if operation in ("BatchGetItem", "BatchWriteItem"):
        for name, entries in params["RequestItems"].items():
            table = resources.table(name)
            yield _leading(f"dynamodb:{operation}", table.arn, _batch_keys(entries, table.partition_key))
            yield from _table_key(resources, name)
    elif operation in ("TransactWriteItems", "TransactGetItems"):
        for item in params["TransactItems"]:
            (kind, request), *_ = item.items()
            table = resources.table(request["TableName"])
            action = "GetItem" if kind == "Get" else TRANSACT_ACTIONS[kind]
            key = request.get("Key") or request.get("Item") or {}
            yield _leading(f"dynamodb:{action}", table.arn, _values([key], table.partition_key))
            yield from _table_key(resources, request["TableName"])
    elif operation in TABLE_OPERATIONS:
        table = resources.table(params["TableName"])
        index = params.get("IndexName")
        resource = f"{table.arn}/index/{index}" if index else table.arn
        keys: tuple[str, ...] | None
        if operation == "Scan":
            keys = ()  # no leading key: absent
        elif operation == "Query":
            keys = None if index else _query_partition(params, table.partition_key)
        else:
            keys = _values([params.get("Key") or params.get("Item") or {}], table.partition_key)
        yield _leading(f"dynamodb:{operation}", resource, keys)
        if operation != "DescribeTable":
            yield from _table_key(resources, params["TableName"])
    else:
        raise UnevaluableError(f"no IAM mapping for dynamodb:{operation}")


def _streams(operation: str, params: Mapping[str, Any], resources: Resources) -> Iterator[Authorization]:
    if operation == "ListStreams":
        yield Authorization("dynamodb:ListStreams", "*")
        return
    if operation == "GetRecords":
        stream_arn = resources.stream_of_iterator.get(params["ShardIterator"])
        if stream_arn is None:
            raise UnevaluableError("GetRecords with a shard iterator the checker did not see issued")
    elif operation in ("DescribeStream", "GetShardIterator"):
        stream_arn = params["StreamArn"]
    else:
        raise UnevaluableError(f"no IAM mapping for dynamodbstreams:{operation}")
    yield Authorization(f"dynamodb:{operation}", stream_arn)
    if operation == "GetRecords":
        yield from _table_key(resources, resources.table_of_stream(stream_arn).name)


def _sqs(operation: str, params: Mapping[str, Any], resources: Resources) -> Iterator[Authorization]:
    action = "sqs:" + RENAMED.get(("sqs", operation), operation)
    if operation == "GetQueueUrl":
        account = params.get("QueueOwnerAWSAccountId", resources.account)
        yield Authorization(action, f"arn:aws:sqs:{resources.region}:{account}:{params['QueueName']}")
        return
    queue = resources.queue(params["QueueUrl"])
    yield Authorization(action, queue.arn, resource_policy=queue.policy)
    if queue.key_arn and (operation in SQS_SENDS or operation == "ReceiveMessage"):
        actions = ("kms:GenerateDataKey", "kms:Decrypt") if operation in SQS_SENDS else ("kms:Decrypt",)
        yield from _kms(resources, queue.key_arn, actions, via="sqs")


def _secrets(operation: str, params: Mapping[str, Any], resources: Resources) -> Iterator[Authorization]:
    if operation not in ("GetSecretValue", "DescribeSecret"):
        raise UnevaluableError(f"no IAM mapping for secretsmanager:{operation}")
    secret = resources.secret(params["SecretId"])
    yield Authorization(f"secretsmanager:{operation}", secret.arn, resource_policy=secret.policy)
    if operation == "GetSecretValue" and secret.key_arn:
        yield from _kms(resources, secret.key_arn, ("kms:Decrypt",), via="secretsmanager")


def _events(operation: str, params: Mapping[str, Any], resources: Resources) -> Iterator[Authorization]:
    if operation != "PutEvents":
        raise UnevaluableError(f"no IAM mapping for events:{operation}")
    for name in dict.fromkeys(entry.get("EventBusName", "default") for entry in params["Entries"]):
        bus = resources.bus(name)
        if bus.key_arn:
            raise UnevaluableError(f"bus {bus.name} has a KMS key: its KMS calls are not modelled")
        yield Authorization("events:PutEvents", bus.arn, resource_policy=bus.policy)


def _cloudwatch(operation: str, params: Mapping[str, Any], resources: Resources) -> Iterator[Authorization]:
    if operation != "PutMetricData":
        raise UnevaluableError(f"no IAM mapping for cloudwatch:{operation}")
    namespace = {"cloudwatch:namespace": (params["Namespace"],)}
    yield Authorization("cloudwatch:PutMetricData", "*", namespace, frozenset(namespace))


def _kms_direct(operation: str, params: Mapping[str, Any], resources: Resources) -> Iterator[Authorization]:
    key_id = str(params["KeyId"])
    key_arn = next((arn for arn in resources.key_policies if arn == key_id or arn.endswith("/" + key_id)), None)
    if key_arn is None:
        raise UnevaluableError(f"kms:{operation} on {key_id}: not a key of the deployment (aliases are not mapped)")
    yield from _kms(resources, key_arn, (f"kms:{operation}",), via=None)


def _kms(resources: Resources, key_arn: str, actions: tuple[str, ...], *, via: str | None) -> Iterator[Authorization]:
    context = {"kms:CallerAccount": (resources.account,)}
    if via:
        context["kms:ViaService"] = (f"{via}.{resources.region}.amazonaws.com",)
    for action in actions:
        yield Authorization(
            action,
            key_arn,
            context,
            frozenset({"kms:ViaService", "kms:CallerAccount"}),
            key_policy=resources.key_policy(key_arn),
            via=via,
        )


def _table_key(resources: Resources, table_name: str) -> Iterator[Authorization]:
    table = resources.table(table_name)
    if table.key_arn:
        yield from _kms(resources, table.key_arn, ("kms:Decrypt", "kms:DescribeKey"), via="dynamodb")


def _leading(action: str, resource: str, keys: tuple[str, ...] | None) -> Authorization:
    """A DynamoDB authorization; `keys` are the request's partition keys (dynamodb:LeadingKeys), () for none (a
    Scan), None where the checker does not model them (a Query of an index)."""
    if keys is None:
        return Authorization(action, resource)
    context = {"dynamodb:LeadingKeys": keys} if keys else {}
    return Authorization(action, resource, context, frozenset({"dynamodb:LeadingKeys"}))


def _batch_keys(entries: Any, partition_key: str) -> tuple[str, ...]:
    if isinstance(entries, dict):  # BatchGetItem: {"Keys": [...]}
        return _values(entries["Keys"], partition_key)
    items = [e.get("PutRequest", {}).get("Item") or e.get("DeleteRequest", {}).get("Key") for e in entries]
    return _values(items, partition_key)


def _values(items: Any, partition_key: str) -> tuple[str, ...]:
    found = []
    for item in items:
        value = item.get(partition_key)
        if not isinstance(value, dict) or len(value) != 1:
            raise UnevaluableError(f"no partition key {partition_key} in {item}")
        found.append(str(next(iter(value.values()))))
    return tuple(dict.fromkeys(found))


def _query_partition(params: Mapping[str, Any], partition_key: str) -> tuple[str, ...] | None:
    """The partition a Query of the table reads: `<key> = :value` in its KeyConditionExpression."""
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    for left, right in re.findall(r"([#\w]+)\s*=\s*(:\w+)", params.get("KeyConditionExpression", "")):
        if names.get(left, left) == partition_key:
            return _values([{partition_key: values[right]}], partition_key)
    return None


_MAPPERS = {
    "dynamodb": _dynamodb,
    "dynamodbstreams": _streams,
    "sqs": _sqs,
    "secretsmanager": _secrets,
    "events": _events,
    "cloudwatch": _cloudwatch,
    "kms": _kms_direct,
}
