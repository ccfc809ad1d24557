"""CloudWatch alarms on the pipeline, with thresholds from `StackConfig` and optional SNS notifications.

The custom metrics are the EMF metrics the functions emit through Powertools (`shared.observability`): namespace
POWERTOOLS_METRICS_NAMESPACE, dimension `service` = "dsync-<function>", some also with one extra dimension. An alarm
must name exactly that namespace and dimension set or it watches a metric that never gets data.

Defaults follow the integration guide, "Step 10: Monitoring and Observability": webhook endpoint returning 5xx for
more than 5 minutes, more than 10 signature verification failures per hour, processing time over 10 seconds. The
rest are pipeline invariants: nothing in a dead-letter queue, the event queue drained within minutes, reconcile
neither failing nor finding drift twice in a row, no enqueue or publish failures, no Lambda errors or throttles.

Counts treat missing data as not breaching: the functions emit nothing when nothing happens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.pipeline_function import PipelineFunction

COUNT_PERIOD = Duration.minutes(5)
API_5XX_PERIOD = Duration.minutes(1)
SIGNATURE_FAILURE_PERIOD = Duration.hours(1)
GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
NOT_BREACHING = cloudwatch.TreatMissingData.NOT_BREACHING
BREACHING = cloudwatch.TreatMissingData.BREACHING
TAIL_POLL_AGE = Duration.minutes(5)
# SQS refusals of the tail's pages within 5 minutes: one is retried 5 s later and is noise; three mean it lasts.
TAIL_ENQUEUE_FAILURES = 3
# WorkOS keeps events ~30 days: warn well before the tail's cursor expires (it then recovers by time).
TAIL_CURSOR_AGE = Duration.days(25)


def alarm_name_prefix(scope: Construct) -> str:
    """Every alarm of the stack is named "<stack name>-<alarm id>"; the alarm topic policy admits exactly those."""
    return f"{Stack.of(scope).stack_name}-"


# A 250,000-user update drains from the overflow queue in minutes (docs/scale.md); an hour means it is stuck.
OVERFLOW_AGE_SECONDS = 3_600


@dataclass(frozen=True)
class AlarmThresholds:
    """What counts as a problem; built from `StackConfig` in the stack."""

    ingest_5xx_minutes: int
    signature_failures_per_hour: int
    apply_duration: Duration
    queue_age: Duration
    reconcile_interval: Duration
    tail_poll_age: Duration = TAIL_POLL_AGE
    tail_cursor_age: Duration = TAIL_CURSOR_AGE


@dataclass(frozen=True)
class PipelineMetrics:
    """The functions' custom metrics, addressed exactly as Powertools emits them."""

    namespace: str

    def custom(
        self,
        function: PipelineFunction,
        metric_name: str,
        *,
        statistic: str = "Sum",
        period: Duration = COUNT_PERIOD,
        label: str | None = None,
        **dimensions: str,
    ) -> cloudwatch.Metric:
        """`metric_name` of `function` with dimensions {service} plus `dimensions` (the extra one, if any)."""
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=metric_name,
            dimensions_map={"service": function.service_name, **dimensions},
            statistic=statistic,
            period=period,
            label=label,
        )

    def by_dimension(
        self,
        function: PipelineFunction,
        metric_name: str,
        dimension: str,
        *,
        statistic: str = "Sum",
        period: Duration = COUNT_PERIOD,
    ) -> cloudwatch.MathExpression:
        """One line per value of `dimension` (Reason, EventType, Kind, ...), found with a SEARCH expression, so
        values the dashboard does not know of (a new rejection reason, a new repair kind) still show up."""
        schema = f'{{"{self.namespace}",{dimension},service}}'
        query = f'{schema} MetricName="{metric_name}" service="{function.service_name}"'
        return cloudwatch.MathExpression(
            expression=f"SEARCH('{query}', '{statistic}', {int(period.to_seconds())})",
            label=f"${{PROP('Dim.{dimension}')}}",
            period=period,
        )


