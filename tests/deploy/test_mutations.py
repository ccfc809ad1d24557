"""The checker's self-test: a grant taken out of a role (in IAM, on the deployment) is met as a denial when the
scenarios that used it run again. Two grants per function on every run; every used grant when the checker changed
(see `tests.deploy.report`)."""

from __future__ import annotations

import pytest

from tests.deploy.report import Report

pytestmark = pytest.mark.deploy


def test_a_grant_of_every_function_is_taken_out(report: Report) -> None:
    assert report.mutations, "no mutation ran: the scenarios must first pass without a denial"
    assert {m.grant.function for m in report.mutations} == set(report.roles)
    assert any(m.grant.action.startswith("kms:") for m in report.mutations)  # a KMS call a service makes


def test_every_grant_taken_out_is_denied(report: Report) -> None:
    missed = [m for m in report.mutations if not m.caught]
    summary = f"{len(report.mutations) - len(missed)} of {len(report.mutations)} caught"
    assert not missed, f"{summary}; not denied when taken out:\n" + "\n".join(
        f"{m.grant} (reran {', '.join(m.tried)}; {'; '.join(m.failures) or 'no failure'})" for m in missed
    )
