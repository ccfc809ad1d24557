"""The change-bus publisher (PutEvents chunking, partial-failure retry, size limit) and the publish handler."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.stub import ANY, Stubber

from functions.publish import handler as publish
from shared.adapters.eventbridge import (
    MAX_REQUEST_BYTES,
    ChangeBusPublisher,
    PublishError,
    entry_size,
)
from shared.changes.derive import ChangeEvent, changes_from_stream_record
from shared.observability import MetricsRecorder
from shared.resources import CHANGE_EVENT_SOURCE
from tests.support import streams as s
from tests.support.lambda_context import lambda_context

pytestmark = pytest.mark.unit

BUS = "dsync-changes"


def user_events(count: int, **fields: Any) -> list[ChangeEvent]:
    events: list[ChangeEvent] = []
    for index in range(count):
        events.extend(changes_from_stream_record(s.insert(s.user_item(f"directory_user_{index}", **fields))))
    return events


def ok(count: int) -> dict[str, Any]:
    return {"FailedEntryCount": 0, "Entries": [{"EventId": f"eb-{i}"} for i in range(count)]}


class Stubbed:
    """A publisher on a stubbed EventBridge client that records its backoff sleeps."""

    def __init__(self, max_attempts: int = 4) -> None:
        self.client = boto3.client("events", region_name="us-east-1")
        self.stubber = Stubber(self.client)
        self.sleeps: list[float] = []
        self.publisher = ChangeBusPublisher(
            BUS, CHANGE_EVENT_SOURCE, self.client, max_attempts=max_attempts, sleep=self.sleeps.append
        )

    def expect(self, response: dict[str, Any], entries: Sequence[Any] | None = None) -> None:
        self.stubber.add_response("put_events", response, {"Entries": list(entries) if entries else ANY})

    def entries(self, events: Sequence[ChangeEvent]) -> list[Any]:
        return [self.publisher.entry(event) for event in events]


@pytest.fixture
def stubbed() -> Iterator[Stubbed]:
    harness = Stubbed()
    with harness.stubber:
        yield harness
        harness.stubber.assert_no_pending_responses()


# --- Publisher ------------------------------------------------------------------------------------------------------


def test_entry_shape() -> None:
    [event] = user_events(1)
    entry = Stubbed().publisher.entry(event)
    assert entry is not None
    assert entry["Source"] == CHANGE_EVENT_SOURCE
    assert entry["DetailType"] == "user.provisioned"
    assert entry["EventBusName"] == BUS
    assert entry["Resources"] == []
    assert entry["Time"] == datetime.fromisoformat(event.detail["occurred_at"])
    assert json.loads(entry["Detail"]) == event.detail


def test_events_go_out_in_order_in_requests_of_ten(stubbed: Stubbed) -> None:
    events = user_events(23)
    entries = stubbed.entries(events)
    stubbed.expect(ok(10), entries[:10])
    stubbed.expect(ok(10), entries[10:20])
    stubbed.expect(ok(3), entries[20:])
    stubbed.publisher.publish(events)
    assert stubbed.sleeps == []


def test_nothing_to_publish_makes_no_call(stubbed: Stubbed) -> None:
    stubbed.publisher.publish([])


def test_only_refused_entries_are_retried_after_a_jittered_backoff(stubbed: Stubbed) -> None:
    events = user_events(3)
    entries = stubbed.entries(events)
    stubbed.expect(
        {
            "FailedEntryCount": 2,
            "Entries": [
                {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"},
                {"EventId": "eb-1"},
                {"ErrorCode": "InternalFailure", "ErrorMessage": "oops"},
            ],
        },
        entries,
    )
    stubbed.expect(
        {"FailedEntryCount": 1, "Entries": [{"EventId": "eb-0"}, {"ErrorCode": "InternalFailure"}]},
        [entries[0], entries[2]],
    )
    stubbed.expect(ok(1), [entries[2]])
    stubbed.publisher.publish(events)
    assert len(stubbed.sleeps) == 2 and all(0 < delay <= 2.0 for delay in stubbed.sleeps)


def test_a_burst_of_role_changes_is_published_through_throttling(stubbed: Stubbed) -> None:
    """A role mapping edited in WorkOS's dashboard changes every member of a group at once: PutEvents throttles
    some entries of each request, and each is retried alone until the whole burst is on the bus."""
    events: list[ChangeEvent] = []
    for index in range(40):
        old = s.user_item(f"directory_user_{index}", roles=[{"slug": "member"}])
        new = s.user_item(f"directory_user_{index}", updated=10, roles=[{"slug": "admin"}])
        events.extend(changes_from_stream_record(s.modify(old, new)))
    assert {event.detail_type for event in events} == {"user.roles_changed"}
    entries = stubbed.entries(events)
    throttled: dict[str, Any] = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
    for start in range(0, 40, 10):
        chunk = entries[start : start + 10]
        stubbed.expect({"FailedEntryCount": 5, "Entries": [throttled, {"EventId": "x"}] * 5}, chunk)
        stubbed.expect(ok(5), chunk[0::2])
    stubbed.publisher.publish(events)  # no PublishError: nothing left unpublished
    assert len(stubbed.sleeps) == 4


def test_entries_still_refused_raise_naming_them_and_everything_not_sent(stubbed: Stubbed) -> None:
    events = user_events(12)
    entries = stubbed.entries(events)
    refusal: dict[str, Any] = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
    refused = {"FailedEntryCount": 1, "Entries": [refusal]}
    stubbed.expect({"FailedEntryCount": 1, "Entries": [*ok(4)["Entries"], refusal, *ok(5)["Entries"]]}, entries[:10])
    for _ in range(3):
        stubbed.expect(refused, [entries[4]])
    # Nothing after the refused entry's request is sent: the second request (events 10 and 11) never goes out.
    with pytest.raises(PublishError) as raised:
        stubbed.publisher.publish(events)
    assert raised.value.unpublished == (4, 10, 11)
    assert raised.value.error_codes == {4: "InternalFailure"}
    assert "InternalFailure" in str(raised.value)
    assert len(stubbed.sleeps) == 3


def test_permanent_entry_errors_are_not_retried(stubbed: Stubbed) -> None:
    events = user_events(2)
    stubbed.expect({"FailedEntryCount": 1, "Entries": [{"EventId": "eb-0"}, {"ErrorCode": "MalformedDetail"}]})
    with pytest.raises(PublishError) as raised:
        stubbed.publisher.publish(events)
    assert raised.value.unpublished == (1,)
    assert stubbed.sleeps == []


def test_a_failed_call_fails_its_request_and_everything_after_it(stubbed: Stubbed) -> None:
    events = user_events(11)
    stubbed.stubber.add_client_error("put_events", service_error_code="AccessDeniedException", http_status_code=400)
    with pytest.raises(PublishError) as raised:
        stubbed.publisher.publish(events)
    assert raised.value.unpublished == tuple(range(11))
    assert set(raised.value.error_codes.values()) == {"AccessDeniedException"}


def test_oversized_custom_attributes_are_dropped_and_marked_truncated(stubbed: Stubbed) -> None:
    [event] = user_events(1, custom_attributes={"blob": "x" * 300_000})
    entry = stubbed.publisher.entry(event)
    assert entry is not None
    detail = json.loads(entry["Detail"])
    assert detail["truncated"] is True
    assert "custom_attributes" not in detail["user"]
    assert detail["user"]["email"] == "ada@example.com"
    assert entry_size(entry) < MAX_REQUEST_BYTES
    stubbed.expect(ok(1), [entry])
    stubbed.publisher.publish([event])


def test_an_event_too_large_even_without_bulk_keeps_only_ids() -> None:
    [event] = user_events(1, first_name="y" * 300_000)
    entry = Stubbed().publisher.entry(event)
    assert entry is not None
    detail = json.loads(entry["Detail"])
    assert detail["truncated"] is True
    assert detail["user"] == {"id": "directory_user_0", "idp_id": "idp-directory_user_0"}
    assert detail["event_id"] == event.event_id and detail["version"] == event.detail["version"]


def test_requests_also_respect_the_256_kb_request_limit(stubbed: Stubbed) -> None:
    events = user_events(5, custom_attributes={"blob": "x" * 100_000})
    entries = stubbed.entries(events)
    assert all(e is not None and entry_size(e) > 100_000 for e in entries)
    stubbed.expect(ok(2), entries[:2])
    stubbed.expect(ok(2), entries[2:4])
    stubbed.expect(ok(1), entries[4:])
    stubbed.publisher.publish(events)


def test_the_client_is_created_lazily() -> None:
    publisher = ChangeBusPublisher(BUS, CHANGE_EVENT_SOURCE)
    assert publisher._client is None


# --- Handler --------------------------------------------------------------------------------------------------------


class FakePublisher:
    """Records what it was asked to publish; refuses events whose detail type is in `refuse`."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.calls: list[list[ChangeEvent]] = []
        self.refuse = refuse

    def publish(self, events: Sequence[ChangeEvent]) -> None:
        self.calls.append(list(events))
        failed = {index: "InternalFailure" for index, e in enumerate(events) if e.detail_type in self.refuse}
        if failed:
            raise PublishError("refused", unpublished=failed, error_codes=failed)

    @property
    def published(self) -> list[str]:
        return [event.detail_type for call in self.calls for event in call]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakePublisher:
    publisher = FakePublisher()
    monkeypatch.setattr(publish, "dependencies", lambda: publisher)
    monkeypatch.setattr(publish, "guard_reader", lambda: None)
    return publisher


