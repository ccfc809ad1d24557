"""The SNS topic the alarms notify when context `alarmEmail` is set: encrypted with its own key, TLS only.

A dedicated key, not the pipeline key: CloudWatch must be allowed to use the topic's key, and nothing else the
pipeline encrypts (table, queues, secrets) should be reachable through that permission. `infra/grants.py` lets
CloudWatch alarms publish; the email address must confirm the subscription (SNS sends a confirmation mail).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class AlarmTopic(Construct):
    """`topic` (encrypted with `key`) with one email subscription."""

    def __init__(self, scope: Construct, id_: str, *, email: str) -> None:
        super().__init__(scope, id_)
        stack_name = Stack.of(self).stack_name
        # Notifications are transient: nothing stays encrypted under this key once the topic is gone.
        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the {stack_name} alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=f"{stack_name} alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.topic.add_subscription(subscriptions.EmailSubscription(email))
