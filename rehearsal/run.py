"""The rehearsal, phase by phase: each timed and printed as it ends, then `rehearse: PASS|FAIL` (exit 0|1).

1. start: the fake WorkOS (in this process) and MiniStack (its own process group, a scratch TMPDIR);
2. `cdk bootstrap aws://000000000000/us-east-1`, then `cdk deploy` of app.py with the rehearsal switches;
3. checks: the deployed resources against the synthesized template (`rehearsal.template`);
4. webhooks -> store: the secrets set as the runbook says, a directory's initial sync as signed webhooks through the
   deployed API (shuffled, some twice) until the store equals the fake WorkOS; a forged delivery is refused;
5. tail recovery: WorkOS's list API down (no reconcile can help), half of the next changes' webhooks never sent; the
   Events API tail, started as its schedule starts it, reads them from the fake's events endpoint;
6. change bus: a subscription on the deployed bus heard every user, group and membership the pipeline created;
7. reconcile: a user removed from the store behind the pipeline's back; the reconcile function, started with the
   schedule's event, plans the wave, the work queue runs the directory's job, and the store equals WorkOS again;
8. destroy: `cdk destroy --force`; the stack and every resource it deleted are gone, the retained ones remain;
9. stop: MiniStack's whole process group, the fake WorkOS, the scratch folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event, Thread
from types import FrameType
from typing import Any, TextIO

from botocore.config import Config
from botocore.exceptions import ClientError

from dsync.fake_workos import DirectoryModel, FakeWorkOS, populate
from rehearsal.cdk import REGION, CdkCli, tail
from rehearsal.drive import BusTap, DeployedPipeline, RehearsalError, scheduled_event, wait_for
from rehearsal.ministack import MiniStack
from rehearsal.template import DeployedStack, Resolver, TemplateCheck, check_destroyed, client
from shared.model import schema
from shared.model.records import ItemKey
from shared.reconcile.checkpoint import LAST_RUN_SK
from shared.resources import DEFAULT_STACK_NAME, Env

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# What the bundles are built for (`infra.bundling.host_interpreter`): the interpreter that runs app.py, this one.
HOST_INTERPRETER = f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"
INTERPRETER_PROBE = "import sys, sysconfig; print(f'{sys.implementation.cache_tag}-{sysconfig.get_platform()}')"
# Settings the template leaves to their defaults, given to every function through MiniStack's environment: the fake
# WorkOS, and tail invocations of 5 s polling every 0.5 s (the defaults, 50 s and 3 s, fit a one-minute schedule).
TAIL_RUN_SECONDS = 5
FUNCTION_SETTINGS = {Env.TAIL_RUN_SECONDS: str(TAIL_RUN_SECONDS), Env.TAIL_IDLE_POLL_SECONDS: "0.5"}
CLIENT_CONFIG = Config(read_timeout=TAIL_RUN_SECONDS + 60, retries={"max_attempts": 2})


class PhaseFailedError(Exception):
    """A phase failed; the phases that depend on it are skipped, the clean-up ones still run."""


@dataclass
class PhaseResult:
    name: str
    seconds: float
    ok: bool
    lines: list[str] = field(default_factory=list)


class Phases:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.results: list[PhaseResult] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[list[str]]:
        lines: list[str] = []
        started = time.monotonic()
        ok = False
        try:
            yield lines
            ok = True
        except Exception as error:
            lines.append(f"FAILED: {error}")
            raise PhaseFailedError(name) from error
        finally:
            result = PhaseResult(name, time.monotonic() - started, ok, lines)
            self.results.append(result)
            self.say(f"{'ok  ' if ok else 'FAIL'} {name:<18} {result.seconds:6.1f}s")
            for line in lines:
                self.say(f"       {line}")

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(result.ok for result in self.results)

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


@dataclass
class Options:
    ministack: Path
    cdk: Path
    outdir: Path
    stack: str
    users: int
    groups: int
    seed: int
    setup_started: float | None


class Rehearsal:
    def __init__(self, options: Options, out: TextIO) -> None:
        self.options = options
        self.phases = Phases(out)
        self.rng = random.Random(options.seed)  # noqa: S311 - test data, not security
        self.model = DirectoryModel(seed=options.seed)
        # The hold-back WorkOS applies to cursor reads of new events ("a few seconds"), shortened.
        self.fake = FakeWorkOS(self.model, events_hold_back_seconds=1.0)
        self.scratch = Path(tempfile.mkdtemp(prefix="rehearse-"))
        self.ministack: MiniStack | None = None
        self.cdk: CdkCli | None = None
        self.deployed: DeployedStack | None = None
        self.template: dict[str, Any] = {}
        self.pipeline: DeployedPipeline | None = None
        self.tap: BusTap | None = None
        self.rule_arns: dict[str, str] = {}  # function ("tail", "reconcile") -> its schedule's rule ARN
        self.directory_id = ""
        self.updated_users: list[str] = []
        self.logs = ""

    def clients(self, service: str) -> Any:
        assert self.ministack is not None
        return _client(service, self.ministack.endpoint)

    # --- the run ---------------------------------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        self.record_setup()
        steps: list[tuple[str, Callable[[list[str]], None]]] = [
            ("start", self.start),
            ("bootstrap", self.bootstrap),
            ("deploy", self.deploy),
            ("checks", self.check_template),
            ("webhooks -> store", self.webhooks),
            ("tail recovery", self.tail_recovery),
            ("change bus", self.change_bus),
            ("reconcile", self.reconcile),
        ]
        deploy_attempted = interrupted = False
        try:
            for name, step in steps:
                deploy_attempted = deploy_attempted or name == "deploy"
                with self.phases.phase(name) as lines:
                    step(lines)
        except PhaseFailedError:
            pass
        except KeyboardInterrupt:
            interrupted = True  # stop at once: MiniStack goes, and the stack with it
            raise
        finally:
            clean_up = [("destroy", self.destroy)] if deploy_attempted and not interrupted else []
            for name, step in [*clean_up, ("stop", self.stop)]:
                with contextlib.suppress(PhaseFailedError), self.phases.phase(name) as lines:
                    step(lines)
        return self.verdict(time.monotonic() - started)

    def record_setup(self) -> None:
        """What make spent before this process started (`--setup-started`): the venvs and node_modules."""
        if self.options.setup_started is None:
            return
        setup = PhaseResult("set-up", max(0.0, time.time() - self.options.setup_started), True)
        setup.lines.append("make: the project's .venv and node_modules, MiniStack's .rehearse-venv")
        self.phases.results.append(setup)
        self.phases.say(f"ok   {'set-up':<18} {setup.seconds:6.1f}s")
        for line in setup.lines:
            self.phases.say(f"       {line}")

    def verdict(self, elapsed: float) -> int:
        total = sum(result.seconds for result in self.phases.results if result.name == "set-up") + elapsed
        timings = ", ".join(f"{result.name} {result.seconds:.1f}s" for result in self.phases.results)
        self.phases.say(f"timings: {timings}; total {total:.1f}s")
        if self.phases.ok:
            self.phases.say(f"rehearse: PASS ({total:.0f}s)")
            return 0
        failed = [result.name for result in self.phases.results if not result.ok]
        self.phases.say(f"rehearse: FAIL ({', '.join(failed) or 'nothing ran'}; {total:.0f}s)")
        self.phases.say(self.logs or self._log_tails())
        return 1

    def _log_tails(self) -> str:
        parts = [f"--- {path.name} (last lines)\n{tail(path)}" for path in sorted(self.scratch.glob("cdk-*.log"))]
        if self.ministack is not None:
            parts.append(f"--- MiniStack's log (last lines)\n{self.ministack.log_tail()}")
        return "\n".join(parts)

    # --- phases --------------------------------------------------------------------------------------------------

    def start(self, lines: list[str]) -> None:
        interpreter = self._ministack_interpreter()
        if interpreter != HOST_INTERPRETER:
            raise RehearsalError(
                f"MiniStack runs the functions on {interpreter}, the bundles are built for {HOST_INTERPRETER}: "
                "recreate .rehearse-venv from the project's interpreter (make clean && make rehearse)"
            )
        self.fake.start()
        self.ministack = MiniStack(
            self.options.ministack,
            scratch=self.scratch,
            function_environment={Env.WORKOS_BASE_URL: self.fake.base_url, **FUNCTION_SETTINGS},
        )
        self.ministack.start()
        self.cdk = CdkCli(
            project_root=PROJECT_ROOT,
            cli=self.options.cdk,
            endpoint=self.ministack.endpoint,
            outdir=self.options.outdir,
            logs=self.scratch,
        )
        lines.append(
            f"MiniStack {self.ministack.endpoint} (functions run on {interpreter}); fake WorkOS {self.fake.base_url}"
        )

    def _ministack_interpreter(self) -> str:
        python = self.options.ministack.parent / "python"
        result = subprocess.run(  # noqa: S603 - MiniStack's own interpreter, a fixed probe
            [str(python), "-c", INTERPRETER_PROBE], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RehearsalError(f"{python} does not run ({result.stderr.strip()}): `make rehearse` installs it")
        return result.stdout.strip()

    def bootstrap(self, lines: list[str]) -> None:
        cdk = self._cdk()
        cdk.bootstrap()
        lines.append(f"cdk bootstrap aws://000000000000/{REGION}: the CDKToolkit stack, its bucket and roles")

    def deploy(self, lines: list[str]) -> None:
        cdk = self._cdk()
        cdk.deploy(self.options.stack)
        pruned = cdk.prune_assets(self.options.stack)
        lines.append(f"cdk deploy: {_reported(cdk.timings('deploy'))}; {pruned} bundles of earlier rehearsals pruned")
        self.after_deploy(lines)

    def after_deploy(self, lines: list[str]) -> None:
        assert self.ministack is not None
        template_path = self.options.outdir / f"{self.options.stack}.template.json"
        self.template = json.loads(template_path.read_text())
        self.deployed = DeployedStack.read(self.clients("cloudformation"), self.options.stack)
        resources = self.template["Resources"]
        kinds = {resource["Type"] for resource in resources.values()}
        if "AWS::Events::Archive" in kinds:
            raise RehearsalError("the template still has the change archive: rehearsalOmitChangeArchive not applied")
        functions = {
            str(properties["Handler"]).split(".")[1]: self.deployed.physical_ids[logical]
            for logical, properties in _properties(resources, "AWS::Lambda::Function")
        }
        runtimes = {(p["Runtime"], *p["Architectures"]) for _, p in _properties(resources, "AWS::Lambda::Function")}
        self.pipeline = DeployedPipeline(
            endpoint=self.ministack.endpoint,
            outputs=self.deployed.outputs,
            functions=functions,
            fake=self.fake,
            clients=self.clients,
            rng=self.rng,
        )
        lines.append(
            f"{self.options.stack}: {len(self.deployed.physical_ids)} of {len(resources)} template resources "
            f"deployed ({len(resources) - len(self.deployed.physical_ids)} without a physical id); "
            f"functions {sorted(functions)} as {sorted(runtimes)} in the template"
        )
        lines.append(f"webhook url {self.deployed.outputs['WebhookUrl']} -> {self.pipeline.webhook_url}")

    def check_template(self, lines: list[str]) -> None:
        assert self.deployed is not None
        resolver = Resolver(self.template, self.deployed, self.clients, REGION)
        findings = TemplateCheck(self.template, resolver, self.clients).run()
        for logical, properties in _properties(self.template["Resources"], "AWS::Events::Rule"):
            for target in properties.get("Targets", []):
                function_logical = target["Arn"]["Fn::GetAtt"][0]
                handler = str(self.template["Resources"][function_logical]["Properties"]["Handler"])
                self.rule_arns[handler.split(".")[1]] = resolver.get_att(logical, "Arn")
        checked = ", ".join(f"{count} {kind}" for kind, count in sorted(findings.counts.items()))
        lines.append(f"{findings.compared} properties compared ({checked}); {len(findings.problems)} differ")
        lines.append(
            "not compared: the table's SSE, PITR and TTL (MiniStack does not apply them), IAM policies (not enforced "
            "here), alarms, dashboard, log groups; the API's resources and methods are exercised by the webhooks"
        )
        if findings.problems:
            lines.extend(findings.problems)
            raise RehearsalError(f"{len(findings.problems)} deployed properties differ from the template")

    def webhooks(self, lines: list[str]) -> None:
        pipeline = self._pipeline()
        pipeline.configure_secrets()
        assert self.deployed is not None
        self.tap = BusTap(
            sqs=self.clients("sqs"), events=self.clients("events"), bus_name=self.deployed.outputs["ChangeBusName"]
        )
        model = self.model
        self.directory_id = str(model.create_directory(organization_id="org_01REHEARSAL", name="Rehearsal Okta")["id"])
        populate(model, self.directory_id, users=self.options.users, groups=self.options.groups, rng=self.rng)
        events = model.drain_events()
        sent = time.monotonic()
        pipeline.deliver(events)
        converged = wait_for(lambda: pipeline.converged(self.directory_id), timeout=90)
        if converged is None:
            raise RehearsalError(f"the store does not equal WorkOS: {pipeline.compare(self.directory_id)}")
        truth = model.snapshot(self.directory_id)
        lines.append(
            f"{len(events)} events as signed webhooks (shuffled, some twice) through the deployed API: the store "
            f"equals the fake WorkOS {time.monotonic() - sent:.1f}s after the first delivery ({len(truth['users'])} "
            f"users, {len(truth['groups'])} groups, {len(truth['memberships'])} memberships)"
        )
        forged = pipeline.forged_delivery_status(events[0])
        if forged != 401:
            raise RehearsalError(f"a delivery signed with another secret got HTTP {forged}, not 401")
        idle = wait_for(lambda: pipeline.busy() == 0, timeout=60)  # the activation's initial-sync reconcile too
        if idle is None:
            raise RehearsalError(f"the queues did not drain: {pipeline.busy()} messages left")
        lines.append(f"a forged delivery: HTTP {forged}; the queues drained (the activation's reconcile included)")

    def tail_recovery(self, lines: list[str]) -> None:
        pipeline, model = self._pipeline(), self.model
        self.fake.set_outage(503)  # WorkOS's list endpoints: no reconcile can repair anything now
        reads_before = self.fake.path_counts.get("/events", 0)
        tail = TailRuns(pipeline, scheduled_event(self.rule_arns["tail"]))
        tail.start()
        try:
            if wait_for(lambda: self.fake.path_counts.get("/events", 0) > reads_before, timeout=30) is None:
                raise RehearsalError(f"the tail never read WorkOS's events: {tail.reports}")
            groups = model.group_ids(self.directory_id)
            for index in range(4):
                joiner = model.create_user(
                    self.directory_id,
                    first_name=f"Late{index}",
                    last_name="Joiner",
                    email=f"late{index}@rehearsal.test",
                )
                model.add_user_to_group(self.rng.choice(groups), joiner["id"])
            self.updated_users = self.rng.sample(model.user_ids(self.directory_id), 3)
            for user_id in self.updated_users:
                model.update_user(user_id, last_name="Rehearsed")
            events = model.drain_events()
            sent = time.monotonic()
            lost = pipeline.deliver(events, lose=len(events) // 2, duplicates=0.0)
            converged = wait_for(lambda: pipeline.converged(self.directory_id), timeout=60)
            if converged is None:
                raise RehearsalError(
                    f"the tail did not recover {len(lost)} lost webhooks: {pipeline.compare(self.directory_id)}"
                )
            recovered_in = time.monotonic() - sent
        finally:
            tail.stop()
            self.fake.set_outage(None)
        enqueued = sum(int(report.get("events_enqueued", 0)) for report in tail.reports)
        statuses = sorted({str(report.get("status")) for report in tail.reports})
        failed = [report for report in tail.reports if report.get("status") not in ("ok", "busy", "superseded")]
        if failed:
            raise RehearsalError(f"tail invocations failed: {failed}")
        # "busy": the schedule's own invocation (a minute after the deploy) held the lease and did the reading.
        if enqueued < len(lost) and "busy" not in statuses:
            raise RehearsalError(f"the tail queued {enqueued} events, fewer than the {len(lost)} lost: {tail.reports}")
        lines.append(
            f"{len(events)} changes, {len(lost)} of their webhooks never sent, WorkOS's list API answering 503: the "
            f"store equals WorkOS {recovered_in:.1f}s after the deliveries"
        )
        lines.append(
            f"the tail (started with its schedule's event): {len(tail.reports)} invocations ({', '.join(statuses)}), "
            f"{enqueued} events queued from {self.fake.path_counts.get('/events', 0) - reads_before} Events API reads"
        )

    def change_bus(self, lines: list[str]) -> None:
        tap = self.tap
        assert tap is not None
        truth = self.model.snapshot(self.directory_id)
        expected = {
            "user.provisioned": {user["id"] for user in truth["users"]},
            "group.created": {group["id"] for group in truth["groups"]},
            "membership.added": {f"{m['group_id']}/{m['user_id']}" for m in truth["memberships"]},
            "directory.activated": {self.directory_id},
            "user.updated": set(self.updated_users),
        }

        def heard_all() -> bool:
            tap.poll()
            return all(subjects <= set(tap.subjects(kind)) for kind, subjects in expected.items())

        if wait_for(heard_all, timeout=30, interval=0.5) is None:
            missing = {kind: len(subjects - set(tap.subjects(kind))) for kind, subjects in expected.items()}
            raise RehearsalError(f"change events never heard, per detail-type: {missing}")
        extra = set(tap.subjects("user.provisioned")) - expected["user.provisioned"]
        if extra:
            raise RehearsalError(f"user.provisioned for users WorkOS does not have: {sorted(extra)}")
        counts = sorted({kind for kind, _ in tap.heard})
        lines.append(
            f"{len(tap.heard)} change events heard by a rule on the deployed bus (published by the publish function "
            f"from the table stream): every user, group and membership, the directory, the updated users"
        )
        lines.append("detail-types: " + ", ".join(f"{kind} {len(tap.subjects(kind))}" for kind in counts))

    def reconcile(self, lines: list[str]) -> None:
        pipeline, tap = self._pipeline(), self.tap
        assert tap is not None
        dynamodb, table = self.clients("dynamodb"), pipeline.table
        last_key = ItemKey(schema.directory_pk(self.directory_id), LAST_RUN_SK)
        before = table.get_item(last_key)
        victim = self.rng.choice(self.model.user_ids(self.directory_id))
        dynamodb.delete_item(
            TableName=pipeline.table_name,
            Key={
                schema.PARTITION_KEY: {"S": schema.directory_pk(self.directory_id)},
                schema.SORT_KEY: {"S": schema.user_sk(victim)},
            },
        )
        drift = pipeline.compare(self.directory_id)
        if sum(drift.values()) == 0:
            raise RehearsalError("removing a user from the store left no difference to repair")
        started = time.monotonic()
        planned = pipeline.invoke("reconcile", scheduled_event(self.rule_arns["reconcile"]))
        if planned.get("planned") != 1:
            raise RehearsalError(f"the scheduled reconcile planned {planned}, not one directory job")

        def repaired() -> bool:
            last = table.get_item(last_key)
            return last is not None and last != before and pipeline.converged(self.directory_id)

        if wait_for(repaired, timeout=90, interval=0.5) is None:
            raise RehearsalError(
                f"the work queue's reconcile job did not repair the store: {pipeline.compare(self.directory_id)}"
            )
        seconds = time.monotonic() - started
        last = table.get_item(last_key) or {}
        repairs = {name: int(count) for name, count in dict(last.get("drift", {})).items() if int(count)}

        def bus_saw_it() -> bool:
            tap.poll()
            return victim in tap.subjects("user.deprovisioned") and tap.subjects("user.provisioned").count(victim) >= 2

        if wait_for(bus_saw_it, timeout=20, interval=0.5) is None:
            raise RehearsalError("the bus did not carry the removal and the reconcile's repair of the user")
        if wait_for(lambda: pipeline.busy() == 0, timeout=30) is None:
            raise RehearsalError(f"the queues did not drain after the reconcile: {pipeline.busy()} messages left")
        if pipeline.dead_letters():
            raise RehearsalError(f"{pipeline.dead_letters()} events in the dead-letter queue")
        lines.append(
            f"a user removed from the table behind the pipeline's back ({drift}); the reconcile function, started "
            f"with the schedule's event, planned {planned}"
        )
        lines.append(
            f"its job ran from the work queue and repaired it in {seconds:.1f}s (drift {repairs}); the bus carried "
            "user.deprovisioned, then user.provisioned again; queues drained, no dead letters"
        )

    def destroy(self, lines: list[str]) -> None:
        cdk = self._cdk()
        if self.tap is not None:
            self.tap.close()  # the subscription goes first, as an app's would: AWS deletes no bus with rules
            self.tap = None
        cdk.destroy(self.options.stack)
        if self.deployed is None:
            lines.append("cdk destroy ran (nothing was deployed to check)")
            return
        cloudformation = self.clients("cloudformation")

        def stack_exists() -> bool:
            try:
                stacks = cloudformation.describe_stacks(StackName=self.options.stack)["Stacks"]
            except ClientError:
                return False
            return any(stack["StackStatus"] != "DELETE_COMPLETE" for stack in stacks)

        left = check_destroyed(self.template, self.deployed, self.clients, stack_exists)
        lines.append(
            f"cdk destroy --force: stack gone, {left.gone} resources deleted, {len(left.retained)} retained as their "
            f"DeletionPolicy says ({', '.join(sorted(left.retained))}); {left.not_probed} go with their parents"
        )
        if left.problems:
            lines.extend(left.problems)
            raise RehearsalError(f"{len(left.problems)} resources not as the template's deletion policies say")

    def stop(self, lines: list[str]) -> None:
        started = time.monotonic()
        gone = self.ministack.stop() if self.ministack is not None else True
        stopped = time.monotonic() - started
        self.logs = self._log_tails()  # before the scratch folder goes
        self.fake.stop()
        size = sum(path.stat().st_size for path in self.scratch.rglob("*") if path.is_file() and not path.is_symlink())
        started = time.monotonic()
        shutil.rmtree(self.scratch, ignore_errors=True)
        lines.append(
            f"MiniStack's process group ended ({stopped:.1f}s), the fake WorkOS stopped, the scratch folder "
            f"(unzipped Lambda workers, logs: {size / 2**20:.0f} MB) removed ({time.monotonic() - started:.1f}s)"
        )
        if not gone:
            raise RehearsalError("a process of MiniStack's group is still running")
        if self.scratch.exists():
            raise RehearsalError(f"{self.scratch} could not be removed")

    def _cdk(self) -> CdkCli:
        if self.cdk is None:
            raise RehearsalError("MiniStack did not start")
        return self.cdk

    def _pipeline(self) -> DeployedPipeline:
        if self.pipeline is None:
            raise RehearsalError("nothing deployed")
        return self.pipeline


class TailRuns:
    """The tail as its one-minute schedule runs it, back to back (each invocation polls for TAIL_RUN_SECONDS), until
    stopped; each invocation's report kept."""

    def __init__(self, pipeline: DeployedPipeline, event: dict[str, Any]) -> None:
        self._pipeline = pipeline
        self._event = event
        self._stopping = Event()
        self._thread = Thread(target=self._run, name="rehearsal-tail", daemon=True)
        self.reports: list[dict[str, Any]] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=TAIL_RUN_SECONDS + 30)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                report = self._pipeline.invoke("tail", self._event)
            except (RehearsalError, ClientError) as error:
                report = {"status": "error", "error": str(error)}
            self.reports.append(report)
            if report.get("status") != "ok":  # another tail holds the lease, or a failure: not back to back
                self._stopping.wait(1.0)


