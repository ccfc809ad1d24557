"""Optional edge protection and tracing: WAF web ACL, source IP allow-list, X-Ray, API Gateway logging role."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.config import WORKOS_WEBHOOK_SOURCE_IPS
from infra.stack import DirectorySyncStack
from tests.infra.helpers import get_att_arn, logical_id, props, ref, resources

pytestmark = pytest.mark.infra

# WorkOS's published webhook source addresses (workos-facts 1.1, WorkOS docs "Create an IP allowlist"), spelled out
# here again so that an edit to the constant in infra/config.py is a visible test change.
WORKOS_IPS = {
    "3.217.146.166",
    "23.21.184.92",
    "34.204.154.149",
    "44.213.245.178",
    "44.215.236.82",
    "50.16.203.9",
    "52.1.251.34",
    "52.21.49.187",
    "174.129.36.47",
}


def functions(stack: DirectorySyncStack) -> list[Any]:
    return [stack.ingest, stack.apply, stack.reconcile, stack.publish]


# --- Defaults: every option off --------------------------------------------------------------------------------------


def test_defaults_add_no_waf_policy_or_tracing(stack: DirectorySyncStack, template: Template) -> None:
    assert stack.waf is None
    for resource_type in ("AWS::WAFv2::WebACL", "AWS::WAFv2::WebACLAssociation", "AWS::WAFv2::LoggingConfiguration"):
        template.resource_count_is(resource_type, 0)
    assert "Policy" not in props(template, stack.api.rest_api)
    for fn in functions(stack):
        assert "TracingConfig" not in props(template, fn.function)
    assert "TracingEnabled" not in props(template, stack.api.stage)
    assert "xray:" not in json.dumps(template.to_json())


# --- enableWaf ---------------------------------------------------------------------------------------------------


def web_acl(stack: DirectorySyncStack, template: Template) -> dict[str, Any]:
    assert stack.waf is not None
    return props(template, stack.waf.web_acl)


def rule(acl: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [r for r in acl["Rules"] if r["Name"] == name]
    assert len(found) == 1, name
    return found[0]


def test_web_acl_is_regional_and_observable(full_stack: DirectorySyncStack, full_template: Template) -> None:
    full_template.resource_count_is("AWS::WAFv2::WebACL", 1)
    acl = web_acl(full_stack, full_template)
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    assert [r["Name"] for r in sorted(acl["Rules"], key=lambda r: r["Priority"])] == [
        "IpReputation",
        "RateLimitPerSourceIp",
    ]
    for config in [acl["VisibilityConfig"], *(r["VisibilityConfig"] for r in acl["Rules"])]:
        assert config["CloudWatchMetricsEnabled"] is True
        assert config["SampledRequestsEnabled"] is True


def test_rate_rule_limits_each_source_ip(full_stack: DirectorySyncStack, full_template: Template) -> None:
    rate = rule(web_acl(full_stack, full_template), "RateLimitPerSourceIp")
    assert rate["Statement"] == {
        "RateBasedStatement": {"AggregateKeyType": "IP", "Limit": 600_000, "EvaluationWindowSec": 300}
    }
    assert rate["Action"] == {"Block": {"CustomResponse": {"ResponseCode": 429}}}


def test_rate_limit_from_context(alternative_stack: DirectorySyncStack, alternative_template: Template) -> None:
    rate = rule(web_acl(alternative_stack, alternative_template), "RateLimitPerSourceIp")
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == 5000


def test_the_web_acl_refuses_no_body_the_ingest_function_accepts(
    full_stack: DirectorySyncStack, full_template: Template
) -> None:
    """Issue #19: a 64 KB body-size rule (WAF's inspection limit) refused events the ingest function accepts (up to
    248 KiB); no rule reads the body now, and the default per-address rate is the README's 2,000 events/s."""
    acl = web_acl(full_stack, full_template)
    assert "Body" not in json.dumps(acl["Rules"])
    assert "AssociationConfig" not in acl
    limit = rule(acl, "RateLimitPerSourceIp")["Statement"]["RateBasedStatement"]["Limit"]
    assert limit / 300 == 2_000


def test_ip_reputation_managed_rule_group(full_stack: DirectorySyncStack, full_template: Template) -> None:
    reputation = rule(web_acl(full_stack, full_template), "IpReputation")
    assert reputation["Statement"] == {
        "ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": "AWSManagedRulesAmazonIpReputationList"}
    }
    assert reputation["OverrideAction"] == {"None": {}}


