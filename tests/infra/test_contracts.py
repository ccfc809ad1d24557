"""The template keeps its promises to the code (`infra.contracts`): each check passes on every stack variant and
catches the defect it exists for."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.bundling import PROJECT_ROOT
from infra.contracts import (
    all_problems,
    emitted_metrics,
    environment_problems,
    function_specs,
    limit_problems,
    metric_problems,
    resources,
    settings_variables,
)
from infra.stack import DirectorySyncStack
from shared.resources import FUNCTIONS, Env

pytestmark = pytest.mark.infra

SOURCES = [PROJECT_ROOT / "functions", PROJECT_ROOT / "shared"]


@pytest.fixture(scope="module")
def emitted() -> dict[str, set[frozenset[str]]]:
    return emitted_metrics(SOURCES)


def raw(template: Template) -> dict[str, Any]:
    return copy.deepcopy(dict(template.to_json()))


def function_id(template: dict[str, Any], name: str) -> str:
    return next(lid for lid, spec in function_specs(template).items() if spec.name == name)


def test_every_variant_keeps_every_contract(variant: tuple[DirectorySyncStack, Template]) -> None:
    _, template = variant
    assert all_problems(template.to_json(), SOURCES) == []


def test_every_function_of_the_stack_is_checked(template: Template) -> None:
    assert sorted(spec.name for spec in function_specs(template.to_json()).values()) == sorted(
        spec.name for spec in FUNCTIONS
    )


def test_each_spec_names_the_settings_its_handler_loads() -> None:
    for spec in FUNCTIONS:
        handler_source = (PROJECT_ROOT / "functions" / spec.name / "handler.py").read_text()
        assert spec.settings.rpartition(".")[2] in handler_source, spec.name
        settings_variables(spec.settings)  # imports, and is a settings class


def test_a_variable_renamed_in_the_stack_but_not_in_the_code_is_caught(template: Template) -> None:
    broken = raw(template)
    apply = broken["Resources"][function_id(broken, "apply")]["Properties"]["Environment"]["Variables"]
    apply["DIRECTORY_TABLE_NAME"] = apply.pop(Env.TABLE_NAME)
    assert environment_problems(broken) == [
        "apply: the template sets DIRECTORY_TABLE_NAME, which shared.settings.ApplySettings never reads",
        "apply: shared.settings.ApplySettings requires TABLE_NAME, which the template does not set",
    ]


def test_a_required_setting_left_unset_is_caught(template: Template) -> None:
    broken = raw(template)
    ingest = broken["Resources"][function_id(broken, "ingest")]["Properties"]["Environment"]["Variables"]
    del ingest[Env.WEBHOOK_SECRET_ID]
    assert environment_problems(broken) == [
        "ingest: shared.ingest.settings.IngestSettings requires WEBHOOK_SECRET_ID, which the template does not set"
    ]


def test_an_alarm_on_a_metric_nobody_emits_is_caught(
    template: Template, emitted: dict[str, set[frozenset[str]]]
) -> None:
    broken = raw(template)
    alarm_id, alarm = next(
        (lid, a)
        for lid, a in resources(broken, "AWS::CloudWatch::Alarm").items()
        if a["Properties"].get("MetricName") == "ReconcileRefused"
    )
    alarm["Properties"]["MetricName"] = "ReconcileRefusals"
    assert metric_problems(broken, emitted) == [
        f"alarm {alarm_id} watches ReconcileRefusals with dimensions ['service'], which nothing emits"
    ]


def test_an_alarm_on_the_wrong_dimensions_or_service_is_caught(
    template: Template, emitted: dict[str, set[frozenset[str]]]
) -> None:
    broken = raw(template)
    alarm_id, alarm = next(
        (lid, a)
        for lid, a in resources(broken, "AWS::CloudWatch::Alarm").items()
        if a["Properties"].get("MetricName") == "TailPollAgeSeconds"
    )
    alarm["Properties"]["Dimensions"] = [{"Name": "service", "Value": "dsync-tailer"}]
    assert metric_problems(broken, emitted) == [
        f"alarm {alarm_id} watches service 'dsync-tailer', which is no function's service name"
    ]


def test_the_scan_finds_metrics_with_their_dimensions(emitted: dict[str, set[frozenset[str]]]) -> None:
    assert frozenset({"service"}) in emitted["SignatureFailures"]
    assert frozenset({"service", "Status"}) in emitted["TailRuns"]
    assert frozenset({"service", "DetailType"}) in emitted["ChangeEventsFailed"]


def test_create_time_limits_are_caught(template: Template) -> None:
    broken = raw(template)
    queues = resources(broken, "AWS::SQS::Queue")
    work = next(q for lid, q in queues.items() if lid.startswith("WorkQueue"))
    work["Properties"]["VisibilityTimeout"] = 30  # reconcile runs up to 600 s
    mappings = resources(broken, "AWS::Lambda::EventSourceMapping")
    events_mapping = next(m for lid, m in mappings.items() if "EventsQueue" in lid)
    events_mapping["Properties"]["BatchSize"] = 11
    events_mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"] = 1
    rule = next(r for lid, r in resources(broken, "AWS::Events::Rule").items() if lid.startswith("TailSchedule"))
    rule["Properties"]["ScheduleExpression"] = "rate(1 minutes)"
    problems = limit_problems(broken)
    assert len(problems) == 4, problems
    assert any("visibility timeout 30 s is shorter than the function's timeout 600 s" in p for p in problems)
    assert any("batch 11 over 10 on a FIFO queue" in p for p in problems)
    assert any("MaximumConcurrency 1 outside 2-1000" in p for p in problems)
    assert any("'rate(1 minutes)' is not a valid rate" in p for p in problems)
