"""`dsync local`: the whole pipeline on one machine, no AWS account, the very same handler code.

- moto's server emulates DynamoDB, SQS, Secrets Manager and EventBridge over real HTTP (`aws endpoint:`);
- `provision` creates what the CDK stack defines, from the same definitions (`shared.resources`, `shared.model.schema`);
- a local gateway turns HTTP requests into API Gateway proxy events for the ingest handler (`webhook url:`);
- pollers feed the apply, reconcile and publish handlers the way Lambda's event source mappings do;
- a scheduler plays the EventBridge rule that starts reconciles (`--reconcile-every`), when WorkOS is configured;
- the Events API tail runs whenever WorkOS is configured, polling every `--tail-every` seconds while idle.

Handlers read their configuration from the environment exactly as in Lambda, so the stack sets `AWS_ENDPOINT_URL`
and the functions' variables in this process; run one local stack per process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import boto3

from dsync.local import logs
from dsync.local.gateway import LocalGateway
from dsync.local.lambda_events import LocalContext
from dsync.local.moto_process import MotoServerProcess
from dsync.local.pollers import ChangeTap, Scheduler, SqsPoller, StreamPoller, TailPoller
from dsync.local.provision import LocalResources, provision
from shared.resources import (
    APPLY_FUNCTION,
    EVENT_BATCH_SIZE,
    LOCAL_NAMES,
    PUBLISH_FUNCTION,
    RECONCILE_FUNCTION,
    SQL_SINK_FUNCTION,
    TAIL_FUNCTION,
    Env,
)

REGION = "us-east-1"
# A failed message is retried after this many seconds locally (AWS: the queue's visibility timeout, 6 minutes).
LOCAL_RETRY_SECONDS = 2
CHANGE_TAP_QUEUE = "dsync-changes-tap"
logger = logging.getLogger("dsync.local")


@dataclass(frozen=True)
class LocalStackOptions:
    webhook_secrets: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8787
    aws_port: int = 4566
    workos_api_key: str | None = None
    workos_base_url: str | None = None
    reconcile_every_seconds: float = 0.0
    # WorkOS's clock vs ours, for versioning membership repairs (see shared.reconcile.run); None keeps the default.
    clock_skew_allowance_seconds: int | None = None
    apply_workers: int = 2
    readable_logs: bool = True
    # The Events API tail: its idle poll interval (0 = no tail), whether it starts with the stack, and how far back
    # a tail with no cursor starts reading.
    tail_every_seconds: float = 2.0
    tail_autostart: bool = True
    tail_bootstrap_hours: float = 24.0
    # The SQL sink: "embedded" (a PostgreSQL of its own, stopped with the stack) or a postgresql:// URL; None = off.
    postgres: str | None = None
    sql_schema: str = "workos_dsync"
    sql_environment: str = "default"

    @classmethod
    def beside_fake_workos(cls, fake: Any, *, secret: str, **options: Any) -> LocalStackOptions:
        """A stack on free ports against a fake WorkOS on this machine (the demo, the benchmarks): the same clock,
        so no skew to allow for, and logs left as JSON for the caller to silence."""
        return cls(
            webhook_secrets=(secret,),
            port=0,
            aws_port=0,
            workos_api_key=fake.api_key,
            workos_base_url=fake.base_url,
            clock_skew_allowance_seconds=0,
            readable_logs=False,
            **options,
        )


class LocalStack:
    def __init__(self, options: LocalStackOptions) -> None:
        self.options = options
        self._moto: MotoServerProcess | None = None
        self._gateway: LocalGateway | None = None
        self._loops: list[Any] = []
        self.resources: LocalResources | None = None
        self.aws_endpoint = ""
        self.changes: ChangeTap | None = None
        self.tail: TailPoller | None = None
        self.postgres_url: str | None = None  # the SQL sink's database, when `postgres` is set
        self.sql_sink: StreamPoller | None = None
        self._embedded_postgres: Any = None

    @property
    def webhook_url(self) -> str:
        assert self._gateway is not None, "start() first"
        return self._gateway.url

    def start(self) -> LocalStack:
        postgres_starting = None
        if self.options.postgres == "embedded":  # initdb and start (~2 s) while moto starts
            from concurrent.futures import ThreadPoolExecutor

            from dsync.local.embedded_postgres import EmbeddedPostgres

            starter = ThreadPoolExecutor(max_workers=1)
            postgres_starting = starter.submit(EmbeddedPostgres.start)
            starter.shutdown(wait=False)
        self._moto = MotoServerProcess(self.options.host, self.options.aws_port)
        self._moto.start()
        self.aws_endpoint = self._moto.endpoint
        self._configure_environment()
        self.resources = provision(
            endpoint_url=self.aws_endpoint,
            region=REGION,
            webhook_secrets=self.options.webhook_secrets,
            workos_api_key=self.options.workos_api_key,
            workos_base_url=self.options.workos_base_url,
        )
        os.environ.update(self.resources.environment())
        change_tap_url = self._tap_change_bus()
        handlers = _load_handlers(readable=self.options.readable_logs)

        self._gateway = LocalGateway(self.options.host, self.options.port, ingest=handlers["ingest"])
        self._gateway.start()
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=self.aws_endpoint)
        # The apply function drains two queues, as the stack's two mappings: the events and the overflow lane.
        apply_queues = (
            ("apply", self.resources.event_queue_url, self.options.apply_workers),
            ("overflow", self.resources.overflow_queue_url, 1),
        )
        self._loops = [
            *(
                SqsPoller(
                    name=name,
                    sqs=sqs,
                    queue_url=url,
                    region=REGION,
                    handler=handlers["apply"],
                    function=APPLY_FUNCTION,
                    batch_size=EVENT_BATCH_SIZE,
                    retry_visibility_seconds=LOCAL_RETRY_SECONDS,
                    workers=workers,
                )
                for name, url, workers in apply_queues
            ),
            SqsPoller(
                name="work",
                sqs=sqs,
                queue_url=self.resources.work_queue_url,
                region=REGION,
                handler=handlers["reconcile"],
                function=RECONCILE_FUNCTION,
                batch_size=1,
                retry_visibility_seconds=LOCAL_RETRY_SECONDS * 5,
                workers=2,
            ),
            StreamPoller(
                streams=boto3.client("dynamodbstreams", region_name=REGION, endpoint_url=self.aws_endpoint),
                stream_arn=self.resources.table_stream_arn,
                handler=handlers["publish"],
                function=PUBLISH_FUNCTION,
            ),
        ]
        self.changes = ChangeTap(sqs=sqs, queue_url=change_tap_url)
        self._loops.append(self.changes)
        if self.options.postgres:
            if postgres_starting is not None:
                self._embedded_postgres = postgres_starting.result()
            self.sql_sink = self._start_sql_sink()
            self._loops.append(self.sql_sink)
        if self.options.reconcile_every_seconds > 0 and self.reconcile_configured:
            self._loops.append(
                Scheduler(every_seconds=self.options.reconcile_every_seconds, action=self.run_scheduled_reconcile)
            )
        for loop in self._loops:
            loop.start()
        if self.tail_configured:
            self.tail = TailPoller(handler=handlers["tail"], function=TAIL_FUNCTION)
            if self.options.tail_autostart:
                self.start_tail()
        return self

    @property
    def tail_configured(self) -> bool:
        return self.reconcile_configured and self.options.tail_every_seconds > 0

    def start_tail(self) -> None:
        """Start the Events API tail (once); the demo starts it on cue, everyone else with the stack."""
        assert self.tail is not None, "the tail needs a WorkOS API key and --tail-every > 0"
        if self.tail not in self._loops:
            self._loops.insert(0, self.tail)  # stopped first: it feeds the queue the other loops drain
            self.tail.start()

    @property
    def reconcile_configured(self) -> bool:
        return bool(self.options.workos_api_key)

    def queued_messages(self) -> int:
        """Messages waiting or in flight on the event and work queues: 0 when the pipeline has nothing left to do
        (the stream aside, which the caller watches through `changes`)."""
        assert self.resources is not None, "start() first"
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=self.aws_endpoint)
        total = 0
        for url in (self.resources.event_queue_url, self.resources.overflow_queue_url, self.resources.work_queue_url):
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            total += sum(int(value) for value in attributes.values())
        return total

    def run_scheduled_reconcile(self) -> None:
        """What the EventBridge rule does: invoke the reconcile function with a scheduled event."""
        from functions.reconcile import handler as reconcile

        event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
        context = LocalContext(function_name="dsync-reconcile", timeout_seconds=RECONCILE_FUNCTION.timeout_seconds)
        reconcile.handler(event, context.as_lambda_context())

    def stop(self) -> None:
        for loop in self._loops:
            loop.stop()
        self._loops = []
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._embedded_postgres is not None:
            self._embedded_postgres.stop()
            self._embedded_postgres = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _configure_environment(self) -> None:
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.aws_endpoint,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines are for CloudWatch; locally they are noise
                "POWERTOOLS_LOG_LEVEL": "INFO",
            }
        )
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        if self.options.workos_base_url:
            os.environ[Env.WORKOS_BASE_URL] = self.options.workos_base_url
        else:
            os.environ.pop(Env.WORKOS_BASE_URL, None)
        os.environ[Env.TAIL_IDLE_POLL_SECONDS] = str(self.options.tail_every_seconds or 2.0)
        os.environ[Env.TAIL_BOOTSTRAP_HOURS] = str(self.options.tail_bootstrap_hours)
        # Short invocations so that a stop is quick; the schedule restarts the next one at once (see TailPoller).
        os.environ[Env.TAIL_RUN_SECONDS] = "20"
        if self.options.clock_skew_allowance_seconds is not None:
            os.environ["CLOCK_SKEW_ALLOWANCE_SECONDS"] = str(self.options.clock_skew_allowance_seconds)

    def _start_sql_sink(self) -> StreamPoller:
        """The SQL sink: its database (embedded or given), migrated; its secret; a second reader of the table's
        stream feeding the sink's handler, as the deployed stack's second event source mapping on the stream."""
        import psycopg

        from shared.sql.migrate import migrate

        assert self.resources is not None
        if self.options.postgres == "embedded":
            if self._embedded_postgres is None:
                from dsync.local.embedded_postgres import EmbeddedPostgres

                self._embedded_postgres = EmbeddedPostgres.start()
            self.postgres_url = self._embedded_postgres.url
        else:
            self.postgres_url = self.options.postgres
        assert self.postgres_url is not None
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            migrate(conn, self.options.sql_schema)
        secrets = boto3.client("secretsmanager", region_name=REGION, endpoint_url=self.aws_endpoint)
        arn = secrets.create_secret(Name=LOCAL_NAMES.sql_sink_secret, SecretString=self.postgres_url)["ARN"]
        os.environ.update(
            {
                "SQL_SINK_SECRET_ID": arn,
                "SQL_SCHEMA": self.options.sql_schema,
                "SQL_ENVIRONMENT": self.options.sql_environment,
            }
        )
        from functions.sql_sink import handler as sql_sink

        if self.options.readable_logs:
            logs.install()  # again: the sink's logger exists only now
        for cached in (sql_sink.settings, sql_sink.secret):
            cached.cache_clear()
        sql_sink.connections.failed()
        poller = StreamPoller(
            streams=boto3.client("dynamodbstreams", region_name=REGION, endpoint_url=self.aws_endpoint),
            stream_arn=self.resources.table_stream_arn,
            handler=sql_sink.handler,
            function=SQL_SINK_FUNCTION,
        )
        # Lambda retries a stream batch until its records expire (24 h): locally, until the stack stops.
        poller.MAX_RETRIES = 1_000_000
        return poller

    def _tap_change_bus(self) -> str:
        """A local subscriber: every change event on the bus is copied to a queue the demo and tests can read."""
        assert self.resources is not None
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=self.aws_endpoint)
        events = boto3.client("events", region_name=REGION, endpoint_url=self.aws_endpoint)
        url = sqs.create_queue(QueueName=CHANGE_TAP_QUEUE)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name="dsync-changes-tap",
            EventBusName=LOCAL_NAMES.change_bus,
            EventPattern='{"source": [{"prefix": ""}]}',
            State="ENABLED",
        )
        events.put_targets(
            Rule="dsync-changes-tap", EventBusName=LOCAL_NAMES.change_bus, Targets=[{"Id": "tap", "Arn": arn}]
        )
        return str(url)


def _load_handlers(*, readable: bool) -> dict[str, Callable[[dict[str, Any], Any], Any]]:
    """Import the Lambda handlers (after the environment is set) and drop their cached dependencies."""
    from functions.apply import handler as apply
    from functions.ingest import handler as ingest
    from functions.publish import handler as publish
    from functions.reconcile import handler as reconcile
    from functions.tail import handler as tail

    for module in (apply, ingest, publish, reconcile, tail):
        cache_clear = getattr(getattr(module, "dependencies", None), "cache_clear", None)
        if cache_clear:
            cache_clear()
    if readable:
        logs.install()
    return {
        "ingest": ingest.handler,
        "apply": apply.handler,
        "publish": publish.handler,
        "reconcile": reconcile.handler,
        "tail": tail.handler,
    }


def run_local_stack(options: LocalStackOptions) -> int:
    """Run until Ctrl-C or SIGTERM; exit 0 after a clean stop."""
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    stack = LocalStack(options)
    try:
        stack.start()
    except OSError as error:
        print(f"dsync local: cannot start: {error} (is the port in use?)", file=sys.stderr)
        return 1
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"webhook url: {stack.webhook_url}", flush=True)
        print(f"aws endpoint: {stack.aws_endpoint}", flush=True)
        if options.reconcile_every_seconds > 0 and not stack.reconcile_configured:
            print("reconcile: off (no --workos-api-key / WORKOS_API_KEY)", flush=True)
        if stack.postgres_url:
            print(f"sql sink: schema {options.sql_schema} at {_redacted(stack.postgres_url)}", flush=True)
        if stack.tail_configured:
            print(f"events api tail: polling every {options.tail_every_seconds:g}s while idle", flush=True)
        else:
            print("events api tail: off (no --workos-api-key, or --tail-every 0)", flush=True)
        while not stopping.wait(0.5):
            pass
        print("stopping...", flush=True)
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", flush=True)
    return 0


def _redacted(url: str) -> str:
    """The URL without its password (printed on a terminal)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
