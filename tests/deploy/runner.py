"""Running scenarios on a stage and keeping what the checker saw, and taking one grant out of a role in IAM."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.deploy.iam_checker import Decision
from tests.deploy.policy import like
from tests.deploy.scenarios import Scenario
from tests.deploy.stage import Stage
from tests.deploy.usage import Grant, grants, used, without


@dataclass
class Outcome:
    """What running scenarios on one stage showed."""

    decisions: list[Decision] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # scenario -> traceback of a scenario that failed
    invoked: dict[str, list[str]] = field(default_factory=dict)  # scenario -> functions invoked, in order
    seconds: dict[str, float] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)  # every Allow pair of every function's role

    def denials(self) -> list[Decision]:
        return [d for d in self.decisions if not d.allowed]

    def of(self, scenario: str) -> list[Decision]:
        return [d for d in self.decisions if d.scenario == scenario]


def run(stage: Stage, scenarios: Iterable[Scenario], *, cold: bool = False) -> Outcome:
    """Each scenario in turn on the same stage; a failing scenario is recorded and the next one runs. `cold`: the
    functions start in new execution environments (nothing cached, such as a secret, hides a request)."""
    if cold:
        stage.runtime.close()
    outcome = Outcome()
    for scenario in scenarios:
        stage.checker.scenario = scenario.name
        first_decision, first_invocation = len(stage.checker.decisions), len(stage.runtime.invocations)
        started = time.monotonic()
        try:
            scenario.run(stage)
        except Exception:
            outcome.errors[scenario.name] = traceback.format_exc()
        outcome.seconds[scenario.name] = time.monotonic() - started
        outcome.invoked[scenario.name] = stage.runtime.invocations[first_invocation:]
        outcome.decisions += stage.checker.decisions[first_decision:]
    outcome.problems = list(stage.checker.problems)
    every: set[Grant] = set()
    for function in stage.deployment.functions.values():
        every |= grants(function.name, stage.checker.identity_policy(function.role_arn))
    outcome.grants = sorted(every)
    return outcome


@contextmanager
def taken_out(stage: Stage, grant: Grant) -> Iterator[None]:
    """The grant removed from its role's inline policies in IAM (every statement that gives it), then restored."""
    iam = stage.client("iam")
    role = stage.deployment.functions[grant.function].role_arn.rsplit("/", 1)[-1]
    originals = {
        name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    }
    assert not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"], "managed policies: not mutated"
    try:
        for name, document in originals.items():
            changed = without(document, grant.action, grant.resource)
            iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(changed))
        yield
    finally:
        for name, document in originals.items():
            iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))


@dataclass(frozen=True)
class Mutation:
    """One grant taken out: the scenarios rerun (cheapest first) until one met a denial of it."""

    grant: Grant
    tried: tuple[str, ...]
    denial: str | None  # the first denial of the grant's action and resource, None if no rerun met one
    failures: tuple[str, ...] = ()  # how the reruns that met no denial failed, if they did

    @property
    def caught(self) -> bool:
        return self.denial is not None


def mutate(stage: Stage, baseline: Outcome, grant: Grant, scenarios: dict[str, Scenario]) -> Mutation:
    """Take `grant` out of its role and rerun, each cold, the scenarios whose requests used it in `baseline`."""
    users = sorted({d.scenario for d in baseline.decisions if grant in used([d])}, key=lambda n: baseline.seconds[n])
    tried, failures = [], []
    for name in users:
        tried.append(name)
        with taken_out(stage, grant):
            rerun = run(stage, [scenarios[name]], cold=True)
        for denial in rerun.denials():
            if denial.function == grant.function and covers(grant, denial):
                return Mutation(grant, tuple(tried), str(denial))
        failures += [trace.strip().splitlines()[-1] for trace in rerun.errors.values()]
    return Mutation(grant, tuple(tried), None, tuple(failures))


def covers(grant: Grant, decision: Decision) -> bool:
    return like(grant.action, decision.action, fold=True) and like(grant.resource, decision.resource)
