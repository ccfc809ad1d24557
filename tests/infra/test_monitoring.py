"""Alarms and dashboard: every alarm watches a metric the functions really emit, with the documented threshold."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.bundling import PROJECT_ROOT
from infra.stack import DASHBOARD_URL_OUTPUT, DirectorySyncStack
from shared.resources import DEFAULT_METRICS_NAMESPACE
from tests.infra.helpers import EXISTING_TOPIC_ARN, get_att_arn, logical_id, props, ref, resources

pytestmark = pytest.mark.infra

# What the functions emit (CloudWatch EMF via Powertools): metric names with only the `service` dimension ...
EMITTED: dict[str, set[str]] = {
    "dsync-ingest": {
        "WebhooksAccepted",
        "WebhooksIgnored",
        "WebhooksRejected",
        "SignatureFailures",
        "EnqueueFailures",
        "WebhookSecretNotConfigured",
    },
    "dsync-apply": {"EventsApplied", "EventsNoop", "EventsFailed", "EventsDeadLettered", "ApplyLag", "BatchDuration"},
    "dsync-reconcile": {
        "ReconcileRequests",
        "ReconcileRateLimited",
        "ReconcileDuration",
        "ReconcileFailures",
        "ReconcileRefused",
        "ReconcileDeletionsHeld",
        "ReconcileItemsSkipped",
        "ReconcileDrift",
        "ReconcileDriftFound",
        "ReconcileJobsPlanned",
        "ReconcileNotConfigured",
        "DirectoriesUnhealthy",
        "DirectoriesUnhealthyTooLong",
        "DirectoryCountMismatches",
        "PurgedItems",
        "InvocationDuration",
    },
    "dsync-publish": {"ChangeEventsPublished", "ChangeEventsFailed", "StreamRecordsFailed", "BatchDuration"},
    "dsync-tail": {
        "TailPolls",
        "TailEventsRead",
        "TailEventsEnqueued",
        "TailFullPages",
        "TailRateLimited",
        "TailUnavailable",
        "TailEnqueueFailures",
        "TailEventsParked",
        "TailEnvironmentChanged",
        "TailCursorRefused",
        "TailAuthFailures",
        "TailLagSeconds",
        "TailPollAgeSeconds",
        "TailCursorAgeSeconds",
        "TailNotConfigured",
    },
}
# Where each function's metrics are recorded: its handler, and the report module it hands its results to.
METRIC_SOURCES: dict[str, tuple[str, ...]] = {
    "dsync-ingest": ("functions/ingest/handler.py",),
    "dsync-apply": ("functions/apply/handler.py",),
    "dsync-reconcile": ("functions/reconcile/handler.py", "shared/reconcile/report.py"),
    "dsync-publish": ("functions/publish/handler.py",),
    "dsync-tail": ("functions/tail/handler.py", "shared/tail/report.py"),
}
# ... and those also (or only) emitted with one extra dimension.
EXTRA_DIMENSION: dict[tuple[str, str], str] = {
    ("dsync-ingest", "WebhooksRejected"): "Reason",
    ("dsync-apply", "EventsApplied"): "EventType",
    ("dsync-apply", "EventsNoop"): "EventType",
    ("dsync-apply", "EventsFailed"): "EventType",
    ("dsync-apply", "EventsDeadLettered"): "EventType",
    ("dsync-apply", "EventsIgnored"): "EventType",
    ("dsync-reconcile", "ReconcileRuns"): "Status",
    ("dsync-reconcile", "ReconcileRepairs"): "Kind",
    ("dsync-publish", "ChangeEventsPublished"): "DetailType",
    ("dsync-publish", "ChangeEventsFailed"): "DetailType",
    ("dsync-tail", "TailRuns"): "Status",
}

GTE = "GreaterThanOrEqualToThreshold"
GT = "GreaterThanThreshold"


def service(name: str) -> list[dict[str, str]]:
    return [{"Name": "service", "Value": f"dsync-{name}"}]


def function_dims(attribute: str) -> Callable[[DirectorySyncStack], list[dict[str, Any]]]:
    return lambda stack: [{"Name": "FunctionName", "Value": ref(getattr(stack, attribute).function)}]


def queue_dims(get_queue: Callable[[DirectorySyncStack], Any]) -> Callable[[DirectorySyncStack], list[dict[str, Any]]]:
    return lambda stack: [{"Name": "QueueName", "Value": get_att_arn(get_queue(stack), "QueueName")}]


def stage_dims(stack: DirectorySyncStack) -> list[dict[str, Any]]:
    return [
        {"Name": "ApiName", "Value": f"{stack.stack_name}-webhooks"},
        {"Name": "Stage", "Value": ref(stack.api.stage)},
    ]


CUSTOM = "<custom namespace>"
# alarm id -> (namespace, metric, dimensions, statistic, period s, comparison, threshold, evaluation periods) with
# the default context.
EXPECTED_ALARMS: dict[str, tuple[str, str, Any, str, int, str, float, int]] = {
    # Integration guide, Step 10: endpoint returning 5xx for more than 5 minutes.
    "Ingest5xx": ("AWS/ApiGateway", "5XXError", stage_dims, "Sum", 60, GTE, 1, 5),
    # ... more than 10 signature verification failures per hour.
    "SignatureFailures": (CUSTOM, "SignatureFailures", service("ingest"), "Sum", 3600, GT, 10, 1),
    # ... processing time over 10 seconds.
    "ApplyDuration": ("AWS/Lambda", "Duration", function_dims("apply"), "Maximum", 300, GT, 10_000, 1),
    "EnqueueFailures": (CUSTOM, "EnqueueFailures", service("ingest"), "Sum", 300, GTE, 1, 1),
    "EventDeadLetterQueue": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        queue_dims(lambda s: s.events.dead_letter_queue),
        "Maximum",
        300,
        GTE,
        1,
        1,
    ),
    "WorkDeadLetterQueue": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        queue_dims(lambda s: s.work.dead_letter_queue),
        "Maximum",
        300,
        GTE,
        1,
        1,
    ),
    "PublishDeadLetterQueue": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        queue_dims(lambda s: s.publish_dead_letter_queue),
        "Maximum",
        300,
        GTE,
        1,
        1,
    ),
    "EventQueueAge": (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        queue_dims(lambda s: s.events.queue),
        "Maximum",
        300,
        GT,
        300,
        1,
    ),
    # A throttled directory's backlog drains in minutes; an hour in the overflow queue means it is stuck.
    "OverflowQueueAge": (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        queue_dims(lambda s: s.overflow_queue),
        "Maximum",
        300,
        GT,
        3600,
        1,
    ),
    "ReconcileFailures": (CUSTOM, "ReconcileFailures", service("reconcile"), "Sum", 300, GTE, 1, 1),
    "ReconcileRefused": (CUSTOM, "ReconcileRefused", service("reconcile"), "Sum", 300, GTE, 1, 1),
    "ReconcileDeletionsHeld": (CUSTOM, "ReconcileDeletionsHeld", service("reconcile"), "Sum", 300, GTE, 1, 1),
    "ReconcileItemsSkipped": (CUSTOM, "ReconcileItemsSkipped", service("reconcile"), "Sum", 300, GTE, 1, 1),
    # Drift twice in a row: two consecutive periods of the (default hourly) reconcile schedule.
    "ReconcileDrift": (CUSTOM, "ReconcileDriftFound", service("reconcile"), "Maximum", 3600, GTE, 1, 2),
    "DirectoryUnhealthy": (CUSTOM, "DirectoriesUnhealthyTooLong", service("reconcile"), "Maximum", 3600, GTE, 1, 1),
    "ChangeEventsFailed": (CUSTOM, "ChangeEventsFailed", service("publish"), "Sum", 300, GTE, 1, 1),
    **{
        f"{name.capitalize()}{metric}": ("AWS/Lambda", metric, function_dims(name), "Sum", 300, GTE, 1, 1)
        for name in ("ingest", "apply", "reconcile", "publish")
        for metric in ("Errors", "Throttles")
    },
    # The tail: poll age over 5 minutes (missing data breaches: a tail that does not run reports nothing).
    "TailPollAge": (CUSTOM, "TailPollAgeSeconds", service("tail"), "Maximum", 60, GT, 300, 5),
    "TailCursorAge": (CUSTOM, "TailCursorAgeSeconds", service("tail"), "Maximum", 3600, GT, 25 * 86_400, 1),
    "TailCursorRefused": (CUSTOM, "TailCursorRefused", service("tail"), "Sum", 300, GTE, 1, 1),
    "TailAuthFailures": (CUSTOM, "TailAuthFailures", service("tail"), "Sum", 300, GTE, 1, 1),
    "TailErrors": ("AWS/Lambda", "Errors", function_dims("tail"), "Sum", 300, GTE, 1, 1),
    # SQS refusing the tail's pages again and again (a single failure is retried within seconds; the tail backs off
    # 5 s, so a refusal that lasts shows as several a minute).
    "TailEnqueueFailures": (CUSTOM, "TailEnqueueFailures", service("tail"), "Sum", 300, GTE, 3, 1),
    # An event no SQS message can hold was parked: its directory needs a reconcile.
    "TailEventsParked": (CUSTOM, "TailEventsParked", service("tail"), "Sum", 300, GTE, 1, 1),
    # WorkOS refused the cursor and the key sees none of the mirror's directories: a key of another environment.
    "TailEnvironmentChanged": (CUSTOM, "TailEnvironmentChanged", service("tail"), "Sum", 300, GTE, 1, 1),
}
BREACHING_WHEN_MISSING = {"TailPollAge"}


def alarm_props(stack: DirectorySyncStack, template: Template, alarm_id: str) -> dict[str, Any]:
    return props(template, stack.monitoring.alarms[alarm_id])


def test_exactly_the_expected_alarms(stack: DirectorySyncStack, template: Template) -> None:
    assert set(stack.monitoring.alarms) == set(EXPECTED_ALARMS)
    template.resource_count_is("AWS::CloudWatch::Alarm", len(EXPECTED_ALARMS))


@pytest.mark.parametrize("alarm_id", sorted(EXPECTED_ALARMS))
def test_alarm_metric_and_threshold(stack: DirectorySyncStack, template: Template, alarm_id: str) -> None:
    namespace, metric, dimensions, statistic, period, comparison, threshold, periods = EXPECTED_ALARMS[alarm_id]
    alarm = alarm_props(stack, template, alarm_id)
    assert alarm["Namespace"] == (DEFAULT_METRICS_NAMESPACE if namespace == CUSTOM else namespace)
    assert alarm["MetricName"] == metric
    assert alarm["Dimensions"] == (dimensions(stack) if callable(dimensions) else dimensions)
    assert alarm["Statistic"] == statistic
    assert alarm["Period"] == period
    assert alarm["ComparisonOperator"] == comparison
    assert alarm["Threshold"] == threshold
    assert alarm["EvaluationPeriods"] == periods
    assert alarm["DatapointsToAlarm"] == periods  # "for N of N periods", "twice in a row"
    # The functions emit nothing when nothing happens; the tail's poll age is missing exactly when it is stalled.
    assert alarm["TreatMissingData"] == ("breaching" if alarm_id in BREACHING_WHEN_MISSING else "notBreaching")
    assert alarm["AlarmName"] == f"{stack.stack_name}-{alarm_id}"
    assert len(alarm["AlarmDescription"]) > 40


def test_custom_metric_alarms_watch_metrics_the_functions_emit(stack: DirectorySyncStack, template: Template) -> None:
    custom = [
        alarm["Properties"]
        for alarm in resources(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["Namespace"] == DEFAULT_METRICS_NAMESPACE
    ]
    assert len(custom) == 16
    for alarm in custom:
        ((dimension,),) = [alarm["Dimensions"]]
        assert dimension["Name"] == "service"
        assert alarm["MetricName"] in EMITTED[dimension["Value"]], alarm["AlarmName"]


def handler_metric_names() -> dict[str, set[str]]:
    """Metric names each handler passes to metrics.count/record, read from the source."""
    names: dict[str, set[str]] = {}
    for service_name, paths in METRIC_SOURCES.items():
        source = "".join(Path(PROJECT_ROOT, path).read_text() for path in paths)
        names[service_name] = set(re.findall(r"metrics\.(?:count|record)\(\s*\"(\w+)\"", source))
    return names


def test_expected_metric_names_match_the_handlers() -> None:
    emitted = handler_metric_names()
    for service_name, metric_names in EMITTED.items():
        assert metric_names <= emitted[service_name], service_name
    for service_name, metric_name in EXTRA_DIMENSION:
        assert metric_name in emitted[service_name], (service_name, metric_name)


def test_default_alarms_notify_nobody(template: Template) -> None:
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm["Properties"]
        assert "OKActions" not in alarm["Properties"]
    template.resource_count_is("AWS::SNS::Topic", 0)
    template.resource_count_is("AWS::SNS::Subscription", 0)
    assert "AlarmTopicArn" not in template.to_json()["Outputs"]


# --- alarmEmail: an encrypted topic with an email subscription ---------------------------------------------------


def test_alarm_email_creates_an_encrypted_tls_only_topic(
    full_stack: DirectorySyncStack, full_template: Template
) -> None:
    topic = full_stack.alarm_topic
    assert topic is not None
    topics = resources(full_template, "AWS::SNS::Topic")
    assert list(topics) == [logical_id(topic.topic)]
    assert props(full_template, topic.topic)["KmsMasterKeyId"] == get_att_arn(topic.key)
    assert props(full_template, topic.key)["EnableKeyRotation"] is True
    full_template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": ref(topic.topic)},
    )
    full_template.resource_count_is("AWS::SNS::Subscription", 1)
    (policy,) = resources(full_template, "AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statements[0]["Effect"] == "Deny"
    assert statements[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # CloudWatch may publish, for this account's alarms of this stack only.
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Resource"] == ref(topic.topic)
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(f':alarm:{full_stack.stack_name}-*"]]}}')
    assert full_template.to_json()["Outputs"]["AlarmTopicArn"]["Value"] == ref(topic.topic)


def test_cloudwatch_may_use_only_the_alarm_topic_key(full_stack: DirectorySyncStack, full_template: Template) -> None:
    topic = full_stack.alarm_topic
    assert topic is not None
    keys_for_cloudwatch = {
        key_id
        for key_id, key in resources(full_template, "AWS::KMS::Key").items()
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    }
    assert keys_for_cloudwatch == {logical_id(topic.key)}  # never the pipeline key
    statements = props(full_template, topic.key)["KeyPolicy"]["Statement"]
    (cloudwatch,) = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_every_alarm_notifies_the_topic_on_alarm_and_recovery(
    full_stack: DirectorySyncStack, full_template: Template
) -> None:
    topic = full_stack.alarm_topic
    assert topic is not None
    alarms = resources(full_template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == len(EXPECTED_ALARMS)
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [ref(topic.topic)]
        assert alarm["Properties"]["OKActions"] == [ref(topic.topic)]


# --- alarmTopicArn and non-default thresholds --------------------------------------------------------------------


def test_existing_topic_is_notified_and_not_created(alternative_template: Template) -> None:
    alternative_template.resource_count_is("AWS::SNS::Topic", 0)
    for alarm in resources(alternative_template, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [EXISTING_TOPIC_ARN]
        assert alarm["Properties"]["OKActions"] == [EXISTING_TOPIC_ARN]
    assert alternative_template.to_json()["Outputs"]["AlarmTopicArn"]["Value"] == EXISTING_TOPIC_ARN


def test_thresholds_from_context_are_honoured(
    alternative_stack: DirectorySyncStack, alternative_template: Template
) -> None:
    def alarm(alarm_id: str) -> dict[str, Any]:
        return alarm_props(alternative_stack, alternative_template, alarm_id)

    ingest_5xx = alarm("Ingest5xx")
    assert (ingest_5xx["Period"], ingest_5xx["EvaluationPeriods"], ingest_5xx["DatapointsToAlarm"]) == (60, 3, 3)
    assert alarm("SignatureFailures")["Threshold"] == 25
    assert alarm("ApplyDuration")["Threshold"] == 20_000
    assert alarm("EventQueueAge")["Threshold"] == 600
    drift = alarm("ReconcileDrift")
    assert (drift["Period"], drift["EvaluationPeriods"]) == (15 * 60, 2)  # reconcileRate "15 minutes"


def test_metrics_namespace_reaches_functions_alarms_and_dashboard(
    alternative_stack: DirectorySyncStack, alternative_template: Template
) -> None:
    namespace = "Acme/DirectorySync"
    for function in (alternative_stack.ingest, alternative_stack.apply, alternative_stack.reconcile):
        variables = props(alternative_template, function.function)["Environment"]["Variables"]
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == namespace
    custom = [
        alarm["Properties"]["Namespace"]
        for alarm in resources(alternative_template, "AWS::CloudWatch::Alarm").values()
        if not alarm["Properties"]["Namespace"].startswith("AWS/")
    ]
    assert custom == [namespace] * 16
    body, _ = dashboard_body(alternative_template)
    assert DEFAULT_METRICS_NAMESPACE not in json.dumps(body).replace(namespace, "")


# --- Dashboard ------------------------------------------------------------------------------------------------------


def dashboard_body(template: Template) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dashboard body as JSON, with each CloudFormation token replaced by "@<n>" (and the tokens by n)."""
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    tokens: dict[str, Any] = {}
    text = ""
    for part in parts:
        if isinstance(part, str):
            text += part
        else:
            tokens[f"@{len(tokens)}"] = part
            text += f"@{len(tokens) - 1}"
    return json.loads(text), tokens


