"""The public endpoint WorkOS delivers webhooks to: a regional REST API that proxies to the ingest function."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

WEBHOOK_PATH = ("webhooks", "workos")
STAGE_NAME = "v1"


class WebhookApi(Construct):
    """`ANY /webhooks/workos` -> ingest (Lambda proxy). Every method reaches the handler, which answers 405 itself.

    `*/*` binary media types make API Gateway hand the function the raw body bytes (base64) whatever the content
    type, because the WorkOS signature is an HMAC over the exact bytes sent.

    `allowed_source_ips` (CIDRs), when not empty, becomes a resource policy that denies execute-api:Invoke from any
    other address. `cloud_watch_role=False` leaves the region-wide API Gateway logging role (AWS::ApiGateway::Account)
    to whoever already manages it; stage logging still needs that role to exist. `tracing` turns on X-Ray tracing
    of the stage.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        handler: lambda_.IFunction,
        throttle_rate_limit: int,
        throttle_burst_limit: int,
        log_retention: logs.RetentionDays,
        allowed_source_ips: Sequence[str] = (),
        cloud_watch_role: bool = True,
        tracing: bool = False,
    ) -> None:
        super().__init__(scope, id_)
        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.rest_api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=f"{Stack.of(self).stack_name}-webhooks",
            description="Receives WorkOS Directory Sync webhooks",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            binary_media_types=["*/*"],
            # Stage logging (execution and access logs) needs the region-wide API Gateway CloudWatch role; the
            # cdk.json flag turns CDK's default off, so ask for it explicitly. RETAIN: other APIs in the account
            # rely on the same account setting after this stack is gone.
            cloud_watch_role=cloud_watch_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if cloud_watch_role else None,
            policy=source_ip_policy(allowed_source_ips) if allowed_source_ips else None,
            deploy_options=apigateway.StageOptions(
                stage_name=STAGE_NAME,
                tracing_enabled=tracing or None,
                throttling_rate_limit=throttle_rate_limit,
                throttling_burst_limit=throttle_burst_limit,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # full request logs would contain the signature header and PII
                metrics_enabled=True,
                access_log_destination=apigateway.LogGroupLogDestination(self.access_log_group),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )
        resource = self.rest_api.root
        for part in WEBHOOK_PATH:
            resource = resource.add_resource(part)
        self.webhook_resource = resource
        self.webhook_method = resource.add_method(
            "ANY", apigateway.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        )
        self.stage = self.rest_api.deployment_stage
        self.webhook_url = self.rest_api.url_for_path(resource.path)
        deployment = self.rest_api.latest_deployment
        if allowed_source_ips and deployment is not None:
            # A resource policy only takes effect with a new deployment; CDK does not hash the policy into the
            # deployment's logical id, so add the allow-list to it (a changed list -> a new deployment).
            deployment.add_to_logical_id({"allowedSourceIps": sorted(allowed_source_ips)})


def source_ip_policy(allowed_source_ips: Sequence[str]) -> iam.PolicyDocument:
    """Anyone may invoke the API, except from an address outside `allowed_source_ips` (an explicit deny wins).

    "execute-api:/*" is API Gateway's shorthand for every method of this API (the API's own ARN cannot be used:
    the policy is part of the API).
    """

    def invoke(effect: iam.Effect, conditions: dict[str, object] | None = None) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            effect=effect,
            principals=[iam.AnyPrincipal()],
            actions=["execute-api:Invoke"],
            resources=["execute-api:/*"],
            conditions=conditions,
        )

    return iam.PolicyDocument(
        statements=[
            invoke(iam.Effect.ALLOW),
            invoke(iam.Effect.DENY, {"NotIpAddress": {"aws:SourceIp": list(allowed_source_ips)}}),
        ]
    )