class PipelineMonitoring(Construct):
    """One alarm per failure mode (`alarms`, keyed by construct id); all notify `alarm_topic` if given."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        ingest: PipelineFunction,
        apply: PipelineFunction,
        reconcile: PipelineFunction,
        publish: PipelineFunction,
        tail: PipelineFunction | None,
        event_queue: sqs.IQueue,
        overflow_queue: sqs.IQueue,
        dead_letter_queues: Mapping[str, sqs.IQueue],
        api_stage: apigateway.Stage,
        namespace: str,
        thresholds: AlarmThresholds,
        alarm_topic: sns.ITopic | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.metrics = PipelineMetrics(namespace)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._action = cloudwatch_actions.SnsAction(alarm_topic) if alarm_topic is not None else None
        metrics = self.metrics

        # --- Webhooks ---
        minutes = thresholds.ingest_5xx_minutes
        self._alarm(
            "Ingest5xx",
            api_stage.metric_server_error(period=API_5XX_PERIOD, statistic="Sum"),
            threshold=1,
            evaluation_periods=minutes,
            description=f"The webhook endpoint answered 5xx in each of the last {minutes} minutes: WorkOS is "
            "retrying deliveries. Check the ingest function's errors and EnqueueFailures.",
            runbook="Ingest 5xx",
        )
        self._alarm(
            "SignatureFailures",
            metrics.custom(ingest, "SignatureFailures", period=SIGNATURE_FAILURE_PERIOD),
            threshold=thresholds.signature_failures_per_hour,
            comparison=GT,
            description=f"More than {thresholds.signature_failures_per_hour} webhook signature failures in an hour: "
            "a rolled or mistyped signing secret, or someone probing the endpoint.",
            runbook="Signature failures",
        )
        self._alarm(
            "EnqueueFailures",
            metrics.custom(ingest, "EnqueueFailures"),
            threshold=1,
            description="Ingest could not queue a verified event and answered 5xx; WorkOS will retry it.",
            runbook="Ingest 5xx",
        )

        # --- Queues ---
        for label, queue in dead_letter_queues.items():
            self._alarm(
                f"{label}DeadLetterQueue",
                queue.metric_approximate_number_of_messages_visible(period=COUNT_PERIOD, statistic="Maximum"),
                threshold=1,
                description=f"Messages are waiting in the {label.lower()} dead-letter queue: inspect them, fix the "
                "cause, then redrive.",
                runbook="DLQ not empty",
            )
        queue_age = int(thresholds.queue_age.to_seconds())
        self._alarm(
            "EventQueueAge",
            event_queue.metric_approximate_age_of_oldest_message(period=COUNT_PERIOD, statistic="Maximum"),
            threshold=queue_age,
            comparison=GT,
            description=f"The oldest event in the event queue is older than {queue_age} s: apply is failing, "
            "throttled or a directory's message group is blocked.",
            runbook="Queue age over 5 minutes",
        )
        self._alarm(
            "OverflowQueueAge",
            overflow_queue.metric_approximate_age_of_oldest_message(period=COUNT_PERIOD, statistic="Maximum"),
            threshold=OVERFLOW_AGE_SECONDS,
            comparison=GT,
            description="The oldest event in the overflow queue is older than an hour: a throttled directory is "
            "not draining (its applier fails, or several giants share the lane).",
            runbook="A large directory is in the overflow queue",
        )

        # --- Apply ---
        apply_ms = thresholds.apply_duration.to_milliseconds()
        self._alarm(
            "ApplyDuration",
            apply.function.metric_duration(period=COUNT_PERIOD, statistic="Maximum"),
            threshold=apply_ms,
            comparison=GT,
            description=f"An apply batch took longer than {apply_ms / 1000:g} s (integration guide: webhook "
            "processing time over 10 s).",
            runbook="Apply duration over 10 seconds",
        )

        # --- Reconcile ---
        self._alarm(
            "ReconcileFailures",
            metrics.custom(reconcile, "ReconcileFailures"),
            threshold=1,
            description="A directory reconcile failed (WorkOS API error, missing API key or a table error).",
            runbook="Drift found twice in a row / reconcile failing",
        )
        self._alarm(
            "ReconcileRefused",
            metrics.custom(reconcile, "ReconcileRefused"),
            threshold=1,
            description="Reconcile refused to delete without positive evidence: the WorkOS API key sees none of the "
            "directories or organizations the mirror holds (most likely a key of another environment), or WorkOS "
            "lists a directory it answers 404 for. Nothing was written; check the key with dsync check-key.",
            runbook="Reconcile refused or deletions held",
        )
        self._alarm(
            "ReconcileDeletionsHeld",
            metrics.custom(reconcile, "ReconcileDeletionsHeld"),
            threshold=1,
            description="Reconcile found more directories, users or groups gone than one run may delete on its own "
            "(maxDirectoryDeletionsPerWave, maxRemovalShare). Nothing was deleted: an operator confirms with "
            "dsync reconcile --confirm-deletions.",
            runbook="Reconcile refused or deletions held",
        )
        self._alarm(
            "ReconcileItemsSkipped",
            metrics.custom(reconcile, "ReconcileItemsSkipped"),
            threshold=1,
            description="Reconcile listed an object it can never store (invalid, or over DynamoDB's item size): it "
            "was skipped by id and the rest of the directory reconciled. Its log line names the id and why.",
            runbook="Reconcile refused or deletions held",
        )
        interval = thresholds.reconcile_interval
        self._alarm(
            "ReconcileDrift",
            metrics.custom(reconcile, "ReconcileDriftFound", statistic="Maximum", period=interval),
            threshold=1,
            evaluation_periods=2,
            description="Reconcile repaired drift in two consecutive reconcile periods: webhooks are being lost or "
            "misapplied, not just delayed.",
            runbook="Drift found twice in a row / reconcile failing",
        )
        self._alarm(
            "DirectoryUnhealthy",
            metrics.custom(reconcile, "DirectoriesUnhealthyTooLong", statistic="Maximum", period=interval),
            threshold=1,
            description="WorkOS has reported a directory invalid_credentials, unlinked or validating for longer than "
            "alarmDirectoryUnhealthyMinutes: its IdP connection needs the customer (the wave's log names it).",
            runbook="Directory unhealthy",
        )

        # --- Changes ---
        self._alarm(
            "ChangeEventsFailed",
            metrics.custom(publish, "ChangeEventsFailed"),
            threshold=1,
            description="Change events could not be put on the change bus; the stream batch is retried and then "
            "lands in the publish dead-letter queue.",
            runbook="Change events missing or late",
        )

        if tail is not None:
            self._tail_alarms(tail, thresholds)

        # --- Every function ---
        for function in (ingest, apply, reconcile, publish):
            name = function.spec.name.capitalize()
            self._alarm(
                f"{name}Errors",
                function.function.metric_errors(period=COUNT_PERIOD, statistic="Sum"),
                threshold=1,
                description=f"The {function.spec.name} function failed (unhandled error or timeout).",
            )
            self._alarm(
                f"{name}Throttles",
                function.function.metric_throttles(period=COUNT_PERIOD, statistic="Sum"),
                threshold=1,
                description=f"The {function.spec.name} function was throttled (account concurrency exhausted).",
            )

    def _tail_alarms(self, tail: PipelineFunction, thresholds: AlarmThresholds) -> None:
        metrics = self.metrics
        poll_age = int(thresholds.tail_poll_age.to_seconds())
        self._alarm(
            "TailPollAge",
            metrics.custom(tail, "TailPollAgeSeconds", statistic="Maximum", period=Duration.minutes(1)),
            threshold=poll_age,
            comparison=GT,
            evaluation_periods=5,
            missing=BREACHING,  # a tail that does not run reports nothing: that is the failure
            description=f"The Events API tail has not read WorkOS successfully for more than {poll_age} s: lost "
            "webhooks are not being repaired until the next reconcile.",
            runbook="Tail poll age high",
        )
        cursor_days = int(thresholds.tail_cursor_age.to_days())
        self._alarm(
            "TailCursorAge",
            metrics.custom(tail, "TailCursorAgeSeconds", statistic="Maximum", period=Duration.hours(1)),
            threshold=int(thresholds.tail_cursor_age.to_seconds()),
            comparison=GT,
            description=f"The tail's cursor event is more than {cursor_days} days old, near WorkOS's ~30-day "
            "event retention.",
            runbook="Tail cursor refused or near retention",
        )
        self._alarm(
            "TailCursorRefused",
            metrics.custom(tail, "TailCursorRefused"),
            threshold=1,
            description="WorkOS refused the tail's cursor: it re-read by time and queued a full reconcile.",
            runbook="Tail cursor refused or near retention",
        )
        self._alarm(
            "TailEnqueueFailures",
            metrics.custom(tail, "TailEnqueueFailures"),
            threshold=TAIL_ENQUEUE_FAILURES,
            description=f"SQS refused the tail's pages at least {TAIL_ENQUEUE_FAILURES} times in 5 minutes: the tail "
            "re-reads the same page and its cursor does not move until SQS accepts it (poll age grows too).",
            runbook="Tail poll age high",
        )
        self._alarm(
            "TailEventsParked",
            metrics.custom(tail, "TailEventsParked"),
            threshold=1,
            description="The tail parked an event too large for any SQS message (a reference in the table, its log "
            "names it) and moved on: reconcile its directory to apply what it carried.",
            runbook="Tail poll age high",
        )
        self._alarm(
            "TailEnvironmentChanged",
            metrics.custom(tail, "TailEnvironmentChanged"),
            threshold=1,
            description="WorkOS refused the tail's cursor and the API key sees none of the directories the mirror "
            "holds: most likely a key of another WorkOS environment. The tail stopped without queuing a reconcile "
            "and kept its cursor; check the key with dsync check-key.",
            runbook="Tail cursor refused or near retention",
        )
        self._alarm(
            "TailAuthFailures",
            metrics.custom(tail, "TailAuthFailures"),
            threshold=1,
            description="WorkOS rejected the API key the tail uses (401/403).",
            runbook="Tail poll age high",
        )
        self._alarm(
            "TailErrors",
            tail.function.metric_errors(period=COUNT_PERIOD, statistic="Sum"),
            threshold=1,
            description="The tail function failed (unhandled error or timeout).",
            runbook="Tail poll age high",
        )

    def _alarm(
        self,
        id_: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        comparison: cloudwatch.ComparisonOperator = GTE,
        evaluation_periods: int = 1,
        runbook: str | None = None,
        missing: cloudwatch.TreatMissingData = NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        if runbook:
            description += f' Runbook (docs/runbook.md): "{runbook}".'
        alarm = cloudwatch.Alarm(
            self,
            id_,
            alarm_name=f"{alarm_name_prefix(self)}{id_}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            treat_missing_data=missing,
        )
        if self._action is not None:
            alarm.add_alarm_action(self._action)
            alarm.add_ok_action(self._action)
        self.alarms[id_] = alarm
        return alarm
