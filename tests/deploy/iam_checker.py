"""The template's IAM enforced per request, in process.

While installed, every botocore API call of this process passes `IamChecker.check` first (`BaseClient._make_api_call`
is wrapped: every client, whenever and however created, and before botocore's retries). The caller is whoever signs
the request: the access key of a function's role (issued by STS on moto for that role) names the function. A request
signed by a role is mapped to its authorizations (`tests.deploy.requests`), each evaluated against that role's
policy documents as they are in IAM now, the resource's policy, and for KMS the key policy (`decide`). A denial is
answered as AWS would (AccessDenied, so the handler meets it as deployed) and recorded: the scenarios fail on any.

moto's own enforcement is not used: it matches resource ARNs only for SQS, IAM, STS and S3, ignores conditions, knows
some actions by other names, and models neither key policies nor the KMS calls services make for the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import boto3
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from tests.deploy.policy import Request, Statement, UnevaluableError, matching, statements
from tests.deploy.requests import Authorization, authorizations
from tests.deploy.resources import Function, Resources

Grant = tuple[str, str, str]  # (statement source, action pattern, resource pattern) of an identity Allow


@dataclass(frozen=True)
class Decision:
    function: str
    role_arn: str
    scenario: str
    call: str  # service:Operation as the API names it
    action: str
    resource: str
    allowed: bool
    reason: str
    grants: tuple[Grant, ...]  # the identity grants that allowed it

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "DENIED"
        return (
            f"{verdict}: {self.action} on {self.resource} ({self.call}) for {self.function} ({self.role_arn})"
            f" in {self.scenario!r}: {self.reason}"
        )


def decide(
    auth: Authorization, principal: str, identity: list[Statement], account: str
) -> tuple[bool, str, tuple[Grant, ...]]:
    """Same-account evaluation: an explicit Deny anywhere wins; KMS needs the key policy to allow, directly or by
    delegating to the account's IAM policies; elsewhere an identity Allow (or a resource policy naming the caller)."""
    request = Request(
        auth.action,
        auth.resource,
        principal,
        {"aws:SecureTransport": ("true",), **auth.context},
        auth.modelled | {"aws:SecureTransport"},
    )
    try:
        resource_side = statements(auth.resource_policy, "resource policy") if auth.resource_policy else []
        key_side = statements(auth.key_policy, "key policy") if auth.key_policy else []
        denies = matching([*identity, *resource_side, *key_side], request, account, "Deny")
        allows = matching(identity, request, account, "Allow")
        key_allows = matching(key_side, request, account, "Allow")
        resource_allows = [s for s in matching(resource_side, request, account, "Allow") if not s.delegates_to(account)]
    except UnevaluableError as error:
        return False, f"not evaluable: {error}", ()
    grants = tuple(
        (s.source, a, r)
        for s in allows
        for a in s.matched_actions(auth.action)
        for r in s.matched_resources(auth.resource)
    )
    if denies:
        return False, f"explicit deny in {denies[0].source}", ()
    if auth.key_policy is not None:
        if any(not s.delegates_to(account) for s in key_allows):
            return True, "the key policy allows the role", grants
        if not key_allows:
            return False, "the key policy allows neither the role nor the account's IAM policies", ()
    if allows:
        return True, f"allowed by {allows[0].source}", grants
    if resource_allows:
        return True, f"allowed by {resource_allows[0].source}", grants
    return False, "no statement of the role's policies allows it", ()