def dashboard_metrics(template: Template) -> tuple[list[list[Any]], list[str], dict[str, Any]]:
    """(metric arrays, SEARCH expressions, tokens) of every graph on the dashboard."""
    body, tokens = dashboard_body(template)
    arrays: list[list[Any]] = []
    expressions: list[str] = []
    for widget in body["widgets"]:
        for entry in widget["properties"].get("metrics", []):
            if isinstance(entry[0], dict):
                expressions.append(entry[0]["expression"])
            else:
                arrays.append(entry)
    return arrays, expressions, tokens


def test_dashboard_shows_the_key_figures(template: Template) -> None:
    arrays, expressions, _ = dashboard_metrics(template)
    shown = {entry[1] for entry in arrays} | {
        match for expression in expressions for match in re.findall(r'MetricName="(\w+)"', expression)
    }
    key_metrics = {
        # Webhooks
        "WebhooksAccepted",
        "WebhooksRejected",
        "WebhooksIgnored",
        "SignatureFailures",
        "EnqueueFailures",
        "Count",
        "4XXError",
        "5XXError",
        "Latency",
        # Queues
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
        # Apply
        "EventsApplied",
        "EventsNoop",
        "EventsFailed",
        "EventsDeadLettered",
        "ApplyLag",
        "BatchDuration",
        "Duration",
        "Errors",
        "Throttles",
        # Reconcile
        "ReconcileDrift",
        "ReconcileDriftFound",
        "ReconcileRepairs",
        "ReconcileRequests",
        "ReconcileRateLimited",
        "ReconcileDuration",
        "ReconcileFailures",
        "ReconcileRuns",
        # Changes
        "ChangeEventsPublished",
        "ChangeEventsFailed",
    }
    assert key_metrics <= shown, key_metrics - shown


