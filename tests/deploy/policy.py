"""IAM policy documents and their evaluation, for one request at a time.

Only what this template needs, and loud about the rest: actions and resources with `*`/`?` wildcards, NotAction and
NotResource, principals of resource policies, and the condition operators below (with the ForAllValues/ForAnyValue
set operators and the IfExists suffix). A condition on a key the checker does not model for the request, an
operator it does not know, or a policy variable raises `UnevaluableError`: a policy the checker cannot evaluate must
fail the check, never pass it.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class UnevaluableError(Exception):
    """The checker cannot evaluate this part of a policy for this request."""


@dataclass(frozen=True)
class Request:
    """One authorization: the action, the resource ARN, the principal and the condition keys the checker models for
    it. `context` holds the present keys (multi-valued); a key in `modelled` but not in `context` is absent."""

    action: str
    resource: str
    principal: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    modelled: frozenset[str] = frozenset()

    def knows(self, key: str) -> bool:
        return key.lower() in {k.lower() for k in (*self.modelled, *self.context)}

    def values(self, key: str) -> tuple[str, ...] | None:
        for name, values in self.context.items():
            if name.lower() == key.lower():
                return values
        return None


@dataclass(frozen=True)
class Statement:
    """One statement of one document; `source` says where it came from (policy name and index)."""

    source: str
    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    principals: tuple[str, ...] | None = None  # resource policies only: AWS principals, "*" for anyone
    conditions: Mapping[str, Mapping[str, Sequence[str]]] = field(default_factory=dict)

    def matched_actions(self, action: str) -> tuple[str, ...]:
        if self.not_actions:
            return () if any(like(p, action, fold=True) for p in self.not_actions) else ("NotAction",)
        return tuple(p for p in self.actions if like(p, action, fold=True))

    def matched_resources(self, resource: str) -> tuple[str, ...]:
        if self.not_resources:
            return () if any(like(p, resource) for p in self.not_resources) else ("NotResource",)
        return tuple(p for p in self.resources if like(p, resource))

    def names(self, principal: str, account: str) -> bool:
        if self.principals is None:
            return True
        return any(p in ("*", principal, account, f"arn:aws:iam::{account}:root") for p in self.principals)

    def delegates_to(self, account: str) -> bool:
        """Whether the principal is the account itself (which lets IAM policies grant access)."""
        return self.principals is not None and any(
            p in (account, f"arn:aws:iam::{account}:root") for p in self.principals
        )


def statements(document: Mapping[str, Any], source: str) -> list[Statement]:
    """The statements of a policy document (identity or resource)."""
    raw = document.get("Statement", [])
    parsed = []
    for index, item in enumerate([raw] if isinstance(raw, dict) else raw):
        unknown = set(item) - {
            "Sid",
            "Effect",
            "Action",
            "NotAction",
            "Resource",
            "NotResource",
            "Principal",
            "Condition",
        }
        if unknown or "NotPrincipal" in item:
            raise UnevaluableError(f"{source}[{index}]: unsupported elements {sorted(unknown)}")
        parsed.append(
            Statement(
                source=f"{source}[{index}]",
                effect=item["Effect"],
                actions=_strings(item.get("Action")),
                not_actions=_strings(item.get("NotAction")),
                resources=_strings(item.get("Resource")),
                not_resources=_strings(item.get("NotResource")),
                principals=_principals(item["Principal"]) if "Principal" in item else None,
                conditions={
                    op: {k: _strings(v) for k, v in keys.items()} for op, keys in item.get("Condition", {}).items()
                },
            )
        )
    return parsed


def applies(statement: Statement, request: Request, account: str) -> bool:
    """Whether the statement covers the request: action, resource, principal, and every condition."""
    if not statement.matched_actions(request.action) or not statement.matched_resources(request.resource):
        return False
    if not statement.names(request.principal, account):
        return False
    return all(
        _condition(op, key, values, request)
        for op, keys in statement.conditions.items()
        for key, values in keys.items()
    )


def matching(policies: Iterable[Statement], request: Request, account: str, effect: str) -> list[Statement]:
    return [s for s in policies if s.effect == effect and applies(s, request, account)]


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str):
            raise UnevaluableError(f"not a string in a policy: {item!r} (an unresolved intrinsic?)")
    return tuple(items)


def _principals(value: Any) -> tuple[str, ...]:
    if value == "*":
        return ("*",)
    if set(value) - {"AWS", "Service"}:
        raise UnevaluableError(f"unsupported principal {value}")
    return _strings(value.get("AWS"))  # a Service principal never names a function's role


def like(pattern: str, value: str, *, fold: bool = False) -> bool:
    if "${" in pattern:
        raise UnevaluableError(f"policy variable in {pattern}")
    if fold:
        pattern, value = pattern.lower(), value.lower()
    return _compiled(pattern).fullmatch(value) is not None


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    """`*` any run of characters, `?` one; nothing else is special (fnmatch's brackets are escaped)."""
    return re.compile(fnmatch.translate(pattern.replace("[", "[[]")))


_OPERATORS = {
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (like, False),
    "StringNotLike": (like, True),
    "ArnEquals": (lambda p, v: p == v, False),
    "ArnLike": (like, False),
    "ArnNotEquals": (lambda p, v: p == v, True),
    "ArnNotLike": (like, True),
    "Bool": (lambda p, v: p.lower() == v.lower(), False),
}


def _condition(operator: str, key: str, wanted: Sequence[str], request: Request) -> bool:
    if not request.knows(key):
        raise UnevaluableError(f"condition key {key} is not modelled for {request.action} on {request.resource}")
    values = request.values(key)
    if operator == "Null":
        return (values is None) == (wanted[0].lower() == "true")
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    if name not in _OPERATORS or qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise UnevaluableError(f"condition operator {operator} is not supported")
    compare, negated = _OPERATORS[name]

    def matches(value: str) -> bool:
        hit = any(compare(pattern, value) for pattern in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return values is None or all(matches(v) for v in values)
    if qualifier == "ForAnyValue":
        return values is not None and any(matches(v) for v in values)
    if values is None:
        return if_exists
    return all(matches(v) for v in values) if negated else any(matches(v) for v in values)
