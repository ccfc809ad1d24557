"""Building the stack for tests and reading the synthesized template without asserting logical ids."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from constructs import IConstruct

from infra.application import build
from infra.stack import DirectorySyncStack

# Skips the pip bundling of every stack (CDK still computes the custom asset hashes).
SKIP_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}

# Every optional feature on, values as `cdk synth -c key=value` passes them (strings).
FULL_CONTEXT: dict[str, Any] = {
    "enableWaf": "true",
    "wafLogging": "true",
    "restrictToWorkosIps": "true",
    "enableTracing": "true",
    "alarmEmail": "ops@example.com",
}
# The other branch of each option: an existing alarm topic, non-default thresholds and namespace, an own allow-list
# instead of WorkOS's, WAF without logging and with a lower rate limit, no API Gateway account logging role.
EXISTING_TOPIC_ARN = "arn:aws:sns:eu-west-1:111111111111:ops-alarms"
ALTERNATIVE_CONTEXT: dict[str, Any] = {
    "alarmTopicArn": EXISTING_TOPIC_ARN,
    "metricsNamespace": "Acme/DirectorySync",
    "alarmIngest5xxMinutes": "3",
    "alarmSignatureFailuresPerHour": 25,
    "alarmApplyDurationSeconds": "20",
    "alarmQueueAgeSeconds": 600,
    "reconcileRate": "15 minutes",
    "allowedSourceIps": "198.51.100.0/24, 203.0.113.7",
    "enableWaf": True,
    "wafRateLimitPer5Minutes": "5000",
    "apiGatewayCloudWatchRole": "false",
    "tailReservedConcurrency": "true",
}


def build_stack(context: Mapping[str, Any] | None = None) -> DirectorySyncStack:
    """The pipeline stack exactly as app.py builds it (same `build`, cdk-nag registered), without bundling."""
    app = App(context={**SKIP_BUNDLING, **(context or {})})
    return build(app, environ={})


def logical_id(construct: IConstruct) -> str:
    """The logical id of an L1 resource, or of an L2 construct's default resource."""
    resource = construct.node.default_child or construct
    stack = Stack.of(construct)
    value = stack.resolve(stack.get_logical_id(resource))  # type: ignore[arg-type]
    assert isinstance(value, str)
    return value


def resources(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {key: dict(value) for key, value in template.find_resources(resource_type).items()}


def props(template: Template, construct: IConstruct) -> dict[str, Any]:
    resource = template.to_json()["Resources"][logical_id(construct)]
    return dict(resource.get("Properties", {}))


def get_att_arn(construct: IConstruct, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id(construct), attribute]}


def ref(construct: IConstruct) -> dict[str, Any]:
    return {"Ref": logical_id(construct)}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(template: Template) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(logical id, resource type, statement) for every policy statement in the template, identity or resource."""
    for resource_id, resource in template.to_json()["Resources"].items():
        properties = resource.get("Properties", {})
        documents = [properties.get(key) for key in ("PolicyDocument", "KeyPolicy")]
        documents += [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        for document in documents:
            if document:
                for statement in as_list(document["Statement"]):
                    yield resource_id, resource["Type"], statement
