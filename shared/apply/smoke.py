"""The applier's side of the smoke test (`shared.model.smoke`): acknowledge it, write nothing of the mirror, and
record when the last one arrived."""

from __future__ import annotations

from datetime import datetime

from shared.model.events import iso
from shared.model.records import ItemKey, Record, live_version
from shared.model.smoke import SMOKE_TEST_PK, SMOKE_TEST_SK

SMOKE_TEST_KEY = ItemKey(SMOKE_TEST_PK, SMOKE_TEST_SK)


def smoke_test_record(*, event_id: str, event_type: str, created_at: datetime, at_ms: int) -> Record:
    """The last smoke test the applier acknowledged, by the same max-register as every other item."""
    return Record(
        key=SMOKE_TEST_KEY,
        vkey=live_version(created_at),
        deleted=False,
        attributes={"event_id": event_id, "event_type": event_type, "created_at": iso(created_at), "at_ms": at_ms},
    )