def batch() -> list[dict[str, Any]]:
    user = s.user_item()
    return [
        s.insert(user, sequence_number="1"),
        s.modify(user, s.user_item(updated=1), sequence_number="2"),  # no readable change: no event
        s.insert(s.membership_item(), sequence_number="3"),
        s.insert(s.reconcile_item(), sequence_number="4"),
        s.modify(user, s.user_item(updated=5, state="inactive"), sequence_number="5"),
    ]


def test_a_batch_is_published_in_one_call_in_stream_order(fake: FakePublisher) -> None:
    response = publish.handler(s.stream_event(*batch()), lambda_context())
    assert response == {"batchItemFailures": []}
    assert len(fake.calls) == 1
    assert fake.published == ["user.provisioned", "membership.added", "user.suspended"]


def test_empty_and_eventless_batches_publish_nothing(fake: FakePublisher) -> None:
    assert publish.handler({"Records": []}, lambda_context()) == {"batchItemFailures": []}
    quiet = s.stream_event(s.insert(s.directory_stub()), s.remove(s.user_tombstone(), ttl_expiry=True))
    assert publish.handler(quiet, lambda_context()) == {"batchItemFailures": []}
    assert fake.calls == []


def test_records_whose_events_were_not_published_are_reported(fake: FakePublisher) -> None:
    fake.refuse = frozenset({"membership.added"})
    response = publish.handler(s.stream_event(*batch()), lambda_context())
    assert response == {"batchItemFailures": [{"itemIdentifier": "3"}]}


