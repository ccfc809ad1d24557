"""What one apply batch costs, measured on the real applier rather than assumed.

The real `shared.apply.applier.Applier` and DynamoDB adapter run against moto (in-process) on a fake WorkOS directory's
initial sync and a mass update, in FIFO batches of 10 of one event type. Per event type it measures:

- DynamoDB requests per batch, by operation (a botocore hook counts them);
- write capacity per event: every PutItem costs one WCU per started KB of its item, whether or not its condition
  holds (DynamoDB DG, "Read/write capacity mode"); item sizes follow DynamoDB's rules (attribute names plus values);
- the batch's depth: how many sequential round trips it takes, given the applier's parallel writes. A fixed delay
  is injected into every DynamoDB call, and the batch's wall time is divided by that delay.

The simulator turns depth into time with one figure per round trip (`ROUND_TRIP_SECONDS`): DynamoDB answers in
"single-digit milliseconds" inside a region (DynamoDB product page), so 8 ms is assumed, with Lambda's own
per-invocation overhead beside it (`simulator.pipeline`).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

ROUND_TRIP_SECONDS = 0.008
_INJECTED_DELAY = 0.02
_BATCHES_TIMED = 3
PHASES = ("dsync.user.created", "dsync.group.created", "dsync.group.user_added", "dsync.user.updated")


@dataclass(frozen=True)
class EventCost:
    event_type: str
    requests_per_batch: dict[str, float]  # DynamoDB operation -> calls per batch of 10
    wcu_per_event: float
    rcu_per_batch: float
    depth: float  # sequential round trips per batch

    @property
    def seconds_per_batch(self) -> float:
        return self.depth * ROUND_TRIP_SECONDS


@dataclass(frozen=True)
class Calibration:
    costs: dict[str, EventCost]

    def cost(self, event_type: str) -> EventCost:
        return self.costs.get(event_type, self.costs["dsync.user.updated"])


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: names plus values (strings in UTF-8, numbers about a byte per two
    digits plus one, 3 bytes of overhead per list or map)."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: dict[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return len(str(inner).lstrip("-").replace(".", "")) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + item_bytes(inner)
    if kind == "L":
        return 3 + sum(_value_bytes(element) + 1 for element in inner)
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(element).encode()) for element in inner)
    return len(json.dumps(inner))


def wcu(item: dict[str, Any]) -> int:
    return max(1, math.ceil(item_bytes(item) / 1024))


@contextmanager
def _moto_environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "calibration")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "calibration")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


class _Null:
    def submit(self, job: Any) -> None: ...

    def forward(self, **kwargs: Any) -> None: ...


def calibrate(users: int = 200, groups: int = 20) -> Calibration:
    """Run the real applier on moto over one directory's initial sync and mass update; return each type's cost."""
    with _moto_environment():
        import boto3
        from moto import mock_aws

        from dsync.fake_workos import DirectoryModel, populate
        from dsync.local.provision import provision
        from shared.adapters.dynamodb import DirectoryTable
        from shared.apply.applier import Applier
        from shared.apply.ports import InboundMessage

        with mock_aws():
            resources = provision(region="us-east-1")
            client = boto3.client("dynamodb", region_name="us-east-1")
            calls: dict[str, int] = {}
            written: list[int] = []
            read_keys: list[int] = []
            delay = [0.0]

            def count(event_name: str, params: dict[str, Any], **_: Any) -> None:
                operation = event_name.rsplit(".", 1)[-1]
                calls[operation] = calls.get(operation, 0) + 1
                if operation == "PutItem":
                    written.append(wcu(params["Item"]))
                elif operation == "BatchGetItem":
                    read_keys.extend(len(request["Keys"]) for request in params["RequestItems"].values())

            client.meta.events.register("before-parameter-build.dynamodb", count)
            client.meta.events.register("before-send.dynamodb", lambda **_: time.sleep(delay[0]))
            applier = Applier(
                store=DirectoryTable(resources.table_name, client=client), work_queue=_Null(), dead_letters=_Null()
            )
            model = DirectoryModel(seed=5)
            directory_id = model.create_directory(organization_id="org_01CALIBRATION")["id"]
            populate(model, directory_id, users=users, groups=groups, rng=random.Random(5))
            events = model.drain_events()
            for user_id in model.user_ids(directory_id):  # the mass update: one attribute toggled for everyone
                model.update_user(user_id, custom_attributes={"department": "Engineering"})
            events += model.drain_events()
            by_type: dict[str, list[dict[str, Any]]] = {}
            for event in events:
                by_type.setdefault(event["event"], []).append(event)
            applier.apply([_message(InboundMessage, e, 0) for e in by_type.pop("dsync.activated", [])])
            costs = {}
            for event_type in PHASES:
                phase = by_type.get(event_type, [])
                batches = [phase[i : i + 10] for i in range(0, len(phase), 10) if len(phase[i : i + 10]) == 10]
                calls.clear()
                written.clear()
                read_keys.clear()
                timed, untimed = batches[:_BATCHES_TIMED], batches[_BATCHES_TIMED:]
                delay[0] = _INJECTED_DELAY
                started = time.perf_counter()
                for batch in timed:
                    applier.apply([_message(InboundMessage, e, n) for n, e in enumerate(batch)])
                depth = (time.perf_counter() - started) / len(timed) / _INJECTED_DELAY
                delay[0] = 0.0
                for batch in untimed:
                    applier.apply([_message(InboundMessage, e, n) for n, e in enumerate(batch)])
                count_batches = len(batches)
                costs[event_type] = EventCost(
                    event_type=event_type,
                    requests_per_batch={name: value / count_batches for name, value in sorted(calls.items())},
                    wcu_per_event=sum(written) / (10 * count_batches),
                    rcu_per_batch=sum(read_keys) / count_batches,
                    depth=depth,
                )
            return Calibration(costs)


def _message(kind: Any, event: dict[str, Any], position: int) -> Any:
    return kind(f"m{position}", json.dumps(event), event.get("data", {}).get("directory_id", "d"), event["id"])