def test_dashboard_custom_metrics_match_what_the_functions_emit(template: Template) -> None:
    arrays, expressions, _ = dashboard_metrics(template)
    custom = [entry for entry in arrays if entry[0] == DEFAULT_METRICS_NAMESPACE]
    assert len(custom) >= 30
    for entry in custom:
        _, metric, dimension, value, *rest = entry
        assert dimension == "service"
        assert isinstance(rest[0], dict), entry  # no further dimension: only {service}
        assert metric in EMITTED[value], entry
    searched = set()
    for expression in expressions:
        match = re.fullmatch(
            r"SEARCH\('\{\"(?P<ns>[^\"]+)\",(?P<dim>\w+),service\} MetricName=\"(?P<metric>\w+)\" "
            r"service=\"(?P<service>[\w-]+)\"', '(?P<stat>\w+)', 300\)",
            expression,
        )
        assert match, expression
        assert match["ns"] == DEFAULT_METRICS_NAMESPACE
        assert EXTRA_DIMENSION[(match["service"], match["metric"])] == match["dim"], expression
        searched.add(match["dim"])
    assert searched == {"Reason", "EventType", "Kind", "Status", "DetailType"}


def test_dashboard_shows_every_dead_letter_queue(stack: DirectorySyncStack, template: Template) -> None:
    arrays, _, tokens = dashboard_metrics(template)
    visible_queues = [
        tokens[entry[3]]
        for entry in arrays
        if entry[:3] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"]
    ]
    for queue in (stack.events.dead_letter_queue, stack.work.dead_letter_queue, stack.publish_dead_letter_queue):
        assert get_att_arn(queue, "QueueName") in visible_queues


