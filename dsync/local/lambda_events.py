"""Build the events Lambda would hand a function, from what the local stack received (SQS messages, HTTP)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


def sqs_event(messages: Iterable[Mapping[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The SQS event source mapping's event for messages received with AttributeNames/MessageAttributeNames=All."""
    records = []
    for message in messages:
        attributes = dict(message.get("Attributes", {}))
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value.get("DataType", "String"),
                    }
                    for name, value in dict(message.get("MessageAttributes", {})).items()
                },
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def api_gateway_event(
    *, method: str, path: str, headers: Mapping[str, str], body: bytes, query: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event, as API Gateway builds it with binaryMediaTypes */* (body base64)."""
    request_id = str(uuid.uuid4())
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": headers.get("x-forwarded-for", "127.0.0.1")},
        },
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
    }


class LocalContext:
    """The Lambda context a local invocation gets: a request id and a deadline from the function's timeout."""

    def __init__(
        self,
        *,
        function_name: str,
        timeout_seconds: float,
        memory_mb: int = 512,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds
        self._cancelled = cancelled

    def get_remaining_time_in_millis(self) -> int:
        """Time left before the timeout; none once `cancelled` says so (the local stack is stopping)."""
        if self._cancelled():
            return 0
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def as_lambda_context(self) -> LambdaContext:
        """This object, typed as the Powertools context the handlers declare (it has every field they use)."""
        return cast("LambdaContext", self)


def stream_event(records: Iterable[Mapping[str, Any]], *, stream_arn: str) -> dict[str, Any]:
    """The DynamoDB Streams event source mapping's event for records read with GetRecords."""
    converted = []
    for record in records:
        dynamodb = dict(record.get("dynamodb", {}))
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = created.timestamp()
        converted.append({**record, "dynamodb": dynamodb, "eventSourceARN": stream_arn})
    return {"Records": converted}


def read_stream(stream_arn: str, *, region: str | None = None, endpoint_url: str | None = None) -> list[dict[str, Any]]:
    """Every record of a table's stream from the trim horizon, as `GetRecords` returns them (for tests and
    benchmarks; the local stack's `StreamPoller` follows the stream as it grows).

    The account-id endpoint is turned off: botocore derives `<account>.streams-ddb.<region>.amazonaws.com` from the
    stream ARN, a host moto does not intercept.
    """
    client = boto3.client(
        "dynamodbstreams",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(account_id_endpoint_mode="disabled"),
    )
    collected: list[dict[str, Any]] = []
    for shard in client.describe_stream(StreamArn=stream_arn)["StreamDescription"].get("Shards", []):
        iterator = client.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        ).get("ShardIterator")
        while iterator:
            page = client.get_records(ShardIterator=iterator)
            if not page["Records"]:
                break
            collected.extend(dict(record) for record in page["Records"])
            iterator = page.get("NextShardIterator")
    return collected
