"""Lambda code assets built on this machine with pip (no Docker).

Each function's asset holds `functions/__init__.py`, `functions/<name>/`, the whole `shared/` package and the pinned
packages its `FunctionSpec` lists, installed as wheels for the Lambda's Python version and architecture. boto3 and
botocore come from the Lambda runtime and must never be bundled.

The asset hash is computed here (CDK's CUSTOM hash type) from exactly what goes into the bundle, so CDK never
fingerprints a large directory and an unchanged function re-synthesizes from the cdk.out cache without running pip.

A rehearsal on MiniStack (`rehearsalHostBundles`, `infra.config`) bundles for the host interpreter instead: the same
layout, with wheels for the Python that runs the synth (MiniStack runs every function on its own interpreter). Its
asset hash covers the host's interpreter and platform and a marker of its own, so it never equals a real bundle's
and a real deploy cannot pick a host bundle from the cdk.out cache.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from shared.resources import LAMBDA_ARCHITECTURE, LAMBDA_PIP_PLATFORMS, LAMBDA_PYTHON_VERSION, FunctionSpec

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS_FILE = "requirements.txt"
# Provided by the Lambda Python runtime; bundling them would shadow the runtime's copy with a 20+ MB duplicate.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
# Bump when the layout of a bundle changes, so every asset hash changes with it.
BUNDLE_FORMAT = "1"
_SKIPPED_PARTS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})
# Marks a host bundle's hash inputs (`asset_hash(host=True)`); a real bundle's never contain it.
HOST_BUNDLE_MARKER = "rehearsal-host-interpreter"


class BundlingError(RuntimeError):
    """A function bundle could not be built."""


def lambda_runtime() -> lambda_.Runtime:
    """The CDK runtime for `LAMBDA_PYTHON_VERSION`, e.g. "3.14" -> Runtime.PYTHON_3_14."""
    runtime = getattr(lambda_.Runtime, "PYTHON_" + LAMBDA_PYTHON_VERSION.replace(".", "_"), None)
    if not isinstance(runtime, lambda_.Runtime):
        raise BundlingError(f"aws-cdk-lib has no Lambda runtime for Python {LAMBDA_PYTHON_VERSION}")
    return runtime


def lambda_architecture() -> lambda_.Architecture:
    """The CDK architecture for `LAMBDA_ARCHITECTURE`."""
    architectures = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}
    try:
        return architectures[LAMBDA_ARCHITECTURE]
    except KeyError:
        raise BundlingError(f"unknown Lambda architecture {LAMBDA_ARCHITECTURE!r}") from None


def _source_files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and not _SKIPPED_PARTS.intersection(relative.parts) and path.suffix not in _SKIPPED_SUFFIXES:
            yield path


def bundle_sources(spec: FunctionSpec, project_root: Path) -> list[Path]:
    """The project files a function's bundle carries, relative to `project_root`, in a stable order."""
    function_dir = project_root / "functions" / spec.name
    handler_module = project_root / Path(*spec.handler.split(".")[:-1]).with_suffix(".py")
    if not handler_module.is_file():
        raise BundlingError(f"{spec.name}: handler module {handler_module} does not exist (handler {spec.handler!r})")
    files = [project_root / "functions" / "__init__.py", *_source_files(function_dir)]
    files += _source_files(project_root / "shared")
    return [path.relative_to(project_root) for path in files]


def host_interpreter() -> str:
    """The interpreter and platform a host bundle is built for, e.g. "cpython-311-linux-x86_64"."""
    return f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"


