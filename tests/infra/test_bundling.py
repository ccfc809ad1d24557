"""The local (Docker-free) bundler: what goes into an asset, for which platform, and what never does.

The two build tests run pip against the package index (wheels for Python 3.14 / aarch64).
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from email.parser import Parser
from pathlib import Path

import pytest

from infra.bundling import (
    PROJECT_ROOT,
    BundlingError,
    asset_hash,
    build,
    bundle_sources,
    host_interpreter,
    pip_install_command,
)
from shared.resources import (
    FUNCTIONS,
    INGEST_FUNCTION,
    LAMBDA_PIP_PLATFORMS,
    LAMBDA_PYTHON_VERSION,
    PUBLISH_FUNCTION,
    RECONCILE_FUNCTION,
    FunctionSpec,
)

pytestmark = pytest.mark.infra

PY_TAG = "cp" + LAMBDA_PYTHON_VERSION.replace(".", "")


def wheel_tags(bundle: Path, distribution: str) -> list[str]:
    (dist_info,) = bundle.glob(f"{distribution}-*.dist-info")
    return Parser().parsestr((dist_info / "WHEEL").read_text()).get_all("Tag") or []


def copy_project(target: Path) -> Path:
    """A copy of what bundling reads, so tests can change files without touching the working tree."""
    shutil.copy2(PROJECT_ROOT / "requirements.txt", target / "requirements.txt")
    for package in ("functions", "shared"):
        shutil.copytree(PROJECT_ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture(scope="module")
def ingest_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ingest-bundle")
    build(INGEST_FUNCTION, out)
    return out


@pytest.fixture(scope="module")
def reconcile_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reconcile-bundle")
    build(RECONCILE_FUNCTION, out)
    return out


def test_ingest_bundle_has_handler_shared_and_powertools_only(ingest_bundle: Path) -> None:
    assert (ingest_bundle / "functions" / "__init__.py").is_file()
    assert (ingest_bundle / "functions" / "ingest" / "handler.py").is_file()
    assert (ingest_bundle / "shared" / "resources.py").is_file()
    assert (ingest_bundle / "shared" / "model" / "schema.py").is_file()
    assert (ingest_bundle / "aws_lambda_powertools" / "__init__.py").is_file()
    for absent in ("pydantic", "pydantic_core", "workos", "boto3", "botocore", "s3transfer", "functions/apply", "bin"):
        assert not (ingest_bundle / absent).exists(), absent
    assert not list(ingest_bundle.glob("boto*-*.dist-info"))
    assert not list(ingest_bundle.rglob("__pycache__"))  # no bytecode compiled by the build interpreter


def test_reconcile_bundle_wheels_target_the_lambda_python_and_arm64(reconcile_bundle: Path) -> None:
    assert (reconcile_bundle / "functions" / "reconcile" / "handler.py").is_file()
    assert (reconcile_bundle / "pydantic_core" / f"_pydantic_core.cpython-{PY_TAG[2:]}-aarch64-linux-gnu.so").is_file()
    assert (reconcile_bundle / "cryptography" / "hazmat" / "bindings" / "_rust.abi3.so").is_file()
    assert (reconcile_bundle / "workos" / "__init__.py").is_file()
    for distribution, tag_prefix in (("pydantic_core", f"{PY_TAG}-{PY_TAG}-"), ("cryptography", "cp3")):
        tags = wheel_tags(reconcile_bundle, distribution)
        assert tags, distribution
        assert all(tag.startswith(tag_prefix) and tag.endswith("_aarch64") for tag in tags), (distribution, tags)
    assert wheel_tags(reconcile_bundle, "cryptography")[0].split("-")[1] == "abi3"
    for absent in ("boto3", "botocore", "s3transfer"):
        assert not (reconcile_bundle / absent).exists(), absent


def test_pip_command_targets_the_lambda_platform_without_runtime_packages() -> None:
    command = pip_install_command(RECONCILE_FUNCTION, "/out", PROJECT_ROOT)
    assert command[command.index("--python-version") + 1] == LAMBDA_PYTHON_VERSION
    assert [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"] == list(LAMBDA_PIP_PLATFORMS)
    assert {"--only-binary=:all:", "--no-compile"} <= set(command)
    assert command[command.index("--constraint") + 1] == str(PROJECT_ROOT / "requirements.txt")
    assert command[-len(RECONCILE_FUNCTION.packages) :] == list(RECONCILE_FUNCTION.packages)
    with pytest.raises(BundlingError, match="Lambda runtime"):
        pip_install_command(
            FunctionSpec("x", "functions.x.handler.handler", 1, 128, ("boto3",), "shared.settings.ApplySettings"),
            "/out",
            PROJECT_ROOT,
        )


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_bundle_sources_are_the_function_and_shared_without_bytecode(spec: FunctionSpec) -> None:
    sources = [path.as_posix() for path in bundle_sources(spec, PROJECT_ROOT)]
    assert sources[0] == "functions/__init__.py"
    assert f"functions/{spec.name}/handler.py" in sources
    assert "shared/__init__.py" in sources
    assert all(path.startswith((f"functions/{spec.name}/", "shared/", "functions/__init__.py")) for path in sources)
    assert not [path for path in sources if "__pycache__" in path or path.endswith(".pyc")]


def test_asset_hash_follows_the_bundle_inputs(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    before = asset_hash(INGEST_FUNCTION, project)
    assert asset_hash(INGEST_FUNCTION, project) == before  # deterministic
    assert asset_hash(RECONCILE_FUNCTION, project) != before  # per function

    (project / "shared" / "__pycache__").mkdir(exist_ok=True)
    (project / "shared" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"noise")
    assert asset_hash(INGEST_FUNCTION, project) == before  # bytecode is not an input

    (project / "functions" / "apply" / "handler.py").write_text("# another function changed\n")
    assert asset_hash(INGEST_FUNCTION, project) == before

    with (project / "shared" / "resources.py").open("a") as shared_file:
        shared_file.write("\n# shared code changed\n")
    changed_shared = asset_hash(INGEST_FUNCTION, project)
    assert changed_shared != before

    with (project / "requirements.txt").open("a") as requirements:
        requirements.write("# pins changed\n")
    assert asset_hash(INGEST_FUNCTION, project) != changed_shared


def test_missing_handler_module_fails_clearly(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    (project / "functions" / "publish" / "handler.py").unlink()
    with pytest.raises(BundlingError, match="handler module"):
        asset_hash(PUBLISH_FUNCTION, project)


# --- host bundles: a rehearsal on MiniStack only (`rehearsalHostBundles`) ------------------------------------------


def test_host_pip_command_targets_this_interpreter_into_the_same_layout() -> None:
    real = pip_install_command(RECONCILE_FUNCTION, "/out", PROJECT_ROOT)
    host = pip_install_command(RECONCILE_FUNCTION, "/out", PROJECT_ROOT, host=True)
    for flag in ("--platform", "--python-version", "--implementation"):
        assert flag in real
        assert flag not in host
    assert not [arg for arg in host if arg in LAMBDA_PIP_PLATFORMS or arg == LAMBDA_PYTHON_VERSION]
    # Everything else as for Lambda: this interpreter's pip, wheels only, no bytecode, the same target and pins.
    assert host[:4] == real[:4] == [sys.executable, "-m", "pip", "install"]
    assert {"--only-binary=:all:", "--no-compile"} <= set(host)
    assert host[host.index("--target") + 1] == "/out"
    assert host[host.index("--constraint") + 1] == str(PROJECT_ROOT / "requirements.txt")
    assert host[-len(RECONCILE_FUNCTION.packages) :] == list(RECONCILE_FUNCTION.packages)
    with pytest.raises(BundlingError, match="Lambda runtime"):
        pip_install_command(
            FunctionSpec("x", "functions.x.handler.handler", 1, 128, ("boto3",), "shared.settings.ApplySettings"),
            "/out",
            PROJECT_ROOT,
            host=True,
        )


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.name)
def test_host_bundle_hash_never_equals_a_real_bundles(spec: FunctionSpec) -> None:
    real = asset_hash(spec)
    host = asset_hash(spec, host=True)
    assert host != real
    assert asset_hash(spec, host=True) == host  # deterministic: a second rehearsal reuses its bundles
    assert host not in {asset_hash(other) for other in FUNCTIONS}
    assert host_interpreter() == f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"
