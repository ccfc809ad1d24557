"""Reconcile benchmarks: pacing under WorkOS's rate limit, and memory against directory size.

1. Pacing, against both shapes the fake WorkOS's 4 requests/s per directory limiter can take, in one run (WorkOS
   documents the rate, not the algorithm: a token bucket forgives a request that lands a few ms early, a strict
   sliding window - at most 4 in any one-second window - answers it 429):
   a. a synced 5,000-user, 50-group directory (store bulk-loaded in sync, then one unpaced reconcile with the
      limiter off): the common reconcile that finds nothing to do;
   b. a second reconcile after 2% of a 3,000-user, 12-group directory changed (the first one syncs the store with
      the limiter off; then 60 users' last names change in WorkOS): the case issue #17 reproduced against a sliding
      window at 0.42-0.45 of 4 rps with 16.7% of its requests answered 429.
   Each on the real code path (DirectoryReconciler, the fake WorkOS and moto's server in their own processes).
   Printed per case and shape: requests (every attempt, 429s included), the share answered 429 (target < 5%) and
   the pacing ratio = requests / 4 rps / elapsed seconds (target >= 0.8).
2. Memory: a synced store with 5,000 and then 50,000 users (limiter off), each reconciled in a fresh process with the
   fake WorkOS and moto's server in their own processes, so only reconcile's own memory is counted: peak RSS growth
   over the process's baseline. Target: about linear in users (ratio ~10 for 10x users), no whole-directory copies.

    python bench/bench_reconcile.py [--pacing-only] [--shape token_bucket|sliding_window]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

RATE = 4.0
SHAPES = ("token_bucket", "sliding_window")
CHANGED = 0.02


def reconcile(env: Environment, *, rate: float) -> dict[str, Any]:
    """One DirectoryReconciler run of the environment's directory, at `rate` requests/s per directory."""
    import boto3

    from shared.adapters.dynamodb import DirectoryTable
    from shared.adapters.workos_api import WorkOSDirectoryApi
    from shared.reconcile.run import DirectoryReconciler, RunStatus

    table = DirectoryTable("dsync-directory", client=boto3.client("dynamodb", endpoint_url=env.endpoint))

    class Jobs:
        def submit(self, job: Any) -> None: ...

    with WorkOSDirectoryApi(
        api_key="sk_test_fake", base_url=env.base_url, requests_per_second_per_directory=rate
    ) as api:
        started = time.perf_counter()
        report = DirectoryReconciler(api=api, table=table, work_queue=Jobs()).run(env.directory)
        elapsed = time.perf_counter() - started
    assert report.status is RunStatus.COMPLETE, report.as_dict()
    return {
        "requests": api.stats.requests,
        "rate_limited": api.stats.rate_limited,
        "seconds": elapsed,
        "drift": report.drift.total(),
        "server": env.command("stats"),  # the fake's own count, a cross-check of the client's
    }


def paced(env: Environment, shape: str, case: str) -> dict[str, Any]:
    env.command("rate_limit", per_second=RATE, shape=shape)
    result = reconcile(env, rate=RATE)
    env.command("rate_limit", per_second=None)
    requests, limited, seconds = result["requests"], result["rate_limited"], result["seconds"]
    ratio = requests / RATE / seconds
    share = limited / max(1, requests)
    verdict = "ok" if ratio >= 0.8 and share < 0.05 else "MISSES TARGET"
    print(
        f"pacing, {case}, {shape:<14}: {requests:4d} requests in {seconds:5.1f}s, {limited:3d} answered 429 "
        f"({share:5.1%}, target < 5%; fake counted {result['server']['rate_limited']}), pacing ratio "
        f"{ratio:.2f} of {RATE:g} rps (target >= 0.8), drift {result['drift']}: {verdict}",
        flush=True,
    )
    return result | {"shape": shape, "case": case, "ratio": ratio, "share_429": share}


