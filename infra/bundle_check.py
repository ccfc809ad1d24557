"""Does each function's bundle import its handler with only what the bundle and the Lambda runtime hold?

A missing package in a `FunctionSpec` (say, the tail needing the workos SDK) deploys fine and fails at the first
cold start. This check imports the handler in a fresh interpreter whose path is the bundle plus the packages the
Lambda Python runtime provides (boto3 and its dependencies), nothing else: no site-packages, no project tree.

The bundles for the real runtime (python3.14, arm64 wheels) cannot import on this machine, so the check runs on
host bundles: the same files and the same package list, with wheels for this interpreter (`infra.bundling`'s
host mode). What it proves is the dependency closure, not the wheels' platform tags.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from shared.resources import FunctionSpec

# What the Lambda Python runtime ships besides the standard library: boto3 and its dependency closure.
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six")

_IMPORT_SCRIPT = r"""
import ast, importlib, importlib.util, sys
handler, bundle, runtime = sys.argv[1], sys.argv[2], sys.argv[3]
module_name, _, attribute = handler.rpartition(".")
if not callable(getattr(importlib.import_module(module_name), attribute, None)):
    raise SystemExit(f"{handler} is not a callable handler")

def imports_of(name):
    # Every module `name` imports, function-local imports included (a lazy `import workos` only fails when it runs);
    # not those under `if TYPE_CHECKING:`, which never run.
    spec = importlib.util.find_spec(name)
    tree = ast.parse(open(spec.origin).read())
    package = name if spec.submodule_search_locations else name.rpartition(".")[0]
    guarded = [n for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)]
    skipped = {id(n) for node in guarded for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)

seen, queue, problems = set(), [module_name], []
while queue:
    name = queue.pop()
    if name in seen:
        continue
    seen.add(name)
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        parent, _, leaf = name.rpartition(".")
        if parent and parent in sys.modules and hasattr(sys.modules[parent], leaf):
            continue  # `from package import name` of an attribute, not a module
        problems.append(f"{name}: {error}")
        continue
    if name.split(".")[0] in ("functions", "shared"):
        queue.extend(imports_of(name))
outside = sorted(
    name for name, mod in sys.modules.items()
    if getattr(mod, "__file__", None) and not mod.__file__.startswith((bundle, runtime, sys.base_prefix))
)
if outside:
    problems.append(f"modules loaded from outside the bundle and the runtime: {outside[:5]}")
if problems:
    raise SystemExit("; ".join(problems))
"""


def link_distributions(target: Path, distributions: Iterable[str]) -> Path:
    """Links in `target` to this environment's copies of `distributions`' top-level modules and packages."""
    target.mkdir(parents=True, exist_ok=True)
    for distribution in distributions:
        files = importlib.metadata.files(distribution) or []
        tops = {file.parts[0] for file in files if file.parts and not file.parts[0].endswith((".dist-info", ".pth"))}
        for top in tops - {"..", "__pycache__"}:
            source = Path(str(importlib.metadata.distribution(distribution).locate_file(top)))
            link = target / top
            if source.exists() and not link.exists():
                link.symlink_to(source)
    return target


def import_problems(spec: FunctionSpec, bundle: Path) -> list[str]:
    """Import `spec.handler` from `bundle` in an isolated interpreter; the problems found, if any."""
    with tempfile.TemporaryDirectory(prefix="lambda-runtime-") as scratch:
        runtime = link_distributions(Path(scratch) / "runtime", RUNTIME_DISTRIBUTIONS)
        path = [str(bundle.resolve()), str(runtime)]
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(path),
            "AWS_DEFAULT_REGION": "us-east-1",  # the runtime always sets it
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        # -S: no site-packages; -E is not used so that PYTHONPATH (the bundle, then the runtime) applies; -P (3.11+)
        # keeps the working directory off the path.
        command = [sys.executable, "-S", "-P", "-c", _IMPORT_SCRIPT, spec.handler, str(bundle.resolve()), scratch]
        result = subprocess.run(  # noqa: S603 - fixed argv
            command, capture_output=True, text=True, env=environment, cwd=scratch, check=False, timeout=120
        )
    if result.returncode == 0:
        return []
    last = (result.stderr.strip().splitlines() or ["(no output)"])[-1][:600]
    return [f"{spec.name}: {spec.handler} does not import from its bundle alone: {last}"]
