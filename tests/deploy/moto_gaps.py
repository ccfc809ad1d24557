"""Every gap in moto's CloudFormation (and Lambda) that creating this template hits, filled here and nowhere else.

Each `Gap` has a probe that answers True while moto still has the gap, using moto itself on a tiny input. `filled()`
asserts every probe before installing the fills, and `tests/deploy/test_moto_gaps.py` runs the probes on their own:
after a moto upgrade that closes a gap, that test names the fill to delete.

Fills are installed by patching moto's model map for the duration of `filled()`: no class here subclasses moto's
`CloudFormationModel`, so moto's own list of models (which the probes read) never includes a fill.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from moto import mock_aws
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table as DynamoTable
from moto.events.models import Archive, EventBus, events_backends
from moto.kms.models import Key
from moto.secretsmanager.models import secretsmanager_backends
from moto.sqs.models import Queue, sqs_backends

# Probes create their tiny resources in an account of their own, under unique names: run inside a deploy's
# `mock_aws` (nested mocks share moto's state), they leave nothing the deployed account can list.
PROBE_ACCOUNT, PROBE_REGION = "000000000001", "us-east-1"
ARCHIVE_NAME_LIMIT = 48  # EventBridge CreateArchive: ArchiveName is 1-48 characters
QUEUE_NAME_LIMIT = 80


class _Filled:
    """What moto's parser asks of any resource it created."""

    physical_resource_id = ""

    def is_created(self) -> bool:
        return True

    @classmethod
    def has_cfn_attr(cls, attribute: str) -> bool:
        return False


class _Secret(_Filled):
    """AWS::SecretsManager::Secret, created in moto's Secrets Manager with its KMS key; `Ref` gives its ARN (as on
    AWS). GenerateSecretString stores its template: the scenarios set the real values."""

    def __init__(self, arn: str) -> None:
        self.physical_resource_id = arn

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **_: Any
    ) -> _Secret:
        properties = template["Properties"]
        generated = properties.get("GenerateSecretString") or {}
        created = secretsmanager_backends[account_id][region].create_secret(
            name=properties.get("Name", name),
            secret_string=properties.get("SecretString", generated.get("SecretStringTemplate", "{}")),
            secret_binary=None,
            description=properties.get("Description"),
            tags=properties.get("Tags", []),
            kms_key_id=properties.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(json.loads(created)["ARN"])


class _QueuePolicy(_Filled):
    """AWS::SQS::QueuePolicy, applied as each queue's Policy attribute, where the checker reads it."""

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **_: Any
    ) -> _QueuePolicy:
        properties = template["Properties"]
        for url in properties["Queues"]:
            sqs_backends[account_id][region].set_queue_attributes(
                url.rstrip("/").rsplit("/", 1)[-1], {"Policy": json.dumps(properties["PolicyDocument"])}
            )
        return cls()


class _StandIn(_Filled):
    """A resource no function makes a request of (alarms, the API stage and account setting, async invoke config):
    only its name, and an ARN for `Fn::GetAtt ... Arn`. Any other attribute fails the create loudly."""

    def __init__(self, name: str, arn: str) -> None:
        self.physical_resource_id, self.arn = name, arn

    @classmethod
    def has_cfn_attr(cls, attribute: str) -> bool:
        return attribute == "Arn"

    def get_cfn_attribute(self, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn
        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **kwargs: Any
    ) -> _StandIn:
        service = str(kwargs.get("ResourceType", "AWS::Unknown::Type")).split("::")[1].lower()
        kind = "alarm:" if service == "cloudwatch" else ""
        return cls(name, f"arn:aws:{service}:{region}:{account_id}:{kind}{name}")


class _NamedArchive:
    """AWS::Events::Archive with a name that fits EventBridge's 48 characters and its pattern as JSON text."""

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **kwargs: Any
    ) -> Archive:
        properties = dict(template["Properties"])
        if isinstance(properties.get("EventPattern"), dict):
            properties["EventPattern"] = json.dumps(properties["EventPattern"])
        archive_name = name[:ARCHIVE_NAME_LIMIT]
        return Archive.create_from_cloudformation_json(
            archive_name, {**template, "Properties": properties}, account_id, region, **kwargs
        )


class _JsonKeyPolicy:
    """AWS::KMS::Key with its KeyPolicy stored as JSON text, as GetKeyPolicy returns it on AWS."""

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **kwargs: Any
    ) -> Key:
        properties = dict(template["Properties"])
        if not isinstance(properties.get("KeyPolicy"), str):
            properties["KeyPolicy"] = json.dumps(properties["KeyPolicy"])
        return Key.create_from_cloudformation_json(name, {**template, "Properties": properties}, account_id, region)


class _FifoNamedQueue:
    """AWS::SQS::Queue: an unnamed FIFO queue gets CloudFormation's generated name with the `.fifo` suffix."""

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **kwargs: Any
    ) -> Queue:
        properties = template["Properties"]
        if properties.get("FifoQueue") and not str(name).endswith(".fifo"):
            name = str(name)[: QUEUE_NAME_LIMIT - len(".fifo")] + ".fifo"
        return Queue.create_from_cloudformation_json(name, template, account_id, region, **kwargs)


class _EncryptedTable:
    """AWS::DynamoDB::Table whose SSESpecification (CloudFormation's `SSEEnabled`) reaches moto's table as the API's
    `Enabled`, so DescribeTable reports the table's KMS key, which the checker reads."""

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **kwargs: Any
    ) -> DynamoTable:
        properties = dict(template["Properties"])
        sse = dict(properties.get("SSESpecification") or {})
        if "SSEEnabled" in sse:
            sse["Enabled"] = sse.pop("SSEEnabled")
            properties["SSESpecification"] = sse
        return DynamoTable.create_from_cloudformation_json(
            name, {**template, "Properties": properties}, account_id, region, **kwargs
        )


