"""Running a deployed function's real handler as Lambda would, in this process: the handler CloudFormation gave it,
only the environment the template gave it (plus the test's `extra` settings), and its role's STS credentials.

The first invocation of a function in a `Runtime` is a cold start (its handler module's caches emptied, and boto3's
default session, so the clients it creates sign as its role); later ones are warm, like a reused execution
environment: each handler module belongs to one function, so its cached clients keep signing as that role. `close`
empties the caches again, so nothing signed by a role outlives the deployment."""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any
from unittest import mock

import boto3

from dsync.local.lambda_events import LocalContext
from shared.adapters import workos_client
from shared.resources import Env
from tests.deploy.iam_checker import IamChecker
from tests.deploy.resources import Function
from tests.deploy.world import REGION, Deployment, session

# Settings the code reads that a test may set, and a deployed function would not have unless the template sets it.
FUNCTION_SETTINGS = {value for name, value in vars(Env).items() if name.isupper()}


class Runtime:
    """Invokes the deployed functions as their roles. `extra` adds settings per function that the template does not
    set and the test needs (the fake WorkOS's URL, a short tail run); each is named in the scenario that sets it."""

    def __init__(self, deployment: Deployment, checker: IamChecker) -> None:
        self.deployment = deployment
        self.checker = checker
        self.extra: dict[str, dict[str, str]] = {}
        self.invocations: list[str] = []
        self._warm: dict[str, ModuleType] = {}
        self._sessions: dict[str, boto3.Session] = {}

    def function(self, name: str) -> Function:
        return self.deployment.functions[name]

    def invoke(self, name: str, event: Mapping[str, Any], *, timeout_seconds: float | None = None) -> Any:
        function = self.function(name)
        module_name, _, attribute = function.handler.rpartition(".")
        module = importlib.import_module(module_name)
        timeout = timeout_seconds if timeout_seconds is not None else function.timeout_seconds
        context = LocalContext(function_name=function.function_name, timeout_seconds=timeout)
        if name not in self._warm:
            _clear_caches(module)
            self._warm[name] = module
        with self.environment(function), self.checker.acting_as(function):
            self.invocations.append(name)
            return getattr(module, attribute)(dict(event), context.as_lambda_context())

    def close(self) -> None:
        for module in self._warm.values():
            _clear_caches(module)
        self._warm.clear()

    @contextmanager
    def service_session(self, name: str) -> Iterator[boto3.Session]:
        """A session with the function's role, for what the Lambda service does with that role (polling an event
        source, sending to an on-failure destination)."""
        function = self.function(name)
        with self.checker.acting_as(function):
            yield self.session(function)

    def session(self, function: Function) -> boto3.Session:
        """The role's session: one per function, so botocore loads each service model once per deployment."""
        if function.name not in self._sessions:
            credentials = self.checker.credentials(function)
            self._sessions[function.name] = session(
                credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
            )
        return self._sessions[function.name]

    @contextmanager
    def environment(self, function: Function) -> Iterator[None]:
        credentials = self.checker.credentials(function)
        variables = {
            **function.environment,
            **self.extra.get(function.name, {}),
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        }
        unset = {name: None for name in FUNCTION_SETTINGS if name not in variables}
        previous = boto3.DEFAULT_SESSION
        boto3.DEFAULT_SESSION = self.session(function)  # boto3.client(...) in the handler signs as the role
        try:
            with mock.patch.dict(os.environ, variables):
                for name in unset:
                    os.environ.pop(name, None)
                yield
        finally:
            boto3.DEFAULT_SESSION = previous


def _clear_caches(module: ModuleType) -> None:
    """The handler module's cached settings, clients and dependencies, and the WorkOS client cache it shares."""
    caches = [value for value in vars(module).values() if isinstance(value, functools._lru_cache_wrapper)]
    for cache in [*caches, workos_client.workos_api]:
        cache.cache_clear()
