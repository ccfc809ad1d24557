"""One Lambda function of the pipeline, built the same way for every `shared.resources.FunctionSpec`."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling import lambda_architecture, lambda_runtime
from shared.resources import FunctionSpec


def service_name(spec: FunctionSpec) -> str:
    """The Powertools service name of a function: its logs' `service` key and its metrics' `service` dimension."""
    return f"dsync-{spec.name}"


class PipelineFunction(Construct):
    """A Python arm64 function with its own role and log group.

    The role starts empty: instead of the AWSLambdaBasicExecutionRole managed policy (logs on every log group of
    the account) it may only write to this function's log group. Callers grant everything else on `role`.
    `tracing` turns on X-Ray active tracing (platform segments only: the handlers do not use the Powertools Tracer),
    which adds xray:PutTraceSegments/PutTelemetryRecords on "*" to the role.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        spec: FunctionSpec,
        code: lambda_.Code,
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        metrics_namespace: str,
        tracing: bool = False,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.spec = spec
        self.service_name = service_name(spec)
        self.log_group = logs.LogGroup(self, "LogGroup", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of the dsync {spec.name} function",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"WorkOS Directory Sync pipeline: {spec.name}",
            runtime=lambda_runtime(),
            architecture=lambda_architecture(),
            handler=spec.handler,
            code=code,
            timeout=Duration.seconds(spec.timeout_seconds),
            memory_size=spec.memory_mb,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE if tracing else None,
            reserved_concurrent_executions=reserved_concurrency,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": self.service_name,
                "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace,
            },
        )
        self._depend_on_policy_only()

    def _depend_on_policy_only(self) -> None:
        """Make the function wait for its role's policy (log permissions, event source grants) and nothing else.

        CDK makes the function depend on the whole role construct, so the template repeats a dependency the
        `Role: !GetAtt` already implies (cfn-lint W3005). The policy is the part that needs the explicit DependsOn.
        """
        function = self.function.node.default_child
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        if not isinstance(function, lambda_.CfnFunction) or not isinstance(policy, iam.CfnPolicy):
            raise TypeError(f"{self.node.path}: unexpected CDK construct tree for a Lambda function and its role")
        function.add_override("DependsOn", [policy.logical_id])