def _unique() -> str:
    return f"probe-{uuid.uuid4().hex[:12]}"


def _unmodelled(resource_type: str) -> Callable[[], bool]:
    return lambda: resource_type not in parsing.get_model_map()


def _archive_name_too_long() -> bool:
    return len(parsing.generate_resource_name("AWS::Events::Archive", "WorkosDsyncPipeline", "A" * 26)) > 48


def _archive_pattern_must_be_text() -> bool:
    with mock_aws():
        bus = events_backends[PROBE_ACCOUNT][PROBE_REGION].create_event_bus(name=_unique())
        template = {"Properties": {"SourceArn": bus.arn, "EventPattern": {"source": ["probe"]}}}
        try:
            Archive.create_from_cloudformation_json(_unique(), template, PROBE_ACCOUNT, PROBE_REGION)
        except TypeError:
            return True
    return False


def _key_policy_kept_as_object() -> bool:
    with mock_aws():
        template = {"Properties": {"KeyPolicy": {"Version": "2012-10-17", "Statement": []}}}
        key = Key.create_from_cloudformation_json(_unique(), template, PROBE_ACCOUNT, PROBE_REGION)
        return not isinstance(key.policy, str)


def _unnamed_fifo_queue_refused() -> bool:
    with mock_aws():
        try:
            Queue.create_from_cloudformation_json(
                _unique(), {"Properties": {"FifoQueue": True}}, PROBE_ACCOUNT, PROBE_REGION
            )
        except Exception:  # moto: InvalidParameterValue, the name of a FIFO queue must end in .fifo
            return True
    return False


def _table_sse_not_described() -> bool:
    with mock_aws():
        sse = {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": "arn:aws:kms:us-east-1:000000000001:key/k"}
        properties = {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "SSESpecification": sse,
        }
        table = DynamoTable.create_from_cloudformation_json(
            _unique(), {"Properties": properties}, PROBE_ACCOUNT, PROBE_REGION
        )
        return "SSEDescription" not in table.describe()["TableDescription"]


def _moto_invokes_mapped_functions() -> bool:
    with mock_aws():
        queue = sqs_backends[PROBE_ACCOUNT][PROBE_REGION].create_queue(_unique())
        return hasattr(queue, "lambda_event_source_mappings")


@dataclass(frozen=True)
class Gap:
    name: str
    why: str
    probe: Callable[[], bool]  # True while moto still has the gap


STAND_INS = (
    "AWS::CloudWatch::Alarm",
    "AWS::ApiGateway::Stage",
    "AWS::ApiGateway::Account",
    "AWS::Lambda::EventInvokeConfig",
)
MODELS: dict[str, Any] = {
    "AWS::SecretsManager::Secret": _Secret,
    "AWS::SQS::QueuePolicy": _QueuePolicy,
    "AWS::Events::Archive": _NamedArchive,
    "AWS::KMS::Key": _JsonKeyPolicy,
    "AWS::SQS::Queue": _FifoNamedQueue,
    "AWS::DynamoDB::Table": _EncryptedTable,
    **dict.fromkeys(STAND_INS, _StandIn),
}
GAPS = (
    Gap("secret", "no model for AWS::SecretsManager::Secret (skipped)", _unmodelled("AWS::SecretsManager::Secret")),
    Gap("queue-policy", "no model for AWS::SQS::QueuePolicy (skipped)", _unmodelled("AWS::SQS::QueuePolicy")),
    *(Gap(f"stand-in {kind}", f"no model for {kind} (skipped)", _unmodelled(kind)) for kind in STAND_INS),
    Gap(
        "event-bus-ref",
        "`Ref` to an EventBus gives the Python object",
        lambda: not hasattr(EventBus, "physical_resource_id"),
    ),
    Gap("archive-name", "generated archive names exceed 48 characters", _archive_name_too_long),
    Gap("archive-pattern", "an archive's EventPattern object is not accepted", _archive_pattern_must_be_text),
    Gap("key-policy", "a key's KeyPolicy is stored as an object, not JSON text", _key_policy_kept_as_object),
    Gap("fifo-name", "an unnamed FIFO queue gets a name without .fifo and is refused", _unnamed_fifo_queue_refused),
    Gap("table-sse", "a table's SSESpecification from a template is not applied", _table_sse_not_described),
    Gap("mapped-invoke", "moto invokes mapped functions itself (Docker)", _moto_invokes_mapped_functions),
)


@contextmanager
def filled() -> Iterator[None]:
    """moto's CloudFormation with every fill installed; refuses to fill a gap that moto has closed."""
    closed = [gap.name for gap in GAPS if not gap.probe()]
    assert not closed, f"moto closed these gaps: delete their fills in tests/deploy/moto_gaps.py: {closed}"
    models = {**parsing.get_model_map(), **MODELS}
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(parsing, "get_model_map", lambda: models))
        stack.enter_context(
            mock.patch.object(EventBus, "physical_resource_id", property(lambda bus: bus.name), create=True)
        )
        yield


def detach_mapped_functions(account_id: str, region: str) -> int:
    """Stop moto from invoking mapped functions on a send or a table write: the deploy check polls as Lambda does,
    in process, as the function's role. Returns how many mappings were detached (the caller checks them all)."""
    detached = 0
    for queue in sqs_backends[account_id][region].queues.values():
        detached += len(queue.lambda_event_source_mappings)
        queue.lambda_event_source_mappings.clear()
    for table in dynamodb_backends[account_id][region].tables.values():
        detached += len(table.lambda_event_source_mappings)
        table.lambda_event_source_mappings.clear()
    return detached