def pacing(shapes: tuple[str, ...] = SHAPES) -> list[dict[str, Any]]:
    """Both cases against each limiter shape; the fake WorkOS and DynamoDB (moto) run in their own processes."""
    results = []
    with Environment(users=5_000, groups=50, memberships=(1, 3), rate_limit=None) as env:
        # Unpaced, limiter off: repairs the bulk load's one drift (the directory record) and warms moto, so both
        # shapes measure the same steady state (the first run was seconds slower, whichever shape it had).
        reconcile(env, rate=10_000)
        results += [paced(env, shape, "synced 5,000 users      ") for shape in shapes]
    with Environment(users=3_000, groups=12, memberships=(1, 3), rate_limit=None) as env:
        reconcile(env, rate=10_000)  # the first reconcile: limiter off, unpaced
        for seed, shape in enumerate(shapes):
            changed = env.command("change", fraction=CHANGED, seed=seed)["changed"]
            results.append(paced(env, shape, f"2% of 3,000 ({changed} users)"))
    return results


# --- memory ----------------------------------------------------------------------------------------------------

MEMORY_CHILD = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.workos_api import WorkOSDirectoryApi
from shared.reconcile.run import DirectoryReconciler, RunStatus
import boto3

def status_kb(field):
    # VmHWM is this process's own peak (ru_maxrss would include the parent's, inherited through fork).
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)

class Jobs:
    def submit(self, job): pass

table = DirectoryTable("dsync-directory", client=boto3.client("dynamodb", endpoint_url={endpoint!r}))
api = WorkOSDirectoryApi(api_key="sk_test_fake", base_url={base_url!r}, requests_per_second_per_directory=10000,
                         requests_per_second_total=10000)
api.get_directory({directory!r})  # imports and connections are part of the baseline, not of the run
baseline = status_kb("VmRSS")
started = time.perf_counter()
report = DirectoryReconciler(api=api, table=table, work_queue=Jobs()).run({directory!r})
assert report.status is RunStatus.COMPLETE, report.as_dict()
peak = status_kb("VmHWM")
print(json.dumps({{"baseline_kb": baseline, "peak_kb": peak, "seconds": time.perf_counter() - started,
                  "drift": report.drift.total(), "requests": api.stats.requests}}))
"""

FAKE_SERVER = """
import json, random, sys, time
sys.path.insert(0, {root!r})
import boto3
from dsync.fake_workos import DirectoryModel, FakeWorkOS, populate
from shared.model import records
from shared.adapters.dynamodb import to_wire
from shared.model.events import DirectoryGroup, DirectoryUser, Directory
from shared.model.records import membership_record

model = DirectoryModel(seed=1)
directory_id = model.create_directory(organization_id="org_01MEMORY")["id"]
populate(model, directory_id, users={users}, groups={groups}, memberships_per_user={memberships},
         rng=random.Random(1))
model.drain_events()
client = boto3.client("dynamodb", endpoint_url={endpoint!r})
items = [records.directory_record(Directory.model_validate(model.get_directory(directory_id) | {{"state": "active"}}),
                                  vkey=1).item()]
items += [records.user_record(DirectoryUser.model_validate(u)).item() for u in model.users(directory_id)]
items += [records.group_record(DirectoryGroup.model_validate(g)).item() for g in model.groups(directory_id)]
for group_id in model.group_ids(directory_id):
    items += [membership_record(directory_id, group_id, u, vkey=2, present=True, expires_at=0).item()
              for u in sorted(model.members(group_id))]
for start in range(0, len(items), 25):  # bulk load: the store is already in sync
    client.batch_write_item(RequestItems={{"dsync-directory": [{{"PutRequest": {{"Item": to_wire(i)}}}}
                                                              for i in items[start:start + 25]]}})
