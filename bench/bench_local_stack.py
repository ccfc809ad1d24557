"""The local stack at a real directory's size: its write rate against the emulator's own, flatness, webhooks, pacing.

Everything runs as `make demo` runs it: moto's server in its own process, the local stack (gateway, pollers, the
same handlers) and the fake WorkOS in this one. Figures, measured side by side in one run:

1. raw: conditional PutItems per second from 10 threads straight into moto (the emulator's own speed);
2. initial sync: `dsync reconcile`'s code path of a USERS-user, GROUPS-group directory into the empty local stack,
   store writes per second, and its ratio to (1) (target >= 0.5); the export must equal WorkOS;
3. flat: the rate over the last 1,000 of the initial syncs' writes against the first 1,000 (target >= 0.8);
4. a second reconcile after 2% of the directory changed: requests / (4 rps) / seconds (target >= 0.8), 429s < 5%;
5. signed webhooks through the local gateway from 4 senders into the store, deliveries per second, ratio to (1)
   (target >= 0.5);
6. the breakdown: every emulator call the local stack made during (2), per part (reconcile's own writes and reads,
   stream reading, change publishing, the change tap, queue pollers, status calls, the tail), per store write, with
   the emulator time each part took, so a regression shows which part grew.

    python bench/bench_local_stack.py [--users 3000] [--groups 12] [--flat-users 4000] [--webhooks 1500]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

SECRET = "whsec_bench_local_stack"
RATE = 4.0


class EmulatorCalls:
    """Every boto3 call made in this process, by part of the local stack (the calling thread) and operation, with the
    time each took: botocore's own before/after-call events on the default session, which every client here uses."""

    PARTS = {
        "stream": "stream reading + change publishing",
        "changes": "change tap",
        "apply": "queue pollers",
        "work": "queue pollers",
        "tail": "tail",
        "schedule": "queue pollers",
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[int, float] = {}
        self.calls: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])

    def install(self) -> None:
        import boto3

        boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None
        session.events.register("before-call", self._before)
        session.events.register("after-call", self._after)

    def _before(self, **kwargs: Any) -> None:
        self._started[threading.get_ident()] = time.perf_counter()

    def _after(self, model: Any, **kwargs: Any) -> None:
        elapsed = time.perf_counter() - self._started.pop(threading.get_ident(), time.perf_counter())
        part = self._part(threading.current_thread().name, model.service_model.service_name, model.name)
        with self._lock:
            entry = self.calls[(part, f"{model.service_model.service_name}.{model.name}")]
            entry[0] += 1
            entry[1] += elapsed

    def _part(self, thread: str, service: str, operation: str) -> str:
        if operation == "GetQueueAttributes":
            return "status calls"
        if thread.startswith("stream"):
            return "change publishing" if service == "events" else "stream reading"
        for prefix, part in self.PARTS.items():
            if thread.startswith(prefix):
                return part
        return "the work itself (reconcile or ingest and apply)"

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def snapshot(self) -> dict[tuple[str, str], tuple[int, float]]:
        with self._lock:
            return {key: (int(count), seconds) for key, (count, seconds) in self.calls.items()}


