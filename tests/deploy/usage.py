"""Grants, as (action, resource) pairs of a role's Allow statements, against the requests the scenarios made: which
were never used (and why, where the reason is known), and a role's policy with one grant taken out (the mutations).

A pair the scenarios never used is either explained below, by what uses it outside the handlers' requests or by an
open question, or it is a finding: a grant broader than the code, or a path no scenario reaches yet."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.deploy.iam_checker import Decision
from tests.deploy.policy import Statement

# Grants no request of a handler uses, each with the reason it is there anyway (matched on the action).
EXPLAINED = {
    "logs:CreateLogStream": "the Lambda service ships the function's logs with its role (not a handler request)",
    "logs:PutLogEvents": "the Lambda service ships the function's logs with its role (not a handler request)",
    "sqs:ChangeMessageVisibility": "CDK's consumer grant; Lambda documents ReceiveMessage, DeleteMessage and "
    "GetQueueAttributes for its SQS poller",
    "sqs:GetQueueUrl": "CDK's consumer grant; the poller and the handlers address queues by URL",
    **dict.fromkeys(
        (
            "kms:Encrypt",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
            "kms:GenerateDataKeyPair",
            "kms:GenerateDataKeyPairWithoutPlaintext",
            "kms:GenerateDataKeyWithoutPlaintext",
        ),
        "the table writers' KMS set (CDK's grant_write_data): whether DynamoDB asks a writer for it only a real "
        "account settles (issue #19); the check asserts Decrypt and DescribeKey",
    ),
}


@dataclass(frozen=True, order=True)
class Grant:
    function: str
    action: str
    resource: str

    def __str__(self) -> str:
        return f"{self.function}: {self.action} on {self.resource}"


def grants(function: str, identity: Iterable[Statement]) -> set[Grant]:
    """The role's Allow pairs, as written (wildcards kept); NotAction/NotResource count as one pair each."""
    found = set()
    for statement in identity:
        if statement.effect == "Allow":
            for action in statement.actions or ("NotAction",):
                for resource in statement.resources or ("NotResource",):
                    found.add(Grant(function, action, resource))
    return found


def used(decisions: Iterable[Decision]) -> set[Grant]:
    return {Grant(d.function, action, resource) for d in decisions if d.allowed for _, action, resource in d.grants}


def unused(all_grants: Iterable[Grant], decisions: Iterable[Decision]) -> list[tuple[Grant, str | None]]:
    """Every grant no allowed request matched, with its known reason (None: unexplained)."""
    taken = used(decisions)
    return [(grant, EXPLAINED.get(grant.action)) for grant in sorted(set(all_grants) - taken)]


def without(document: Mapping[str, Any], action: str, resource: str) -> dict[str, Any]:
    """The policy document with the pair (action, resource) taken out of every statement that grants it; the rest of
    each such statement kept (split in two where it granted other actions or resources)."""
    changed = copy.deepcopy(dict(document))
    statements = changed["Statement"] if isinstance(changed["Statement"], list) else [changed["Statement"]]
    kept = []
    for statement in statements:
        actions, resources = _list(statement.get("Action")), _list(statement.get("Resource"))
        if statement.get("Effect") != "Allow" or action not in actions or resource not in resources:
            kept.append(statement)
            continue
        if len(actions) > 1:
            kept.append({**statement, "Action": [a for a in actions if a != action]})
        if len(resources) > 1:
            kept.append({**statement, "Action": action, "Resource": [r for r in resources if r != resource]})
    changed["Statement"] = kept
    return changed


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]
