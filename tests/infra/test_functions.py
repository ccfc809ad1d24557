"""Every function follows its `shared.resources.FunctionSpec`: runtime, architecture, handler, limits, logs, env."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template

from infra.constructs.pipeline_function import PipelineFunction
from infra.stack import DirectorySyncStack
from shared.resources import (
    CHANGE_EVENT_SOURCE,
    DEFAULT_METRICS_NAMESPACE,
    FUNCTIONS,
    LAMBDA_ARCHITECTURE,
    LAMBDA_PYTHON_VERSION,
    MAX_WEBHOOK_BODY_BYTES,
    Env,
)
from tests.infra.helpers import props, ref, resources

pytestmark = pytest.mark.infra

EXPECTED_ENVIRONMENT = {
    "ingest": {Env.EVENT_QUEUE_URL, Env.WEBHOOK_SECRET_ID, Env.SIGNATURE_TOLERANCE_SECONDS, Env.MAX_BODY_BYTES},
    "apply": {
        Env.TABLE_NAME,
        Env.DEAD_LETTER_QUEUE_URL,
        Env.WORK_QUEUE_URL,
        Env.TOMBSTONE_TTL_DAYS,
        Env.OVERFLOW_QUEUE_URL,
    },
    "reconcile": {
        Env.TABLE_NAME,
        Env.WORK_QUEUE_URL,
        Env.WORKOS_API_KEY_SECRET_ID,
        Env.DIRECTORY_UNHEALTHY_MINUTES,
        Env.RECONCILE_PERIOD_SECONDS,
        Env.TOMBSTONE_TTL_DAYS,  # reconcile's own tombstones live as long as apply's
        Env.MAX_DIRECTORY_DELETIONS_PER_WAVE,
        Env.MAX_REMOVAL_SHARE,
    },
    "publish": {Env.CHANGE_BUS_NAME, Env.TABLE_NAME},  # the table for shared.changes.guard's read
    "tail": {
        Env.TABLE_NAME,
        Env.EVENT_QUEUE_URL,
        Env.WORK_QUEUE_URL,
        Env.WORKOS_API_KEY_SECRET_ID,
        Env.TAIL_BOOTSTRAP_HOURS,
        Env.MAX_DIRECTORY_DELETIONS_PER_WAVE,
        Env.MAX_REMOVAL_SHARE,
    },
}


def functions(stack: DirectorySyncStack) -> dict[str, PipelineFunction]:
    every = (stack.ingest, stack.apply, stack.reconcile, stack.publish, stack.tail)
    return {fn.spec.name: fn for fn in every if fn is not None}


def test_one_function_per_spec(stack: DirectorySyncStack, template: Template) -> None:
    assert sorted(functions(stack)) == sorted(spec.name for spec in FUNCTIONS)
    template.resource_count_is("AWS::Lambda::Function", len(FUNCTIONS))


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_function_follows_its_spec(stack: DirectorySyncStack, template: Template, spec: object) -> None:
    fn = functions(stack)[spec.name]  # type: ignore[attr-defined]
    assert fn.spec == spec
    properties = props(template, fn.function)
    assert properties["Runtime"] == f"python{LAMBDA_PYTHON_VERSION}"
    assert properties["Architectures"] == [LAMBDA_ARCHITECTURE]
    assert properties["Handler"] == fn.spec.handler
    assert properties["Timeout"] == fn.spec.timeout_seconds
    assert properties["MemorySize"] == fn.spec.memory_mb
    assert properties["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": ref(fn.log_group)}
    assert properties["Role"] == {"Fn::GetAtt": [ref(fn.role)["Ref"], "Arn"]}
    variables = properties["Environment"]["Variables"]
    assert set(variables) == EXPECTED_ENVIRONMENT[fn.spec.name] | {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
    }
    assert variables["POWERTOOLS_SERVICE_NAME"] == f"dsync-{fn.spec.name}"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == DEFAULT_METRICS_NAMESPACE


def test_environment_values(stack: DirectorySyncStack, template: Template) -> None:
    ingest = props(template, stack.ingest.function)["Environment"]["Variables"]
    assert ingest[Env.EVENT_QUEUE_URL] == ref(stack.events.queue)
    assert ingest[Env.WEBHOOK_SECRET_ID] == ref(stack.secrets.webhook_secret)
    assert ingest[Env.SIGNATURE_TOLERANCE_SECONDS] == "180"
    assert ingest[Env.MAX_BODY_BYTES] == str(MAX_WEBHOOK_BODY_BYTES)
    apply = props(template, stack.apply.function)["Environment"]["Variables"]
    assert apply[Env.TABLE_NAME] == ref(stack.directory.table)
    assert apply[Env.DEAD_LETTER_QUEUE_URL] == ref(stack.events.dead_letter_queue)
    assert apply[Env.WORK_QUEUE_URL] == ref(stack.work.queue)
    assert apply[Env.OVERFLOW_QUEUE_URL] == ref(stack.overflow_queue)
    assert apply[Env.TOMBSTONE_TTL_DAYS] == "45"
    reconcile = props(template, stack.reconcile.function)["Environment"]["Variables"]
    assert reconcile[Env.WORKOS_API_KEY_SECRET_ID] == ref(stack.secrets.workos_api_key)
    publish = props(template, stack.publish.function)["Environment"]["Variables"]
    assert publish[Env.CHANGE_BUS_NAME] == ref(stack.change_bus.bus)


def test_every_log_group_has_the_configured_retention(template: Template) -> None:
    log_groups = resources(template, "AWS::Logs::LogGroup")
    assert len(log_groups) == len(FUNCTIONS) + 1  # one per function + API access logs
    for log_group in log_groups.values():
        assert log_group["Properties"]["RetentionInDays"] == 30
        assert log_group["DeletionPolicy"] == "Delete"


def test_functions_wait_only_for_their_role_policy(stack: DirectorySyncStack, template: Template) -> None:
    # The Role GetAtt already orders role -> function; an explicit DependsOn on it is cfn-lint W3005.
    raw = template.to_json()["Resources"]
    for fn in functions(stack).values():
        policy = fn.role.node.find_child("DefaultPolicy")
        assert raw[ref(fn.function)["Ref"]]["DependsOn"] == [ref(policy)["Ref"]]


def test_change_bus_archives_published_events_for_thirty_days(stack: DirectorySyncStack, template: Template) -> None:
    template.has_resource_properties(
        "AWS::Events::Archive",
        {
            "SourceArn": {"Fn::GetAtt": [ref(stack.change_bus.bus)["Ref"], "Arn"]},
            "RetentionDays": 30,
            "EventPattern": {"source": [CHANGE_EVENT_SOURCE]},
        },
    )


def test_the_tail_reserves_no_concurrency_and_a_failed_start_is_dropped(
    stack: DirectorySyncStack, template: Template
) -> None:
    """Issue #19: reserved concurrency 1 is refused on accounts at their minimum of unreserved executions (new
    accounts), rolling the first deploy back; the lease keeps one tail polling at a time
    (`tests/unit/tail/test_tail.py::test_a_second_tail_finds_the_lease_taken_and_reads_nothing`)."""
    assert stack.tail is not None
    assert "ReservedConcurrentExecutions" not in props(template, stack.tail.function)
    (invoke_config,) = resources(template, "AWS::Lambda::EventInvokeConfig").values()
    assert invoke_config["Properties"]["MaximumEventAgeInSeconds"] == 60
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 0
    (rule,) = [r for r in resources(template, "AWS::Events::Rule").values() if "Tail" in json.dumps(r)]
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"


def test_a_tail_reservation_is_an_option(alternative_stack: DirectorySyncStack, alternative_template: Template) -> None:
    """`tailReservedConcurrency=true` reserves one execution (README "Prerequisites": the account needs a concurrency
    quota of at least its minimum unreserved executions plus one)."""
    assert alternative_stack.tail is not None
    assert props(alternative_template, alternative_stack.tail.function)["ReservedConcurrentExecutions"] == 1