def test_an_unreadable_record_fails_with_every_later_record_unpublished(fake: FakePublisher) -> None:
    records = batch()
    records[2]["dynamodb"].pop("NewImage")  # as if the stream were KEYS_ONLY
    response = publish.handler(s.stream_event(*records), lambda_context())
    assert response == {"batchItemFailures": [{"itemIdentifier": n} for n in ("3", "4", "5")]}
    assert fake.published == ["user.provisioned"]


def test_a_batch_where_every_record_fails_raises_so_the_mapping_bisects(fake: FakePublisher) -> None:
    fake.refuse = frozenset({"user.provisioned"})
    with pytest.raises(BatchProcessingError):
        publish.handler(s.stream_event(s.insert(s.user_item(), sequence_number="9")), lambda_context())


def test_metrics_count_published_and_failed_events_by_detail_type() -> None:
    outcome = publish.publish_records(batch(), FakePublisher(refuse=frozenset({"user.suspended"})))
    metrics = MetricsRecorder(service="test")
    publish.record_metrics(metrics, outcome)
    assert metrics.total("ChangeEventsPublished") == 2
    assert metrics.total("ChangeEventsPublished", DetailType="user.provisioned") == 1
    assert metrics.total("ChangeEventsPublished", DetailType="membership.added") == 1
    assert metrics.total("ChangeEventsFailed") == 1
    assert metrics.total("ChangeEventsFailed", DetailType="user.suspended") == 1
    assert metrics.total("StreamRecordsFailed") == 1
    assert outcome.failed_records == {"5": "change events not published (InternalFailure)"}


def test_logs_and_metrics_carry_ids_never_personal_data(
    fake: FakePublisher, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    fake.refuse = frozenset({"user.provisioned", "user.suspended"})
    with caplog.at_level(logging.INFO, logger="dsync-publish"):
        publish.handler(s.stream_event(*batch()), lambda_context())
    logs = "\n".join(json.dumps(vars(record), default=str) for record in caplog.records)
    metrics = capsys.readouterr().out  # EMF documents
    assert "change event not published" in logs and "directory_user_1" in logs
    assert '"DetailType":"user.suspended"' in metrics
    for fragment in ("Ada", "Lovelace", "example.com", "Engineering"):
        assert fragment not in logs and fragment not in metrics


def test_dependencies_come_from_the_environment_without_aws_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGE_BUS_NAME", "bus-from-env")
    monkeypatch.delenv("CHANGE_EVENT_SOURCE", raising=False)
    publish.dependencies.cache_clear()
    publish.settings.cache_clear()
    try:
        publisher = publish.dependencies()
        assert isinstance(publisher, ChangeBusPublisher)
        assert (publisher.bus_name, publisher.source) == ("bus-from-env", CHANGE_EVENT_SOURCE)
        assert publisher._client is None
    finally:
        publish.dependencies.cache_clear()
        publish.settings.cache_clear()
