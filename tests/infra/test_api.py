"""The webhook endpoint: ANY /webhooks/workos proxied to ingest, raw bytes, throttled and logged stage."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from infra.stack import DirectorySyncStack
from shared.resources import Outputs
from tests.infra.helpers import get_att_arn, logical_id, props, ref, resources

pytestmark = pytest.mark.infra


def test_rest_api_is_regional_and_passes_raw_bytes(stack: DirectorySyncStack, template: Template) -> None:
    api = props(template, stack.api.rest_api)
    assert api["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert api["BinaryMediaTypes"] == ["*/*"]  # body reaches the Lambda base64-encoded, byte for byte


def test_any_method_on_webhooks_workos_proxies_to_ingest(stack: DirectorySyncStack, template: Template) -> None:
    paths = {
        resource["Properties"]["PathPart"]: resource["Properties"]["ParentId"]
        for resource in resources(template, "AWS::ApiGateway::Resource").values()
    }
    assert paths["webhooks"] == {"Fn::GetAtt": [logical_id(stack.api.rest_api), "RootResourceId"]}
    assert set(paths) == {"webhooks", "workos"}
    methods = resources(template, "AWS::ApiGateway::Method")
    assert len(methods) == 1
    method = next(iter(methods.values()))["Properties"]
    assert method["HttpMethod"] == "ANY"  # non-POST reaches the handler, which answers 405
    assert method["ResourceId"] == ref(stack.api.webhook_resource)
    assert method["Integration"]["Type"] == "AWS_PROXY"
    assert method["Integration"]["IntegrationHttpMethod"] == "POST"
    assert get_att_arn(stack.ingest.function) in method["Integration"]["Uri"]["Fn::Join"][1]


def test_only_the_stage_may_invoke_ingest(stack: DirectorySyncStack, template: Template) -> None:
    permissions = [
        permission["Properties"]
        for permission in resources(template, "AWS::Lambda::Permission").values()
        if permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert len(permissions) == 1  # no test-invoke permission
    source = json.dumps(permissions[0]["SourceArn"])
    assert ref(stack.api.stage)["Ref"] in source
    assert source.endswith('"/*/webhooks/workos"]]}')


def test_stage_throttling_and_logging(stack: DirectorySyncStack, template: Template) -> None:
    stage = props(template, stack.api.stage)
    assert stage["StageName"] == "v1"
    assert stage["MethodSettings"] == [
        {
            "HttpMethod": "*",
            "ResourcePath": "/*",
            "ThrottlingRateLimit": 2_500,
            "ThrottlingBurstLimit": 5_000,
            "LoggingLevel": "ERROR",
            "DataTraceEnabled": False,
            "MetricsEnabled": True,
        }
    ]
    access = stage["AccessLogSetting"]
    assert access["DestinationArn"] == get_att_arn(stack.api.access_log_group)
    fields = json.loads(access["Format"])
    assert {"requestId", "ip", "requestTime", "httpMethod", "resourcePath", "status", "responseLength"} <= set(fields)
    assert fields["requestId"] == "$context.requestId"


def test_stage_logging_has_the_account_cloudwatch_role(stack: DirectorySyncStack, template: Template) -> None:
    accounts = resources(template, "AWS::ApiGateway::Account")
    assert len(accounts) == 1
    ((account_id, account),) = accounts.items()
    assert account["DeletionPolicy"] == "Retain"  # region-wide setting other APIs may rely on
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    template.has_resource(
        "AWS::IAM::Role",
        {
            "Properties": {
                "AssumeRolePolicyDocument": Match.object_like(
                    {"Statement": [Match.object_like({"Principal": {"Service": "apigateway.amazonaws.com"}})]}
                )
            },
            "DeletionPolicy": "Retain",
        },
    )
    assert role_id in resources(template, "AWS::IAM::Role")
    assert account_id in template.to_json()["Resources"][ref(stack.api.stage)["Ref"]]["DependsOn"]


def test_webhook_url_output(stack: DirectorySyncStack, template: Template) -> None:
    output = template.to_json()["Outputs"][Outputs.WEBHOOK_URL]["Value"]["Fn::Join"][1]
    assert output[0] == "https://"
    assert ref(stack.api.rest_api) in output
    assert ref(stack.api.stage) in output
    assert output[-1] == "/webhooks/workos"


def test_stack_outputs_use_the_shared_keys(stack: DirectorySyncStack, template: Template) -> None:
    outputs = template.to_json()["Outputs"]
    expected = {
        Outputs.TABLE_NAME: ref(stack.directory.table),
        Outputs.EVENT_QUEUE_URL: ref(stack.events.queue),
        Outputs.OVERFLOW_QUEUE_URL: ref(stack.overflow_queue),
        Outputs.DEAD_LETTER_QUEUE_URL: ref(stack.events.dead_letter_queue),
        Outputs.WORK_QUEUE_URL: ref(stack.work.queue),
        Outputs.CHANGE_BUS_NAME: ref(stack.change_bus.bus),
        Outputs.WEBHOOK_SECRET_ARN: ref(stack.secrets.webhook_secret),
        Outputs.WORKOS_API_KEY_SECRET_ARN: ref(stack.secrets.workos_api_key),
    }
    for key, value in expected.items():
        assert outputs[key]["Value"] == value, key
    # Every output the CLI knows, except the SQL sink's: they exist only when the stack has the sink.
    keys = {value for name, value in vars(Outputs).items() if name.isupper() and not name.startswith("SQL_SINK_")}
    assert keys <= set(outputs)
