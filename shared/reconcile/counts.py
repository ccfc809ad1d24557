"""A finished reconcile sets its directory's counter item (`~COUNTS`) from the partition: the backstop of the counts
the writers keep (`shared.apply.counts`), whatever those missed (a lost response, a Lambda killed between its writes
and its counter update, a directory mirrored before the counters existed).

The count and the counter's writers race: apply lanes keep writing while the partition is counted. A plain put
would overwrite their changes, or count a write twice (once in the count, once more by its ADD). So:

1. read the counter's `seq` (strongly consistent; every ADD increments it);
2. count the partition's live users (active, inactive) and groups (strongly consistent queries);
3. put the counts only if `seq` is still what step 1 read, keeping the last change's token; otherwise start over
   (at most `ATTEMPTS` times; a directory that busy keeps its maintained counts until its next reconcile).

An ADD landing between steps 1 and 3 makes step 3 fail, so no change that landed meanwhile is overwritten or lost.
What remains is a writer whose put landed before the count and whose ADD lands after step 3: it is counted twice.
Its window is the writer's own gap between its put and its counter update (the rest of one batch's parallel writes,
milliseconds; at most the apply Lambda's 60 s timeout), and it must span the whole count; the error is bounded by
the transitions of the batches in flight at that moment, and it is gone at the next correction. `reconciled_at`
says when the counts were last set, and `unobserved` restarts from 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.model import records, schema
from shared.model.records import ItemKey

ATTEMPTS = 3


class CountsTable(Protocol):
    def get_item(self, key: ItemKey) -> dict[str, Any] | None: ...
    def count_live(self, directory_id: str, prefix: str, *, consistent: bool = False) -> dict[str, int]: ...
    def set_counts(self, item: Mapping[str, Any], *, expected_seq: int | None) -> bool: ...


@dataclass(frozen=True)
class CountsCorrection:
    """What the maintained counts were (None: not counted yet) and what the partition holds."""

    before: dict[str, int | None]
    after: dict[str, int]

    @property
    def drift(self) -> dict[str, int]:
        """after - before, per count that moved (counts with no basis before count from 0)."""
        moved = {name: self.after[name] - (self.before[name] or 0) for name in records.COUNT_NAMES}
        return {name: delta for name, delta in moved.items() if delta}


def correct_counts(
    table: CountsTable, directory_id: str, *, clock: Callable[[], float] = time.time, attempts: int = ATTEMPTS
) -> CountsCorrection | None:
    """Set the directory's counts from its partition; None when writers kept changing them (every attempt raced)."""
    key = records.counts_key(directory_id)
    for _ in range(max(1, attempts)):
        current = table.get_item(key)
        users = table.count_live(directory_id, schema.USER_PREFIX, consistent=True)
        groups = table.count_live(directory_id, schema.GROUP_PREFIX, consistent=True)
        counted = {"users_active": users["active"], "users_inactive": users["inactive"], "groups": groups["live"]}
        seq = int(current.get(records.COUNTS_SEQ, 0)) if current is not None else None
        item = records.counts_item(
            directory_id,
            counted,
            seq=(seq or 0) + 1,
            last_token=str(current.get(records.COUNTS_TOKEN) or "") if current is not None else None,
            reconciled_at=datetime.fromtimestamp(clock(), tz=UTC),
        )
        if table.set_counts(item, expected_seq=seq):
            before, _ = records.readable_counts(current)
            return CountsCorrection(before, counted)
    return None
