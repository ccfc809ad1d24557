"""`dsync demo`: a directory's life, played through the local stack against a fake WorkOS, checked at the end.

1. Acme connects Okta: `dsync.activated` and the initial-sync burst, delivered shuffled and with duplicates like
   real retries, while the activation's initial-sync reconcile lists the same directory in parallel;
2. a day of changes: joiners, leavers deactivated then deleted, renames, group moves, a group deleted;
3. roles: the IT admin maps the Okta group "Admins" to the role `admin` (three users become admins), then one
   leaves the group and loses it; an app subscribed to the change bus with its own rule prints what it heard;
   (acts 1 to 3 run on webhooks alone: they must converge without help)
4. the Events API tail starts; an outage loses a third of the webhooks, and a burst of them entirely, while
   WorkOS's list endpoints answer 503, so no reconcile can help: the tail repairs the mirror within seconds;
5. a month-long outage, longer than WorkOS keeps events: every webhook lost and the tail's cursor expired. The
   tail finds WorkOS refusing its cursor, re-reads by time and queues a full reconcile itself, which repairs it;
6. a key rotation goes wrong: staging's WorkOS API key is used against production's mirror. `dsync check-key` says
   it sees none of the mirror, and `dsync reconcile` refuses (exit 1): nothing erased, nothing of staging imported;
7. the app's own database: the mirror kept in PostgreSQL (an embedded server) by the SQL sink, fed by the table's
   stream all along; the integration guide's step-9 checks run as SQL and printed beside WorkOS's counts, and
   `dsync sql verify`'s comparison of every live row;
8. the verdict: `export` against WorkOS's truth, field by field (roles included), and which source repaired what.
   Exit code 0 only if they match, and only if the store also matched after acts 1 to 3 (webhooks alone must
   converge), the app heard exactly the role changes WorkOS made, act 4's tail alone repaired lost webhooks, and
   act 6's wrong key changed nothing, and the SQL sink equals the mirror and WorkOS.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

import boto3
from tqdm import tqdm

from dsync.commands.reconcile import check_key, run_reconcile
from dsync.commands.webhooks import post_signed
from dsync.errors import CommandError
from dsync.fake_workos import DirectoryModel, FakeWorkOS, populate
from dsync.local import logs
from dsync.local.stack import LocalStack, LocalStackOptions
from dsync.local.subscriber import BusSubscriber
from dsync.targets import Target, resolve_target
from shared.adapters.dynamodb import DirectoryTable
from shared.model import schema
from shared.model.records import ItemKey
from shared.read.reader import DirectoryReader
from shared.tail.cursor import CursorStore

DEMO_SECRET = "whsec_local_demo_only"
STAGING_KEY = "sk_test_staging_environment"  # act 6: a valid key, of another WorkOS environment


@dataclass(frozen=True)
class DemoOptions:
    users: int = 250
    groups: int = 16
    seed: int = 2026
    quiet: bool = False
    duplicate_rate: float = 0.15
    loss_rate: float = 0.35
    senders: int = 8
    rate_limit_per_second: float = 4.0
    # moto's SQS still scans a queue on every receive (once per call since dsync.local.moto_server): keep the
    # backlog moderate.
    max_backlog: int = 60
    # WorkOS holds new events back from cursor reads for a few seconds; the fake does the same.
    hold_back_seconds: float = 2.0
    tail_every_seconds: float = 1.0


class _Backpressure:
    """Holds senders back while the event queue's backlog is above `limit` (an emulator constraint, see above)."""

    def __init__(self, stack: LocalStack, *, limit: int) -> None:
        assert stack.resources is not None
        self._sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=stack.aws_endpoint)
        self._url = stack.resources.event_queue_url
        self._limit = limit
        self._open = threading.Event()
        self._open.set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="demo-backpressure", daemon=True)

    def __enter__(self) -> _Backpressure:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def wait(self) -> None:
        self._open.wait(timeout=30)

    def _watch(self) -> None:
        while not self._done.wait(0.1):
            backlog = int(
                self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            )
            if backlog > self._limit:
                self._open.clear()
            else:
                self._open.set()


