"""cdk-nag is active in the app, and every finding our stack accepts is acknowledged narrowly with a real reason."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aws_cdk import App, CfnResource, Stack, Validations
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from infra.nag import register_checks
from infra.stack import DirectorySyncStack

pytestmark = pytest.mark.infra

API_GATEWAY_LOGGING_ROLE = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]"
)
EXPECTED_ACKNOWLEDGMENTS = {
    "AwsSolutions-SMG4": 2,
    "AwsSolutions-IAM5[Resource::*]": 1,
    "AwsSolutions-SQS3": 1,
    "AwsSolutions-APIG2": 1,
    "AwsSolutions-APIG3": 1,
    "AwsSolutions-APIG4": 1,
    "AwsSolutions-COG4": 1,
    API_GATEWAY_LOGGING_ROLE: 1,
}
# Everything on: the web ACL satisfies APIG3; X-Ray adds Resource "*" to the other four function policies.
FULL_ACKNOWLEDGMENTS = {
    key: value for key, value in EXPECTED_ACKNOWLEDGMENTS.items() if key != "AwsSolutions-APIG3"
} | {"AwsSolutions-IAM5[Resource::*]": 5}
# WAF on, tracing off, no API Gateway account logging role.
ALTERNATIVE_ACKNOWLEDGMENTS = {
    key: value
    for key, value in EXPECTED_ACKNOWLEDGMENTS.items()
    if key not in {"AwsSolutions-APIG3", API_GATEWAY_LOGGING_ROLE}
}


def acknowledgments(stack: DirectorySyncStack) -> list[tuple[Any, str, str]]:
    """(construct, finding id, reason) for every acknowledgment recorded in the stack's construct tree."""
    found = []
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for finding, reason in dict(entry.data).items():
                    # CDK records ids without a plugin prefix as "Annotation::<id>"; cdk-nag strips it when matching
                    found.append((construct, re.sub(r"^annotation::", "", finding, flags=re.IGNORECASE), reason))
    return found


def test_plugin_fails_synth_on_an_unacknowledged_finding() -> None:
    # GIVEN an app with the checks registered exactly as app.py does, and a queue without TLS enforcement or DLQ
    app = App()
    register_checks(app)
    stack = Stack(app, "NonCompliant")
    sqs.Queue(stack, "Queue")
    # WHEN it synthesizes THEN cdk-nag stops it
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        Template.from_stack(stack)


def test_pipeline_stack_synthesizes_with_checks_on(variant: tuple[DirectorySyncStack, Template]) -> None:
    # The fixtures would have raised on any unacknowledged finding, for every option combination.
    _, template = variant
    assert template.to_json()["Resources"]


@pytest.mark.parametrize(
    ("stack_fixture", "expected"),
    [
        ("stack", EXPECTED_ACKNOWLEDGMENTS),
        ("full_stack", FULL_ACKNOWLEDGMENTS),
        ("alternative_stack", ALTERNATIVE_ACKNOWLEDGMENTS),
    ],
)
def test_acknowledged_findings_are_the_reviewed_set(
    request: pytest.FixtureRequest, stack_fixture: str, expected: dict[str, int]
) -> None:
    stack: DirectorySyncStack = request.getfixturevalue(stack_fixture)
    request.getfixturevalue(stack_fixture.replace("stack", "template"))  # synthesized with the checks on
    counts: dict[str, int] = {}
    for _, finding, _ in acknowledgments(stack):
        counts[finding] = counts.get(finding, 0) + 1
    assert counts == expected


def test_xray_wildcard_is_acknowledged_on_each_function_policy_only_with_tracing(
    full_stack: DirectorySyncStack,
) -> None:
    policies = {
        construct.node.scope.node.scope.node.id: reason
        for construct, finding, reason in acknowledgments(full_stack)
        if finding == "AwsSolutions-IAM5[Resource::*]"
    }
    assert sorted(policies) == ["Apply", "Ingest", "Publish", "Reconcile", "Tail"]
    for reason in policies.values():
        assert "xray:PutTraceSegments" in reason
    assert "dynamodb:ListStreams" in policies["Publish"]


def test_acknowledgments_sit_on_resources_not_on_the_stack(variant: tuple[DirectorySyncStack, Template]) -> None:
    stack, _ = variant
    for construct, finding, _ in acknowledgments(stack):
        assert construct is not stack, finding
        # an L1 resource, or an L2 whose only resource is the flagged one (role policy, API Gateway logging role)
        assert isinstance(construct, CfnResource) or construct.node.id in {"DefaultPolicy", "CloudWatchRole"}, (
            construct.node.path,
            finding,
        )


def test_every_acknowledgment_has_a_specific_reason(variant: tuple[DirectorySyncStack, Template]) -> None:
    stack, _ = variant
    generic = {"ok", "n/a", "not needed", "false positive", "suppressed", "accepted"}
    for construct, finding, reason in acknowledgments(stack):
        assert len(reason) >= 100, (construct.node.path, finding)
        assert reason.strip().lower().rstrip(".") not in generic
        assert len(set(reason.lower().split())) >= 15, (construct.node.path, finding)