def test_web_acl_is_associated_with_the_stage(full_stack: DirectorySyncStack, full_template: Template) -> None:
    assert full_stack.waf is not None
    (association,) = resources(full_template, "AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == get_att_arn(full_stack.waf.web_acl)
    arn = association["Properties"]["ResourceArn"]["Fn::Join"][1]
    assert ref(full_stack.api.rest_api) in arn
    assert arn[-2:] == ["/stages/", ref(full_stack.api.stage)]


def test_waf_logging_keeps_blocked_requests_without_the_signature(
    full_stack: DirectorySyncStack, full_template: Template
) -> None:
    assert full_stack.waf is not None and full_stack.waf.log_group is not None
    log_group = props(full_template, full_stack.waf.log_group)
    assert log_group["LogGroupName"] == f"aws-waf-logs-{full_stack.stack_name}-webhooks"  # WAF requires the prefix
    assert log_group["RetentionInDays"] == 30
    (logging,) = resources(full_template, "AWS::WAFv2::LoggingConfiguration").values()
    settings = logging["Properties"]
    assert settings["ResourceArn"] == get_att_arn(full_stack.waf.web_acl)
    destination = settings["LogDestinationConfigs"][0]["Fn::Join"][1]
    assert destination[-2:] == [":log-group:", ref(full_stack.waf.log_group)]  # no trailing ":*"
    assert settings["RedactedFields"] == [{"SingleHeader": {"Name": "workos-signature"}}]
    assert settings["LoggingFilter"]["DefaultBehavior"] == "DROP"


def test_waf_without_logging(alternative_stack: DirectorySyncStack, alternative_template: Template) -> None:
    assert alternative_stack.waf is not None
    assert alternative_stack.waf.log_group is None
    alternative_template.resource_count_is("AWS::WAFv2::WebACLAssociation", 1)
    alternative_template.resource_count_is("AWS::WAFv2::LoggingConfiguration", 0)


# --- restrictToWorkosIps / allowedSourceIps -------------------------------------------------------------------------


def resource_policy(stack: DirectorySyncStack, template: Template) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = props(template, stack.api.rest_api)["Policy"]["Statement"]
    return statements


def allowed_addresses(statements: list[dict[str, Any]]) -> list[str]:
    allow, deny = statements
    invoke = {"Action": "execute-api:Invoke", "Principal": {"AWS": "*"}, "Resource": "execute-api:/*"}
    assert allow == {**invoke, "Effect": "Allow"}
    assert deny.items() >= {**invoke, "Effect": "Deny"}.items()
    (condition,) = deny["Condition"].items()
    assert condition[0] == "NotIpAddress"
    assert list(condition[1]) == ["aws:SourceIp"]
    addresses: list[str] = condition[1]["aws:SourceIp"]
    return addresses


def test_restrict_to_workos_ips_allows_exactly_the_workos_addresses(
    full_stack: DirectorySyncStack, full_template: Template
) -> None:
    addresses = allowed_addresses(resource_policy(full_stack, full_template))
    assert len(addresses) == len(WORKOS_IPS)
    assert set(addresses) == {f"{ip}/32" for ip in WORKOS_IPS}
    assert set(WORKOS_WEBHOOK_SOURCE_IPS) == WORKOS_IPS


def test_allowed_source_ips_from_context(alternative_stack: DirectorySyncStack, alternative_template: Template) -> None:
    addresses = allowed_addresses(resource_policy(alternative_stack, alternative_template))
    assert addresses == ["198.51.100.0/24", "203.0.113.7/32"]


def test_a_changed_allow_list_redeploys_the_stage(
    template: Template, full_template: Template, alternative_template: Template
) -> None:
    # A resource policy only applies after a new deployment: each allow-list gets its own deployment logical id.
    deployments = [
        list(resources(t, "AWS::ApiGateway::Deployment")) for t in (template, full_template, alternative_template)
    ]
    assert all(len(ids) == 1 for ids in deployments)
    assert len({ids[0] for ids in deployments}) == 3


# --- enableTracing -----------------------------------------------------------------------------------------------


def test_tracing_on_every_function_and_the_stage(full_stack: DirectorySyncStack, full_template: Template) -> None:
    for fn in functions(full_stack):
        assert props(full_template, fn.function)["TracingConfig"] == {"Mode": "Active"}, fn.spec.name
    assert props(full_template, full_stack.api.stage)["TracingEnabled"] is True


# --- apiGatewayCloudWatchRole=false -------------------------------------------------------------------------------


def test_without_the_account_logging_role(
    alternative_stack: DirectorySyncStack, alternative_template: Template
) -> None:
    alternative_template.resource_count_is("AWS::ApiGateway::Account", 0)
    assert alternative_stack.api.rest_api.node.try_find_child("CloudWatchRole") is None
    for role in resources(alternative_template, "AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]
    stage = alternative_template.to_json()["Resources"][logical_id(alternative_stack.api.stage)]
    assert "DependsOn" not in stage
    # Stage logging stays on: it uses whatever role the account already has.
    settings = props(alternative_template, alternative_stack.api.stage)["MethodSettings"][0]
    assert settings["LoggingLevel"] == "ERROR"