def pip_install_command(spec: FunctionSpec, output_dir: str, project_root: Path, *, host: bool = False) -> list[str]:
    """The pip command that installs the spec's packages as Lambda-compatible wheels into `output_dir`; with `host`,
    as wheels for this interpreter (a rehearsal's bundle), with no target platform, Python version or
    implementation."""
    leaked = RUNTIME_PROVIDED.intersection(spec.packages)
    if leaked:
        raise BundlingError(f"{spec.name}: {sorted(leaked)} come from the Lambda runtime and must not be bundled")
    platforms = [arg for platform in LAMBDA_PIP_PLATFORMS for arg in ("--platform", platform)]
    target = [] if host else ["--implementation", "cp", "--python-version", LAMBDA_PYTHON_VERSION, *platforms]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # .pyc built by this interpreter would be for the wrong Python version
        "--target",
        output_dir,
        "--only-binary=:all:",
        *target,
        "--constraint",
        str(project_root / REQUIREMENTS_FILE),
        *spec.packages,
    ]


def asset_hash(spec: FunctionSpec, project_root: Path = PROJECT_ROOT, *, host: bool = False) -> str:
    """SHA-256 over every input of the bundle: copied files, pinned requirements, target platform, package list."""
    digest = hashlib.sha256()
    platform = [HOST_BUNDLE_MARKER, host_interpreter()] if host else [LAMBDA_PYTHON_VERSION, LAMBDA_ARCHITECTURE]
    settings = [BUNDLE_FORMAT, *platform, *LAMBDA_PIP_PLATFORMS, "|", *spec.packages]
    digest.update("\0".join(settings).encode())
    for relative in [Path(REQUIREMENTS_FILE), *bundle_sources(spec, project_root)]:
        digest.update(b"\0" + relative.as_posix().encode() + b"\0")
        digest.update((project_root / relative).read_bytes())
    return digest.hexdigest()


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """Builds a function bundle with this interpreter's pip; returning True means CDK never starts Docker."""

    def __init__(self, spec: FunctionSpec, project_root: Path, *, host: bool = False) -> None:
        self._spec = spec
        self._project_root = project_root
        self._host = host

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        build(self._spec, Path(output_dir), project_root=self._project_root, host=self._host)
        return True


def build(spec: FunctionSpec, output_dir: Path, *, project_root: Path = PROJECT_ROOT, host: bool = False) -> None:
    """Install the spec's packages into `output_dir`, then copy the project sources next to them."""
    run_pip(pip_install_command(spec, str(output_dir), project_root, host=host))
    bundled_runtime = sorted(
        name for name in RUNTIME_PROVIDED if (output_dir / name).exists() or any(output_dir.glob(f"{name}-*.dist-info"))
    )
    if bundled_runtime:
        raise BundlingError(
            f"{spec.name}: {bundled_runtime} were pulled in as dependencies of {list(spec.packages)}; "
            "install with --no-deps and an explicit closure instead"
        )
    # Console scripts carry this machine's interpreter in their shebang; nothing in Lambda can run them.
    shutil.rmtree(output_dir / "bin", ignore_errors=True)
    for relative in bundle_sources(spec, project_root):
        target = output_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project_root / relative, target)


def run_pip(command: Sequence[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    if result.returncode != 0:
        raise BundlingError(f"pip failed ({result.returncode}): {' '.join(command)}\n{result.stderr.strip()}")


def function_code(spec: FunctionSpec, *, project_root: Path = PROJECT_ROOT, host: bool = False) -> lambda_.Code:
    """The Lambda code asset for `spec`, bundled locally (with `host`, for this interpreter: a rehearsal only).

    The source path is the function's own folder (never the project root, which holds .venv and node_modules);
    with a CUSTOM hash CDK does not fingerprint it. `command` is required by BundlingOptions but never runs:
    the local bundler always succeeds or raises.
    """
    runtime = lambda_runtime()
    return lambda_.Code.from_asset(
        str(project_root / "functions" / spec.name),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=asset_hash(spec, project_root, host=host),
        bundling=BundlingOptions(
            image=runtime.bundling_image,
            command=["bash", "-c", "echo 'bundled locally by infra/bundling.py'; exit 1"],
            local=PipLocalBundling(spec, project_root, host=host),
        ),
    )
