"""What the deploy created, as the checker needs it: physical names and ARNs, the KMS key of each encrypted resource
and each resource's own policy. Read back from moto once per deploy (`tests.deploy.world`), so checking a request
never makes a request of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Document = Mapping[str, Any]  # an IAM policy document, parsed


@dataclass(frozen=True)
class Queue:
    url: str
    arn: str
    key_arn: str | None  # SSE-KMS: the customer managed key; None for SQS-managed SSE or none
    policy: Document | None


@dataclass(frozen=True)
class Table:
    name: str
    arn: str
    partition_key: str
    key_arn: str | None
    stream_arn: str | None


@dataclass(frozen=True)
class Secret:
    arn: str
    name: str
    key_arn: str | None
    policy: Document | None


@dataclass(frozen=True)
class Bus:
    name: str
    arn: str
    key_arn: str | None
    policy: Document | None


@dataclass(frozen=True)
class Function:
    """A deployed function: its name, its role, the handler CloudFormation gave it and its environment."""

    name: str  # the short name: `functions.<name>.handler.handler`
    function_name: str
    role_arn: str
    handler: str
    environment: Mapping[str, str]
    timeout_seconds: int


@dataclass(frozen=True)
class EventSource:
    """An event source mapping, as the Lambda service polls it for its function."""

    function: str
    source_arn: str
    batch_size: int
    on_failure_arn: str | None = None
    max_retries: int | None = None


@dataclass(frozen=True)
class Resources:
    account: str
    region: str
    queues: Mapping[str, Queue]  # by URL
    tables: Mapping[str, Table]  # by name
    secrets: Mapping[str, Secret]  # by ARN
    buses: Mapping[str, Bus]  # by name
    key_policies: Mapping[str, Document]  # by key ARN
    stream_of_iterator: dict[str, str] = field(default_factory=dict)  # shard iterator -> stream ARN, as issued

    def queue(self, url: str) -> Queue:
        found = self.queues.get(url) or next((q for q in self.queues.values() if q.url.endswith("/" + url)), None)
        if found is None:
            raise LookupError(f"no queue {url} in the deployment")
        return found

    def queue_by_arn(self, arn: str) -> Queue:
        return next(q for q in self.queues.values() if q.arn == arn)

    def table(self, name_or_arn: str) -> Table:
        name = name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn
        if name not in self.tables:
            raise LookupError(f"no table {name_or_arn} in the deployment")
        return self.tables[name]

    def table_of_stream(self, stream_arn: str) -> Table:
        return next(t for t in self.tables.values() if t.stream_arn == stream_arn)

    def secret(self, secret_id: str) -> Secret:
        """By full ARN, partial ARN (without the random suffix) or name, as Secrets Manager resolves a SecretId."""
        for secret in self.secrets.values():
            if secret_id in (secret.arn, secret.name) or secret.arn.startswith(secret_id + "-"):
                return secret
        raise LookupError(f"no secret {secret_id} in the deployment")

    def bus(self, name_or_arn: str) -> Bus:
        name = name_or_arn.rsplit("/", 1)[-1]
        if name not in self.buses:
            raise LookupError(f"no event bus {name_or_arn} in the deployment")
        return self.buses[name]

    def key_policy(self, key_arn: str) -> Document:
        return self.key_policies[key_arn]
