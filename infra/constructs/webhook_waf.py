"""An optional AWS WAF web ACL in front of the webhook API stage (context `enableWaf`).

Two rules, cheapest verdict first:
1. the AWS managed Amazon IP reputation list (known bots, scanners, malicious hosts);
2. a rate limit per source IP over 5-minute windows. WorkOS may deliver a directory's initial sync from one address,
   so the default (600,000 per 5 minutes) is the 2,000 events/s the README promises, per address; the stage
   throttle still bounds the total.

No body-size rule: WAF inspects at most 64 KB of an API Gateway body, so a size rule blocked valid events between
64 KB and the 248 KiB the ingest function accepts (issue #19). The ingest function answers 413 past 248 KiB, with
or without the web ACL; neither rule here reads the body.

Blocked requests never reach the ingest function, so they do not appear in its metrics: every rule publishes
CloudWatch metrics (namespace AWS/WAFV2) and keeps sampled requests. With `logging`, blocked requests are also
written to a log group whose name starts with "aws-waf-logs-" (a WAF requirement), with the signature header
redacted.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

RATE_WINDOW_SECONDS = 300
IP_REPUTATION_RULE_GROUP = "AWSManagedRulesAmazonIpReputationList"
# Status codes of the block responses: WorkOS retries any non-2xx, the codes tell an operator why.
RATE_LIMITED_STATUS = 429
SIGNATURE_HEADER = "workos-signature"


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


def _block(status: int) -> wafv2.CfnWebACL.RuleActionProperty:
    return wafv2.CfnWebACL.RuleActionProperty(
        block=wafv2.CfnWebACL.BlockActionProperty(
            custom_response=wafv2.CfnWebACL.CustomResponseProperty(response_code=status)
        )
    )


class WebhookWaf(Construct):
    """A REGIONAL web ACL associated with `stage`; `web_acl`, `association` and (with logging) `log_group`."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        stage: apigateway.Stage,
        rate_limit_per_5_minutes: int,
        logging: bool = False,
        log_retention: logs.RetentionDays | None = None,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        prefix = f"{stack.stack_name}-webhooks"
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            description="WorkOS webhook endpoint: IP reputation, per-IP rate limit",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(prefix),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="IpReputation",
                    priority=0,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS", name=IP_REPUTATION_RULE_GROUP
                        )
                    ),
                    visibility_config=_visibility(f"{prefix}-ip-reputation"),
                ),
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerSourceIp",
                    priority=1,
                    action=_block(RATE_LIMITED_STATUS),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            limit=rate_limit_per_5_minutes,
                            evaluation_window_sec=RATE_WINDOW_SECONDS,
                        )
                    ),
                    visibility_config=_visibility(f"{prefix}-rate-limit"),
                ),
            ],
        )
        self.association = wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
        self.log_group: logs.LogGroup | None = None
        if logging:
            self.log_group = self._logging(log_retention)

    def _logging(self, retention: logs.RetentionDays | None) -> logs.LogGroup:
        stack = Stack.of(self)
        log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"aws-waf-logs-{stack.stack_name}-webhooks",
            retention=retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # WAF wants the log group ARN without the trailing ":*" that LogGroup.log_group_arn carries.
        destination = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=log_group.log_group_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        wafv2.CfnLoggingConfiguration(
            self,
            "Logging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[destination],
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(
                    single_header={"Name": SIGNATURE_HEADER},
                )
            ],
            # Only what the web ACL blocked: allowed requests are in the API access log already.
            logging_filter={
                "DefaultBehavior": "DROP",
                "Filters": [
                    {
                        "Behavior": "KEEP",
                        "Requirement": "MEETS_ANY",
                        "Conditions": [{"ActionCondition": {"Action": "BLOCK"}}],
                    }
                ],
            },
        )
        return log_group
