"""cfn-lint passes on the synthesized template with no ignored checks, for every option combination."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from infra.stack import DirectorySyncStack

pytestmark = pytest.mark.infra

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def test_cfn_lint_is_clean(variant: tuple[DirectorySyncStack, Template], tmp_path: Path) -> None:
    _, template = variant
    path = tmp_path / "WorkosDsyncPipeline.template.json"
    path.write_text(json.dumps(template.to_json(), indent=1))
    result = subprocess.run([str(CFN_LINT), "--", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