class WriteClock:
    """Times of the store's successful writes (the one conditional write every source goes through)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    @contextmanager
    def watching(self) -> Iterator[None]:
        from shared.adapters.dynamodb import DirectoryTable

        original = DirectoryTable.put_if_newer

        def timed(table: DirectoryTable, record: Any) -> bool:
            written = original(table, record)
            if written:
                with self._lock:
                    self.times.append(time.perf_counter())
            return written

        DirectoryTable.put_if_newer = timed  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            DirectoryTable.put_if_newer = original  # type: ignore[method-assign]


def raw_put_rate(endpoint: str, *, threads: int = 10, puts: int = 3000, like_the_store: bool = False) -> float:
    """Conditional PutItems (the store's own condition) from `threads` threads into a scratch table: a bare one, or
    (`like_the_store`) one with the directory table's definition (its four indexes and its stream), each item
    carrying two index keys as a user item does, and nothing reading the stream."""
    import boto3

    from shared.model import schema

    client = boto3.client("dynamodb", endpoint_url=endpoint)
    name = f"bench-raw-{'store' if like_the_store else 'bare'}-{puts}"
    if like_the_store:
        client.create_table(**schema.create_table_request(name))
    else:
        client.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
    payload = "x" * 600  # about a user item's size

    def put(index: int) -> None:
        item = {"pk": {"S": "DIR#raw"}, "sk": {"S": f"USER#{index:08d}"}, "vkey": {"N": "2"}, "d": {"S": payload}}
        if like_the_store:
            item["email_key"] = {"S": f"raw#user{index}@example.com"}
            item["lookup_key"] = {"S": f"IDP#raw#00u{index}"}
        client.put_item(
            TableName=name,
            Item=item,
            ConditionExpression="attribute_not_exists(vkey) OR vkey < :v",
            ExpressionAttributeValues={":v": {"N": "2"}},
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(put, range(puts)))
    return puts / (time.perf_counter() - started)


def window_rate(times: list[float], start: int, end: int) -> float:
    window = times[start:end]
    return (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 and window[-1] > window[0] else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from dsync.fake_workos import DirectoryModel, FakeWorkOS
        from dsync.local.stack import LocalStack, LocalStackOptions

        self.args = args
        self.model = DirectoryModel(seed=11)
        self.fake = FakeWorkOS(self.model, rate_limit_per_second=RATE)
        self.calls = EmulatorCalls()
        self.calls.install()
        self.fake.start()
        self.stack = LocalStack(
            LocalStackOptions.beside_fake_workos(
                self.fake,
                secret=SECRET,
                # Off unless asked: with it, the tail also queues every event of the bench's directories, and the
                # figures would measure reconcile and apply racing over the same items.
                tail_every_seconds=2.0 if args.tail else 0.0,
            )
        )
        self.stack.start()
        from dsync.local import logs

        logs.silence()

    def close(self) -> None:
        self.stack.stop()
        self.fake.stop()

    def target(self) -> Any:
        from dsync.targets import resolve_target

        return resolve_target(aws_endpoint=self.stack.aws_endpoint, stack=None, region="us-east-1")

    def reconcile(self, directory_id: str) -> tuple[dict[str, Any], float]:
        from dsync.commands.reconcile import run_reconcile

        started = time.perf_counter()
        report = run_reconcile(
            self.target(),
            directory_id=directory_id,
            api_key=self.fake.api_key,
            base_url=self.fake.base_url,
            requests_per_second=RATE,
        )
        return report, time.perf_counter() - started

    def matches(self, directory_id: str) -> bool:
        from dsync.commands.mirror import export
        from tests.support.histories import project

        truth = self.model.snapshot(directory_id)
        return bool(project(export(self.target(), directory_id), truth) == truth)

    def wait_idle(self, timeout: float = 600) -> float:
        """Until the queues are empty and the change tap has stopped growing (the stream is read)."""
        assert self.stack.changes is not None
        started = time.perf_counter()
        quiet_since, last = None, -1
        while time.perf_counter() - started < timeout:
            busy = self.stack.queued_messages()
            published = sum(self.stack.changes.snapshot().values())
            if busy == 0 and published == last:
                quiet_since = quiet_since or time.perf_counter()
                if time.perf_counter() - quiet_since > 2.0:
                    return time.perf_counter() - started
            else:
                quiet_since = None
            last = published
            time.sleep(0.25)
        raise TimeoutError("the local stack did not go idle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--flat-users", type=int, default=4000, help="a second initial sync: ~10,000 writes")
    parser.add_argument("--webhooks", type=int, default=1500)
    parser.add_argument("--tail", action="store_true", help="run the Events API tail too (off: see Bench)")
    args = parser.parse_args()
    from dsync.fake_workos import populate

    bench = Bench(args)
    try:
        raw_put_rate(bench.stack.aws_endpoint, puts=500)  # warm up the emulator and the client
        bare = raw_put_rate(bench.stack.aws_endpoint)
        raw = raw_put_rate(bench.stack.aws_endpoint, like_the_store=True)
        print(
            f"1. raw conditional puts, 10 threads: {bare:.0f}/s into a bare table, {raw:.0f}/s into one defined "
            f"like the store (its indexes and stream; the ratios below use this one, the store's own cost in moto)"
        )

        directory_id = bench.model.create_directory(organization_id="org_01BENCH", name="Bench Okta")["id"]
        populate(bench.model, directory_id, users=args.users, groups=args.groups, rng=random.Random(3))
        bench.model.drain_events()  # nothing delivered: reconcile alone fills the store
        writes = WriteClock()
        bench.calls.reset()
        with writes.watching():
            report, elapsed = bench.reconcile(directory_id)
            settled = bench.wait_idle()
        calls = bench.calls.snapshot()
        rate = len(writes.times) / elapsed
        print(
            f"2. initial sync of {args.users} users, {args.groups} groups: {len(writes.times)} store writes in "
            f"{elapsed:.1f}s = {rate:.0f}/s; ratio to raw {rate / raw:.2f} (target >= 0.5); "
            f"pipeline idle {settled:.1f}s later; export equals WorkOS: {bench.matches(directory_id)}"
        )
        breakdown(calls, len(writes.times))

        flat_id = bench.model.create_directory(organization_id="org_01FLAT", name="Flat Okta")["id"]
        populate(bench.model, flat_id, users=args.flat_users, groups=args.groups, rng=random.Random(4))
        bench.model.drain_events()
        flat = WriteClock()
        with flat.watching():
            _, flat_elapsed = bench.reconcile(flat_id)
        count = len(flat.times)
        first, last = window_rate(flat.times, 0, 1000), window_rate(flat.times, count - 1000, count)
        print(
            f"3. flat: {count} writes in {flat_elapsed:.1f}s; first 1,000 at {first:.0f}/s, last 1,000 at "
            f"{last:.0f}/s: ratio {last / first if first else 0:.2f} (target >= 0.8)"
        )
        bench.wait_idle()

        users = bench.model.user_ids(directory_id)
        for user_id in random.Random(5).sample(users, max(1, len(users) // 50)):
            bench.model.update_user(user_id, last_name="Changed")
        bench.model.drain_events()
        bench.fake.reset_stats()
        report, elapsed = bench.reconcile(directory_id)
        requests, limited = int(report["requests"]), int(report["rate_limited"])
        print(
            f"4. second reconcile after 2% changed: {requests} requests in {elapsed:.1f}s, pacing "
            f"{requests / RATE / elapsed:.2f} of {RATE:g} rps (target >= 0.8), 429s {limited / max(1, requests):.1%}"
            f" (target < 5%); export equals WorkOS: {bench.matches(directory_id)}"
        )

        webhooks(bench, raw, args.webhooks)
    finally:
        bench.close()


def webhooks(bench: Bench, raw: float, count: int) -> None:
    from dsync.fake_workos import populate

    directory_id = bench.model.create_directory(organization_id="org_01HOOKS", name="Hooks Okta")["id"]
    populate(bench.model, directory_id, users=max(1, count // 3), groups=6, rng=random.Random(6))
    events = bench.model.drain_events()
    writes = WriteClock()
    url = bench.stack.webhook_url
    bench.calls.reset()
    started = time.perf_counter()
    # WorkOS is not in the local stack's process: the 4 senders run in one of their own, as a real sender would.
    with writes.watching(), ProcessPoolExecutor(max_workers=1) as senders:
        statuses = senders.submit(send_all, url, events, 4).result()
        sent = time.perf_counter() - started
        bench.wait_idle()
    applied = (writes.times[-1] - started) if writes.times else float("inf")
    rate = len(events) / applied
    print(
        f"5. {len(events)} signed webhooks, 4 senders: sent in {sent:.1f}s, all in the store after {applied:.1f}s = "
        f"{rate:.0f}/s; ratio to raw {rate / raw:.2f} (target >= 0.5); "
        f"all 2xx: {all(200 <= s < 300 for s in statuses)}; export equals WorkOS: {bench.matches(directory_id)}"
    )
    breakdown(bench.calls.snapshot(), len(writes.times), label="the webhooks")


def send_all(url: str, events: list[dict[str, Any]], senders: int) -> list[int]:
    from dsync.commands.webhooks import post_signed

    with ThreadPoolExecutor(max_workers=senders) as pool:
        return list(pool.map(lambda event: post_signed(url, event, secret=SECRET).status, events))


def breakdown(calls: dict[tuple[str, str], tuple[int, float]], writes: int, *, label: str = "the initial sync") -> None:
    print(f"6. emulator calls during {label}, per store write ({writes} writes):")
    parts: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (part, _), (count, seconds) in calls.items():
        parts[part][0] += count
        parts[part][1] += seconds
    for part, (total, emulator_seconds) in sorted(parts.items(), key=lambda item: -item[1][1]):
        print(f"   {part:<50} {total / writes:6.2f} calls/write  {emulator_seconds * 1000 / writes:7.2f} ms/write")
        top = sorted(((op, c, s) for (p, op), (c, s) in calls.items() if p == part), key=lambda row: -row[2])[:3]
        for operation, count_, seconds_ in top:
            print(f"      {operation:<47} {count_ / writes:6.2f} calls/write  {seconds_ * 1000 / writes:7.2f} ms/write")


if __name__ == "__main__":
    main()
