"""The directory table's schema, named once: CDK, the local stack, the adapters and the tests all read it from here.

Single-table design, one partition per directory so that a directory's export, cascade and purge are
queries on one key. Item kinds and their keys:

| item        | pk           | sk                    | sparse index keys                                   |
|-------------|--------------|-----------------------|-----------------------------------------------------|
| directory   | DIR#<dir>    | #DIRECTORY            | directories: directory_index="DIRECTORY", sk=pk     |
|             |              |                       | lookup: lookup_key="ORG#<organization>"             |
| user        | DIR#<dir>    | USER#<user>           | users_by_email: email_key="<dir>#<lower email>"     |
|             |              |                       | lookup: lookup_key="IDP#<dir>#<idp_id>" (exact case)|
| group       | DIR#<dir>    | GROUP#<group>         |                                                     |
| membership  | DIR#<dir>    | MEMBER#<group>#<user> | memberships_by_user: member_key="<dir>#<user>"      |
| token       | DIR#<dir>    | TOKEN#<token>         | (a directory's SCIM token: suffix and times)        |
| health      | DIR#<dir>    | ~HEALTH               | (WorkOS's API state and counts, per reconcile wave) |
| reconcile   | DIR#<dir>    | ~RECONCILE#...        | (lease, checkpoint and seen-id chunks of a run)     |
| applied     | DIR#<dir>    | ~APPLIED              | (newest event apply processed: a max-register)      |
| counts      | DIR#<dir>    | ~COUNTS               | (live users active/inactive and groups, kept by the |
|             |              |                       | writers' transitions, corrected by reconcile)       |
| tail        | ~TAIL#events | #CURSOR, #LEASE       | (the Events API tail's cursor and lease)            |

Index keys are only present on live items, so tombstones never show up in index queries. `lookup` is one
overloaded index (a prefix per access pattern) because CloudFormation adds at most one index per table update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

PARTITION_KEY = "pk"
SORT_KEY = "sk"
VERSION_ATTRIBUTE = "vkey"
DELETED_ATTRIBUTE = "deleted"
TTL_ATTRIBUTE = "expires_at"

DIRECTORY_SK = "#DIRECTORY"
USER_PREFIX = "USER#"
GROUP_PREFIX = "GROUP#"
MEMBER_PREFIX = "MEMBER#"
TOKEN_PREFIX = "TOKEN#"  # noqa: S105 (a key prefix)
HEALTH_SK = "~HEALTH"
RECONCILE_PREFIX = "~RECONCILE#"
APPLIED_SK = "~APPLIED"
COUNTS_SK = "~COUNTS"
DIRECTORY_INDEX_VALUE = "DIRECTORY"

KeyType = Literal["S", "N", "B"]


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index: its name, key attributes and projection."""

    name: str
    partition_key: str
    sort_key: str
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"


DIRECTORIES_INDEX = IndexSpec(name="directories", partition_key="directory_index", sort_key=PARTITION_KEY)
USERS_BY_EMAIL_INDEX = IndexSpec(name="users_by_email", partition_key="email_key", sort_key=SORT_KEY)
MEMBERSHIPS_BY_USER_INDEX = IndexSpec(name="memberships_by_user", partition_key="member_key", sort_key=SORT_KEY)
LOOKUP_INDEX = IndexSpec(name="lookup", partition_key="lookup_key", sort_key=PARTITION_KEY)
GLOBAL_INDEXES: tuple[IndexSpec, ...] = (
    DIRECTORIES_INDEX,
    USERS_BY_EMAIL_INDEX,
    MEMBERSHIPS_BY_USER_INDEX,
    LOOKUP_INDEX,
)

# Every key attribute is a string.
KEY_ATTRIBUTES: tuple[str, ...] = (PARTITION_KEY, SORT_KEY, "directory_index", "email_key", "member_key", "lookup_key")


def directory_pk(directory_id: str) -> str:
    return f"DIR#{directory_id}"


def directory_id_of_pk(pk: str) -> str:
    return pk.removeprefix("DIR#")


def user_sk(user_id: str) -> str:
    return f"{USER_PREFIX}{user_id}"


def group_sk(group_id: str) -> str:
    return f"{GROUP_PREFIX}{group_id}"


def membership_sk(group_id: str, user_id: str) -> str:
    return f"{MEMBER_PREFIX}{group_id}#{user_id}"


def group_members_prefix(group_id: str) -> str:
    return f"{MEMBER_PREFIX}{group_id}#"


def group_of_membership_sk(sk: str) -> str:
    return sk.removeprefix(MEMBER_PREFIX).partition("#")[0]


def token_sk(token_id: str) -> str:
    return f"{TOKEN_PREFIX}{token_id}"


def idp_lookup_key(directory_id: str, idp_id: str) -> str:
    """Exact, case-sensitive: WorkOS stores the IdP's id as the IdP sent it."""
    return f"IDP#{directory_id}#{idp_id}"


def organization_lookup_key(organization_id: str) -> str:
    return f"ORG#{organization_id}"


def email_key(directory_id: str, email: str) -> str:
    return f"{directory_id}#{email.strip().lower()}"


def member_key(directory_id: str, user_id: str) -> str:
    return f"{directory_id}#{user_id}"


def create_table_request(table_name: str) -> dict[str, Any]:
    """The boto3 `create_table` request for this schema (local stack and tests); CDK builds the same from the specs."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in KEY_ATTRIBUTES],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": index.projection},
            }
            for index in GLOBAL_INDEXES
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "SSESpecification": {"Enabled": True},
    }
