"""What a million webhook events cost, from the calls the real handlers make per event (docs/scale.md).

The ingest, apply and publish handlers run in-process against moto, as the stack wires them: signed webhooks of a
fake WorkOS directory's onboarding plus a day of changes go through ingest, the FIFO queue is drained by apply in
batches of `--batch` (10 when busy, 1 for a trickle), and the table's stream is published in batches. Every AWS
call is counted (a botocore hook on the default session), every PutItem priced by its item size, every
strongly consistent read key by its 4 KB units, and every log line by its bytes. Lambda time is not measurable on
moto: it is modelled as each invocation's sequential round trips (counted here) at `ROUND_TRIP_MS` plus a fixed
`OVERHEAD_MS`, the same model the simulator uses; change them to your region's figures.

Prices: us-east-1 list prices as published (check them: AWS changes them). API Gateway REST $3.50 per million
requests; Lambda arm64 $0.0000133334 per GB-s and $0.20 per million requests; SQS FIFO $0.50 per million requests
(64 KB chunks); DynamoDB on-demand $0.625 per million write request units and $0.125 per million read request units
(stream reads by a Lambda trigger are free); EventBridge custom events $1.00 per million (64 KB chunks); CloudWatch
Logs ingestion $0.50 per GB.

    python bench/bench_cost.py [--batch 10] [--users 300]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
from collections import Counter
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Bench")

import boto3
from moto import mock_aws

from dsync.fake_workos import DirectoryModel, populate
from dsync.local.lambda_events import LocalContext, api_gateway_event, read_stream, sqs_event, stream_event
from dsync.local.provision import provision
from shared.ingest.signature import signature_header
from shared.resources import APPLY_FUNCTION, INGEST_FUNCTION, PUBLISH_FUNCTION
from simulator.calibration import wcu

SECRET = "whsec_bench_cost"
ROUND_TRIP_MS = 8.0
OVERHEAD_MS = {"ingest": 15.0, "apply": 10.0, "publish": 10.0}  # runtime and handler work besides AWS calls
PRICES = {
    "api_gateway_request": 3.50e-6,
    "lambda_gb_second": 0.0000133334,
    "lambda_request": 0.20e-6,
    "sqs_fifo_request": 0.50e-6,
    "dynamodb_wru": 0.625e-6,
    "dynamodb_rru": 0.125e-6,
    "eventbridge_event": 1.00e-6,
    "logs_gb": 0.50,
}
MEMORY_MB = {
    "ingest": INGEST_FUNCTION.memory_mb,
    "apply": APPLY_FUNCTION.memory_mb,
    "publish": PUBLISH_FUNCTION.memory_mb,
}
# Powertools binds its log handler to the stdout of the moment it is created: one sink for the whole process.
LOG_SINK = io.StringIO()


class Meter:
    """Calls by (function, service, operation), write and read units, and the calls' sequential depth."""

    def __init__(self) -> None:
        self.function = "setup"
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.wru: Counter[str] = Counter()
        self.rru: Counter[str] = Counter()
        self.published = 0  # PutEvents entries

    def hook(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        self.calls[(self.function, service, operation)] += 1
        if operation == "PutItem":
            self.wru[self.function] += wcu(params["Item"])
        elif operation == "BatchGetItem":
            keys = sum(len(request["Keys"]) for request in params["RequestItems"].values())
            self.rru[self.function] += keys  # strongly consistent, items under 4 KB: one unit each
        elif operation == "GetItem":
            self.rru[self.function] += 1
        elif operation == "PutEvents":
            self.published += len(params["Entries"])


def signed(body: bytes) -> dict[str, Any]:
    import time

    header = signature_header(SECRET, time.time_ns() // 1_000_000, body)
    return api_gateway_event(method="POST", path="/webhooks/workos", headers={"WorkOS-Signature": header}, body=body)


def workload(users: int, rng: random.Random) -> list[dict[str, Any]]:
    """An onboarding (users, groups, memberships) and then changes: updates, deactivations, leavers, moves."""
    model = DirectoryModel(seed=3)
    directory_id = model.create_directory(organization_id="org_01COST")["id"]
    populate(model, directory_id, users=users, groups=max(2, users // 25), rng=rng)
    user_ids = model.user_ids(directory_id)
    for user_id in rng.sample(user_ids, len(user_ids) // 5):
        model.update_user(user_id, custom_attributes={"department": rng.choice(["Sales", "R&D", "Ops"])})
    for user_id in rng.sample(user_ids, len(user_ids) // 20):
        model.deactivate_user(user_id)
    return model.drain_events()


def run(batch: int, users: int) -> dict[str, Any]:
    meter = Meter()
    logged_before = LOG_SINK.tell()
    with mock_aws(), contextlib.redirect_stdout(LOG_SINK):
        boto3.setup_default_session(region_name="us-east-1")
        boto3.DEFAULT_SESSION.events.register("before-parameter-build", meter.hook)  # type: ignore[union-attr]
        resources = provision(region="us-east-1", webhook_secrets=[SECRET])
        os.environ.update(resources.environment())
        from functions.apply import handler as apply
        from functions.ingest import handler as ingest
        from functions.publish import handler as publish

        for cached in (ingest.dependencies, apply.dependencies, apply.overflow_dependencies, apply.settings):
            cached.cache_clear()  # clients of an earlier run hold that run's meter
        publish.dependencies.cache_clear()
        publish.guard_reader.cache_clear()
        publish.settings.cache_clear()

        events = workload(users, random.Random(4))
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_arn = sqs.get_queue_attributes(QueueUrl=resources.event_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        invocations: Counter[str] = Counter()
        depth: Counter[str] = Counter()
        if events:
            meter.function = "ingest"
            for document in events:
                calls_before = sum(meter.calls.values())
                answer = ingest.handler(signed(json.dumps(document).encode()), _context("ingest"))
                assert answer["statusCode"] == 200, answer
                invocations["ingest"] += 1
                depth["ingest"] += sum(meter.calls.values()) - calls_before
            meter.function = "setup"  # the bench reads the queue; the mapping's own calls are counted per batch below
            messages = _drain(sqs, resources.event_queue_url)
            for start in range(0, len(messages), batch):
                chunk = messages[start : start + batch]
                meter.function = "apply"
                before = dict(meter.calls)
                failures = apply.handler(sqs_event(chunk, queue_arn=queue_arn, region="us-east-1"), _context("apply"))
                assert failures == {"batchItemFailures": []}, failures
                invocations["apply"] += 1
                depth["apply"] += _depth(before, meter.calls, "apply")
                meter.function = "sqs-mapping"
                for index in range(0, len(chunk), 10):
                    meter.calls[("sqs-mapping", "sqs", "ReceiveMessage")] += 1
                    meter.calls[("sqs-mapping", "sqs", "DeleteMessageBatch")] += 1
                    del index
            meter.function = "setup"  # stream reads by a Lambda trigger are free
            records = read_stream(resources.table_stream_arn)
            for start in range(0, len(records), 100 if batch > 1 else 1):
                meter.function = "publish"
                before = dict(meter.calls)
                chunk = records[start : start + (100 if batch > 1 else 1)]
                publish.handler(stream_event(chunk, stream_arn=resources.table_stream_arn), _context("publish"))
                invocations["publish"] += 1
                depth["publish"] += _depth(before, meter.calls, "publish")
    return {
        "events": len(events),
        "meter": meter,
        "invocations": invocations,
        "depth": depth,
        "log_bytes": LOG_SINK.tell() - logged_before,
        "stream_records": len(records),
    }


def _depth(before: dict[tuple[str, str, str], int], after: Counter[tuple[str, str, str]], function: str) -> int:
    """Sequential round trips of one invocation: the applier's writes run 10 at a time, everything else in turn."""
    calls = {key: after[key] - before.get(key, 0) for key in after if key[0] == function}
    puts = sum(count for (_, _, operation), count in calls.items() if operation == "PutItem")
    others = sum(count for (_, _, operation), count in calls.items() if operation != "PutItem")
    return others + math.ceil(puts / 10)


def _context(function: str) -> Any:
    spec = {"ingest": INGEST_FUNCTION, "apply": APPLY_FUNCTION, "publish": PUBLISH_FUNCTION}[function]
    return LocalContext(function_name=f"dsync-{function}", timeout_seconds=spec.timeout_seconds).as_lambda_context()


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not page:
            return found
        found.extend(page)
        for message in page:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def report(result: dict[str, Any], batch: int) -> float:
    meter: Meter = result["meter"]
    events = int(result["events"])
    per_million = 1_000_000 / events
    costs: dict[str, float] = {}
    costs["API Gateway requests"] = events * PRICES["api_gateway_request"]
    for function in ("ingest", "apply", "publish"):
        invocations = result["invocations"][function]
        milliseconds = invocations * OVERHEAD_MS[function] + result["depth"][function] * ROUND_TRIP_MS
        gb_seconds = milliseconds / 1000 * MEMORY_MB[function] / 1024
        label = (
            f"Lambda {function}: {invocations / events:.2f} invocations/event, {gb_seconds / events * 1e3:.2f} GB-ms"
        )
        costs[label] = invocations * PRICES["lambda_request"] + gb_seconds * PRICES["lambda_gb_second"]
    sqs_calls = sum(n for (function, service, _), n in meter.calls.items() if service == "sqs" and function != "setup")
    costs[f"SQS requests: {sqs_calls / events:.2f}/event"] = sqs_calls * PRICES["sqs_fifo_request"]
    wru, rru = sum(meter.wru.values()), sum(meter.rru.values())
    costs[f"DynamoDB writes: {wru / events:.2f} WRU/event"] = wru * PRICES["dynamodb_wru"]
    costs[f"DynamoDB reads: {rru / events:.2f} RRU/event"] = rru * PRICES["dynamodb_rru"]
    put_events = sum(count for (_, service, operation), count in meter.calls.items() if operation == "PutEvents")
    published = meter.published
    costs[f"EventBridge: {published / events:.2f} change events/event ({put_events} PutEvents)"] = (
        published * PRICES["eventbridge_event"]
    )
    costs[f"CloudWatch Logs: {result['log_bytes'] / events:.0f} bytes/event"] = (
        result["log_bytes"] / 1e9 * PRICES["logs_gb"]
    )
    total = float(sum(costs.values()) * per_million)
    print(f"== apply batches of {batch}: {events} events, {result['stream_records']} stream records")
    for name, cost in costs.items():
        print(f"   {name:92} ${cost * per_million:8.2f} per million events")
    print(f"   {'total':92} ${total:8.2f} per million events")
    by_call = Counter({f"{f} {svc}.{op}": n / events for (f, svc, op), n in meter.calls.items() if f != "setup"})
    print("   calls per event: " + ", ".join(f"{name} {count:.2f}" for name, count in sorted(by_call.items())))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=150)
    args = parser.parse_args()
    totals = {}
    for batch in (10, 1):
        totals[batch] = report(run(batch, args.users), batch)
    print(f"cost per million events: ${totals[10]:.2f} when busy (batches of 10), ${totals[1]:.2f} as a trickle (1)")


if __name__ == "__main__":
    main()
