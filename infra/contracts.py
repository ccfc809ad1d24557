"""Contracts between the synthesized template and the code it deploys, checked before anything is deployed.

Each check reads the template (the JSON `cdk synth` writes) and the source tree, and returns the broken promises as
sentences; `make deploy-check` and `tests/infra/test_contracts.py` fail on any. They catch what assertions on the
template alone cannot:

- **Environment.** Every variable the template sets on a function is a setting its handler reads, and every
  setting without a default is set. A variable renamed in the stack but not in the code would otherwise deploy and
  fail at the first invocation.
- **Metrics.** Every alarm on a custom metric watches a name, dimension set and `service` value that some handler
  emits; an alarm on a metric nobody emits stays `INSUFFICIENT_DATA` (or `OK`) forever.
- **Create-time limits.** What CloudFormation would accept but Lambda, SQS or EventBridge refuse halfway through a
  deploy (which rolls it back): a queue's visibility timeout shorter than its consumer's timeout, a FIFO batch over
  10, a maximum concurrency outside 2-1000, a singular/plural mismatch in a rate expression.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from shared.resources import FUNCTIONS, FunctionSpec

# Read by the Lambda runtime or Powertools, not by the handlers' settings.
RUNTIME_VARIABLES = frozenset({"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"})
# Every metric a handler records gets this dimension (`shared.observability.MetricsRecorder` via Powertools).
SERVICE_DIMENSION = "service"
_METRIC_CALLS = frozenset({"count", "record"})
# AWS quotas checked at create time (Lambda CreateEventSourceMapping, SQS CreateQueue, EventBridge PutRule).
MAX_FIFO_BATCH = 10
MAX_STANDARD_BATCH = 10_000
MAX_STREAM_BATCH = 10_000
MAPPING_CONCURRENCY = range(2, 1001)
MAX_FUNCTION_TIMEOUT = 900
_RATE = re.compile(r"^rate\((?P<value>\d+) (?P<unit>minute|minutes|hour|hours|day|days)\)$")

Template = Mapping[str, Any]


def resources(template: Template, resource_type: str) -> dict[str, Mapping[str, Any]]:
    return {lid: r for lid, r in template.get("Resources", {}).items() if r.get("Type") == resource_type}


def _logical_id(reference: Any) -> str | None:
    """The resource a `Ref` or `Fn::GetAtt` points at."""
    if isinstance(reference, Mapping):
        if "Ref" in reference:
            return str(reference["Ref"])
        if "Fn::GetAtt" in reference:
            return str(reference["Fn::GetAtt"][0])
    return None


def function_specs(template: Template) -> dict[str, FunctionSpec]:
    """Logical id of each pipeline function in the template -> its spec (matched by handler)."""
    by_handler = {spec.handler: spec for spec in FUNCTIONS}
    return {
        lid: by_handler[fn["Properties"]["Handler"]]
        for lid, fn in resources(template, "AWS::Lambda::Function").items()
        if fn["Properties"].get("Handler") in by_handler
    }


# --- Environment -------------------------------------------------------------------------------------------------


def settings_variables(dotted: str) -> tuple[frozenset[str], frozenset[str]]:
    """(every variable the settings class reads, those without a default) for "module.Class"."""
    module_name, _, class_name = dotted.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    if isinstance(cls, type) and issubclass(cls, BaseSettings):
        prefix = str(cls.model_config.get("env_prefix") or "")
        fields = {(prefix + name).upper(): field.is_required() for name, field in cls.model_fields.items()}
    elif dataclasses.is_dataclass(cls):
        fields = {
            field.name.upper(): field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            for field in dataclasses.fields(cls)
        }
    else:
        raise TypeError(f"{dotted} is neither pydantic-settings nor a dataclass")
    return frozenset(fields), frozenset(name for name, required in fields.items() if required)


def environment_problems(template: Template) -> list[str]:
    problems: list[str] = []
    for lid, spec in function_specs(template).items():
        variables = set(
            resources(template, "AWS::Lambda::Function")[lid]["Properties"].get("Environment", {}).get("Variables", {})
        )
        readable, required = settings_variables(spec.settings)
        for name in sorted(variables - readable - RUNTIME_VARIABLES):
            problems.append(f"{spec.name}: the template sets {name}, which {spec.settings} never reads")
        for name in sorted(required - variables):
            problems.append(f"{spec.name}: {spec.settings} requires {name}, which the template does not set")
    return problems


# --- Metrics -----------------------------------------------------------------------------------------------------


def emitted_metrics(roots: Iterable[Path]) -> dict[str, set[frozenset[str]]]:
    """Metric name -> the dimension sets it is recorded with, read from `<x>metrics.count/record("Name", ...)` calls
    in the source (every dimension set also carries `service`)."""
    emitted: dict[str, set[frozenset[str]]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for name, dimensions in _metric_calls(ast.parse(path.read_text(), str(path))):
                emitted.setdefault(name, set()).add(frozenset({SERVICE_DIMENSION, *dimensions}))
    return emitted


def _metric_calls(tree: ast.AST) -> Iterator[tuple[str, list[str]]]:
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in _METRIC_CALLS or "metrics" not in ast.unparse(node.func.value).lower():
            continue
        if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            yield node.args[0].value, [keyword.arg for keyword in node.keywords if keyword.arg is not None]


def metric_problems(template: Template, emitted: Mapping[str, set[frozenset[str]]]) -> list[str]:
    functions = resources(template, "AWS::Lambda::Function")
    environments = [fn["Properties"].get("Environment", {}).get("Variables", {}) for fn in functions.values()]
    namespaces = {env["POWERTOOLS_METRICS_NAMESPACE"] for env in environments if "POWERTOOLS_METRICS_NAMESPACE" in env}
    services = {env["POWERTOOLS_SERVICE_NAME"] for env in environments if "POWERTOOLS_SERVICE_NAME" in env}
    problems: list[str] = []
    for lid, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        for namespace, name, dimensions in _alarm_metrics(alarm["Properties"]):
            if namespace.startswith("AWS/"):
                continue  # emitted by the service itself
            if namespace not in namespaces:
                problems.append(f"alarm {lid} watches namespace {namespace!r}, where no function emits")
                continue
            names = frozenset(dimension["Name"] for dimension in dimensions)
            if names not in emitted.get(name, set()):
                problems.append(f"alarm {lid} watches {name} with dimensions {sorted(names)}, which nothing emits")
            service = next((d["Value"] for d in dimensions if d["Name"] == SERVICE_DIMENSION), None)
            if service is not None and service not in services:
                problems.append(f"alarm {lid} watches service {service!r}, which is no function's service name")
    return problems


def _alarm_metrics(properties: Mapping[str, Any]) -> Iterator[tuple[str, str, list[Mapping[str, Any]]]]:
    if "MetricName" in properties:
        yield properties.get("Namespace", ""), properties["MetricName"], list(properties.get("Dimensions", []))
    for query in properties.get("Metrics", []):
        metric = query.get("MetricStat", {}).get("Metric")
        if metric:
            yield metric.get("Namespace", ""), metric["MetricName"], list(metric.get("Dimensions", []))


# --- Create-time limits ------------------------------------------------------------------------------------------


def limit_problems(template: Template) -> list[str]:
    queues = resources(template, "AWS::SQS::Queue")
    functions = resources(template, "AWS::Lambda::Function")
    problems: list[str] = []
    for lid, fn in functions.items():
        if fn["Properties"].get("Timeout", 3) > MAX_FUNCTION_TIMEOUT:
            problems.append(f"function {lid}: timeout over {MAX_FUNCTION_TIMEOUT} s")
    for lid, mapping in resources(template, "AWS::Lambda::EventSourceMapping").items():
        problems += _mapping_problems(lid, mapping["Properties"], queues, functions)
    problems += _redrive_problems(queues)
    for lid, rule in resources(template, "AWS::Events::Rule").items():
        expression = rule["Properties"].get("ScheduleExpression")
        if expression and expression.startswith("rate("):
            match = _RATE.match(expression)
            singular = match is not None and not match["unit"].endswith("s")
            if match is None or int(match["value"]) < 1 or singular != (int(match["value"]) == 1):
                problems.append(f"rule {lid}: {expression!r} is not a valid rate (1 minute, 2 minutes, ...)")
    return problems


def _mapping_problems(
    lid: str,
    props: Mapping[str, Any],
    queues: Mapping[str, Mapping[str, Any]],
    functions: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    problems: list[str] = []
    function = functions.get(_logical_id(props["FunctionName"]) or "", {}).get("Properties", {})
    batch = props.get("BatchSize", 10)
    concurrency = props.get("ScalingConfig", {}).get("MaximumConcurrency")
    if concurrency is not None and concurrency not in MAPPING_CONCURRENCY:
        problems.append(f"mapping {lid}: MaximumConcurrency {concurrency} outside 2-1000")
    source = _logical_id(props["EventSourceArn"]) or ""
    if source not in queues:
        if batch > MAX_STREAM_BATCH:
            problems.append(f"mapping {lid}: stream batch {batch} over {MAX_STREAM_BATCH}")
        return problems
    queue = queues[source]["Properties"]
    if queue.get("VisibilityTimeout", 30) < function.get("Timeout", 3):
        problems.append(
            f"mapping {lid}: queue {source}'s visibility timeout {queue.get('VisibilityTimeout', 30)} s is "
            f"shorter than the function's timeout {function.get('Timeout', 3)} s (Lambda refuses it)"
        )
    fifo = bool(queue.get("FifoQueue"))
    if fifo and batch > MAX_FIFO_BATCH:
        problems.append(f"mapping {lid}: batch {batch} over {MAX_FIFO_BATCH} on a FIFO queue")
    if not fifo and batch > MAX_FIFO_BATCH and not props.get("MaximumBatchingWindowInSeconds"):
        problems.append(f"mapping {lid}: batch {batch} over 10 needs a batching window")
    if batch > MAX_STANDARD_BATCH:
        problems.append(f"mapping {lid}: batch {batch} over {MAX_STANDARD_BATCH}")
    return problems


def _redrive_problems(queues: Mapping[str, Mapping[str, Any]]) -> list[str]:
    problems: list[str] = []
    for lid, queue in queues.items():
        redrive = queue["Properties"].get("RedrivePolicy")
        if not redrive:
            continue
        target_id = _logical_id(redrive["deadLetterTargetArn"]) or ""
        target = queues.get(target_id, {}).get("Properties", {})
        if bool(target.get("FifoQueue")) != bool(queue["Properties"].get("FifoQueue")):
            problems.append(f"queue {lid}: its dead-letter queue {target_id} must be of the same type (FIFO or not)")
        if target.get("MessageRetentionPeriod", 345_600) < queue["Properties"].get("MessageRetentionPeriod", 345_600):
            # A dead letter keeps its original enqueue time: a shorter retention drops it early.
            problems.append(f"queue {lid}: its dead-letter queue {target_id} keeps messages for less time")
    return problems


def all_problems(template: Template, source_roots: Iterable[Path]) -> list[str]:
    return [
        *environment_problems(template),
        *metric_problems(template, emitted_metrics(source_roots)),
        *limit_problems(template),
    ]
