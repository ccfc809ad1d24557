"""One definition of the pipeline's resources, read by the CDK stack, the local stack and the operator CLI.

CDK lets CloudFormation pick physical names in AWS (so two stacks can share an account); the local stack uses
`LOCAL_NAMES`. Everything else (queue semantics, timeouts, environment variable names, stack output keys) is
defined here once so that `dsync local` runs the handlers against the same shapes as a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- Functions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function: where its handler lives, how long it may run, which pinned packages it bundles."""

    name: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    # Distribution names from requirements.txt that the bundle carries. boto3/botocore come from the Lambda runtime.
    packages: tuple[str, ...]
    # The settings class its handler loads from the environment ("module.Class"): the deploy check holds the
    # template's environment to it (`infra.contracts`).
    settings: str


INGEST_FUNCTION = FunctionSpec(
    name="ingest",
    handler="functions.ingest.handler.handler",
    timeout_seconds=10,
    memory_mb=512,
    packages=("aws-lambda-powertools",),
    settings="shared.ingest.settings.IngestSettings",
)
APPLY_FUNCTION = FunctionSpec(
    name="apply",
    handler="functions.apply.handler.handler",
    timeout_seconds=60,
    memory_mb=512,
    packages=("aws-lambda-powertools", "pydantic", "pydantic-settings"),
    settings="shared.settings.ApplySettings",
)
RECONCILE_FUNCTION = FunctionSpec(
    name="reconcile",
    handler="functions.reconcile.handler.handler",
    timeout_seconds=600,
    memory_mb=1024,
    packages=("aws-lambda-powertools", "pydantic", "pydantic-settings", "workos"),
    settings="shared.settings.ReconcileSettings",
)
PUBLISH_FUNCTION = FunctionSpec(
    name="publish",
    handler="functions.publish.handler.handler",
    timeout_seconds=60,
    memory_mb=256,
    packages=("aws-lambda-powertools", "pydantic", "pydantic-settings"),
    settings="shared.settings.PublishSettings",
)
# The Events API tail: started every minute, it polls for `TAIL_RUN_SECONDS` of it, then stops before the next.
TAIL_FUNCTION = FunctionSpec(
    name="tail",
    handler="functions.tail.handler.handler",
    timeout_seconds=75,
    memory_mb=512,
    packages=("aws-lambda-powertools", "pydantic", "pydantic-settings", "workos"),
    settings="shared.settings.TailSettings",
)
# The SQL sink (optional: created only with the `sqlSinkSecretArn` context key): the table's stream into the app's
# PostgreSQL, and the scheduled verify of the sink against the mirror. Not in FUNCTIONS, which every stack has.
SQL_SINK_FUNCTION = FunctionSpec(
    name="sql_sink",
    handler="functions.sql_sink.handler.handler",
    timeout_seconds=60,
    memory_mb=512,
    packages=("aws-lambda-powertools", "pydantic", "pydantic-settings", "psycopg", "psycopg-binary"),
    settings="shared.sql.settings.SqlSinkSettings",
)
SQL_VERIFY_FUNCTION = FunctionSpec(
    name="sql_verify",
    handler="functions.sql_verify.handler.handler",
    timeout_seconds=600,
    memory_mb=1024,
    packages=("aws-lambda-powertools", "pydantic", "pydantic-settings", "psycopg", "psycopg-binary"),
    settings="shared.sql.settings.SqlVerifySettings",
)
SQL_FUNCTIONS: tuple[FunctionSpec, ...] = (SQL_SINK_FUNCTION, SQL_VERIFY_FUNCTION)
FUNCTIONS: tuple[FunctionSpec, ...] = (
    INGEST_FUNCTION,
    APPLY_FUNCTION,
    RECONCILE_FUNCTION,
    PUBLISH_FUNCTION,
    TAIL_FUNCTION,
)

# Lambda runtime and architecture, chosen once. arm64 (Graviton) costs ~20% less per GB-second and every compiled
# dependency we ship (pydantic-core, cryptography, cffi) publishes aarch64 manylinux wheels.
LAMBDA_PYTHON_VERSION = "3.14"
LAMBDA_ARCHITECTURE = "arm64"
LAMBDA_PIP_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")

# --- Queues ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueSpec:
    """Queue attributes shared by CDK and the local stack."""

    fifo: bool
    retention_seconds: int
    visibility_timeout_seconds: int
    max_message_bytes: int = 262_144


