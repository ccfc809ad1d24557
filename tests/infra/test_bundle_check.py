"""The bundle check (`infra.bundle_check`, run on real host bundles by `make deploy-check`) imports a handler from
its bundle and the Lambda runtime alone, so a package missing from a `FunctionSpec` fails before a deploy does.

These bundles are assembled from this environment's installed packages (links, no pip), to keep the test fast."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from infra.bundle_check import import_problems, link_distributions
from infra.bundling import PROJECT_ROOT, bundle_sources
from shared.resources import INGEST_FUNCTION, TAIL_FUNCTION, FunctionSpec

pytestmark = pytest.mark.infra

# The spec's packages and what pip would install with them (their dependencies outside the runtime).
CLOSURE = {
    "aws-lambda-powertools": ("aws-lambda-powertools", "typing-extensions"),
    "pydantic": ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions"),
    "pydantic-settings": ("pydantic-settings", "python-dotenv"),
}


def assemble(spec: FunctionSpec, target: Path, packages: tuple[str, ...]) -> Path:
    for relative in bundle_sources(spec, PROJECT_ROOT):
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / relative, target / relative)
    link_distributions(target, [d for package in packages for d in CLOSURE[package]])
    return target


def test_the_ingest_bundle_imports_with_powertools_alone(tmp_path: Path) -> None:
    """Issue #19 found it failing: the SQS adapter pulled pydantic into a bundle without it (every cold start)."""
    bundle = assemble(INGEST_FUNCTION, tmp_path, INGEST_FUNCTION.packages)
    assert import_problems(INGEST_FUNCTION, bundle) == []


def test_a_package_missing_from_the_spec_is_caught_even_when_imported_lazily(tmp_path: Path) -> None:
    """The tail imports the workos SDK only when it polls; the check follows function-local imports too."""
    without_workos = dataclasses.replace(
        TAIL_FUNCTION, packages=tuple(p for p in TAIL_FUNCTION.packages if p != "workos")
    )
    bundle = assemble(without_workos, tmp_path, without_workos.packages)
    (problem,) = import_problems(without_workos, bundle)
    assert "No module named 'workos'" in problem


def test_a_bundle_without_its_packages_is_caught(tmp_path: Path) -> None:
    bundle = assemble(INGEST_FUNCTION, tmp_path, ())
    (problem,) = import_problems(INGEST_FUNCTION, bundle)
    assert "aws_lambda_powertools" in problem
