"""Deployment settings of the pipeline stack, read once from CDK context and validated.

Every field has a context key (`cdk.json` "context" or `cdk synth -c key=value`). Values given on the command line
arrive as strings, so numbers and booleans ("true"/"false") are parsed leniently and lists may be given as
comma-separated text; anything out of range fails synth with one message that names each bad key.

Optional features, all off by default:
- `enableWaf`: a WAFv2 web ACL on the API stage (IP reputation list, per-IP rate limit `wafRateLimitPer5Minutes`);
  `wafLogging` also logs blocked requests to an `aws-waf-logs-` log group.
- `restrictToWorkosIps` / `allowedSourceIps`: an API Gateway resource policy that only lets WorkOS's published
  webhook addresses (and/or the given CIDRs, which are added to them) invoke the API.
- `enableTracing`: X-Ray active tracing on every function and on the API stage.
- `alarmEmail` / `alarmTopicArn`: where the alarms notify (a new KMS-encrypted SNS topic with an email subscription,
  or an existing topic); with neither, alarms only change state.
`apiGatewayCloudWatchRole` (default true) lets accounts that already have the region-wide API Gateway logging role
keep theirs: with false the stack does not manage AWS::ApiGateway::Account (stage logging still needs some role).

Rehearsal only (`make rehearse`: the real app deployed into the MiniStack emulator), both off by default and both
refused at synth for any account but the emulator's `000000000000` (`check_rehearsal_account`, called by
`infra.application` where the stack's account is known):
- `rehearsalOmitChangeArchive`: leave the change bus's EventBridge archive out (MiniStack's CloudFormation refuses
  AWS::Events::Archive);
- `rehearsalHostBundles`: bundle the functions for the interpreter running the synth, not Lambda's Python and
  architecture (MiniStack runs every function on its own interpreter); the template still says python3.14/arm64, and
  the asset hashes differ from real bundles', so a real deploy never reuses one (`infra.bundling`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Literal, Self

from aws_cdk import Duration
from aws_cdk import aws_logs as logs
from constructs import Node
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.ingest.signature import DEFAULT_TOLERANCE_SECONDS
from shared.reconcile.deletion_guard import DEFAULT_MAX_DIRECTORY_DELETIONS_PER_WAVE, DEFAULT_MAX_REMOVAL_SHARE
from shared.resources import (
    API_THROTTLE_BURST_LIMIT,
    API_THROTTLE_RATE_LIMIT,
    APPLY_FUNCTION,
    DEFAULT_METRICS_NAMESPACE,
    DEFAULT_STACK_NAME,
    DEFAULT_TOMBSTONE_TTL_DAYS,
    EVENT_QUEUE,
    MIN_TOMBSTONE_TTL_DAYS,
)

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
# The ingest Lambda rejects tolerances above an hour (shared.ingest.settings); fail at synth instead of at runtime.
MAX_SIGNATURE_TOLERANCE_SECONDS = 3600
# Regional REST API account quotas start at 10,000 rps / 5,000 burst; a stage limit above that has no effect.
MAX_API_RATE_LIMIT = 10_000
MAX_API_BURST_LIMIT = 5_000
# The drift alarm evaluates two reconcile periods; CloudWatch caps an alarm's evaluation range at 7 days.
MAX_ALARM_RANGE_SECONDS = 7 * 24 * 3600
# A sustained-5xx alarm uses 1-minute periods; below one-hour periods CloudWatch caps the range at one day.
MAX_5XX_MINUTES = 24 * 60
# AWS WAF rate-based rule limits (requests per 5-minute window per source IP).
MIN_WAF_RATE_LIMIT = 10
MAX_WAF_RATE_LIMIT = 2_000_000_000
# The 2,000 events/s one directory's onboarding is measured at (README, docs/scale.md), from one address.
DEFAULT_WAF_RATE_LIMIT_PER_5_MINUTES = 2_000 * 300
# CloudWatch namespaces: ASCII letters, digits and . - _ / # : (no "AWS/" prefix, that is reserved for AWS).
_NAMESPACE = r"^[A-Za-z0-9._/#:-]{1,255}$"
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# A standard (not FIFO: CloudWatch alarms cannot publish to FIFO topics) SNS topic ARN.
_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z]{2}(-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,256}$"

# The addresses WorkOS sends webhooks from, as published in the WorkOS docs ("Create an IP allowlist" in
# https://workos.com/docs/events/data-syncing/webhooks.md). `restrictToWorkosIps` allows exactly these.
WORKOS_WEBHOOK_SOURCE_IPS: tuple[str, ...] = (
    "3.217.146.166",
    "23.21.184.92",
    "34.204.154.149",
    "44.213.245.178",
    "44.215.236.82",
    "50.16.203.9",
    "52.1.251.34",
    "52.21.49.187",
    "174.129.36.47",
)


# The account MiniStack (and LocalStack) report; the rehearsal switches are refused for any other.
EMULATOR_ACCOUNT = "000000000000"


def _rate_seconds(match: re.Match[str]) -> int:
    return int(match["amount"]) * {"minute": 60, "hour": 3600, "day": 86400}[match["unit"]]


class ConfigError(ValueError):
    """The CDK context holds invalid settings; the message lists every bad key."""


class StackConfig(BaseModel):
    """Settings that differ between deployments. Field aliases are the CDK context keys."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    # At most 58 characters: the queues are named `<stackName>-<queue>` (SQS allows 80, ".fifo" included) so that each
    # dead-letter queue can name its sources (`infra.constructs.dead_lettered_queue`).
    stack_name: str = Field(default=DEFAULT_STACK_NAME, alias="stackName", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,57}$")
    reconcile_rate: str = Field(default="1 hour", alias="reconcileRate")
    log_retention_days: int = Field(default=30, alias="logRetentionDays")
    api_throttle_rate_limit: int = Field(
        default=API_THROTTLE_RATE_LIMIT, alias="apiThrottleRateLimit", ge=1, le=MAX_API_RATE_LIMIT
    )
    api_throttle_burst_limit: int = Field(
        default=API_THROTTLE_BURST_LIMIT, alias="apiThrottleBurstLimit", ge=1, le=MAX_API_BURST_LIMIT
    )
    signature_tolerance_seconds: int = Field(
        default=DEFAULT_TOLERANCE_SECONDS,
        alias="signatureToleranceSeconds",
        ge=1,
        le=MAX_SIGNATURE_TOLERANCE_SECONDS,
    )
    # Tombstones must outlive the longest life of a stale event: WorkOS's 3-day retries, the events and overflow
    # queues, the DLQ and one redrive (`shared.resources.LONGEST_EVENT_LIFE_DAYS`; the apply Lambda refuses less).
    tombstone_ttl_days: int = Field(
        default=DEFAULT_TOMBSTONE_TTL_DAYS, alias="tombstoneTtlDays", ge=MIN_TOMBSTONE_TTL_DAYS, le=3650
    )
    # No single input erases a tenant (`shared.reconcile.deletion_guard`): past these, reconcile's deletions wait for an
    # operator's `dsync reconcile --confirm-deletions`.
    max_directory_deletions_per_wave: int = Field(
        default=DEFAULT_MAX_DIRECTORY_DELETIONS_PER_WAVE, alias="maxDirectoryDeletionsPerWave", ge=0, le=10_000
    )
    max_removal_share: float = Field(default=DEFAULT_MAX_REMOVAL_SHARE, alias="maxRemovalShare", ge=0, le=1)
    account: str | None = Field(default=None, alias="account", pattern=r"^\d{12}$")
    region: str | None = Field(default=None, alias="region", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")

    # Observability. The namespace is set on every function (POWERTOOLS_METRICS_NAMESPACE) and used by the alarms.
    metrics_namespace: str = Field(default=DEFAULT_METRICS_NAMESPACE, alias="metricsNamespace", pattern=_NAMESPACE)
    alarm_ingest_5xx_minutes: int = Field(default=5, alias="alarmIngest5xxMinutes", ge=1, le=MAX_5XX_MINUTES)
    alarm_signature_failures_per_hour: int = Field(default=10, alias="alarmSignatureFailuresPerHour", ge=0)
    # Above the apply timeout the alarm could never fire (Lambda Duration stops at the timeout).
    alarm_apply_duration_seconds: int = Field(
        default=10, alias="alarmApplyDurationSeconds", ge=1, lt=APPLY_FUNCTION.timeout_seconds
    )
    # Past the retention period a message is gone, so the age never exceeds it.
    alarm_queue_age_seconds: int = Field(
        default=300, alias="alarmQueueAgeSeconds", ge=60, lt=EVENT_QUEUE.retention_seconds
    )
    # The Events API tail: a stalled sync is silent, so its alarm watches poll age, not errors.
    tail_enabled: bool = Field(default=True, alias="tailEnabled")
    # Off by default: the lease keeps one tail polling at a time, and a reservation on an account at its minimum of
    # unreserved executions (10 or 50 on new accounts) rolls the first deploy back.
    tail_reserved_concurrency: bool = Field(default=False, alias="tailReservedConcurrency")
    tail_bootstrap_hours: float = Field(default=24.0, alias="tailBootstrapHours", gt=0, le=24 * 30)
    alarm_tail_poll_age_seconds: int = Field(default=300, alias="alarmTailPollAgeSeconds", ge=60, le=86_400)
    # A directory WorkOS reports invalid_credentials, unlinked or validating for longer than this raises an alarm
    # (checked by each reconcile wave, so it fires at the first wave past the limit).
    alarm_directory_unhealthy_minutes: int = Field(
        default=60, alias="alarmDirectoryUnhealthyMinutes", ge=1, le=7 * 24 * 60
    )
    alarm_email: str | None = Field(default=None, alias="alarmEmail", pattern=_EMAIL)
    alarm_topic_arn: str | None = Field(default=None, alias="alarmTopicArn", pattern=_TOPIC_ARN)
    enable_tracing: bool = Field(default=False, alias="enableTracing")

    # Edge protection.
    enable_waf: bool = Field(default=False, alias="enableWaf")
    # WorkOS may deliver an initial sync from one address: the default is 2,000 requests/s per address (README).
    waf_rate_limit_per_5_minutes: int = Field(
        default=DEFAULT_WAF_RATE_LIMIT_PER_5_MINUTES,
        alias="wafRateLimitPer5Minutes",
        ge=MIN_WAF_RATE_LIMIT,
        le=MAX_WAF_RATE_LIMIT,
    )
    waf_logging: bool = Field(default=False, alias="wafLogging")
    restrict_to_workos_ips: bool = Field(default=False, alias="restrictToWorkosIps")
    allowed_source_ips: tuple[str, ...] = Field(default=(), alias="allowedSourceIps")
    api_gateway_cloud_watch_role: bool = Field(default=True, alias="apiGatewayCloudWatchRole")

    # Rehearsal only (module docstring): refused for any account but EMULATOR_ACCOUNT.
    rehearsal_omit_change_archive: bool = Field(default=False, alias="rehearsalOmitChangeArchive")
    rehearsal_host_bundles: bool = Field(default=False, alias="rehearsalHostBundles")

    @field_validator("reconcile_rate")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        match = _RATE.match(value)
        if match is None or int(match["amount"]) < 1:
            raise ValueError('expected "<N> minute(s)|hour(s)|day(s)" with N >= 1, e.g. "15 minutes" or "1 hour"')
        if 2 * _rate_seconds(match) > MAX_ALARM_RANGE_SECONDS:
            raise ValueError(
                "at most 3.5 days (e.g. 3 days or 84 hours): the drift alarm evaluates two reconcile periods and "
                "CloudWatch limits an alarm's evaluation range to 7 days"
            )
        return value

    @field_validator("metrics_namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if value.startswith("AWS/"):
            raise ValueError('namespaces starting with "AWS/" are reserved for AWS services')
        return value

    @field_validator("allowed_source_ips", mode="before")
    @classmethod
    def _split_ips(cls, value: Any) -> Any:
        """`-c allowedSourceIps=a,b` arrives as one string; a JSON list string is accepted too."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError:
                    raise ValueError("expected a JSON list of CIDRs or comma-separated CIDRs") from None
            return [part for part in re.split(r"[,\s]+", text) if part]
        return value

    @field_validator("allowed_source_ips")
    @classmethod
    def _check_ips(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        normalized: list[str] = []
        for item in value:
            try:
                network = ipaddress.ip_network(item)
            except ValueError as error:
                raise ValueError(f"{item!r} is not an IP address or CIDR ({error})") from None
            if network.prefixlen == 0:
                raise ValueError(f"{item!r} allows every address: leave allowedSourceIps unset instead")
            if str(network) not in normalized:
                normalized.append(str(network))
        return tuple(normalized)

    @model_validator(mode="after")
    def _check_combinations(self) -> Self:
        if self.alarm_email and self.alarm_topic_arn:
            raise ValueError(
                "set alarmEmail (the stack creates an encrypted topic) or alarmTopicArn (an existing topic), not both"
            )
        if self.waf_logging and not self.enable_waf:
            raise ValueError("wafLogging needs enableWaf=true (it logs the requests the web ACL blocks)")
        return self

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

    @property
    def source_ip_allowlist(self) -> tuple[str, ...]:
        """CIDRs allowed to invoke the webhook API: WorkOS's addresses if asked for, plus `allowedSourceIps`.

        Empty means no restriction (no resource policy).
        """
        addresses = [*(WORKOS_WEBHOOK_SOURCE_IPS if self.restrict_to_workos_ips else ()), *self.allowed_source_ips]
        return tuple(dict.fromkeys(str(ipaddress.ip_network(address)) for address in addresses))

    @property
    def rehearsal_switches(self) -> tuple[str, ...]:
        """The context keys of the rehearsal-only switches that are on."""
        switches = {
            "rehearsalOmitChangeArchive": self.rehearsal_omit_change_archive,
            "rehearsalHostBundles": self.rehearsal_host_bundles,
        }
        return tuple(key for key, on in switches.items() if on)

    def check_rehearsal_account(self, account: str | None) -> None:
        """Refuse the rehearsal switches for any account but the emulator's (`account`: the stack's, None when the
        synth does not know it), so a real deploy can never leave the archive out or ship host-built bundles."""
        if self.rehearsal_switches and account != EMULATOR_ACCOUNT:
            target = f"account {account}" if account else "an unknown account (no `account` context, no credentials)"
            raise ConfigError(
                "invalid CDK context for the pipeline stack:\n  "
                + "\n  ".join(
                    f"context key {key!r} is for a rehearsal on the MiniStack emulator only (account "
                    f"{EMULATOR_ACCOUNT}), not for {target}"
                    for key in self.rehearsal_switches
                )
            )

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
                if not item["loc"]:  # a rule across keys (model validator): the message names them
                    problems.append(item["msg"])
                    continue
                key = str(item["loc"][0])
                problems.append(f"context key {key!r} = {values.get(key, item.get('input'))!r}: {item['msg']}")
            raise ConfigError("invalid CDK context for the pipeline stack:\n  " + "\n  ".join(problems)) from None
