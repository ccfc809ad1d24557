"""The deployed stack against its synthesized template, and what is left of it after `cdk destroy`.

The template (`<outdir>/<stack>.template.json`) is what CloudFormation was asked for; the emulator's APIs say what it
made. Template values are resolved to the deployed physical ids first (`Ref`, `Fn::GetAtt`, `Fn::Join` and the pseudo
parameters), through the stack's own resource list, then compared property by property:
- queues: FIFO, high throughput (deduplication scope, throughput limit), visibility timeout, retention, maximum size,
  encryption key, redrive and redrive-allow policies, names;
- the table: key schema, attributes, global secondary indexes, stream, billing mode, deletion protection;
- event source mappings: source, function, batch size, ReportBatchItemFailures, MaximumConcurrency, starting position,
  bisect, retries, on-failure destination;
- functions: handler, runtime, architectures, timeout, memory, role, environment, log configuration;
- schedules: expression, state and targets; secrets: description and key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from rehearsal.cdk import EMULATOR_ACCOUNT

Json = Any
RETAINED = ("Retain", "RetainExceptOnCreate")


def client(service: str, *, endpoint: str, region: str, config: Config | None = None) -> Any:
    """A boto3 client for the emulator (dummy credentials; MiniStack takes any)."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - MiniStack's dummy credentials
        config=config,
    )


@dataclass(frozen=True)
class DeployedStack:
    """A stack as CloudFormation reports it."""

    name: str
    physical_ids: dict[str, str]  # logical id -> physical id
    outputs: dict[str, str]

    @classmethod
    def read(cls, cloudformation: Any, name: str) -> DeployedStack:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        physical: dict[str, str] = {}
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=name):
            for summary in page["StackResourceSummaries"]:
                if summary.get("PhysicalResourceId"):
                    physical[str(summary["LogicalResourceId"])] = str(summary["PhysicalResourceId"])
        outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}
        return cls(name=name, physical_ids=physical, outputs=outputs)


