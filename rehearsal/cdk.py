"""The CDK CLI against MiniStack: `cdk bootstrap`, `cdk deploy` and `cdk destroy` of the real app (app.py).

The CLI gets MiniStack's endpoint (`AWS_ENDPOINT_URL`), dummy credentials, no AWS config or credentials file of the
machine, and no `CDK_DEFAULT_*` of the caller: it resolves the account itself (MiniStack's STS answers
`000000000000`), as it would against AWS, and `infra.application` refuses the rehearsal switches for any other.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

# The account MiniStack reports, the only one `infra.config` accepts the rehearsal switches for
# (`infra.config.EMULATOR_ACCOUNT`; not imported: infra imports the CDK, whose jsii runtime would start a Node.js
# process in the harness for nothing. tests/infra/test_config.py checks that they agree).
EMULATOR_ACCOUNT = "000000000000"
REGION = "us-east-1"
# The two rehearsal-only switches (`infra.config`): MiniStack refuses AWS::Events::Archive, and runs every function
# on its own interpreter.
REHEARSAL_CONTEXT = {"rehearsalOmitChangeArchive": "true", "rehearsalHostBundles": "true"}
_TIMING = re.compile(r"(?P<what>Synthesis time|Deployment time|Total time): (?P<seconds>[0-9.]+)s")
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}  # MiniStack takes any


class CdkError(RuntimeError):
    """A CDK CLI command failed or timed out; the message ends with the tail of its output."""


class CdkCli:
    def __init__(self, *, project_root: Path, cli: Path, endpoint: str, outdir: Path, logs: Path) -> None:
        self._project_root = project_root
        self._cli = cli
        self._endpoint = endpoint
        self._outdir = outdir
        self._logs = logs

    def environment(self) -> dict[str, str]:
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "CDK_DEFAULT_"))
        }
        return environment | {
            **DUMMY_CREDENTIALS,
            "AWS_ENDPOINT_URL": self._endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            # Never the machine's profiles or keys, whatever ~/.aws holds.
            "AWS_CONFIG_FILE": str(self._logs / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self._logs / "no-aws-credentials"),
            "CDK_DISABLE_CLI_TELEMETRY": "true",
        }

    def bootstrap(self, *, timeout: float = 180.0) -> None:
        """From a folder without cdk.json: with an app, the CLI would synthesize it (into ./cdk.out) for nothing."""
        self._run("bootstrap", ["bootstrap", f"aws://{EMULATOR_ACCOUNT}/{REGION}"], timeout, cwd=self._logs)

    def deploy(self, stack: str, *, timeout: float = 300.0) -> None:
        context = [arg for key, value in REHEARSAL_CONTEXT.items() for arg in ("--context", f"{key}={value}")]
        self._run(
            "deploy",
            ["deploy", stack, "--require-approval", "never", "--output", str(self._outdir), *context],
            timeout,
        )

    def timings(self, name: str) -> dict[str, float]:
        """What the CLI reported of its own command `name`: "Synthesis time", "Deployment time", "Total time"."""
        found = {}
        for match in _TIMING.finditer(tail(self._logs / f"cdk-{name}.log", lines=400)):
            found[match["what"]] = float(match["seconds"])
        return found

    def prune_assets(self, stack: str) -> int:
        """Remove the bundles of earlier rehearsals from the output folder (every code change makes new ones); the
        current ones stay, so an unchanged project deploys again without bundling. Returns how many went."""
        manifest = json.loads((self._outdir / f"{stack}.assets.json").read_text())
        current = {str(entry["source"]["path"]) for entry in manifest.get("files", {}).values()}
        stale = [path for path in self._outdir.glob("asset.*") if path.name not in current]
        for path in stale:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return len(stale)

    def destroy(self, stack: str, *, timeout: float = 180.0) -> None:
        """From the cloud assembly `deploy` wrote: the same stack, without synthesizing (and bundling) again."""
        self._run("destroy", ["destroy", stack, "--force", "--app", str(self._outdir)], timeout)

    def _run(self, name: str, arguments: list[str], timeout: float, *, cwd: Path | None = None) -> None:
        log_path = self._logs / f"cdk-{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - the project's pinned CDK CLI, fixed arguments
                [str(self._cli), *arguments, "--no-notices"],
                cwd=cwd or self._project_root,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a timeout ends the CLI and whatever it started (the app, node workers)
            )
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(process)
                raise CdkError(f"cdk {name} did not finish within {timeout:.0f}s:\n{tail(log_path)}") from None
            except BaseException:  # interrupted: the CLI is in a session of its own, end it with us
                _kill(process)
                raise
        if code != 0:
            raise CdkError(f"cdk {name} failed (exit {code}):\n{tail(log_path)}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path.name})"