def _reported(timings: dict[str, float]) -> str:
    return ", ".join(f"{what.lower()} {seconds:.1f}s" for what, seconds in timings.items()) or "no timings reported"


def _properties(resources: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical, resource in resources.items():
        if resource["Type"] == kind:
            yield str(logical), dict(resource.get("Properties", {}))


def _client(service: str, endpoint: str) -> Any:
    return client(service, endpoint=endpoint, region=REGION, config=CLIENT_CONFIG)


def _stack_name() -> str:
    context = json.loads((PROJECT_ROOT / "cdk.json").read_text()).get("context", {})
    return str(context.get("stackName") or DEFAULT_STACK_NAME)


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ministack", type=Path, default=PROJECT_ROOT / ".rehearse-venv" / "bin" / "ministack")
    parser.add_argument("--cdk", type=Path, default=PROJECT_ROOT / "node_modules" / ".bin" / "cdk")
    parser.add_argument("--outdir", type=Path, default=PROJECT_ROOT / ".rehearse-cdk.out")
    parser.add_argument("--stack", default=_stack_name())
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--setup-started", type=float, default=None, help="epoch seconds make started (timing)")
    args = parser.parse_args(argv)
    return Options(
        ministack=args.ministack.absolute(),
        cdk=args.cdk.absolute(),
        outdir=args.outdir.absolute(),
        stack=args.stack,
        users=args.users,
        groups=args.groups,
        seed=args.seed,
        setup_started=args.setup_started,
    )


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def isolate_from_aws() -> None:
    """This process talks to MiniStack only: dummy credentials, no profile, no config or credentials file."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    isolate_from_aws()
    signal.signal(signal.SIGTERM, _interrupted)  # a stopped `make` still ends MiniStack and removes the scratch
    return Rehearsal(options, sys.stdout).run()


__all__ = ["Options", "Rehearsal", "main"]