with FakeWorkOS(model, rate_limit_per_second={rate_limit}) as fake:
    print(json.dumps({{"base_url": fake.base_url, "directory": directory_id, "items": len(items)}}), flush=True)
    for line in sys.stdin:  # one JSON command a line, one JSON answer a line; EOF ends
        command = json.loads(line)
        answer = {{}}
        if command["op"] == "rate_limit":
            fake.set_rate_limit(command["per_second"], shape=command.get("shape"))
            fake.reset_stats()
        elif command["op"] == "change":  # a share of the users change their last name in the IdP
            users = model.user_ids(directory_id)
            picked = random.Random(command["seed"]).sample(users, max(1, round(len(users) * command["fraction"])))
            for user_id in picked:
                model.update_user(user_id, last_name=f"Changed{{command['seed']}}")
            model.drain_events()
            answer = {{"changed": len(picked)}}
        elif command["op"] == "stats":
            answer = {{"requests": fake.requests_total, "rate_limited": fake.rate_limited_total}}
        print(json.dumps(answer), flush=True)
"""


class Environment:
    """moto's server and a fake WorkOS serving a populated directory (store bulk-loaded in sync), each in a process."""

    def __init__(self, *, users: int, groups: int, memberships: tuple[int, int], rate_limit: float | None) -> None:
        self.users, self.groups, self.memberships, self.rate_limit = users, groups, memberships, rate_limit

    def __enter__(self) -> Environment:
        from dsync.local.moto_process import MotoServerProcess
        from dsync.local.provision import provision

        self._moto = MotoServerProcess(port=0)
        self._moto.start()
        self.endpoint = self._moto.endpoint
        provision(endpoint_url=self.endpoint)
        script = FAKE_SERVER.format(
            root=str(ROOT),
            users=self.users,
            groups=self.groups,
            memberships=self.memberships,
            endpoint=self.endpoint,
            rate_limit=self.rate_limit,
        )
        self._fake = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._fake.stdout is not None
        ready = json.loads(self._fake.stdout.readline())
        self.base_url, self.directory, self.items = ready["base_url"], ready["directory"], ready["items"]
        return self

    def command(self, op: str, **arguments: Any) -> dict[str, Any]:
        """Send the fake WorkOS process one command (rate_limit, change, stats) and return its answer."""
        assert self._fake.stdin is not None and self._fake.stdout is not None
        self._fake.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self._fake.stdin.flush()
        answer: dict[str, Any] = json.loads(self._fake.stdout.readline())
        return answer

    def __exit__(self, *exc: object) -> None:
        self._fake.communicate("", timeout=60)
        self._moto.stop()


def memory(users: int) -> dict[str, Any]:
    with Environment(users=users, groups=20, memberships=(1, 2), rate_limit=None) as env:
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                MEMORY_CHILD.format(
                    root=str(ROOT), endpoint=env.endpoint, base_url=env.base_url, directory=env.directory
                ),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
        result["users"], result["items"] = users, env.items
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pacing-only", action="store_true", help="skip the memory benchmark (minutes)")
    parser.add_argument("--shape", choices=SHAPES, action="append", help="limiter shape(s) to pace against (both)")
    args = parser.parse_args()
    pacing(tuple(args.shape) if args.shape else SHAPES)
    if args.pacing_only:
        return
    results = [memory(users) for users in (5_000, 50_000)]
    for result in results:
        growth = (result["peak_kb"] - result["baseline_kb"]) / 1024
        print(
            f"memory, {result['users']:>6} users ({result['items']} items, synced store): "
            f"peak growth {growth:6.1f} MiB "
            f"over a {result['baseline_kb'] / 1024:.0f} MiB baseline, {result['requests']} requests, "
            f"{result['seconds']:.1f}s, drift {result['drift']}"
        )
    small, large = ((r["peak_kb"] - r["baseline_kb"]) for r in results)
    print(f"memory growth ratio 50k / 5k users: {large / max(1, small):.1f} (linear would be 10)")
    print(f"bytes per user at 50k: {large * 1024 / results[1]['users']:.0f}")


if __name__ == "__main__":
    main()