class IamChecker:
    """Checks the requests of the functions' roles; see the module docstring."""

    def __init__(self, resources: Resources, admin: boto3.Session) -> None:
        self.resources = resources
        self._admin = admin
        self._iam = admin.client("iam")
        self._lock = threading.Lock()
        self._by_key: dict[str, Function] = {}
        self._credentials: dict[str, dict[str, str]] = {}
        self._active: Function | None = None
        self._identity: list[Statement] = []
        self.scenario = ""
        self._harness = threading.local()  # set while a fault runs: its own requests are the harness's
        self.decisions: list[Decision] = []
        self.problems: list[str] = []  # requests the checker could not attribute: always a failure
        self.before_send: list[Callable[[str, str, Mapping[str, Any]], None]] = []  # fault injection, after IAM

    def credentials(self, function: Function) -> dict[str, str]:
        """The role's temporary credentials, as Lambda gets them from STS for each execution environment."""
        if function.name not in self._credentials:
            issued = self._admin.client("sts").assume_role(
                RoleArn=function.role_arn, RoleSessionName=function.function_name
            )
            self._credentials[function.name] = dict(issued["Credentials"])
            self._by_key[issued["Credentials"]["AccessKeyId"]] = function
        return self._credentials[function.name]

    @contextmanager
    def acting_as(self, function: Function) -> Iterator[None]:
        """Requests signed by `function`'s role are expected (and no other) until the block ends. The role's
        policies are read from IAM on entry, so a policy changed between invocations is what the next one meets."""
        self.credentials(function)
        self._identity = self.identity_policy(function.role_arn)
        self._active = function
        try:
            yield
        finally:
            self._active = None

    def identity_policy(self, role_arn: str) -> list[Statement]:
        iam = self._iam
        role = role_arn.rsplit("/", 1)[-1]
        found = []
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            found += statements(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"], name)
        for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
            document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]
            found += statements(document["Document"], attached["PolicyName"])
        return found

    @contextmanager
    def installed(self) -> Iterator[IamChecker]:
        original = BaseClient._make_api_call  # type: ignore[attr-defined]
        checker = self

        def checked(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            checker.check(client, operation, params)
            response = original(client, operation, params)
            checker.observe(client, operation, params, response)
            return response

        with mock.patch.object(BaseClient, "_make_api_call", checked):
            yield self

    def check(self, client: BaseClient, operation: str, params: Mapping[str, Any]) -> None:
        service = client.meta.service_model.service_name
        credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
        key = credentials.get_frozen_credentials().access_key if credentials is not None else None
        caller = self._by_key.get(key) if key else None
        active = self._active
        if getattr(self._harness, "on", False) or (caller is None and active is None):
            return  # the deployer's or the scenario's own set-up and assertions
        if caller is None or caller is not active:
            signer = caller.name if caller else "no function's role"
            problem = f"{service}:{operation} signed by {signer} while {active.name if active else 'no function'} runs"
            self.problems.append(problem)
            raise AssertionError(problem)
        try:
            needed = authorizations(service, operation, params, self.resources)
        except (UnevaluableError, LookupError) as error:
            unmapped = Authorization(f"{service}:{operation}", "?")
            raise self._refusal(
                operation, [self._record(caller, service, operation, unmapped, (False, f"not evaluable: {error}", ()))]
            ) from error
        made = [
            self._record(
                caller, service, operation, auth, decide(auth, caller.role_arn, self._identity, self.resources.account)
            )
            for auth in needed
        ]
        if refused := [d for d in made if not d.allowed]:
            raise self._refusal(operation, refused)
        self._harness.on = True
        try:
            for fault in list(self.before_send):
                fault(service, operation, params)
        finally:
            self._harness.on = False

    @staticmethod
    def _refusal(operation: str, refused: list[Decision]) -> ClientError:
        """The error AWS answers: SQS and the other services report a refused KMS call as KMS.AccessDeniedException."""
        code = "KMS.AccessDeniedException" if refused[0].action.startswith("kms:") else "AccessDeniedException"
        error = {"Code": code, "Message": str(refused[0])}
        return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)  # type: ignore[typeddict-item]

    def observe(
        self, client: BaseClient, operation: str, params: Mapping[str, Any], response: Mapping[str, Any]
    ) -> None:
        """Remembers which stream a shard iterator reads: GetRecords names only the iterator."""
        if client.meta.service_model.service_name != "dynamodbstreams":
            return
        issued = self.resources.stream_of_iterator
        if operation == "GetShardIterator" and response.get("ShardIterator"):
            issued[response["ShardIterator"]] = params["StreamArn"]
        elif operation == "GetRecords" and response.get("NextShardIterator") and params["ShardIterator"] in issued:
            issued[response["NextShardIterator"]] = issued[params["ShardIterator"]]

    def _record(
        self,
        caller: Function,
        service: str,
        operation: str,
        auth: Authorization,
        verdict: tuple[bool, str, tuple[Grant, ...]],
    ) -> Decision:
        allowed, reason, grants = verdict
        decision = Decision(
            caller.name,
            caller.role_arn,
            self.scenario,
            f"{service}:{operation}",
            auth.action,
            auth.resource,
            allowed,
            reason,
            grants,
        )
        with self._lock:
            self.decisions.append(decision)
        return decision

    def denials(self) -> list[Decision]:
        return [d for d in self.decisions if not d.allowed]
