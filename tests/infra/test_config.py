"""Stack settings from CDK context: defaults, validation messages, and non-default values reaching the template."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from infra.config import ConfigError, StackConfig
from infra.stack import DirectorySyncStack
from shared.resources import DEFAULT_STACK_NAME
from tests.infra.helpers import build_stack, get_att_arn, props, resources

pytestmark = pytest.mark.infra

CUSTOM_CONTEXT = {
    "stackName": "DsyncStaging",
    "reconcileRate": "15 minutes",
    "logRetentionDays": "90",  # `cdk synth -c key=value` passes strings
    "apiThrottleRateLimit": 50,
    "apiThrottleBurstLimit": 100,
    "signatureToleranceSeconds": 300,
    "tombstoneTtlDays": 7,
}


@pytest.fixture(scope="module")
def custom_stack() -> DirectorySyncStack:
    return build_stack(CUSTOM_CONTEXT)


@pytest.fixture(scope="module")
def custom_template(custom_stack: DirectorySyncStack) -> Template:
    return Template.from_stack(custom_stack)


def test_defaults() -> None:
    config = StackConfig.from_mapping({})
    assert config.stack_name == DEFAULT_STACK_NAME
    assert config.reconcile_rate == "1 hour"
    assert config.log_retention_days == 30
    assert (config.api_throttle_rate_limit, config.api_throttle_burst_limit) == (500, 1000)
    assert config.signature_tolerance_seconds == 180
    assert config.tombstone_ttl_days == 30
    assert config.account is None
    assert config.region is None


@pytest.mark.parametrize(
    ("rate", "minutes"),
    [("1 minute", 1), ("15 minutes", 15), ("1 hour", 60), ("6 hours", 360), ("1 day", 1440), ("2 days", 2880)],
)
def test_reconcile_rate_forms(rate: str, minutes: int) -> None:
    assert StackConfig.from_mapping({"reconcileRate": rate}).reconcile_interval.to_minutes() == minutes


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"reconcileRate": "15 mins"}, "reconcileRate"),
        ({"reconcileRate": "0 hours"}, "reconcileRate"),
        ({"reconcileRate": "hourly"}, "reconcileRate"),
        ({"logRetentionDays": 31}, "CloudWatch Logs accepts only"),
        ({"apiThrottleRateLimit": 0}, "apiThrottleRateLimit"),
        ({"apiThrottleBurstLimit": "lots"}, "apiThrottleBurstLimit"),
        ({"signatureToleranceSeconds": 7200}, "signatureToleranceSeconds"),
        ({"account": "1234"}, "account"),
        ({"region": "mars"}, "region"),
        ({"stackName": "1bad name"}, "stackName"),
    ],
)
def test_invalid_context_names_the_key(context: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StackConfig.from_mapping(context)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        StackConfig.from_mapping({"reconcileRate": "soon", "logRetentionDays": 2})
    assert "reconcileRate" in str(raised.value)
    assert "logRetentionDays" in str(raised.value)


def test_invalid_context_fails_the_build() -> None:
    with pytest.raises(ConfigError, match="logRetentionDays"):
        build_stack({"logRetentionDays": 10})


def test_default_schedule(template: Template) -> None:
    rules = resources(template, "AWS::Events::Rule")
    assert [rule["Properties"]["ScheduleExpression"] for rule in rules.values()] == ["rate(1 hour)"]


def test_custom_context_reaches_the_template(custom_stack: DirectorySyncStack, custom_template: Template) -> None:
    assert custom_stack.stack_name == "DsyncStaging"
    rules = resources(custom_template, "AWS::Events::Rule")
    assert [rule["Properties"]["ScheduleExpression"] for rule in rules.values()] == ["rate(15 minutes)"]
    (rule,) = rules.values()
    assert rule["Properties"]["Targets"][0]["Arn"] == get_att_arn(custom_stack.reconcile.function)
    assert "Input" not in rule["Properties"]["Targets"][0]  # the default scheduled event is passed on
    for log_group in resources(custom_template, "AWS::Logs::LogGroup").values():
        assert log_group["Properties"]["RetentionInDays"] == 90
    settings = props(custom_template, custom_stack.api.stage)["MethodSettings"][0]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (50, 100)
    ingest_env = props(custom_template, custom_stack.ingest.function)["Environment"]["Variables"]
    assert ingest_env["SIGNATURE_TOLERANCE_SECONDS"] == "300"
    apply_env = props(custom_template, custom_stack.apply.function)["Environment"]["Variables"]
    assert apply_env["TOMBSTONE_TTL_DAYS"] == "7"
    assert "DsyncStaging-webhooks" in json.dumps(custom_template.to_json())