@dataclass
class Findings:
    """What was compared and what differed."""

    compared: int = 0
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def check(self, label: str, expected: Json, actual: Json) -> None:
        self.compared += 1
        if normalize(expected) != normalize(actual):
            self.problems.append(f"{label}: template {compact(expected)}, deployed {compact(actual)}")

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def counted(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


def normalize(value: Json) -> Json:
    """One spelling per value: the APIs answer "true"/"360" where the template says true/360."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, dict):
        return {str(key): normalize(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(item) for item in value]
    return value


def compact(value: Json, limit: int = 200) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ResolveError(ValueError):
    """A template value the resolver does not know how to map to the deployed stack."""


class Resolver:
    """Template expressions -> deployed values, through the stack's physical ids and the emulator's APIs."""

    def __init__(self, template: Json, deployed: DeployedStack, clients: Callable[[str], Any], region: str) -> None:
        self._resources: dict[str, Json] = template["Resources"]
        self._deployed = deployed
        self._clients = clients
        self._region = region
        self._attributes: dict[tuple[str, str], str] = {}

    def physical(self, logical: str) -> str:
        try:
            return self._deployed.physical_ids[logical]
        except KeyError:
            raise ResolveError(f"{logical} is not in the deployed stack") from None

    def resolve(self, value: Json) -> Json:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            if key == "Ref":
                return self._ref(str(argument))
            if key == "Fn::GetAtt":
                logical, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
                return self.get_att(str(logical), str(attribute))
            if key == "Fn::Join":
                separator, parts = argument
                return str(separator).join(str(self.resolve(part)) for part in parts)
            if key.startswith("Fn::"):
                raise ResolveError(f"{key} is not resolved by the rehearsal")
        return {key: self.resolve(item) for key, item in value.items()}

    def _ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": self._region,
            "AWS::AccountId": EMULATOR_ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self._deployed.name,
        }
        if name in pseudo:
            return pseudo[name]
        return self.physical(name)

    def get_att(self, logical: str, attribute: str) -> str:
        key = (logical, attribute)
        if key not in self._attributes:
            self._attributes[key] = self._read_attribute(logical, attribute)
        return self._attributes[key]

    def _read_attribute(self, logical: str, attribute: str) -> str:
        kind = str(self._resources[logical]["Type"])
        physical = self.physical(logical)
        readers: dict[tuple[str, str], Callable[[], Any]] = {
            ("AWS::SQS::Queue", "Arn"): lambda: self._clients("sqs").get_queue_attributes(
                QueueUrl=physical, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"],
            ("AWS::DynamoDB::Table", "Arn"): lambda: self._table(physical)["TableArn"],
            ("AWS::DynamoDB::Table", "StreamArn"): lambda: self._table(physical)["LatestStreamArn"],
            ("AWS::Lambda::Function", "Arn"): lambda: self._clients("lambda").get_function_configuration(
                FunctionName=physical
            )["FunctionArn"],
            ("AWS::IAM::Role", "Arn"): lambda: self._clients("iam").get_role(RoleName=physical)["Role"]["Arn"],
            ("AWS::KMS::Key", "Arn"): lambda: self._clients("kms").describe_key(KeyId=physical)["KeyMetadata"]["Arn"],
            ("AWS::Events::EventBus", "Arn"): lambda: self._clients("events").describe_event_bus(Name=physical)["Arn"],
            ("AWS::Events::Rule", "Arn"): lambda: self._clients("events").describe_rule(Name=physical)["Arn"],
            ("AWS::Logs::LogGroup", "Arn"): lambda: (
                f"arn:aws:logs:{self._region}:{EMULATOR_ACCOUNT}:log-group:{physical}:*"
            ),
            ("AWS::SecretsManager::Secret", "Id"): lambda: physical,
        }
        reader = readers.get((kind, attribute))
        if reader is None:
            raise ResolveError(f"Fn::GetAtt {logical}.{attribute} ({kind}) is not resolved by the rehearsal")
        return str(reader())

    def _table(self, name: str) -> Json:
        return self._clients("dynamodb").describe_table(TableName=name)["Table"]


# --- the deployed resources against the template ---------------------------------------------------------------

QUEUE_ATTRIBUTES = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "MaximumMessageSize",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
)
QUEUE_POLICIES = ("RedrivePolicy", "RedriveAllowPolicy")  # JSON documents in SQS's attributes
FUNCTION_PROPERTIES = (
    "Handler",
    "Runtime",
    "Architectures",
    "Timeout",
    "MemorySize",
    "Description",
    "Role",
    "Environment",
    "LoggingConfig",
    "TracingConfig",
)
# Not compared, because MiniStack does not apply them (README "Rehearse a deploy").
TABLE_NOT_APPLIED = ("SSESpecification", "PointInTimeRecoverySpecification", "TimeToLiveSpecification")


class TemplateCheck:
    def __init__(self, template: Json, resolver: Resolver, clients: Callable[[str], Any]) -> None:
        self._template = template
        self._resolver = resolver
        self._clients = clients
        self.findings = Findings()

    def resources(self, kind: str) -> Iterator[tuple[str, Json]]:
        for logical, resource in self._template["Resources"].items():
            if resource["Type"] == kind:
                yield str(logical), resource.get("Properties", {})

    def run(self) -> Findings:
        checks: list[tuple[str, Callable[[str, Json], None]]] = [
            ("AWS::SQS::Queue", self.queue),
            ("AWS::DynamoDB::Table", self.table),
            ("AWS::Lambda::EventSourceMapping", self.mapping),
            ("AWS::Lambda::Function", self.function),
            ("AWS::Events::Rule", self.rule),
            ("AWS::SecretsManager::Secret", self.secret),
        ]
        for kind, check in checks:
            for logical, properties in self.resources(kind):
                try:
                    check(logical, properties)
                except (ClientError, ResolveError, KeyError) as error:
                    self.findings.problem(f"{logical} ({kind}): {error!r}")
                self.findings.counted(kind.rsplit("::", 1)[1])
        return self.findings

    def queue(self, logical: str, properties: Json) -> None:
        url = self._resolver.physical(logical)
        attributes = self._clients("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if "QueueName" in properties:
            self.findings.check(f"{logical}.QueueName", properties["QueueName"], url.rsplit("/", 1)[-1])
        for name in QUEUE_ATTRIBUTES:
            if name in properties:
                self.findings.check(f"{logical}.{name}", self._resolver.resolve(properties[name]), attributes.get(name))
        for name in QUEUE_POLICIES:
            if name in properties:
                deployed = json.loads(attributes[name]) if name in attributes else None
                self.findings.check(f"{logical}.{name}", self._resolver.resolve(properties[name]), deployed)

    def table(self, logical: str, properties: Json) -> None:
        table = self._clients("dynamodb").describe_table(TableName=self._resolver.physical(logical))["Table"]
        check = self.findings.check
        check(f"{logical}.KeySchema", properties["KeySchema"], table["KeySchema"])
        by_name = sorted(properties["AttributeDefinitions"], key=lambda item: item["AttributeName"])
        check(
            f"{logical}.AttributeDefinitions",
            by_name,
            sorted(table["AttributeDefinitions"], key=lambda item: item["AttributeName"]),
        )
        deployed_indexes = {index["IndexName"]: index for index in table.get("GlobalSecondaryIndexes", [])}
        check(
            f"{logical}.GlobalSecondaryIndexes",
            sorted(index["IndexName"] for index in properties.get("GlobalSecondaryIndexes", [])),
            sorted(deployed_indexes),
        )
        for index in properties.get("GlobalSecondaryIndexes", []):
            deployed = deployed_indexes.get(index["IndexName"], {})
            for part in ("KeySchema", "Projection"):
                check(f"{logical}.{index['IndexName']}.{part}", index[part], deployed.get(part))
        if "StreamSpecification" in properties:
            expected = {"StreamEnabled": True, **properties["StreamSpecification"]}
            check(f"{logical}.StreamSpecification", expected, table.get("StreamSpecification"))
            check(f"{logical}.LatestStreamArn", True, bool(table.get("LatestStreamArn")))
        if "BillingMode" in properties:
            check(
                f"{logical}.BillingMode",
                properties["BillingMode"],
                table.get("BillingModeSummary", {}).get("BillingMode"),
            )
        if "DeletionProtectionEnabled" in properties:
            check(
                f"{logical}.DeletionProtectionEnabled",
                properties["DeletionProtectionEnabled"],
                table.get("DeletionProtectionEnabled"),
            )

    def mapping(self, logical: str, properties: Json) -> None:
        mapping = self._clients("lambda").get_event_source_mapping(UUID=self._resolver.physical(logical))
        function = self._resolver.resolve(properties["FunctionName"])
        self.findings.check(f"{logical}.FunctionName", function, str(mapping["FunctionArn"]).rsplit(":", 1)[-1])
        for name, value in properties.items():
            if name == "FunctionName":
                continue
            self.findings.check(f"{logical}.{name}", self._resolver.resolve(value), mapping.get(name))

    def function(self, logical: str, properties: Json) -> None:
        configuration = self._clients("lambda").get_function_configuration(
            FunctionName=self._resolver.physical(logical)
        )
        for name in FUNCTION_PROPERTIES:
            if name in properties:
                expected = self._resolver.resolve(properties[name])
                actual = configuration.get(name)
                if name == "LoggingConfig" and isinstance(actual, dict):
                    actual = {key: actual.get(key) for key in expected}  # the API adds its default levels
                self.findings.check(f"{logical}.{name}", expected, actual)

    def rule(self, logical: str, properties: Json) -> None:
        events = self._clients("events")
        name = self._resolver.physical(logical)
        bus = self._resolver.resolve(properties.get("EventBusName", "default"))
        rule = events.describe_rule(Name=name, EventBusName=bus)
        for key in ("ScheduleExpression", "State", "Description"):
            if key in properties:
                self.findings.check(f"{logical}.{key}", properties[key], rule.get(key))
        if "EventPattern" in properties:
            pattern = rule.get("EventPattern")
            self.findings.check(
                f"{logical}.EventPattern", properties["EventPattern"], json.loads(pattern) if pattern else None
            )
        targets = events.list_targets_by_rule(Rule=name, EventBusName=bus)["Targets"]
        expected = sorted((str(t["Id"]), str(self._resolver.resolve(t["Arn"]))) for t in properties.get("Targets", []))
        self.findings.check(f"{logical}.Targets", expected, sorted((str(t["Id"]), str(t["Arn"])) for t in targets))

    def secret(self, logical: str, properties: Json) -> None:
        secret = self._clients("secretsmanager").describe_secret(SecretId=self._resolver.physical(logical))
        self.findings.check(f"{logical}.Description", properties.get("Description"), secret.get("Description"))
        if "KmsKeyId" in properties:
            self.findings.check(
                f"{logical}.KmsKeyId", self._resolver.resolve(properties["KmsKeyId"]), secret.get("KmsKeyId")
            )


# --- after destroy ----------------------------------------------------------------------------------------------


def _exists(probe: Callable[[str], bool], physical: str) -> bool:
    """Run an existence probe; an API error (not found) means gone."""
    try:
        return probe(physical)
    except ClientError:
        return False


def existence_probes(clients: Callable[[str], Any]) -> dict[str, Callable[[str], bool]]:
    """Resource type -> "does this physical id still exist?" for every type the stack has that owns state or code
    (policies, permissions, stages, methods and the like go with their parents)."""

    def secret(physical: str) -> bool:
        return "DeletedDate" not in clients("secretsmanager").describe_secret(SecretId=physical)

    def key(physical: str) -> bool:
        state = clients("kms").describe_key(KeyId=physical)["KeyMetadata"].get("KeyState")
        return state not in ("PendingDeletion", "PendingReplicaDeletion")

    def log_group(physical: str) -> bool:
        groups = clients("logs").describe_log_groups(logGroupNamePrefix=physical)["logGroups"]
        return any(group["logGroupName"] == physical for group in groups)

    def alarm(physical: str) -> bool:
        return bool(clients("cloudwatch").describe_alarms(AlarmNames=[physical])["MetricAlarms"])

    return {
        "AWS::SQS::Queue": lambda p: bool(clients("sqs").get_queue_attributes(QueueUrl=p, AttributeNames=["QueueArn"])),
        "AWS::Lambda::Function": lambda p: bool(clients("lambda").get_function(FunctionName=p)),
        "AWS::Lambda::EventSourceMapping": lambda p: bool(clients("lambda").get_event_source_mapping(UUID=p)),
        "AWS::DynamoDB::Table": lambda p: bool(clients("dynamodb").describe_table(TableName=p)),
        "AWS::SecretsManager::Secret": secret,
        "AWS::KMS::Key": key,
        "AWS::Events::Rule": lambda p: bool(clients("events").describe_rule(Name=p)),
        "AWS::Events::EventBus": lambda p: bool(clients("events").describe_event_bus(Name=p)),
        "AWS::IAM::Role": lambda p: bool(clients("iam").get_role(RoleName=p)),
        "AWS::Logs::LogGroup": log_group,
        "AWS::ApiGateway::RestApi": lambda p: bool(clients("apigateway").get_rest_api(restApiId=p)),
        "AWS::CloudWatch::Alarm": alarm,
        "AWS::CloudWatch::Dashboard": lambda p: bool(clients("cloudwatch").get_dashboard(DashboardName=p)),
    }


@dataclass
class Leftovers:
    gone: int = 0
    retained: list[str] = field(default_factory=list)  # still there, as the template's DeletionPolicy says
    not_probed: int = 0
    problems: list[str] = field(default_factory=list)


def check_destroyed(
    template: Json, deployed: DeployedStack, clients: Callable[[str], Any], stack_exists: Callable[[], bool]
) -> Leftovers:
    """After `cdk destroy`: the stack is gone, every resource with the default deletion policy is gone, and the
    retained ones (DeletionPolicy: Retain) are still there, as they would be in AWS."""
    leftovers = Leftovers()
    if stack_exists():
        leftovers.problems.append(f"stack {deployed.name} still exists")
    probes = existence_probes(clients)
    for logical, resource in template["Resources"].items():
        probe = probes.get(resource["Type"])
        physical = deployed.physical_ids.get(logical)
        if probe is None or physical is None:
            leftovers.not_probed += 1
            continue
        exists = _exists(probe, physical)
        retained = resource.get("DeletionPolicy") in RETAINED
        if retained and exists:
            leftovers.retained.append(f"{resource['Type'].rsplit('::', 1)[1]} {logical}")
        elif retained:
            leftovers.problems.append(f"{logical} ({resource['Type']}) has DeletionPolicy Retain but was deleted")
        elif exists:
            leftovers.problems.append(f"{logical} ({resource['Type']}) {physical} is still there")
        else:
            leftovers.gone += 1
    return leftovers
