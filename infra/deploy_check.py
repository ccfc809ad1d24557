"""`make deploy-check`'s bundle step: build each function's bundle for this interpreter and import its handler from
the bundle and the Lambda runtime's packages alone (`infra.bundle_check`). Exit 1 on any problem.

The other steps of `make deploy-check` (the template's contracts, its IAM enforced call by call) are tests, run by
`make test` too: `tests/infra/test_contracts.py`, `tests/deploy/`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from infra.bundle_check import import_problems
from infra.bundling import PROJECT_ROOT, build
from shared.resources import FUNCTIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy_check", description=__doc__)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / ".build" / "host-bundles")
    args = parser.parse_args(argv)
    problems: list[str] = []
    for spec in FUNCTIONS:
        started = time.monotonic()
        bundle = args.out / spec.name
        shutil.rmtree(bundle, ignore_errors=True)
        bundle.mkdir(parents=True)
        build(spec, bundle, host=True)
        found = import_problems(spec, bundle)
        problems += found
        verdict = "FAIL" if found else "ok"
        seconds = time.monotonic() - started
        print(f"{spec.name:10} {verdict:4} {spec.handler} with {', '.join(spec.packages)} ({seconds:.1f} s)")
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    print(f"bundles: {'FAIL' if problems else 'PASS'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
