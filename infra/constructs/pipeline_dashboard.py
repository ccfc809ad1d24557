"""One CloudWatch dashboard for the pipeline, in the order a webhook travels: webhooks, queues, apply, reconcile,
changes, with the status of every alarm on top.

Breakdowns by an extra dimension (rejection reason, event type, repair kind, run status, detail type) use SEARCH
expressions, so a value the dashboard does not know of still shows up as its own line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.monitoring import COUNT_PERIOD, PipelineMetrics
from infra.constructs.pipeline_function import PipelineFunction

WIDTH = 24  # the dashboard grid
GRAPH_HEIGHT = 6


def _graph(title: str, left: Sequence[cloudwatch.IMetric], *, width: int = 8) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=list(left), width=width, height=GRAPH_HEIGHT, period=COUNT_PERIOD)


def _heading(text: str) -> cloudwatch.TextWidget:
    return cloudwatch.TextWidget(markdown=f"## {text}", width=WIDTH, height=1)


class PipelineDashboard(Construct):
    """`dashboard`, named "<stack>-<region>" (dashboard names are per account, not per region); `url` opens it."""

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
        work_queue: sqs.IQueue,
        dead_letter_queues: Mapping[str, sqs.IQueue],
        api_stage: apigateway.Stage,
        metrics: PipelineMetrics,
        alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{stack.stack_name}-{stack.region}",
            default_interval=Duration.hours(24),
        )
        self.url = (
            f"https://{stack.region}.console.aws.amazon.com/cloudwatch/home?region={stack.region}"
            f"#dashboards/dashboard/{self.dashboard.dashboard_name}"
        )
        m = metrics
        functions = (ingest, apply, reconcile, publish)

        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown="# WorkOS Directory Sync pipeline\n"
                "API Gateway → ingest → event queue (FIFO) → apply → table; schedule / work queue → reconcile; "
                "table stream → publish → change bus.\n\n"
                f"Custom metrics: namespace `{metrics.namespace}`, dimension `service` = "
                + ", ".join(f"`{fn.service_name}`" for fn in functions),
                width=8,
                height=GRAPH_HEIGHT,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=list(alarms),
                width=16,
                height=GRAPH_HEIGHT,
                sort_by=cloudwatch.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP,
            ),
        )

        self.dashboard.add_widgets(_heading("Webhooks"))
        self.dashboard.add_widgets(
            _graph(
                "Webhooks",
                [m.custom(ingest, name) for name in ("WebhooksAccepted", "WebhooksIgnored", "WebhooksRejected")],
            ),
            _graph("Rejected by reason", [m.by_dimension(ingest, "WebhooksRejected", "Reason")]),
            _graph(
                "Signature and enqueue failures",
                [
                    m.custom(ingest, name)
                    for name in ("SignatureFailures", "EnqueueFailures", "WebhookSecretNotConfigured")
                ],
            ),
        )
        self.dashboard.add_widgets(
            _graph(
                "API Gateway requests",
                [
                    api_stage.metric_count(statistic="Sum", label="Requests"),
                    api_stage.metric_client_error(statistic="Sum", label="4XX"),
                    api_stage.metric_server_error(statistic="Sum", label="5XX"),
                ],
                width=12,
            ),
            _graph(
                "API latency (ms)",
                [
                    api_stage.metric_latency(statistic="p50", label="Latency p50"),
                    api_stage.metric_latency(statistic="p99", label="Latency p99"),
                    api_stage.metric_integration_latency(statistic="p99", label="Integration p99"),
                ],
                width=12,
            ),
        )

        self.dashboard.add_widgets(_heading("Queues"))
        self.dashboard.add_widgets(
            _graph(
                "Messages visible / in flight",
                [
                    event_queue.metric_approximate_number_of_messages_visible(statistic="Maximum", label="Events"),
                    event_queue.metric_approximate_number_of_messages_not_visible(
                        statistic="Maximum", label="Events in flight"
                    ),
                    overflow_queue.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", label="Overflow (throttled directories)"
                    ),
                    work_queue.metric_approximate_number_of_messages_visible(statistic="Maximum", label="Work"),
                    work_queue.metric_approximate_number_of_messages_not_visible(
                        statistic="Maximum", label="Work in flight"
                    ),
                ],
            ),
            _graph(
                "Oldest message age (s)",
                [
                    event_queue.metric_approximate_age_of_oldest_message(statistic="Maximum", label="Events"),
                    overflow_queue.metric_approximate_age_of_oldest_message(statistic="Maximum", label="Overflow"),
                    work_queue.metric_approximate_age_of_oldest_message(statistic="Maximum", label="Work"),
                ],
            ),
            _graph(
                "Dead-letter queue depth",
                [
                    queue.metric_approximate_number_of_messages_visible(statistic="Maximum", label=label)
                    for label, queue in dead_letter_queues.items()
                ],
            ),
        )

        self.dashboard.add_widgets(_heading("Apply"))
        self.dashboard.add_widgets(
            _graph(
                "Events",
                [
                    m.custom(apply, name)
                    for name in ("EventsApplied", "EventsNoop", "EventsFailed", "EventsDeadLettered")
                ],
            ),
            _graph("Applied by event type", [m.by_dimension(apply, "EventsApplied", "EventType")]),
            _graph("Ignored by event type", [m.by_dimension(apply, "EventsIgnored", "EventType")]),
        )
        self.dashboard.add_widgets(
            _graph(
                "Apply lag: event created → applied (s)",
                [m.custom(apply, "ApplyLag", statistic=stat, label=stat) for stat in ("p50", "p99", "Maximum")],
            ),
            _graph(
                "Apply batch duration (ms)",
                [m.custom(apply, "BatchDuration", statistic=stat, label=stat) for stat in ("p50", "p99", "Maximum")],
            ),
            _graph(
                "Apply Lambda duration (ms)",
                [
                    apply.function.metric_duration(statistic=stat, label=stat, period=COUNT_PERIOD)
                    for stat in ("p50", "p99", "Maximum")
                ],
            ),
        )
        self.dashboard.add_widgets(
            _graph(
                "Lambda errors",
                [fn.function.metric_errors(statistic="Sum", label=fn.spec.name) for fn in functions],
                width=12,
            ),
            _graph(
                "Lambda throttles",
                [fn.function.metric_throttles(statistic="Sum", label=fn.spec.name) for fn in functions],
                width=12,
            ),
        )

        self.dashboard.add_widgets(_heading("Reconcile"))
        self.dashboard.add_widgets(
            _graph("Runs by status", [m.by_dimension(reconcile, "ReconcileRuns", "Status")], width=6),
            _graph(
                "Drift",
                [
                    m.custom(reconcile, "ReconcileDrift", label="Drifted items"),
                    m.custom(reconcile, "ReconcileDriftFound", statistic="Maximum", label="Run found drift"),
                ],
                width=6,
            ),
            _graph("Repairs by kind", [m.by_dimension(reconcile, "ReconcileRepairs", "Kind")], width=6),
            _graph(
                "WorkOS API requests",
                [
                    m.custom(reconcile, "ReconcileRequests", label="Requests"),
                    m.custom(reconcile, "ReconcileRateLimited", label="429 rate limited"),
                ],
                width=6,
            ),
        )
        self.dashboard.add_widgets(
            _graph(
                "Reconcile duration (s)",
                [
                    m.custom(reconcile, "ReconcileDuration", statistic="p50", label="Run p50"),
                    m.custom(reconcile, "ReconcileDuration", statistic="Maximum", label="Run max"),
                    m.custom(reconcile, "InvocationDuration", statistic="Maximum", label="Invocation max"),
                ],
            ),
            _graph(
                "Reconcile failures",
                [
                    m.custom(reconcile, "ReconcileFailures", label="Failed runs"),
                    m.custom(reconcile, "ReconcileNotConfigured", label="API key not configured"),
                    reconcile.function.metric_errors(statistic="Sum", label="Lambda errors"),
                ],
            ),
            _graph(
                "Jobs",
                [
                    m.custom(reconcile, "ReconcileJobsPlanned", label="Jobs planned"),
                    m.custom(reconcile, "PurgedItems", label="Items purged"),
                ],
            ),
        )

        if tail is not None:
            self._tail(tail, m)

        self.dashboard.add_widgets(_heading("Changes"))
        self.dashboard.add_widgets(
            _graph(
                "Change events",
                [
                    m.custom(publish, name)
                    for name in ("ChangeEventsPublished", "ChangeEventsFailed", "StreamRecordsFailed")
                ],
            ),
            _graph("Published by detail type", [m.by_dimension(publish, "ChangeEventsPublished", "DetailType")]),
            _graph(
                "Publish batch duration (ms)",
                [m.custom(publish, "BatchDuration", statistic=stat, label=stat) for stat in ("p50", "p99", "Maximum")],
            ),
        )

    def _tail(self, tail: PipelineFunction, m: PipelineMetrics) -> None:
        """The Events API tail: is it reading (poll age), keeping up (lag), and what it found."""
        minute = Duration.minutes(1)
        self.dashboard.add_widgets(_heading("Events API tail"))
        self.dashboard.add_widgets(
            _graph(
                "Poll age and lag (s)",
                [
                    m.custom(tail, "TailPollAgeSeconds", statistic="Maximum", period=minute, label="Poll age"),
                    m.custom(tail, "TailLagSeconds", statistic="p95", period=minute, label="Lag p95"),
                    m.custom(tail, "TailLagSeconds", statistic="Maximum", period=minute, label="Lag max"),
                ],
                width=6,
            ),
            _graph(
                "Events",
                [
                    m.custom(tail, "TailEventsRead", label="Read"),
                    m.custom(tail, "TailEventsEnqueued", label="Enqueued"),
                    m.custom(tail, "TailPolls", label="Requests"),
                    m.custom(tail, "TailFullPages", label="Full pages"),
                ],
                width=6,
            ),
            _graph(
                "Problems",
                [
                    m.custom(tail, "TailRateLimited", label="429"),
                    m.custom(tail, "TailUnavailable", label="5xx / unreachable"),
                    m.custom(tail, "TailAuthFailures", label="API key rejected"),
                    m.custom(tail, "TailEnqueueFailures", label="SQS refused"),
                    m.custom(tail, "TailCursorRefused", label="Cursor refused"),
                ],
                width=6,
            ),
            _graph("Runs by status", [m.by_dimension(tail, "TailRuns", "Status")], width=6),
        )
