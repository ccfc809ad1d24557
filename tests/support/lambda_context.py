"""A Lambda context for calling handlers in-process."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import cast

from aws_lambda_powertools.utilities.typing import LambdaContext


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    timeout_seconds: float = 60.0
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def lambda_context(timeout_seconds: float = 60.0) -> LambdaContext:
    """A `FakeLambdaContext` typed as the Powertools context the handlers expect."""
    return cast(LambdaContext, FakeLambdaContext(timeout_seconds=timeout_seconds))
