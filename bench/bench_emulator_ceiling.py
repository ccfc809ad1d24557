"""The ceiling moto puts on one directory's webhook rate (issue #11's "≥ 0.5 of raw puts" target).

A webhook costs the emulator at least a FIFO `SendMessage` (ingest) and a conditional `PutItem` (apply); the
reference rate is one `PutItem`. This measures both on the local stack's moto server (10 threads, as the raw puts
of `bench_local_stack.py`) and prints the best ratio a webhook could reach with no other emulator call at all.

    python bench/bench_emulator_ceiling.py [--calls 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

import boto3

from dsync.local.moto_process import MotoServerProcess
from dsync.local.provision import provision
from dsync.targets import CLIENT_CONFIG


def rate(calls: int, call: Callable[[int], object]) -> float:
    with ThreadPoolExecutor(10) as pool:
        started = time.perf_counter()
        list(pool.map(call, range(calls)))
        return calls / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1500)
    args = parser.parse_args()
    server = MotoServerProcess("127.0.0.1", 0)
    server.start()
    try:
        resources = provision(endpoint_url=server.endpoint, region="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=server.endpoint, config=CLIENT_CONFIG)
        sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=server.endpoint, config=CLIENT_CONFIG)
        body = json.dumps({"data": "x" * 1200})  # about a WorkOS user event

        def put(n: int) -> object:
            return dynamodb.put_item(
                TableName=resources.table_name,
                Item={
                    "pk": {"S": f"DIR#d{n % 50}"},
                    "sk": {"S": f"USER#{n}"},
                    "vkey": {"N": "1"},
                    "deleted": {"BOOL": False},
                    "blob": {"S": body},
                },
                ConditionExpression="attribute_not_exists(pk) OR vkey < :v",
                ExpressionAttributeValues={":v": {"N": "1"}},
            )

        def send(n: int) -> object:
            return sqs.send_message(
                QueueUrl=resources.event_queue_url,
                MessageBody=body,
                MessageGroupId=f"d{n % 50}:{n % 16}",
                MessageDeduplicationId=uuid.uuid4().hex,
            )

        puts, sends = rate(args.calls, put), rate(args.calls, send)
        ceiling = 1 / (1 / puts + 1 / sends) / puts
        print(f"conditional PutItem: {puts:.0f}/s; FIFO SendMessage: {sends:.0f}/s")
        print(f"a webhook's best ratio to raw puts with no other emulator call: {ceiling:.2f} (issue #11's target 0.5)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
