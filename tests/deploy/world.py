"""A deploy of the real template on moto: `cdk synth` (bundling skipped), the bootstrap and asset publishing that
`cdk deploy` relies on, CloudFormation's create (with `tests.deploy.moto_gaps` filled), then everything read back
through the AWS APIs, as a deployed stack would be inspected: physical names, ARNs, keys, policies, functions."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from aws_cdk.assertions import Template
from botocore.loaders import create_loader
from moto.core.models import DEFAULT_ACCOUNT_ID

from tests.deploy import moto_gaps
from tests.deploy.resources import Bus, EventSource, Function, Queue, Resources, Secret, Table
from tests.infra.helpers import build_stack

REGION = "us-east-1"
BOOTSTRAP_VERSION = "30"  # what `cdk bootstrap` (v2) writes to its SSM parameter; the template requires >= 6


@dataclass(frozen=True)
class Synthesized:
    stack_name: str
    template: Mapping[str, Any]


@dataclass(frozen=True)
class Deployment:
    stack_name: str
    template: Mapping[str, Any]
    resources: Resources
    functions: Mapping[str, Function]  # by short name (ingest, apply, reconcile, tail, publish)
    event_sources: tuple[EventSource, ...]
    outputs: Mapping[str, str]


def synthesize(context: Mapping[str, Any] | None = None) -> Synthesized:
    """The template `cdk synth` writes for this context (bundling skipped: asset hashes only, no pip)."""
    stack = build_stack(context)
    return Synthesized(stack.stack_name, Template.from_stack(stack).to_json())


# One loader for every session made here: botocore parses each service model's JSON once per loader, and the
# deploy check makes a session per role and per deployment.
_LOADER = create_loader()


def session(access_key: str, secret_key: str, token: str | None = None) -> boto3.Session:
    made = boto3.Session(
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, aws_session_token=token, region_name=REGION
    )
    made._session.register_component("data_loader", _LOADER)
    return made


def admin() -> boto3.Session:
    """The deployer's session (moto's default account): bootstrap, deploy, read-back and the scenarios' set-up."""
    return session("testing", "testing")


def deploy(synthesized: Synthesized) -> Deployment:
    """Create the stack on moto (inside an active `mock_aws`) and read it back."""
    session = admin()
    _bootstrap_and_publish(session, synthesized.template)
    cloudformation = session.client("cloudformation")
    with moto_gaps.filled():
        cloudformation.create_stack(
            StackName=synthesized.stack_name,
            TemplateBody=json.dumps(synthesized.template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
    stack = cloudformation.describe_stacks(StackName=synthesized.stack_name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    created = cloudformation.list_stack_resources(StackName=synthesized.stack_name)["StackResourceSummaries"]
    assert len(created) == len(synthesized.template["Resources"]), "moto left resources of the template out"
    event_sources = _event_sources(session)
    detached = moto_gaps.detach_mapped_functions(DEFAULT_ACCOUNT_ID, REGION)
    assert detached == len(event_sources), (detached, event_sources)
    functions = _functions(session)
    return Deployment(
        stack_name=synthesized.stack_name,
        template=synthesized.template,
        resources=_resources(session),
        functions=functions,
        event_sources=tuple(_named(source, functions) for source in event_sources),
        outputs={output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])},
    )


def _bootstrap_and_publish(session: boto3.Session, template: Mapping[str, Any]) -> None:
    """`cdk bootstrap`'s version parameter and staging bucket, and `cdk deploy`'s asset upload: each function's code
    object (a placeholder archive: the handlers run in this process, from the working tree)."""
    parameter = template.get("Parameters", {}).get("BootstrapVersion", {}).get("Default")
    if parameter:
        session.client("ssm").put_parameter(Name=parameter, Value=BOOTSTRAP_VERSION, Type="String")
    s3 = session.client("s3")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("README", "the deploy check runs the handlers in process")
    for resource in template["Resources"].values():
        code = resource.get("Properties", {}).get("Code", {}) if resource["Type"] == "AWS::Lambda::Function" else {}
        if "S3Key" in code:
            bucket = _substituted(code["S3Bucket"])
            if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=code["S3Key"], Body=archive.getvalue())


