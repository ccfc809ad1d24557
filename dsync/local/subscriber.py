"""An app's subscription to the change bus, as an app would make it: its own EventBridge rule for the detail-types
it acts on, delivering into its own queue. The demo and the end-to-end tests listen through it; it deduplicates on
`event_id` because delivery is at least once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shared.resources import LOCAL_NAMES


class BusSubscriber:
    def __init__(self, *, sqs: Any, events: Any, name: str, detail_types: Sequence[str]) -> None:
        self._sqs = sqs
        self._url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name=name,
            EventBusName=LOCAL_NAMES.change_bus,
            EventPattern=json.dumps({"detail-type": list(detail_types)}),
            State="ENABLED",
        )
        events.put_targets(Rule=name, EventBusName=LOCAL_NAMES.change_bus, Targets=[{"Id": name, "Arn": arn}])
        self._seen: set[str] = set()
        self.heard: list[tuple[str, dict[str, Any]]] = []  # (detail-type, detail), first delivery of each event

    def poll(self) -> list[tuple[str, dict[str, Any]]]:
        """Read everything that has arrived; returns what was new."""
        new: list[tuple[str, dict[str, Any]]] = []
        while messages := self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                envelope = json.loads(message["Body"])
                detail = envelope["detail"]
                if detail["event_id"] not in self._seen:
                    self._seen.add(detail["event_id"])
                    new.append((str(envelope["detail-type"]), detail))
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
        self.heard.extend(new)
        return new