class Demo:
    def __init__(self, options: DemoOptions, out: TextIO = sys.stdout) -> None:
        self.options = options
        self.out = out
        self.rng = random.Random(options.seed)
        # WorkOS's clock is this machine's clock (the fake stamps every change with the real time).
        self.model = DirectoryModel(seed=options.seed)
        self.fake = FakeWorkOS(
            self.model,
            rate_limit_per_second=options.rate_limit_per_second,
            events_hold_back_seconds=options.hold_back_seconds,
        )
        self.stack: LocalStack | None = None
        self.delivered = 0
        self.lost = 0
        self.duplicates = 0
        # Differences left after acts in which every webhook arrived (shuffled, duplicated): webhooks alone must
        # converge, so anything here is a bug that the final reconcile would otherwise hide.
        self.unconverged = 0
        self.tail_repair_seconds: float | None = None
        self.tail_lost_repaired = 0
        self.reconcile_repairs = 0
        self.wrong_key_refused = False
        self.sql_equal = False

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # --- plumbing ----------------------------------------------------------------------------------------------

    def deliver(self, events: list[dict[str, Any]], label: str, *, lose: float = 0.0) -> None:
        """POST events as WorkOS would: concurrently, out of order, some twice; with `lose`, some never."""
        assert self.stack is not None
        kept = [event for event in events if self.rng.random() >= lose]
        self.lost += len(events) - len(kept)
        deliveries = kept + [event for event in kept if self.rng.random() < self.options.duplicate_rate]
        self.duplicates += len(deliveries) - len(kept)
        self.rng.shuffle(deliveries)
        # A bar on a terminal; piped (CI, a log file), only the story's lines.
        progress = tqdm(
            total=len(deliveries),
            desc=f"   {label}",
            unit="delivery",
            leave=False,
            file=self.out,
            disable=self.options.quiet or not self.out.isatty(),
        )
        url = self.stack.webhook_url
        backlog = _Backpressure(self.stack, limit=self.options.max_backlog)

        def send(event: dict[str, Any]) -> int:
            backlog.wait()
            for _attempt in range(5):  # like WorkOS: anything but 2xx is retried
                delivery = post_signed(url, event, secret=DEMO_SECRET)
                if 200 <= delivery.status < 300:
                    return delivery.status
                time.sleep(0.2)
            return delivery.status

        with backlog, ThreadPoolExecutor(max_workers=self.options.senders) as pool:
            for status in pool.map(send, deliveries):
                if not 200 <= status < 300:
                    raise RuntimeError(f"a delivery kept failing with HTTP {status}")
                self.delivered += 1
                progress.update()
        progress.close()

    def drain(self, timeout: float = 90.0) -> float:
        """Wait until the event queue, the work queue and the change stream are all idle."""
        assert self.stack is not None
        started = time.monotonic()
        quiet_since: float | None = None
        while time.monotonic() - started < timeout:
            busy = self.stack.queued_messages()
            if busy == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 1.0:  # the stream poller catches up within a poll
                    return time.monotonic() - started
            else:
                quiet_since = None
            time.sleep(0.2)
        raise TimeoutError("the pipeline did not drain in time")

    def table(self) -> DirectoryTable:
        assert self.stack is not None and self.stack.resources is not None
        client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=self.stack.aws_endpoint)
        return DirectoryTable(self.stack.resources.table_name, client=client)

    def compare(self, directory_id: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
        """(our export, WorkOS's truth, differences per section) for one directory."""
        exported = DirectoryReader(self.table()).export(directory_id)
        truth = self.model.snapshot(directory_id)
        differences = {}
        for section in ("users", "groups", "memberships"):
            keys = truth[section][0].keys() if truth[section] else ()
            ours = {json.dumps({k: item.get(k) for k in keys}, sort_keys=True) for item in exported[section]}
            theirs = {json.dumps(item, sort_keys=True) for item in truth[section]}
            differences[section] = len(ours ^ theirs)
        directory_keys = (truth["directory"] or {}).keys()
        ours_directory = {k: (exported["directory"] or {}).get(k) for k in directory_keys}
        differences["directory"] = int(ours_directory != (truth["directory"] or {}))
        return exported, truth, differences

    def change_events(self) -> Counter[str]:
        assert self.stack is not None and self.stack.changes is not None
        return Counter(self.stack.changes.snapshot())

    # --- the story ------------------------------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        self.fake.start()
        self.stack = LocalStack(
            LocalStackOptions.beside_fake_workos(
                self.fake,
                secret=DEMO_SECRET,
                # The tail starts on cue in act 4 (acts 1-3 prove webhooks alone converge), reading from then on.
                tail_every_seconds=self.options.tail_every_seconds,
                tail_autostart=False,
                tail_bootstrap_hours=5 / 3600,
                postgres="embedded",  # act 7: the SQL sink, fed from the start
            )
        )
        try:
            self.stack.start()
            logs.silence()
            logging.getLogger("shared.tail.poller").setLevel(logging.CRITICAL)  # the story narrates the tail's recovery
            self.say("dsync demo: the whole pipeline on this machine (moto + the same Lambda handlers + a fake WorkOS)")
            self.say(f"  webhook url: {self.stack.webhook_url}")
            self.say(f"  aws endpoint: {self.stack.aws_endpoint}")
            limit = self.options.rate_limit_per_second
            self.say(f"  fake WorkOS: {self.fake.base_url} (rate limit {limit:g} req/s per directory)")
            directory_id = self.act_one()
            self.act_two(directory_id)
            self.act_roles(directory_id)
            self.act_three(directory_id)
            self.act_four(directory_id)
            self.act_wrong_key(directory_id)
            self.act_sql(directory_id)
            return self.verdict(directory_id, started)
        finally:
            self.stack.stop()
            self.fake.stop()

    def act_one(self) -> str:
        self.say("\n1. Acme connects its Okta directory")
        directory_id = str(self.model.create_directory(organization_id="org_01ACMEDEMO", name="Acme Okta")["id"])
        populate(self.model, directory_id, users=self.options.users, groups=self.options.groups, rng=self.rng)
        events = self.model.drain_events()
        types = Counter(event["event"] for event in events)
        self.say(
            f"   WorkOS sends {len(events)} events: {types['dsync.user.created']} users, "
            f"{types['dsync.group.created']} groups, {types['dsync.group.user_added']} memberships"
        )
        self.deliver(events, "initial sync (shuffled)")
        waited = self.drain()
        _, _, differences = self.compare(directory_id)
        self.say(
            f"   applied in {waited:.1f}s after the last delivery; the activation also started an initial-sync "
            "reconcile that listed the directory in parallel"
        )
        self.say(f"   store vs WorkOS: {sum(differences.values())} differences")
        self.unconverged += sum(differences.values())  # every webhook was delivered: this must be 0
        refused = post_signed(self.stack_url(), events[0], secret="whsec_attacker")
        self.say(f"   a forged delivery (wrong secret) is refused: HTTP {refused.status}")
        return directory_id

    def act_two(self, directory_id: str) -> None:
        self.say("\n2. A day of changes in Okta")
        model, rng = self.model, self.rng
        users, groups = model.user_ids(directory_id), model.group_ids(directory_id)
        joiners = [
            model.create_user(directory_id, first_name=f"New{index}", last_name="Hire", email=f"new{index}@acme.test")
            for index in range(12)
        ]
        for joiner in joiners:
            model.add_user_to_group(rng.choice(groups), joiner["id"])
        leavers = rng.sample(users, 8)
        for leaver in leavers:
            model.deactivate_user(leaver)
        for leaver in leavers[:5]:
            model.delete_user(leaver)
        for user_id in rng.sample([u for u in users if u not in leavers], 10):
            model.update_user(user_id, last_name="Married")
        model.update_group(groups[0], name="Platform Engineering")
        for user_id in rng.sample([u for u in users if u not in leavers], 10):  # moves between groups
            current = model.group_ids(directory_id, user_id=user_id)
            if current:
                model.remove_user_from_group(current[0], user_id)
            model.add_user_to_group(rng.choice(groups), user_id)
        model.delete_group(groups[-1])
        events = model.drain_events()
        self.say(
            f"   {len(joiners)} joiners, {len(leavers)} leavers deactivated ({5} then deleted), renames, moves, "
            f"group {groups[-1][-6:]} deleted: {len(events)} events"
        )
        self.deliver(events, "the day's changes")
        self.drain()
        _, _, differences = self.compare(directory_id)
        self.say(f"   store vs WorkOS: {sum(differences.values())} differences")
        self.unconverged += sum(differences.values())

    def act_roles(self, directory_id: str) -> None:
        self.say('\n3. Roles: the IT admin maps the Okta group "Admins" to the role admin')
        assert self.stack is not None
        endpoint = self.stack.aws_endpoint
        app = BusSubscriber(
            sqs=boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint),
            events=boto3.client("events", region_name="us-east-1", endpoint_url=endpoint),
            name="demo-app-roles",
            detail_types=["user.roles_changed"],
        )
        model = self.model
        admins = model.create_group(directory_id, name="Admins")["id"]
        chosen = self.rng.sample(model.user_ids(directory_id), 3)
        for user_id in chosen:
            model.add_user_to_group(admins, user_id)
        model.map_group_to_role(admins, "admin")
        events = model.drain_events()
        self.deliver(events, "the mapping: 3 users become admins")
        self.drain()
        model.remove_user_from_group(admins, chosen[0])  # leaves the group: back to the default role
        removal = model.drain_events()
        self.deliver(removal, "one leaves the group")
        self.drain()
        events += removal
        # (user, added, removed): the default role gives way to admin, then comes back for the one who left.
        expected = {(user_id, "admin", "member") for user_id in chosen} | {(chosen[0], "member", "admin")}
        heard: set[tuple[str, str, str]] = set()
        deadline = time.monotonic() + 10
        while heard != expected and time.monotonic() < deadline:
            for _, detail in app.poll():
                heard.add((detail["user"]["id"], ",".join(detail["added"]), ",".join(detail["removed"])))
                names = f"{detail['user']['first_name']} {detail['user']['last_name']}"
                self.say(
                    f"   app heard user.roles_changed: {names:<22} roles {detail['roles']}, "
                    f"added {detail['added']}, removed {detail['removed']}"
                )
            time.sleep(0.2)
        exported, _, differences = self.compare(directory_id)
        admins_now = [user["id"] for user in exported["users"] if "admin" in user["roles"]]
        self.say(
            f"   {len(events)} events; the export has {len(admins_now)} admins; store vs WorkOS: "
            f"{sum(differences.values())} differences"
        )
        self.unconverged += sum(differences.values()) + len(heard ^ expected)

    def wait_converged(self, directory_id: str, timeout: float) -> float | None:
        """Seconds until the export equals WorkOS (None: not within `timeout`)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if sum(self.compare(directory_id)[2].values()) == 0:
                return time.monotonic() - started
            time.sleep(0.5)
        return None

    def tail_recovered_since(self, moment: float) -> bool:
        """Whether the tail fell back from a refused cursor after `moment`: its cursor item says so at once (the
        poller's totals only arrive when its invocation ends)."""
        cursor = CursorStore(self.table()).load()
        return cursor is not None and cursor.recovered_ms >= moment * 1000

    def act_three(self, directory_id: str) -> None:
        self.say("\n4. The Events API tail starts. Then an outage: webhooks lost for good, WorkOS's list API down")
        assert self.stack is not None
        self.stack.start_tail()
        started = time.monotonic()  # it reads from now on (`tail_bootstrap_hours`): wait for its first read
        while not self.fake.path_counts.get("/events") and time.monotonic() - started < 30:
            time.sleep(0.1)
        self.fake.set_outage(503)  # /directories, /directory_users, /directory_groups: no reconcile can help
        model, rng = self.model, self.rng
        users, groups = model.user_ids(directory_id), model.group_ids(directory_id)
        for index in range(8):
            joiner = model.create_user(
                directory_id, first_name=f"Outage{index}", last_name="Joiner", email=f"outage{index}@acme.test"
            )
            model.add_user_to_group(rng.choice(groups), joiner["id"])
        for user_id in rng.sample(users, 6):
            model.update_user(user_id, custom_attributes={"department": "Reorganised"})
        for user_id in rng.sample(users, 3):
            model.delete_user(user_id)
        sporadic = model.drain_events()
        # The last minutes of the outage: every webhook lost, a deactivation and a group deletion among them.
        for user_id in rng.sample(model.user_ids(directory_id), 8):
            current = model.group_ids(directory_id, user_id=user_id)
            if current:
                model.remove_user_from_group(current[0], user_id)
        model.deactivate_user(rng.choice(model.user_ids(directory_id)))
        model.update_group(groups[1], name="Go-to-Market")
        model.delete_group(groups[2])
        burst = model.drain_events()
        lost_before = self.lost
        self.deliver(sporadic, "deliveries during the outage", lose=self.options.loss_rate)
        self.lost += len(burst)
        last_event = time.monotonic()
        lost = self.lost - lost_before
        self.say(
            f"   {len(sporadic) + len(burst)} events, {lost} of their webhooks lost for good ({len(burst)} in a row)"
        )
        repaired = self.wait_converged(directory_id, timeout=90)
        self.fake.set_outage(None)
        if repaired is None:
            self.unconverged += sum(self.compare(directory_id)[2].values())
            self.say("   the tail did NOT repair the mirror within 90 s")
            return
        self.tail_repair_seconds = time.monotonic() - last_event
        self.tail_lost_repaired = lost
        polls = self.fake.path_counts.get("/events", 0)
        self.say(
            f"   the tail ({polls} Events API requests so far) repaired it: store vs WorkOS 0 differences "
            f"{self.tail_repair_seconds:.1f}s after the last event, with the list API down throughout"
        )

    def act_four(self, directory_id: str) -> None:
        self.say(
            "\n5. A month-long outage, longer than WorkOS keeps events: every webhook lost, the tail's cursor expired"
        )
        assert self.stack is not None
        model, rng = self.model, self.rng
        outage_started = time.time()
        self.fake.event_retention_days = 0.0  # everything the tail could still read is past retention
        for user_id in rng.sample(model.user_ids(directory_id), 5):
            model.update_user(user_id, last_name="Returned")
        for user_id in rng.sample(model.user_ids(directory_id), 2):
            model.delete_user(user_id)
        joiner = model.create_user(directory_id, first_name="Month", last_name="Later", email="month@acme.test")
        model.add_user_to_group(model.group_ids(directory_id)[0], joiner["id"])
        events = model.drain_events()
        self.lost += len(events)
        self.fake.reset_stats()
        started = time.monotonic()
        while not self.tail_recovered_since(outage_started) and time.monotonic() - started < 30:
            time.sleep(0.2)
        self.say(
            f"   {len(events)} changes, none delivered; the tail's next read was refused (422, cursor past retention):"
            " it re-read by time and queued a full reconcile of every directory"
        )
        self.drain(timeout=180)
        last = self.table().get_item(ItemKey(schema.directory_pk(directory_id), "~RECONCILE#LAST"))
        drift = (last or {}).get("drift", {})
        self.reconcile_repairs = sum(int(value) for value in drift.values())
        repaired = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in drift.items() if value)
        self.say(f"   reconcile finished in {time.monotonic() - started:.1f}s: {repaired or 'nothing to repair'}")
        self.say(
            f"   {self.fake.requests_total} WorkOS requests, {self.fake.rate_limited_total} answered 429 "
            f"(paced at {self.options.rate_limit_per_second:g} req/s per directory)"
        )

    def act_wrong_key(self, directory_id: str) -> None:
        self.say("\n6. A key rotation goes wrong: staging's WorkOS API key, used against production's mirror")
        assert self.stack is not None
        staging = self.fake.add_environment(STAGING_KEY, DirectoryModel(seed=self.options.seed + 1))
        staging_directory = staging.create_directory(organization_id="org_01STAGING")["id"]
        populate(staging, staging_directory, users=5, groups=1, rng=random.Random(self.options.seed))
        target = resolve_target(aws_endpoint=self.stack.aws_endpoint, stack=None, region="us-east-1")
        before = self.compare(directory_id)[0]
        view = check_key(target, api_key=STAGING_KEY, base_url=self.fake.base_url)
        self.say(
            f"   dsync check-key: the key sees {len(view['known'])} of the mirror's directories "
            f"({len(view['missing'])} missing, {len(view['unknown'])} unknown): another environment, exit 1"
        )
        refusal = None
        try:
            run_reconcile(target, directory_id=None, api_key=STAGING_KEY, base_url=self.fake.base_url)
        except CommandError as error:
            refusal = str(error)
        imported = DirectoryReader(self.table()).export(staging_directory)["directory"] is not None
        unchanged = self.compare(directory_id)[0] == before
        self.wrong_key_refused = refusal is not None and unchanged and not imported and not view["same_environment"]
        outcome = "refused (exit 1)" if refusal else "RAN"
        self.say(
            f"   dsync reconcile with it: {outcome}; {len(before['users'])} users still there, "
            f"{'nothing' if not imported else 'staging'} imported"
        )

    def act_sql(self, directory_id: str) -> None:
        """The integration guide's step-9 checks, unchanged apart from the schema, against the SQL sink."""
        import psycopg
        from psycopg import sql

        from shared.sql.verify import verify

        assert self.stack is not None and self.stack.postgres_url is not None
        schema_name = self.stack.options.sql_schema
        self.say(
            f"\n7. The app's own database: the mirror in PostgreSQL (schema {schema_name}, fed by the table's stream)"
        )
        truth = self.model.snapshot(directory_id)
        organization = str(truth["directory"]["organization_id"])
        began = time.monotonic()
        with psycopg.connect(self.stack.postgres_url, autocommit=True) as conn:
            while True:  # the sink trails the mirror by the stream's lag
                report = verify(self.table(), conn, schema=schema_name, environment=self.stack.options.sql_environment)
                if not report.different or time.monotonic() - began > 30:
                    break
                time.sleep(0.2)
            equal = not report.different
            for table, by_organization, expected in (
                ("users", True, truth["users"]),
                ("groups", True, truth["groups"]),
                ("group_memberships", False, truth["memberships"]),
            ):
                where = f" WHERE organization_id = '{organization}'" if by_organization else ""
                shown = f"SELECT COUNT(*) FROM {schema_name}.{table}{where}"  # noqa: S608 (printed, not run)
                query = sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(schema_name, table))
                if by_organization:
                    query = sql.SQL("{} WHERE organization_id = %s").format(query)
                row = conn.execute(query, (organization,) if by_organization else None).fetchone()
                found = int(row[0]) if row else -1
                equal = equal and found == len(expected)
                self.say(f'   psql -c "{shown}"  ->  {found}  (WorkOS: {len(expected)})')
        verdicts = ", ".join(
            f"{verdict.directory_id}: {'equal' if verdict.equal else 'DIFFERENT'} {verdict.sink_counts}"
            for verdict in report.directories
        )
        self.say(f"   dsync sql verify (counts and a checksum of every live row): {verdicts}")
        self.sql_equal = equal

    def verdict(self, directory_id: str, started: float) -> int:
        exported, truth, differences = self.compare(directory_id)
        changes = self.change_events()
        elapsed = time.monotonic() - started
        self.say("\n8. Verdict")
        self.say(
            f"   deliveries: {self.delivered} (of which {self.duplicates} duplicates), lost: {self.lost}; "
            f"change events published: {sum(changes.values())} "
            f"({', '.join(f'{name} {count}' for name, count in sorted(changes.items()))})"
        )
        matched = (
            sum(differences.values()) == 0
            and self.unconverged == 0
            and self.tail_repair_seconds is not None
            and self.wrong_key_refused
            and self.sql_equal
        )
        counts = (
            f"{len(truth['users'])} users "
            f"({sum(1 for u in truth['users'] if u['state'] != 'active')} inactive), "
            f"{len(truth['groups'])} groups, {len(truth['memberships'])} memberships"
        )
        if matched:
            self.say(
                f"   repaired by: the Events API tail, {self.tail_lost_repaired} lost webhooks in "
                f"{self.tail_repair_seconds:.1f}s (no reconcile possible); the reconcile it queued, "
                f"{self.reconcile_repairs} items lost past WorkOS's event retention"
            )
            self.say(f"verdict: MATCH - export and the SQL sink equal WorkOS: {counts} ({elapsed:.0f}s)")
            return 0
        self.say(
            f"verdict: MISMATCH - {differences} against WorkOS's {counts}; after fully delivered acts: "
            f"{self.unconverged}; a wrong key refused: {self.wrong_key_refused}; SQL sink equal: {self.sql_equal} "
            f"({elapsed:.0f}s)"
        )
        self.say(
            f"   ours: {len(exported['users'])} users, {len(exported['groups'])} groups, "
            f"{len(exported['memberships'])} memberships"
        )
        return 1

    def stack_url(self) -> str:
        assert self.stack is not None
        return self.stack.webhook_url


def run_demo(options: DemoOptions) -> int:
    return Demo(options).run()


__all__ = ["DemoOptions", "Target", "run_demo"]