MAX_RECEIVE_COUNT = 5
EVENT_BATCH_SIZE = 10  # the FIFO maximum for a Lambda event source mapping
FOUR_DAYS = 4 * 24 * 3600
FOURTEEN_DAYS = 14 * 24 * 3600

EVENT_QUEUE = QueueSpec(
    fifo=True,
    retention_seconds=FOUR_DAYS,
    visibility_timeout_seconds=6 * APPLY_FUNCTION.timeout_seconds,  # AWS: >= 6x the consumer's timeout
)
EVENT_DEAD_LETTER_QUEUE = QueueSpec(fifo=True, retention_seconds=FOURTEEN_DAYS, visibility_timeout_seconds=30)
# Batches of a directory whose DynamoDB partition is throttled move here (`shared.apply.overflow`), so a giant's backlog
# waits outside the events queue's 120,000-message scan window instead of in front of every small directory.
OVERFLOW_QUEUE = QueueSpec(
    fifo=True,
    retention_seconds=FOURTEEN_DAYS,
    visibility_timeout_seconds=6 * APPLY_FUNCTION.timeout_seconds,
)
# Mapping concurrency (ScalingConfig.MaximumConcurrency). Events: enough for every lane of several large
# directories at once plus the small ones; overflow: enough to keep a throttled partition at its ceiling.
APPLY_MAX_CONCURRENCY = 100
OVERFLOW_MAX_CONCURRENCY = 20
# SDK attempts per DynamoDB request of the events queue's applier: a throttled directory is moved on at once, not
# waited for (botocore's standard mode would sleep up to a second first). The overflow applier retries in botocore's
# adaptive mode, which also paces its requests to what the partition takes. Its throttle backoff is botocore's
# standard one, rand(0, 1) x min(1 s x 2^i, 20 s) (botocore/retries/standard.py, ExponentialBackoff): 6 attempts
# wait at most 1 + 2 + 4 + 8 + 16 = 31 s, inside the apply Lambda's 60 s with room for the batch's other writes
# (10 attempts could wait 111 s); the applier also starts no write past its deadline.
EVENT_LANE_DYNAMODB_ATTEMPTS = 1
OVERFLOW_LANE_DYNAMODB_ATTEMPTS = 6
# The webhook API's stage throttle (CDK context `apiThrottleRateLimit` / `apiThrottleBurstLimit`). WorkOS documents
# no delivery limit, and an onboarding arrives at whatever rate it sends: above this, deliveries get 429 and wait
# for WorkOS's retry. 2,500/s is above the simulator's fastest scenario (2,000/s) with room; the account's regional
# API Gateway quota is 10,000/s.
API_THROTTLE_RATE_LIMIT = 2_500
API_THROTTLE_BURST_LIMIT = 5_000
# Reconcile functions at once: 20 directories at WorkOS's 4 rps each are 80% of the key's 6,000 per minute.
RECONCILE_MAX_CONCURRENCY = 20
# Reconcile and purge work, one message per directory job; long jobs continue in a follow-up message.
WORK_QUEUE = QueueSpec(
    fifo=False,
    retention_seconds=FOUR_DAYS,
    visibility_timeout_seconds=RECONCILE_FUNCTION.timeout_seconds + 60,
)
WORK_DEAD_LETTER_QUEUE = QueueSpec(fifo=False, retention_seconds=FOURTEEN_DAYS, visibility_timeout_seconds=30)

# How long a stale event can still arrive after the newer state was written: WorkOS retries a webhook for 3 days;
# then it may wait its whole retention in the events queue, move to the overflow queue (a new message: retention
# starts again), reach the DLQ (for a FIFO queue the dead-letter move is treated as a new enqueue, so count its
# retention in full) and be redriven once to the events queue. A tombstone must outlive all of it, or the late
# event resurrects what was deleted: this is the lower bound of `tombstoneTtlDays`. A message redriven and then moved
# to the overflow queue again, or redriven twice, can live longer: the runbook's redrive section says so.
WORKOS_WEBHOOK_RETRY_DAYS = 3
LONGEST_EVENT_LIFE_DAYS = (
    WORKOS_WEBHOOK_RETRY_DAYS
    + (
        EVENT_QUEUE.retention_seconds
        + OVERFLOW_QUEUE.retention_seconds
        + EVENT_DEAD_LETTER_QUEUE.retention_seconds
        + EVENT_QUEUE.retention_seconds  # one redrive
    )
    // 86_400
)
MIN_TOMBSTONE_TTL_DAYS = LONGEST_EVENT_LIFE_DAYS
DEFAULT_TOMBSTONE_TTL_DAYS = 45

