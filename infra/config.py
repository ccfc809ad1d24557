"""Deployment settings of the pipeline stack, read once from CDK context and validated.

Every field has a context key (`cdk.json` "context" or `cdk synth -c key=value`). Values given on the command line
arrive as strings, so numbers are parsed leniently; anything out of range fails synth with one message that names
each bad key.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from aws_cdk import Duration
from aws_cdk import aws_logs as logs
from constructs import Node
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.resources import DEFAULT_STACK_NAME
from shared.signature import DEFAULT_TOLERANCE_SECONDS

RateUnit = Literal["minute", "hour", "day"]

# The retention periods CloudWatch Logs accepts (PutRetentionPolicy), in days, mapped to CDK's enum members
# (the Python enum carries member names, not numbers, so the numbers are spelled out here).
LOG_RETENTION_DAYS: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}

_RATE = re.compile(r"^\s*(?P<amount>\d+)\s+(?P<unit>minute|hour|day)s?\s*$")
# The ingest Lambda rejects tolerances above an hour (shared.ingest_settings); fail at synth instead of at runtime.
MAX_SIGNATURE_TOLERANCE_SECONDS = 3600
# Regional REST API account quotas start at 10,000 rps / 5,000 burst; a stage limit above that has no effect.
MAX_API_RATE_LIMIT = 10_000
MAX_API_BURST_LIMIT = 5_000


class ConfigError(ValueError):
    """The CDK context holds invalid settings; the message lists every bad key."""


class StackConfig(BaseModel):
    """Settings that differ between deployments. Field aliases are the CDK context keys."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    stack_name: str = Field(default=DEFAULT_STACK_NAME, alias="stackName", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
    reconcile_rate: str = Field(default="1 hour", alias="reconcileRate")
    log_retention_days: int = Field(default=30, alias="logRetentionDays")
    api_throttle_rate_limit: int = Field(default=500, alias="apiThrottleRateLimit", ge=1, le=MAX_API_RATE_LIMIT)
    api_throttle_burst_limit: int = Field(default=1000, alias="apiThrottleBurstLimit", ge=1, le=MAX_API_BURST_LIMIT)
    signature_tolerance_seconds: int = Field(
        default=DEFAULT_TOLERANCE_SECONDS,
        alias="signatureToleranceSeconds",
        ge=1,
        le=MAX_SIGNATURE_TOLERANCE_SECONDS,
    )
    tombstone_ttl_days: int = Field(default=30, alias="tombstoneTtlDays", ge=1, le=3650)
    account: str | None = Field(default=None, alias="account", pattern=r"^\d{12}$")
    region: str | None = Field(default=None, alias="region", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")

    @field_validator("reconcile_rate")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        match = _RATE.match(value)
        if match is None or int(match["amount"]) < 1:
            raise ValueError('expected "<N> minute(s)|hour(s)|day(s)" with N >= 1, e.g. "15 minutes" or "1 hour"')
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _check_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {sorted(LOG_RETENTION_DAYS)} days")
        return value

    @property
    def reconcile_interval(self) -> Duration:
        """The reconcile schedule period as a CDK Duration."""
        match = _RATE.match(self.reconcile_rate)
        if match is None:  # unreachable: validated above
            raise ConfigError(f"reconcileRate {self.reconcile_rate!r} is invalid")
        amount, unit = int(match["amount"]), match["unit"]
        if unit == "minute":
            return Duration.minutes(amount)
        if unit == "hour":
            return Duration.hours(amount)
        return Duration.days(amount)

    @property
    def log_retention(self) -> logs.RetentionDays:
        return LOG_RETENTION_DAYS[self.log_retention_days]

    @classmethod
    def from_context(cls, node: Node) -> StackConfig:
        """Build from the context visible at `node` (normally the App). Unknown keys are ignored."""
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            key = field.alias or name
            value = node.try_get_context(key)
            if value is not None and value != "":
                values[key] = value
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> StackConfig:
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = []
            for item in error.errors():
                key = ".".join(str(part) for part in item["loc"]) or "context"
                problems.append(f"context key {key!r} = {item.get('input')!r}: {item['msg']}")
            raise ConfigError("invalid CDK context for the pipeline stack:\n  " + "\n  ".join(problems)) from None
