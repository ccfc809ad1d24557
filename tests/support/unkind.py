"""Delivery in the unkind world: SQS redelivers a batch that failed or whose Lambda died, and jobs run late.

`apply_until_done` plays SQS and the event source mapping for one batch: a batch with any message to retry, or
whose invocation was killed (`LambdaKilledError`), is delivered again whole (Lambda developer guide, "Using Lambda
with Amazon SQS": on a failure "the entire batch ... becomes visible again"; redelivering the ones that succeeded
is allowed too: SQS is at-least-once). `run_purges` plays the work queue's consumer for purge jobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.apply.applier import Applier
from shared.apply.ports import InboundMessage, MessageOutcome, Status, TransientStoreError
from shared.apply.purge import purge_directory
from tests.support.fake_store import FakeDirectoryStore, FakeWorkQueue, LambdaKilledError

MAX_DELIVERIES = 200


def apply_until_done(applier: Applier, messages: Sequence[InboundMessage]) -> dict[str, MessageOutcome]:
    for _ in range(MAX_DELIVERIES):
        try:
            outcomes = applier.apply(messages)
        except LambdaKilledError:
            continue
        if all(outcome.status in (Status.APPLIED, Status.NOOP) for outcome in outcomes.values()):
            return outcomes
        assert all(o.status in (Status.APPLIED, Status.NOOP, Status.RETRY) for o in outcomes.values()), outcomes
    raise AssertionError(f"a batch was not applied in {MAX_DELIVERIES} deliveries")


def run_purges(store: FakeDirectoryStore, work_queue: FakeWorkQueue) -> int:
    """Run every purge job queued so far (each to completion, retried on a throttle); returns how many ran."""
    ran = 0
    while work_queue.jobs:
        job = work_queue.jobs.pop(0)
        if job.get("kind") != "purge":
            continue
        for _ in range(MAX_DELIVERIES):
            try:
                purge_directory(store, str(job["directory_id"]), remaining_seconds=lambda: 900.0)
                break
            except TransientStoreError:
                continue
        ran += 1
    return ran