# Webhook bodies above this are answered 413. The SQS message also carries attributes, hence the margin.
MAX_WEBHOOK_BODY_BYTES = 256 * 1024 - 8 * 1024

# --- Names -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalNames:
    """Physical names used by `dsync local` (CloudFormation generates them in AWS)."""

    table: str = "dsync-directory"
    event_queue: str = "dsync-events.fifo"
    event_dead_letter_queue: str = "dsync-events-dlq.fifo"
    overflow_queue: str = "dsync-overflow.fifo"
    work_queue: str = "dsync-work"
    work_dead_letter_queue: str = "dsync-work-dlq"
    change_bus: str = "dsync-changes"
    webhook_secret: str = "dsync/webhook-signing-secrets"
    workos_api_key_secret: str = "dsync/workos-api-key"
    sql_sink_secret: str = "dsync/sql-sink-url"  # `dsync local --postgres`: the sink's connection URL


LOCAL_NAMES = LocalNames()
DEFAULT_STACK_NAME = "WorkosDsyncPipeline"
CHANGE_EVENT_SOURCE = "workos.dsync.pipeline"
DEFAULT_METRICS_NAMESPACE = "WorkosDirectorySync"


class Env:
    """Environment variable names the functions read (values are resource names/ARNs, never secrets)."""

    TABLE_NAME = "TABLE_NAME"
    EVENT_QUEUE_URL = "EVENT_QUEUE_URL"
    DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
    WORK_QUEUE_URL = "WORK_QUEUE_URL"
    CHANGE_BUS_NAME = "CHANGE_BUS_NAME"
    WEBHOOK_SECRET_ID = "WEBHOOK_SECRET_ID"
    WORKOS_API_KEY_SECRET_ID = "WORKOS_API_KEY_SECRET_ID"
    WORKOS_BASE_URL = "WORKOS_BASE_URL"
    SIGNATURE_TOLERANCE_SECONDS = "SIGNATURE_TOLERANCE_SECONDS"
    MAX_BODY_BYTES = "MAX_BODY_BYTES"
    SECRETS_MAX_AGE_SECONDS = "SECRETS_MAX_AGE_SECONDS"
    TOMBSTONE_TTL_DAYS = "TOMBSTONE_TTL_DAYS"
    TAIL_BOOTSTRAP_HOURS = "TAIL_BOOTSTRAP_HOURS"
    TAIL_IDLE_POLL_SECONDS = "TAIL_IDLE_POLL_SECONDS"
    TAIL_RUN_SECONDS = "TAIL_RUN_SECONDS"
    DIRECTORY_UNHEALTHY_MINUTES = "DIRECTORY_UNHEALTHY_MINUTES"
    OVERFLOW_QUEUE_URL = "OVERFLOW_QUEUE_URL"
    RECONCILE_PERIOD_SECONDS = "RECONCILE_PERIOD_SECONDS"
    MAX_DIRECTORY_DELETIONS_PER_WAVE = "MAX_DIRECTORY_DELETIONS_PER_WAVE"
    MAX_REMOVAL_SHARE = "MAX_REMOVAL_SHARE"


class Outputs:
    """CloudFormation output keys; the CLI resolves a deployed stack's resources through them."""

    WEBHOOK_URL = "WebhookUrl"
    TABLE_NAME = "TableName"
    EVENT_QUEUE_URL = "EventQueueUrl"
    DEAD_LETTER_QUEUE_URL = "DeadLetterQueueUrl"
    WORK_QUEUE_URL = "WorkQueueUrl"
    WORK_DEAD_LETTER_QUEUE_URL = "WorkDeadLetterQueueUrl"
    PUBLISH_DEAD_LETTER_QUEUE_URL = "PublishDeadLetterQueueUrl"
    OVERFLOW_QUEUE_URL = "OverflowQueueUrl"
    CHANGE_BUS_NAME = "ChangeBusName"
    WEBHOOK_SECRET_ARN = "WebhookSecretArn"
    WORKOS_API_KEY_SECRET_ARN = "WorkosApiKeySecretArn"
    # Only with the SQL sink (`sqlSinkSecretArn`): the connection secret, the schema and the environment label.
    SQL_SINK_SECRET_ARN = "SqlSinkSecretArn"
    SQL_SINK_SCHEMA = "SqlSinkSchema"
    SQL_SINK_ENVIRONMENT = "SqlSinkEnvironment"
