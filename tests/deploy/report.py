"""The deploy check's one run: every scenario on one deployment, then the mutations, as plain data the tests read.

Mutations: each used grant taken out of its role, one at a time, and the scenarios that used it rerun until one meets
a denial of it. The full sweep (every used grant, about a minute) runs when the checker changed: when the fingerprint
of `tests/deploy/*.py` (the test modules aside) differs from the one in `MUTATION_FINGERPRINT`, or when
`DEPLOY_CHECK_MUTATIONS=all`. A full sweep that catches every mutation records the new fingerprint there: commit it
with the change. Otherwise six grants are taken out: per function, the non-KMS grant whose reruns are cheapest, and
the cheapest KMS grant of all (a KMS call a service makes for the caller), so every run still shows the checker
denies a missing grant of each role and of a service's KMS call.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.iam_checker import Decision
from tests.deploy.runner import Mutation, Outcome, mutate, run
from tests.deploy.scenarios import SCENARIOS
from tests.deploy.stage import staged
from tests.deploy.usage import Grant, used
from tests.deploy.world import Synthesized

HERE = Path(__file__).parent
MUTATION_FINGERPRINT = HERE / "mutation-sweep.sha256"
UNUSED_GRANTS_REPORT = HERE.parent.parent / ".build" / "deploy-check" / "unused-grants.txt"


@dataclass
class Report:
    outcome: Outcome
    roles: dict[str, str]  # function -> role ARN
    mutations: list[Mutation] = field(default_factory=list)
    full_sweep: bool = False
    fingerprint: str = ""


def fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(HERE.glob("*.py")):
        if not path.name.startswith("test_") and path.name != "conftest.py":
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def full_sweep_due() -> bool:
    recorded = MUTATION_FINGERPRINT.read_text().strip() if MUTATION_FINGERPRINT.exists() else ""
    return os.environ.get("DEPLOY_CHECK_MUTATIONS") == "all" or recorded != fingerprint()


def check(synthesized: Synthesized, *, full_sweep: bool) -> Report:
    with staged(synthesized) as stage:
        outcome = run(stage, SCENARIOS.values())
        report = Report(outcome, {f.name: f.role_arn for f in stage.deployment.functions.values()})
        if outcome.errors or outcome.denials() or outcome.problems:
            return report  # the baseline must hold before a mutation can mean anything
        report.full_sweep, report.fingerprint = full_sweep, fingerprint()
        for grant in sweep(outcome) if full_sweep else sample(outcome):
            report.mutations.append(mutate(stage, outcome, grant, SCENARIOS))
    if full_sweep and report.mutations and all(m.caught for m in report.mutations):
        MUTATION_FINGERPRINT.write_text(report.fingerprint + "\n")
    return report


def sweep(outcome: Outcome) -> list[Grant]:
    return sorted(used(outcome.decisions))


def sample(outcome: Outcome) -> list[Grant]:
    """Per function, the non-KMS grant whose cheapest using scenario is cheapest; and the cheapest KMS grant."""

    def cost(grant: Grant) -> tuple[float, Grant]:
        users = [d.scenario for d in outcome.decisions if grant in used([d])]
        return min(outcome.seconds[name] for name in users), grant

    every = sweep(outcome)
    chosen = []
    for function in sorted({g.function for g in every}):
        own = [g for g in every if g.function == function and not g.action.startswith("kms:")]
        if own:
            chosen.append(min(own, key=cost))
    keys = [g for g in every if g.action.startswith("kms:")]
    return chosen + ([min(keys, key=cost)] if keys else [])


def to_json(report: Report) -> str:
    return json.dumps(asdict(report))


def from_json(text: str) -> Report:
    data: dict[str, Any] = json.loads(text)
    raw = data["outcome"]
    outcome = Outcome(
        decisions=[Decision(**{**d, "grants": tuple(tuple(g) for g in d["grants"])}) for d in raw["decisions"]],
        problems=raw["problems"],
        errors=raw["errors"],
        invoked=raw["invoked"],
        seconds=raw["seconds"],
        grants=[Grant(**g) for g in raw["grants"]],
    )
    mutations = [
        Mutation(Grant(**m["grant"]), tuple(m["tried"]), m["denial"], tuple(m["failures"])) for m in data["mutations"]
    ]
    return Report(outcome, data["roles"], mutations, data["full_sweep"], data["fingerprint"])
