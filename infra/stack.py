"""The pipeline stack: composes the constructs, wires the functions to them and grants each exactly what it uses.

API Gateway -> ingest -> event queue (FIFO) -> apply -> table; schedule / work queue -> reconcile -> table;
table stream -> publish -> change bus. Alarms and a dashboard watch all of it; a WAF web ACL, a source IP allow-list
and X-Ray tracing are optional (see `infra.config`). Every grant of the stack is in this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.bundling import PROJECT_ROOT, function_code
from infra.config import StackConfig
from infra.constructs.alarm_topic import AlarmTopic
from infra.constructs.change_bus import ChangeBus
from infra.constructs.dead_lettered_queue import DeadLetteredQueue, queue_name
from infra.constructs.directory_table import DirectoryTable
from infra.constructs.encrypted_queue import encrypted_queue
from infra.constructs.monitoring import AlarmThresholds, PipelineMonitoring, alarm_name_prefix
from infra.constructs.pipeline_dashboard import PipelineDashboard
from infra.constructs.pipeline_function import PipelineFunction
from infra.constructs.pipeline_secrets import PipelineSecrets
from infra.constructs.webhook_api import WebhookApi
from infra.constructs.webhook_waf import WebhookWaf
from infra.grants import QueueOnFailure, allow_cloudwatch_alarms, grant_secret_read, grant_send, grant_table_actions
from shared.model.schema import DIRECTORIES_INDEX
from shared.resources import (
    APPLY_FUNCTION,
    APPLY_MAX_CONCURRENCY,
    EVENT_BATCH_SIZE,
    EVENT_DEAD_LETTER_QUEUE,
    EVENT_QUEUE,
    FOURTEEN_DAYS,
    INGEST_FUNCTION,
    MAX_RECEIVE_COUNT,
    MAX_WEBHOOK_BODY_BYTES,
    OVERFLOW_MAX_CONCURRENCY,
    OVERFLOW_QUEUE,
    PUBLISH_FUNCTION,
    RECONCILE_FUNCTION,
    RECONCILE_MAX_CONCURRENCY,
    TAIL_FUNCTION,
    WORK_DEAD_LETTER_QUEUE,
    WORK_QUEUE,
    Env,
    FunctionSpec,
    Outputs,
    QueueSpec,
)
from shared.tail.cursor import TAIL_PK

# Failed stream batches (metadata only: shard, sequence numbers) wait here for an operator. Not used by the local
# stack, which has no stream, hence defined here rather than in shared.resources.
PUBLISH_DEAD_LETTER_QUEUE = QueueSpec(fifo=False, retention_seconds=FOURTEEN_DAYS, visibility_timeout_seconds=30)
CHANGE_ARCHIVE_RETENTION = Duration.days(30)
STREAM_BATCH_SIZE = 100
STREAM_RETRY_ATTEMPTS = 10
# Stack output keys of this stack only (the CLI reads the shared ones in `shared.resources.Outputs`).
DASHBOARD_URL_OUTPUT = "DashboardUrl"
ALARM_TOPIC_ARN_OUTPUT = "AlarmTopicArn"

# GetItem: the write rule reads an item back after a retried PutItem is refused, to tell "our earlier attempt landed
# (a lost response)" from "a newer version won" (`shared.adapters.dynamodb`); rare, but without it apply would fail.
# UpdateItem: the directory's counter item (`~COUNTS`), ADDed to by each batch's transitions (shared.apply.counts).
APPLY_TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
)
# Query lists the store's directories for a full reconcile and the key check; Scan (table only, stopping at the first
# directory item) tells whether the mirror ever held one (`shared.key_check`: an empty mirror takes any key, the
# directories index may lag).
TAIL_TABLE_ACTIONS = ("dynamodb:Query", "dynamodb:Scan")
# The tail reads and compare-and-sets its cursor and lease and parks events, all in its own partition (TAIL_PK): these
# are granted on that partition only (dynamodb:LeadingKeys).
TAIL_PARTITION_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem")
TAIL_SCHEDULE = Duration.minutes(1)
PUBLISH_TABLE_ACTIONS = ("dynamodb:BatchGetItem",)
RECONCILE_TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",  # the counter item: its repairs' transitions (shared.apply.counts)
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchWriteItem",
    "dynamodb:Scan",  # the key check's "ever held a directory" read (shared.key_check), table only
)


class DirectorySyncStack(Stack):
    """WorkOS Directory Sync pipeline. `project_root` is where `functions/` and `shared/` are bundled from."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StackConfig,
        project_root: Path = PROJECT_ROOT,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, description="WorkOS Directory Sync pipeline", **kwargs)
        self.config = config
        self._project_root = project_root

        self.key = kms.Key(
            self,
            "PipelineKey",
            description="Encrypts the directory table and the pipeline queues",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The credentials get a key of their own: whoever may use the data key (every writer, the queues' producers)
        # gets no way to the WorkOS API key or the signing secret through it.
        self.secrets_key = kms.Key(
            self,
            "SecretsKey",
            description="Encrypts the WorkOS API key and webhook signing secret",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.directory = DirectoryTable(self, "Directory", key=self.key)
        # Verified WorkOS events, one message group per directory. High-throughput FIFO (dedup and quota per group):
        # a plain FIFO queue takes 300 sends/s, below the API's default throttle.
        overflow_queue_name = queue_name(config.stack_name, "Overflow", fifo=OVERFLOW_QUEUE.fifo)
        self.events = DeadLetteredQueue(
            self,
            "Events",
            spec=EVENT_QUEUE,
            dead_letter_spec=EVENT_DEAD_LETTER_QUEUE,
            key=self.key,
            name_prefix=config.stack_name,
            other_sources=[overflow_queue_name],
            high_throughput_fifo=True,
        )
        # Batches of a directory whose partition is throttled move here (shared.apply.overflow); its dead letters join
        # the events queue's, so one alarm and one `dsync redrive` cover both.
        self.overflow_queue = encrypted_queue(
            self,
            "OverflowQueue",
            spec=OVERFLOW_QUEUE,
            key=self.key,
            queue_name=overflow_queue_name,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVE_COUNT, queue=self.events.dead_letter_queue
            ),
            high_throughput_fifo=True,
        )
        self.work = DeadLetteredQueue(
            self,
            "Work",
            spec=WORK_QUEUE,
            dead_letter_spec=WORK_DEAD_LETTER_QUEUE,
            key=self.key,
            name_prefix=config.stack_name,
        )
        self.publish_dead_letter_queue = encrypted_queue(
            self,
            "PublishDeadLetterQueue",
            spec=PUBLISH_DEAD_LETTER_QUEUE,
            key=self.key,
            # It holds the stream mapping's failure records; no queue may use it as a dead-letter queue.
            redrive_allow_policy=sqs.RedriveAllowPolicy(redrive_permission=sqs.RedrivePermission.DENY_ALL),
        )
        self.secrets = PipelineSecrets(self, "Secrets", key=self.secrets_key)
        self.change_bus = ChangeBus(
            self,
            "Changes",
            archive_retention=CHANGE_ARCHIVE_RETENTION,
            archive=not config.rehearsal_omit_change_archive,
        )
        table = self.directory.table

        self.ingest = self._function(
            "Ingest",
            INGEST_FUNCTION,
            {
                Env.EVENT_QUEUE_URL: self.events.queue.queue_url,
                Env.WEBHOOK_SECRET_ID: self.secrets.webhook_secret.secret_arn,
                Env.SIGNATURE_TOLERANCE_SECONDS: str(config.signature_tolerance_seconds),
                Env.MAX_BODY_BYTES: str(MAX_WEBHOOK_BODY_BYTES),
            },
        )
        grant_send(self.events.queue, self.ingest.role)
        grant_secret_read(self.secrets.webhook_secret, self.secrets_key, self.ingest.role)

        self.apply = self._function(
            "Apply",
            APPLY_FUNCTION,
            {
                Env.TABLE_NAME: table.table_name,
                Env.DEAD_LETTER_QUEUE_URL: self.events.dead_letter_queue.queue_url,
                Env.WORK_QUEUE_URL: self.work.queue.queue_url,
                Env.TOMBSTONE_TTL_DAYS: str(config.tombstone_ttl_days),
                Env.OVERFLOW_QUEUE_URL: self.overflow_queue.queue_url,
            },
        )
        for queue, concurrency in (
            (self.events.queue, APPLY_MAX_CONCURRENCY),
            (self.overflow_queue, OVERFLOW_MAX_CONCURRENCY),
        ):
            self.apply.function.add_event_source(
                event_sources.SqsEventSource(
                    queue,
                    batch_size=EVENT_BATCH_SIZE,
                    report_batch_item_failures=True,
                    max_concurrency=concurrency,
                )
            )
        # Apply queries directory partitions only (cascades, versions): no index.
        grant_table_actions(table, [], self.key, self.apply.role, APPLY_TABLE_ACTIONS)
        grant_send(self.events.dead_letter_queue, self.apply.role)  # permanent failures are forwarded there
        grant_send(self.work.queue, self.apply.role)
        grant_send(self.overflow_queue, self.apply.role)

        self.reconcile = self._function(
            "Reconcile",
            RECONCILE_FUNCTION,
            {
                Env.TABLE_NAME: table.table_name,
                Env.WORK_QUEUE_URL: self.work.queue.queue_url,
                Env.WORKOS_API_KEY_SECRET_ID: self.secrets.workos_api_key.secret_arn,
                Env.DIRECTORY_UNHEALTHY_MINUTES: str(config.alarm_directory_unhealthy_minutes),
                Env.RECONCILE_PERIOD_SECONDS: str(int(config.reconcile_interval.to_seconds())),
                Env.TOMBSTONE_TTL_DAYS: str(config.tombstone_ttl_days),
                Env.MAX_DIRECTORY_DELETIONS_PER_WAVE: str(config.max_directory_deletions_per_wave),
                Env.MAX_REMOVAL_SHARE: str(config.max_removal_share),
            },
        )
        self.reconcile_schedule = events.Rule(
            self,
            "ReconcileSchedule",
            description=f"Starts a reconcile of every directory ({config.reconcile_rate})",
            schedule=events.Schedule.rate(config.reconcile_interval),
            targets=[targets.LambdaFunction(self.reconcile.function)],
        )
        self.reconcile.function.add_event_source(
            event_sources.SqsEventSource(
                self.work.queue,
                batch_size=1,
                report_batch_item_failures=True,
                max_concurrency=RECONCILE_MAX_CONCURRENCY,
            )
        )
        directories = [self.directory.index_arn(DIRECTORIES_INDEX)]  # the wave's and the key check's listing
        grant_table_actions(table, directories, self.key, self.reconcile.role, RECONCILE_TABLE_ACTIONS)
        grant_send(self.work.queue, self.reconcile.role)
        grant_secret_read(self.secrets.workos_api_key, self.secrets_key, self.reconcile.role)

        self.tail = self._tail(table) if config.tail_enabled else None

        self.publish = self._function(
            "Publish",
            PUBLISH_FUNCTION,
            {Env.CHANGE_BUS_NAME: self.change_bus.bus.event_bus_name, Env.TABLE_NAME: table.table_name},
        )
        # The guard reads a membership's user and group before publishing its addition (shared.changes.guard).
        grant_table_actions(table, [], self.key, self.publish.role, PUBLISH_TABLE_ACTIONS)
        self.publish.function.add_event_source(
            event_sources.DynamoEventSource(
                table,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=STREAM_BATCH_SIZE,
                bisect_batch_on_error=True,
                retry_attempts=STREAM_RETRY_ATTEMPTS,
                report_batch_item_failures=True,
                on_failure=QueueOnFailure(self.publish_dead_letter_queue),
            )
        )
        self.change_bus.bus.grant_put_events_to(self.publish.role)

        self.api = WebhookApi(
            self,
            "WebhookApi",
            handler=self.ingest.function,
            throttle_rate_limit=config.api_throttle_rate_limit,
            throttle_burst_limit=config.api_throttle_burst_limit,
            log_retention=config.log_retention,
            allowed_source_ips=config.source_ip_allowlist,
            cloud_watch_role=config.api_gateway_cloud_watch_role,
            tracing=config.enable_tracing,
        )
        self.waf = (
            WebhookWaf(
                self,
                "WebhookWaf",
                stage=self.api.stage,
                rate_limit_per_5_minutes=config.waf_rate_limit_per_5_minutes,
                logging=config.waf_logging,
                log_retention=config.log_retention,
            )
            if config.enable_waf
            else None
        )

        self._monitoring()
        self._outputs()

    def _tail(self, table: Any) -> PipelineFunction:
        """The Events API tail, started every minute; one polls at a time by its lease (a start that finds the lease
        taken returns at once). No reserved concurrency by default: an account must keep a minimum of unreserved
        executions (often 10 or 50 on a new account), and reserving one there rolls the first deploy back;
        `tailReservedConcurrency` turns a reservation of one on (README "Prerequisites" names the quota it needs). A
        start that fails is dropped, not queued for hours of retries."""
        tail = self._function(
            "Tail",
            TAIL_FUNCTION,
            reserved_concurrency=1 if self.config.tail_reserved_concurrency else None,
            environment={
                Env.TABLE_NAME: table.table_name,
                Env.EVENT_QUEUE_URL: self.events.queue.queue_url,
                Env.WORK_QUEUE_URL: self.work.queue.queue_url,
                Env.WORKOS_API_KEY_SECRET_ID: self.secrets.workos_api_key.secret_arn,
                Env.TAIL_BOOTSTRAP_HOURS: f"{self.config.tail_bootstrap_hours:g}",
                # The tail plans a full reconcile after a refused cursor: the same deletion limits as the schedule's.
                Env.MAX_DIRECTORY_DELETIONS_PER_WAVE: str(self.config.max_directory_deletions_per_wave),
                Env.MAX_REMOVAL_SHARE: str(self.config.max_removal_share),
            },
        )
        tail.function.configure_async_invoke(max_event_age=Duration.seconds(60), retry_attempts=0)
        self.tail_schedule = events.Rule(
            self,
            "TailSchedule",
            description="Starts the Events API tail every minute (it polls for most of the minute)",
            schedule=events.Schedule.rate(TAIL_SCHEDULE),
            targets=[targets.LambdaFunction(tail.function, retry_attempts=0)],
        )
        # The tail queries only the directories index (the key check, a full reconcile's listing), no partition.
        directories = [self.directory.index_arn(DIRECTORIES_INDEX)]
        grant_table_actions(
            table,
            directories,
            self.key,
            tail.role,
            TAIL_TABLE_ACTIONS,
            query_table=False,
            partition_actions=TAIL_PARTITION_ACTIONS,
            leading_keys=[TAIL_PK],
        )
        grant_send(self.events.queue, tail.role)
        grant_send(self.work.queue, tail.role)
        grant_secret_read(self.secrets.workos_api_key, self.secrets_key, tail.role)
        return tail

    def _monitoring(self) -> None:
        """Alarms (notifying the configured topic, if any) and the dashboard."""
        self.alarm_topic: AlarmTopic | None = None
        topic: sns.ITopic | None = None
        if self.config.alarm_email:
            self.alarm_topic = AlarmTopic(self, "AlarmTopic", email=self.config.alarm_email)
            allow_cloudwatch_alarms(
                self.alarm_topic.topic, self.alarm_topic.key, alarm_name_prefix=alarm_name_prefix(self)
            )
            topic = self.alarm_topic.topic
        elif self.config.alarm_topic_arn:
            topic = sns.Topic.from_topic_arn(self, "ExistingAlarmTopic", self.config.alarm_topic_arn)
        self.alarm_topic_ref = topic

        dead_letter_queues = {
            "Event": self.events.dead_letter_queue,
            "Work": self.work.dead_letter_queue,
            "Publish": self.publish_dead_letter_queue,
        }
        self.monitoring = PipelineMonitoring(
            self,
            "Monitoring",
            ingest=self.ingest,
            apply=self.apply,
            reconcile=self.reconcile,
            publish=self.publish,
            tail=self.tail,
            event_queue=self.events.queue,
            overflow_queue=self.overflow_queue,
            dead_letter_queues=dead_letter_queues,
            api_stage=self.api.stage,
            namespace=self.config.metrics_namespace,
            thresholds=AlarmThresholds(
                ingest_5xx_minutes=self.config.alarm_ingest_5xx_minutes,
                signature_failures_per_hour=self.config.alarm_signature_failures_per_hour,
                apply_duration=Duration.seconds(self.config.alarm_apply_duration_seconds),
                queue_age=Duration.seconds(self.config.alarm_queue_age_seconds),
                reconcile_interval=self.config.reconcile_interval,
                tail_poll_age=Duration.seconds(self.config.alarm_tail_poll_age_seconds),
            ),
            alarm_topic=topic,
        )
        self.dashboard = PipelineDashboard(
            self,
            "Dashboard",
            ingest=self.ingest,
            apply=self.apply,
            reconcile=self.reconcile,
            publish=self.publish,
            tail=self.tail,
            event_queue=self.events.queue,
            overflow_queue=self.overflow_queue,
            work_queue=self.work.queue,
            dead_letter_queues=dead_letter_queues,
            api_stage=self.api.stage,
            metrics=self.monitoring.metrics,
            alarms=list(self.monitoring.alarms.values()),
        )

    def _function(
        self, id_: str, spec: FunctionSpec, environment: dict[str, str], *, reserved_concurrency: int | None = None
    ) -> PipelineFunction:
        return PipelineFunction(
            self,
            id_,
            spec=spec,
            code=function_code(spec, project_root=self._project_root, host=self.config.rehearsal_host_bundles),
            environment=environment,
            log_retention=self.config.log_retention,
            metrics_namespace=self.config.metrics_namespace,
            tracing=self.config.enable_tracing,
            reserved_concurrency=reserved_concurrency,
        )

    def _outputs(self) -> None:
        outputs = {
            Outputs.WEBHOOK_URL: (self.api.webhook_url, "POST WorkOS webhooks here"),
            Outputs.TABLE_NAME: (self.directory.table.table_name, "Directory table"),
            Outputs.EVENT_QUEUE_URL: (self.events.queue.queue_url, "Verified webhook events (FIFO)"),
            Outputs.DEAD_LETTER_QUEUE_URL: (self.events.dead_letter_queue.queue_url, "Events that failed to apply"),
            Outputs.WORK_QUEUE_URL: (self.work.queue.queue_url, "Reconcile and purge jobs"),
            Outputs.WORK_DEAD_LETTER_QUEUE_URL: (self.work.dead_letter_queue.queue_url, "Jobs that failed 5 times"),
            Outputs.PUBLISH_DEAD_LETTER_QUEUE_URL: (
                self.publish_dead_letter_queue.queue_url,
                "Stream batches the publish function could not deliver (shard and sequence numbers)",
            ),
            Outputs.OVERFLOW_QUEUE_URL: (self.overflow_queue.queue_url, "Events of throttled directories (FIFO)"),
            Outputs.CHANGE_BUS_NAME: (self.change_bus.bus.event_bus_name, "Normalised change events"),
            Outputs.WEBHOOK_SECRET_ARN: (self.secrets.webhook_secret.secret_arn, "Webhook signing secret(s)"),
            Outputs.WORKOS_API_KEY_SECRET_ARN: (self.secrets.workos_api_key.secret_arn, "WorkOS API key"),
        }
        outputs[DASHBOARD_URL_OUTPUT] = (self.dashboard.url, "CloudWatch dashboard of the pipeline")
        if self.alarm_topic_ref is not None:
            outputs[ALARM_TOPIC_ARN_OUTPUT] = (self.alarm_topic_ref.topic_arn, "SNS topic the alarms notify")
        for key, (value, description) in outputs.items():
            CfnOutput(self, key, value=value, description=description)
