"""cdk-nag: the rule pack the app runs, and every finding this stack acknowledges, with its reason, in one place.

cdk-nag 3 runs as a CDK validation plugin: an unacknowledged finding fails `cdk synth` (and `Template.from_stack`).
Each acknowledgment sits on the narrowest construct that produces the finding and uses the exact finding id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

if TYPE_CHECKING:
    from infra.stack import DirectorySyncStack  # nag reads the stack; the stack never imports nag (no circle)


def register_checks(app: App) -> None:
    """Run the AWS Solutions rule pack over the whole app at synth time."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def _acknowledge(scope: IConstruct, finding_id: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=finding_id, reason=reason))


def _resource(construct: IConstruct) -> IConstruct:
    """The CloudFormation resource of an L2 construct, where cdk-nag reports its findings."""
    child = construct.node.default_child
    if child is None:
        raise ValueError(f"{construct.node.path} has no default child")
    return child


ROTATION_WEBHOOK_SIGNING = (
    "The webhook signing secret is issued by WorkOS and can only be rolled in the WorkOS dashboard; a Secrets "
    "Manager rotation Lambda cannot mint a new one. Runbook: roll it in WorkOS, put-secret-value with both the new "
    "and the old secret (ingest accepts either), then drop the old one."
)
ROTATION_WORKOS_API_KEY = (
    "The WorkOS API key is issued in the WorkOS dashboard and WorkOS offers no API to create keys, so Secrets "
    "Manager cannot rotate it. Runbook: create a new key in WorkOS, put-secret-value, then revoke the old key."
)
STREAM_LIST_STREAMS = (
    "dynamodb:ListStreams (added by DynamoEventSource via grant_stream_read) has no resource-level permissions, so "
    "IAM requires Resource '*'. The stream read actions (DescribeStream, GetRecords, GetShardIterator) are scoped to "
    "this table's stream ARN."
)
PUBLISH_DLQ_IS_A_DLQ = (
    "This queue is itself a dead-letter destination: the on-failure destination of the publish function's DynamoDB "
    "stream event source mapping. cdk-nag only recognises DLQs referenced by an SQS RedrivePolicy; a DLQ behind it "
    "would only move the same failure records again."
)
API_REQUEST_VALIDATION = (
    "The only method is a Lambda proxy that must receive every request unchanged: the WorkOS signature is an HMAC "
    "over the raw body, and the ingest handler answers 400/401/405/413 itself. An API Gateway request validator "
    "cannot check a signed byte payload and would reject requests before the signature check logs them."
)
API_AUTHORIZATION = (
    "WorkOS delivers webhooks as plain HTTPS POSTs: it cannot sign with SigV4, present a Cognito token or satisfy "
    "a custom authorizer. Every request is authenticated in the ingest function by the WorkOS-Signature "
    "HMAC-SHA256 over the raw body with a timestamp tolerance; unsigned or stale requests get 401 and are never "
    "queued."
)
API_WAF = (
    "The WAF web ACL is optional (context enableWaf=true associates one with this stage: IP reputation list, "
    "per-IP rate limit, 64 KB body limit) because it costs a fixed monthly fee per web ACL and rule. Without it the "
    "stage throttle bounds load, restrictToWorkosIps can limit callers to WorkOS's addresses, and every request "
    "must carry a valid HMAC signature to be queued."
)
XRAY_WRITE = (
    "enableTracing turns on Lambda active tracing, which adds xray:PutTraceSegments and xray:PutTelemetryRecords. "
    "X-Ray has no resource-level permissions for these write actions, so IAM requires Resource '*'; the role gets "
    "no X-Ray read or configuration action."
)
API_CLOUDWATCH_ROLE = (
    "This is API Gateway's region-wide CloudWatch Logs role (AWS::ApiGateway::Account), required for stage "
    "execution and access logging. It serves every REST API of the account in this region, which log to groups "
    "API Gateway names itself, so it cannot be scoped to this stack; AWS documents this managed policy for it."
)


def acknowledge_findings(stack: DirectorySyncStack) -> None:
    """Acknowledge the findings this design accepts on purpose, each on the resource that produces it."""
    _acknowledge(_resource(stack.secrets.webhook_secret), "AwsSolutions-SMG4", ROTATION_WEBHOOK_SIGNING)
    _acknowledge(_resource(stack.secrets.workos_api_key), "AwsSolutions-SMG4", ROTATION_WORKOS_API_KEY)
    tracing = stack.config.enable_tracing
    # One acknowledgment per finding and resource: the publish policy's Resource "*" statement (merged by
    # minimizePolicies) holds dynamodb:ListStreams, plus the X-Ray write actions when tracing is on.
    _acknowledge(
        stack.publish.role.node.find_child("DefaultPolicy"),
        "AwsSolutions-IAM5[Resource::*]",
        f"{STREAM_LIST_STREAMS} {XRAY_WRITE}" if tracing else STREAM_LIST_STREAMS,
    )
    if tracing:
        for function in (stack.ingest, stack.apply, stack.reconcile, *([stack.tail] if stack.tail else [])):
            _acknowledge(function.role.node.find_child("DefaultPolicy"), "AwsSolutions-IAM5[Resource::*]", XRAY_WRITE)
    _acknowledge(_resource(stack.publish_dead_letter_queue), "AwsSolutions-SQS3", PUBLISH_DLQ_IS_A_DLQ)

    api = stack.api
    _acknowledge(_resource(api.rest_api), "AwsSolutions-APIG2", API_REQUEST_VALIDATION)
    if stack.waf is None:  # with the web ACL associated, APIG3 is satisfied
        _acknowledge(_resource(api.stage), "AwsSolutions-APIG3", API_WAF)
    _acknowledge(_resource(api.webhook_method), "AwsSolutions-APIG4", API_AUTHORIZATION)
    _acknowledge(_resource(api.webhook_method), "AwsSolutions-COG4", API_AUTHORIZATION)
    if stack.config.api_gateway_cloud_watch_role:
        _acknowledge(
            api.rest_api.node.find_child("CloudWatchRole"),
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            API_CLOUDWATCH_ROLE,
        )
