"""The template's IAM, per request: every scenario of every function ran as the function's own role, no request
was denied, and the grants no request used are listed (`.build/deploy-check/unused-grants.txt`).

An unused grant fails the check only when nothing explains it (`tests.deploy.usage.EXPLAINED`): either a grant
broader than the code, or a path no scenario reaches yet. Both are worth a look before they ship: the issue asks for
grants narrowed to what each function uses, and this keeps them so.
"""

from __future__ import annotations

import warnings

import pytest

from tests.deploy.report import UNUSED_GRANTS_REPORT, Report
from tests.deploy.scenarios import SCENARIOS
from tests.deploy.usage import unused

pytestmark = pytest.mark.deploy


def test_every_scenario_reaches_its_path(report: Report) -> None:
    failed = report.outcome.errors
    assert not failed, "\n\n".join(f"{name}:\n{trace}" for name, trace in failed.items())


def test_no_request_is_denied(report: Report) -> None:
    denials = report.outcome.denials()
    assert not denials, f"{len(denials)} requests denied:\n" + "\n".join(str(d) for d in denials)


def test_every_request_is_signed_by_the_function_that_runs(report: Report) -> None:
    assert not report.outcome.problems


def test_each_function_runs_its_scenarios_as_its_own_role(report: Report) -> None:
    functions = set(report.roles)
    assert functions == {"ingest", "apply", "reconcile", "tail", "publish"}
    assert len(set(report.roles.values())) == len(functions)  # five roles, none shared
    assert {scenario.function for scenario in SCENARIOS.values()} == functions
    for scenario in SCENARIOS.values():
        assert scenario.function in report.outcome.invoked[scenario.name], scenario.name
    assert all(d.role_arn == report.roles[d.function] for d in report.outcome.decisions)


def test_grants_never_used_are_listed(report: Report) -> None:
    never = unused(report.outcome.grants, report.outcome.decisions)
    lines = [f"{grant}\n    {reason or 'UNEXPLAINED: no scenario made a request it allows'}" for grant, reason in never]
    UNUSED_GRANTS_REPORT.parent.mkdir(parents=True, exist_ok=True)
    UNUSED_GRANTS_REPORT.write_text(f"{len(never)} grants no request used\n\n" + "\n".join(lines) + "\n")
    warnings.warn(f"{len(never)} grants no request used: see {UNUSED_GRANTS_REPORT}", stacklevel=1)
    unexplained = [str(grant) for grant, reason in never if reason is None]
    assert not unexplained, "grants no scenario uses (narrow them, or add the scenario):\n" + "\n".join(unexplained)