def test_dashboard_apply_lag_percentiles(template: Template) -> None:
    arrays, _, _ = dashboard_metrics(template)
    stats = {entry[-1]["stat"] for entry in arrays if entry[1] == "ApplyLag"}
    assert {"p50", "p99"} <= stats


def test_dashboard_alarm_widget_lists_every_alarm(stack: DirectorySyncStack, template: Template) -> None:
    body, tokens = dashboard_body(template)
    (widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    listed = [tokens[arn] for arn in widget["properties"]["alarms"]]
    assert listed == [get_att_arn(alarm) for alarm in stack.monitoring.alarms.values()]


def test_dashboard_url_output(stack: DirectorySyncStack, template: Template) -> None:
    value = template.to_json()["Outputs"][DASHBOARD_URL_OUTPUT]["Value"]
    parts = value["Fn::Join"][1]
    assert parts[0] == "https://"
    assert ".console.aws.amazon.com/cloudwatch/home?region=" in parts
    assert parts[-2:] == ["#dashboards/dashboard/", ref(stack.dashboard.dashboard)]
    dashboard = props(template, stack.dashboard.dashboard)
    assert dashboard["DashboardName"] == {"Fn::Join": ["", [f"{stack.stack_name}-", {"Ref": "AWS::Region"}]]}


def test_alarm_descriptions_point_to_runbook_sections(stack: DirectorySyncStack, template: Template) -> None:
    headings = [
        line.removeprefix("## ")
        for line in Path(PROJECT_ROOT, "docs", "runbook.md").read_text().splitlines()
        if line.startswith("## ")
    ]
    referenced = 0
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        match = re.search(r'Runbook \(docs/runbook\.md\): "([^"]+)"', alarm["Properties"]["AlarmDescription"])
        if match:
            referenced += 1
            assert any(heading.startswith(match[1]) for heading in headings), match[1]
    assert referenced == 24  # all but the per-function Errors/Throttles alarms
