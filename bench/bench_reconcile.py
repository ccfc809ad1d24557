"""Reconcile benchmarks: pacing under WorkOS's rate limit, and memory against directory size.

1. Pacing: a 5,000-user, 50-group directory on the fake WorkOS with its 4 requests/s per directory limiter on. The
   store is in sync (bulk-loaded), so the run is the common case of a reconcile that finds little to do; printed
   figure = (requests / 4 rps) / actual seconds, target >= 0.8, with 429s under 5% of requests.
2. Memory: a synced store with 5,000 and then 50,000 users (limiter off), each reconciled in a fresh process with the
   fake WorkOS and moto's server in their own processes, so only reconcile's own memory is counted: peak RSS growth
   over the process's baseline. Target: about linear in users (ratio ~10 for 10x users), no whole-directory copies.
"""

from __future__ import annotations

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


def pacing() -> None:
    """The fake WorkOS and DynamoDB (moto) run in their own processes, as the real ones are remote."""
    from shared.adapters.dynamodb import DirectoryTable
    from shared.adapters.workos_api import WorkOSDirectoryApi
    from shared.reconcile import DirectoryReconciler, RunStatus

    with Environment(users=5_000, groups=50, memberships=(1, 3), rate_limit=RATE) as env:
        import boto3

        table = DirectoryTable("dsync-directory", client=boto3.client("dynamodb", endpoint_url=env.endpoint))

        class Jobs:
            def submit(self, job: Any) -> None: ...

        api = WorkOSDirectoryApi(api_key="sk_test_fake", base_url=env.base_url, requests_per_second_per_directory=RATE)
        started = time.perf_counter()
        report = DirectoryReconciler(api=api, table=table, work_queue=Jobs()).run(env.directory)
        elapsed = time.perf_counter() - started
        assert report.status is RunStatus.COMPLETE, report.as_dict()
        requests, limited = api.stats.requests, api.stats.rate_limited
        print(
            f"paced reconcile of {env.items} items (5,000 users, 50 groups, synced store): {requests} requests "
            f"in {elapsed:.1f}s, {limited} answered 429 ({limited / requests:.1%}), drift {report.drift.total()}"
        )
        print(
            f"pacing ratio (requests / {RATE:g} rps) / actual time: {requests / RATE / elapsed:.2f} "
            "(target >= 0.8, 429s < 5%)"
        )


# --- memory ----------------------------------------------------------------------------------------------------

MEMORY_CHILD = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from shared.adapters.dynamodb import DirectoryTable
from shared.adapters.workos_api import WorkOSDirectoryApi
from shared.reconcile import DirectoryReconciler, RunStatus
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
from shared import records
from shared.adapters.dynamodb import to_wire
from shared.events import DirectoryGroup, DirectoryUser, Directory
from shared.records import membership_record

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
    sys.stdin.read()
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
    pacing()
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
