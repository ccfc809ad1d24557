"""Stack settings from CDK context: defaults, validation messages, and non-default values reaching the template."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from infra.application import build
from infra.config import WORKOS_WEBHOOK_SOURCE_IPS, ConfigError, StackConfig
from infra.stack import DirectorySyncStack
from shared.resources import DEFAULT_METRICS_NAMESPACE, DEFAULT_STACK_NAME
from tests.infra.helpers import SKIP_BUNDLING, build_stack, get_att_arn, props, resources

pytestmark = pytest.mark.infra

CUSTOM_CONTEXT = {
    "stackName": "DsyncStaging",
    "reconcileRate": "15 minutes",
    "logRetentionDays": "90",  # `cdk synth -c key=value` passes strings
    "apiThrottleRateLimit": 50,
    "apiThrottleBurstLimit": 100,
    "signatureToleranceSeconds": 300,
    "tombstoneTtlDays": 41,
    "maxDirectoryDeletionsPerWave": "5",
    "maxRemovalShare": "0.05",
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
    assert (config.api_throttle_rate_limit, config.api_throttle_burst_limit) == (2_500, 5_000)
    assert config.signature_tolerance_seconds == 180
    assert config.tombstone_ttl_days == 45
    assert config.account is None
    assert config.region is None


def test_monitoring_and_security_defaults() -> None:
    config = StackConfig.from_mapping({})
    # Integration guide, Step 10.
    assert config.alarm_ingest_5xx_minutes == 5
    assert config.alarm_signature_failures_per_hour == 10
    assert config.alarm_apply_duration_seconds == 10
    assert config.alarm_queue_age_seconds == 300
    assert config.metrics_namespace == DEFAULT_METRICS_NAMESPACE
    assert config.alarm_email is None
    assert config.alarm_topic_arn is None
    # Every security option is off by default; the API Gateway logging role stays managed by the stack.
    assert config.enable_waf is False
    assert config.waf_rate_limit_per_5_minutes == 600_000  # 2,000 requests/s per address
    assert config.waf_logging is False
    assert config.restrict_to_workos_ips is False
    assert config.allowed_source_ips == ()
    assert config.source_ip_allowlist == ()
    assert config.enable_tracing is False
    assert config.api_gateway_cloud_watch_role is True


@pytest.mark.parametrize(
    "value",
    ["198.51.100.0/24,203.0.113.7", " 198.51.100.0/24  203.0.113.7/32 ", '["198.51.100.0/24", "203.0.113.7"]'],
)
def test_allowed_source_ips_from_command_line_text(value: str) -> None:
    config = StackConfig.from_mapping({"allowedSourceIps": value})
    assert config.allowed_source_ips == ("198.51.100.0/24", "203.0.113.7/32")


def test_allowed_source_ips_add_to_the_workos_addresses() -> None:
    config = StackConfig.from_mapping(
        {"restrictToWorkosIps": "true", "allowedSourceIps": ["198.51.100.0/24", WORKOS_WEBHOOK_SOURCE_IPS[0]]}
    )
    expected = [f"{ip}/32" for ip in WORKOS_WEBHOOK_SOURCE_IPS] + ["198.51.100.0/24"]
    assert list(config.source_ip_allowlist) == expected  # deduplicated, WorkOS first


def test_boolean_flags_from_command_line_text() -> None:
    config = StackConfig.from_mapping({"enableWaf": "true", "enableTracing": "True", "apiGatewayCloudWatchRole": "0"})
    assert (config.enable_waf, config.enable_tracing, config.api_gateway_cloud_watch_role) == (True, True, False)


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
        ({"reconcileRate": "4 days"}, "drift alarm"),  # two periods would exceed CloudWatch's 7-day range
        ({"metricsNamespace": "AWS/Lambda"}, "reserved for AWS"),
        ({"metricsNamespace": "has space"}, "metricsNamespace"),
        ({"alarmIngest5xxMinutes": 0}, "alarmIngest5xxMinutes"),
        ({"alarmIngest5xxMinutes": 1441}, "alarmIngest5xxMinutes"),
        ({"alarmSignatureFailuresPerHour": -1}, "alarmSignatureFailuresPerHour"),
        ({"alarmApplyDurationSeconds": 60}, "alarmApplyDurationSeconds"),  # = the apply timeout: never fires
        ({"alarmQueueAgeSeconds": 30}, "alarmQueueAgeSeconds"),
        ({"alarmEmail": "ops"}, "alarmEmail"),
        ({"alarmTopicArn": "ops-alarms"}, "alarmTopicArn"),
        ({"alarmTopicArn": "arn:aws:sns:eu-west-1:111111111111:alarms.fifo"}, "alarmTopicArn"),
        ({"enableWaf": "maybe"}, "enableWaf"),
        ({"wafRateLimitPer5Minutes": 5}, "wafRateLimitPer5Minutes"),
        ({"wafRateLimitPer5Minutes": "lots"}, "wafRateLimitPer5Minutes"),
        ({"wafLogging": "true"}, "wafLogging needs enableWaf"),
        ({"allowedSourceIps": "198.51.100.300"}, "allowedSourceIps"),
        ({"allowedSourceIps": "10.0.0.1/8"}, "host bits set"),
        ({"allowedSourceIps": "0.0.0.0/0"}, "allows every address"),
        ({"allowedSourceIps": "[1.2.3.4"}, "allowedSourceIps"),
        ({"restrictToWorkosIps": "sometimes"}, "restrictToWorkosIps"),
        ({"enableTracing": "yes please"}, "enableTracing"),
        ({"apiGatewayCloudWatchRole": "perhaps"}, "apiGatewayCloudWatchRole"),
        (
            {"alarmEmail": "ops@example.com", "alarmTopicArn": "arn:aws:sns:eu-west-1:111111111111:alarms"},
            "not both",
        ),
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
    # The hourly reconcile, and the Events API tail started every minute.
    assert sorted(rule["Properties"]["ScheduleExpression"] for rule in rules.values()) == [
        "rate(1 hour)",
        "rate(1 minute)",
    ]


def test_custom_context_reaches_the_template(custom_stack: DirectorySyncStack, custom_template: Template) -> None:
    assert custom_stack.stack_name == "DsyncStaging"
    rules = resources(custom_template, "AWS::Events::Rule")
    (rule,) = [r for r in rules.values() if r["Properties"]["ScheduleExpression"] != "rate(1 minute)"]
    assert rule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    assert rule["Properties"]["Targets"][0]["Arn"] == get_att_arn(custom_stack.reconcile.function)
    assert "Input" not in rule["Properties"]["Targets"][0]  # the default scheduled event is passed on
    for log_group in resources(custom_template, "AWS::Logs::LogGroup").values():
        assert log_group["Properties"]["RetentionInDays"] == 90
    settings = props(custom_template, custom_stack.api.stage)["MethodSettings"][0]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (50, 100)
    ingest_env = props(custom_template, custom_stack.ingest.function)["Environment"]["Variables"]
    assert ingest_env["SIGNATURE_TOLERANCE_SECONDS"] == "300"
    apply_env = props(custom_template, custom_stack.apply.function)["Environment"]["Variables"]
    assert apply_env["TOMBSTONE_TTL_DAYS"] == "41"
    reconcile_env = props(custom_template, custom_stack.reconcile.function)["Environment"]["Variables"]
    assert reconcile_env["TOMBSTONE_TTL_DAYS"] == "41"
    assert (reconcile_env["MAX_DIRECTORY_DELETIONS_PER_WAVE"], reconcile_env["MAX_REMOVAL_SHARE"]) == ("5", "0.05")
    assert "DsyncStaging-webhooks" in json.dumps(custom_template.to_json())


def test_tombstones_shorter_than_retries_plus_dlq_retention_are_refused() -> None:
    with pytest.raises(ConfigError, match="tombstoneTtlDays"):
        StackConfig.from_mapping({"tombstoneTtlDays": 38})


def test_tail_enabled_false_leaves_the_events_api_tail_out() -> None:
    stack = build_stack({"tailEnabled": False})
    template = Template.from_stack(stack)
    assert stack.tail is None
    assert [r["Properties"]["ScheduleExpression"] for r in resources(template, "AWS::Events::Rule").values()] == [
        "rate(1 hour)"
    ]
    assert not any("Tail" in alarm_id for alarm_id in stack.monitoring.alarms)


def test_tail_bootstrap_hours_reaches_the_function() -> None:
    stack = build_stack({"tailBootstrapHours": 6})
    assert stack.tail is not None
    variables = props(Template.from_stack(stack), stack.tail.function)["Environment"]["Variables"]
    assert variables["TAIL_BOOTSTRAP_HOURS"] == "6"


# --- rehearsal-only switches (`make rehearse`): the emulator's account only ---------------------------------------

REHEARSAL_SWITCHES = ("rehearsalOmitChangeArchive", "rehearsalHostBundles")
EMULATOR = {"account": "000000000000", "region": "us-east-1"}


def test_rehearsal_switches_are_off_by_default() -> None:
    config = StackConfig.from_mapping({})
    assert (config.rehearsal_omit_change_archive, config.rehearsal_host_bundles) == (False, False)
    assert config.rehearsal_switches == ()
    config.check_rehearsal_account(None)  # nothing to refuse
    config.check_rehearsal_account("123456789012")


@pytest.mark.parametrize("switch", REHEARSAL_SWITCHES)
@pytest.mark.parametrize(
    ("context", "environ"),
    [
        ({"account": "123456789012"}, {}),  # a real account from context
        ({}, {"CDK_DEFAULT_ACCOUNT": "123456789012", "CDK_DEFAULT_REGION": "eu-west-1"}),  # from the CLI's credentials
        ({}, {}),  # no account known: not the emulator's either
    ],
    ids=["context-account", "cli-account", "unknown-account"],
)
def test_rehearsal_switches_refuse_any_account_but_the_emulators(
    switch: str, context: dict[str, str], environ: dict[str, str]
) -> None:
    app = App(context={**SKIP_BUNDLING, **context, switch: "true"})
    with pytest.raises(ConfigError, match=rf"context key '{switch}' is for a rehearsal on the MiniStack emulator"):
        build(app, environ=environ)
    assert not app.node.children  # refused before any stack was added


def test_rehearsal_switches_are_accepted_for_the_emulator_account_from_the_cli() -> None:
    app = App(context={**SKIP_BUNDLING, **dict.fromkeys(REHEARSAL_SWITCHES, "true")})
    stack = build(app, environ={"CDK_DEFAULT_ACCOUNT": "000000000000", "CDK_DEFAULT_REGION": "us-east-1"})
    assert stack.config.rehearsal_switches == REHEARSAL_SWITCHES


def test_rehearsal_refusal_names_every_switch_that_is_on() -> None:
    config = StackConfig.from_mapping(dict.fromkeys(REHEARSAL_SWITCHES, "true"))
    with pytest.raises(ConfigError) as raised:
        config.check_rehearsal_account("123456789012")
    assert all(repr(switch) in str(raised.value) for switch in REHEARSAL_SWITCHES)
    assert "123456789012" in str(raised.value)


def test_rehearsal_template_leaves_the_archive_out_and_keeps_the_lambda_runtime(template: Template) -> None:
    rehearsal = Template.from_stack(build_stack({**EMULATOR, **dict.fromkeys(REHEARSAL_SWITCHES, "true")}))
    assert resources(rehearsal, "AWS::Events::Archive") == {}
    assert len(resources(template, "AWS::Events::Archive")) == 1
    real_functions = resources(template, "AWS::Lambda::Function")
    rehearsal_functions = resources(rehearsal, "AWS::Lambda::Function")
    assert rehearsal_functions.keys() == real_functions.keys()
    for logical, function in rehearsal_functions.items():
        real = real_functions[logical]["Properties"]
        assert function["Properties"]["Runtime"] == real["Runtime"] == "python3.14"
        assert function["Properties"]["Architectures"] == real["Architectures"] == ["arm64"]
        assert function["Properties"]["Handler"] == real["Handler"]
        # Host bundles are other assets: a real deploy never picks one up from the cdk.out cache.
        assert function["Properties"]["Code"]["S3Key"] != real["Code"]["S3Key"]


def test_each_rehearsal_switch_changes_only_its_own_part(template: Template) -> None:
    def code(of: Template) -> dict[str, object]:
        functions = resources(of, "AWS::Lambda::Function")
        return {key: value["Properties"]["Code"]["S3Key"] for key, value in functions.items()}

    archive_only = Template.from_stack(build_stack({**EMULATOR, "rehearsalOmitChangeArchive": "true"}))
    assert resources(archive_only, "AWS::Events::Archive") == {}
    assert code(archive_only) == code(template)
    bundles_only = Template.from_stack(build_stack({**EMULATOR, "rehearsalHostBundles": "true"}))
    assert len(resources(bundles_only, "AWS::Events::Archive")) == 1


def test_the_rehearsal_harness_agrees_with_the_stack_on_account_and_interpreter() -> None:
    """`rehearsal` keeps its own copies (importing infra would start the CDK's jsii runtime in the harness)."""
    from infra.bundling import host_interpreter
    from infra.config import EMULATOR_ACCOUNT
    from rehearsal.cdk import EMULATOR_ACCOUNT as REHEARSAL_ACCOUNT
    from rehearsal.run import HOST_INTERPRETER

    assert REHEARSAL_ACCOUNT == EMULATOR_ACCOUNT
    assert host_interpreter() == HOST_INTERPRETER
