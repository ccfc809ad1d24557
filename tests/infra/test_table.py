"""The directory table matches `shared.model.schema` and is protected the way a system of record must be."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from infra.stack import DirectorySyncStack
from shared.model.schema import GLOBAL_INDEXES, KEY_ATTRIBUTES, TTL_ATTRIBUTE, create_table_request
from tests.infra.helpers import get_att_arn, logical_id, props

pytestmark = pytest.mark.infra


def test_table_schema_comes_from_shared_schema(stack: DirectorySyncStack, template: Template) -> None:
    table = props(template, stack.directory.table)
    expected = create_table_request("unused")
    assert table["KeySchema"] == expected["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        expected["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )
    assert {a["AttributeName"] for a in table["AttributeDefinitions"]} == set(KEY_ATTRIBUTES)
    assert table["GlobalSecondaryIndexes"] == expected["GlobalSecondaryIndexes"]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == [i.name for i in GLOBAL_INDEXES]


def test_table_settings(stack: DirectorySyncStack, template: Template) -> None:
    table = props(template, stack.directory.table)
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": get_att_arn(stack.key),
    }
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["DeletionProtectionEnabled"] is True


def test_table_key_and_secrets_survive_stack_deletion(stack: DirectorySyncStack, template: Template) -> None:
    resources = template.to_json()["Resources"]
    for construct in (
        stack.directory.table,
        stack.key,
        stack.secrets.webhook_secret,
        stack.secrets.workos_api_key,
    ):
        resource = resources[logical_id(construct)]
        assert resource["DeletionPolicy"] == "Retain", construct.node.path
        assert resource["UpdateReplacePolicy"] == "Retain", construct.node.path


def test_both_keys_rotate(stack: DirectorySyncStack, template: Template) -> None:
    """The pipeline key (table, queues) and the secrets' own key."""
    assert props(template, stack.key)["EnableKeyRotation"] is True
    assert props(template, stack.secrets_key)["EnableKeyRotation"] is True
    template.resource_count_is("AWS::KMS::Key", 2)