def _substituted(value: Any) -> str:
    if isinstance(value, str):
        return value
    text = str(value["Fn::Sub"])
    return text.replace("${AWS::AccountId}", DEFAULT_ACCOUNT_ID).replace("${AWS::Region}", REGION)


def _functions(session: boto3.Session) -> dict[str, Function]:
    functions = {}
    for listed in session.client("lambda").list_functions()["Functions"]:
        handler = listed["Handler"]
        module = handler.rsplit(".", 1)[0]
        assert module.startswith("functions.") and module.endswith(".handler"), handler
        name = module.split(".")[1]
        functions[name] = Function(
            name=name,
            function_name=listed["FunctionName"],
            role_arn=listed["Role"],
            handler=handler,
            environment=dict(listed.get("Environment", {}).get("Variables", {})),
            timeout_seconds=int(listed["Timeout"]),
        )
    return functions


def _event_sources(deployer: boto3.Session) -> list[dict[str, Any]]:
    return [dict(m) for m in deployer.client("lambda").list_event_source_mappings()["EventSourceMappings"]]


def _named(mapping: Mapping[str, Any], functions: Mapping[str, Function]) -> EventSource:
    function = next(f for f in functions.values() if mapping["FunctionArn"].endswith(":" + f.function_name))
    on_failure = mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    return EventSource(
        function=function.name,
        source_arn=mapping["EventSourceArn"],
        batch_size=int(mapping["BatchSize"]),
        on_failure_arn=on_failure,
        max_retries=mapping.get("MaximumRetryAttempts"),
    )


def _resources(session: boto3.Session) -> Resources:
    kms = session.client("kms")

    def key_arn(key_id: str | None) -> str | None:
        return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]) if key_id else None

    def document(text: str | None) -> Mapping[str, Any] | None:
        return json.loads(text) if text else None

    sqs = session.client("sqs")
    queues = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        key = attributes.get("KmsMasterKeyId")
        queues[url] = Queue(url, attributes["QueueArn"], key_arn(key), document(attributes.get("Policy")))
    dynamodb = session.client("dynamodb")
    tables = {}
    for name in dynamodb.list_tables()["TableNames"]:
        table = dynamodb.describe_table(TableName=name)["Table"]
        sse = table.get("SSEDescription") or {}
        partition_key = next(k["AttributeName"] for k in table["KeySchema"] if k["KeyType"] == "HASH")
        key = sse.get("KMSMasterKeyArn") if sse.get("SSEType") == "KMS" else None
        tables[name] = Table(name, table["TableArn"], partition_key, key_arn(key), table.get("LatestStreamArn"))
    secretsmanager = session.client("secretsmanager")
    secrets = {}
    for entry in secretsmanager.list_secrets()["SecretList"]:
        policy = secretsmanager.get_resource_policy(SecretId=entry["ARN"]).get("ResourcePolicy")
        secret = Secret(entry["ARN"], entry["Name"], key_arn(entry.get("KmsKeyId")), document(policy))
        secrets[secret.arn] = secret
    buses = {}
    for bus in session.client("events").list_event_buses()["EventBuses"]:
        bus_key = bus.get("KmsKeyIdentifier")
        buses[bus["Name"]] = Bus(
            bus["Name"], bus["Arn"], key_arn(str(bus_key) if bus_key else None), document(bus.get("Policy"))
        )
    key_policies = {
        str(key["KeyArn"]): json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
        for key in kms.list_keys()["Keys"]
    }
    return Resources(DEFAULT_ACCOUNT_ID, REGION, queues, tables, secrets, buses, key_policies)
