"""In-process fake of the WorkOS Directory Sync API and the dsync webhook events it would send.

``DirectoryModel`` holds the directory state and the ordered event history; ``FakeWorkOS`` serves
it over loopback HTTP in the wire format of the real API so the official SDK can be pointed at it;
``populate`` fills a directory with plausible people and groups.
"""

from dsync.fake_workos.model import (
    DIRECTORY_STATES,
    USER_STATES,
    Clock,
    DirectoryModel,
    JsonDict,
    SteppingClock,
    format_timestamp,
    parse_timestamp,
)
from dsync.fake_workos.populate import populate
from dsync.fake_workos.server import FakeWorkOS, RateLimitBody, RequestRecord

__all__ = [
    "DIRECTORY_STATES",
    "USER_STATES",
    "Clock",
    "DirectoryModel",
    "FakeWorkOS",
    "JsonDict",
    "RateLimitBody",
    "RequestRecord",
    "SteppingClock",
    "format_timestamp",
    "parse_timestamp",
    "populate",
]
