"""The deploy check's one run of every scenario and mutation (`tests.deploy.report.check`), made once per test
session even under xdist: the first worker to need it runs it under a file lock and leaves it as JSON beside the
session's temporary directories; the others read it (and so never synthesize the stack for it)."""

from __future__ import annotations

import fcntl
import os

import pytest

from tests.deploy import report as deploy_report
from tests.deploy.world import synthesize


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deploy: the template deployed on moto, its IAM enforced per request")


@pytest.fixture(scope="session")
def report(tmp_path_factory: pytest.TempPathFactory) -> deploy_report.Report:
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's directory, common to every worker
    cached = shared / "deploy-check-report.json"
    with (shared / "deploy-check-report.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.exists():
            made = deploy_report.check(synthesize(), full_sweep=deploy_report.full_sweep_due())
            cached.write_text(deploy_report.to_json(made))
    return deploy_report.from_json(cached.read_text())
