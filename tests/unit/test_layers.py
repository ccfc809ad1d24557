"""The layers of shared/ (pyproject's [tool.importlinter] contracts), as a specification: entry points on top, then
settings, adapters, the read library, the sources (reconcile, tail), the write path and the other stages (ingest,
apply, changes), the cross-cutting pieces, and the model, which imports nothing of ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_every_import_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "broken" in result.stdout and ", 0 broken" in result.stdout
