"""The EventBridge bus where the pipeline publishes normalised directory changes for downstream consumers."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from constructs import Construct

from shared.resources import CHANGE_EVENT_SOURCE


class ChangeBus(Construct):
    """A custom bus plus an archive of everything the pipeline published, so a consumer can replay what it missed.

    `archive=False` leaves the archive out: for a rehearsal on MiniStack only (`rehearsalOmitChangeArchive`,
    `infra.config`), whose CloudFormation refuses AWS::Events::Archive.
    """

    def __init__(self, scope: Construct, id_: str, *, archive_retention: Duration, archive: bool = True) -> None:
        super().__init__(scope, id_)
        self.bus = events.EventBus(self, "Bus", description="Normalised WorkOS Directory Sync change events")
        self.archive: events.Archive | None = (
            self.bus.archive(
                "Archive",
                description="Every change event the pipeline published, for replay",
                event_pattern=events.EventPattern(source=[CHANGE_EVENT_SOURCE]),
                retention=archive_retention,
            )
            if archive
            else None
        )
