"""`dsync sql verify` and the scheduled check: per directory, the mirror's live rows against the sink's.

For each directory (the mirror's live ones and every one the sink holds) both sides are read in the export's
shape (`shared.read.reader.readable_state` and `shared.sql.reader.SinkReader`, timestamps as instants, tokens
aside) and compared by counts (users active and inactive, groups, memberships) and a checksum (sha256 of the
sorted document). A directory that differs is read again after `settle_seconds`, so a change still on its way
through the feed is not reported; what still differs is reported with what differs: the ids missing from the sink,
the ids the sink has and the mirror does not, and the ids whose fields differ (with the field names).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from shared.read.reader import readable_state
from shared.sql.mirror import MirrorTable, live_directory_ids
from shared.sql.reader import SinkReader, comparable

SAMPLE = 20  # ids listed per kind of difference


def counts(document: Mapping[str, Any]) -> dict[str, int]:
    users = document["users"]
    return {
        "users_active": sum(1 for user in users if user.get("state") == "active"),
        "users_inactive": sum(1 for user in users if user.get("state") != "active"),
        "groups": len(document["groups"]),
        "memberships": len(document["memberships"]),
    }


def checksum(document: Mapping[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _by_id(entries: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(entry["id"]): entry for entry in entries}


def differences(mirror: Mapping[str, Any], sink: Mapping[str, Any]) -> dict[str, Any]:
    """What differs, by kind: ids missing from the sink, extra in the sink, and changed (with the fields)."""
    found: dict[str, Any] = {}
    if mirror["directory"] != sink["directory"]:
        left, right = mirror["directory"] or {}, sink["directory"] or {}
        found["directory"] = sorted(k for k in set(left) | set(right) if left.get(k) != right.get(k)) or ["presence"]
    for kind in ("users", "groups"):
        left, right = _by_id(mirror[kind]), _by_id(sink[kind])
        missing = sorted(set(left) - set(right))
        extra = sorted(set(right) - set(left))
        changed = {
            entity_id: sorted(
                k
                for k in set(left[entity_id]) | set(right[entity_id])
                if left[entity_id].get(k) != right[entity_id].get(k)
            )
            for entity_id in sorted(set(left) & set(right))
            if left[entity_id] != right[entity_id]
        }
        if missing or extra or changed:
            found[kind] = {
                "missing_in_sink": missing[:SAMPLE],
                "extra_in_sink": extra[:SAMPLE],
                "changed": dict(list(changed.items())[:SAMPLE]),
                "count": len(missing) + len(extra) + len(changed),
            }
    left_m = {(m["group_id"], m["user_id"]) for m in mirror["memberships"]}
    right_m = {(m["group_id"], m["user_id"]) for m in sink["memberships"]}
    if left_m != right_m:
        found["memberships"] = {
            "missing_in_sink": [list(pair) for pair in sorted(left_m - right_m)[:SAMPLE]],
            "extra_in_sink": [list(pair) for pair in sorted(right_m - left_m)[:SAMPLE]],
            "count": len(left_m ^ right_m),
        }
    return found


@dataclass
class DirectoryVerdict:
    directory_id: str
    mirror_counts: dict[str, int]
    sink_counts: dict[str, int]
    mirror_checksum: str
    sink_checksum: str
    differences: dict[str, Any] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return self.mirror_checksum == self.sink_checksum

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "directory_id": self.directory_id,
            "equal": self.equal,
            "mirror": {"counts": self.mirror_counts, "checksum": self.mirror_checksum},
            "sink": {"counts": self.sink_counts, "checksum": self.sink_checksum},
        }
        if not self.equal:
            document["differences"] = self.differences
        return document


@dataclass
class VerifyReport:
    schema: str
    environment: str
    directories: list[DirectoryVerdict]

    @property
    def different(self) -> list[DirectoryVerdict]:
        return [verdict for verdict in self.directories if not verdict.equal]

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "environment": self.environment,
            "checked": len(self.directories),
            "equal": len(self.directories) - len(self.different),
            "different": len(self.different),
            "directories": [verdict.as_dict() for verdict in self.directories],
        }


def _compare(mirror: MirrorTable, reader: SinkReader, directory_id: str) -> DirectoryVerdict:
    left = comparable(readable_state(directory_id, mirror.query_partition(directory_id, "")))
    right = reader.export(directory_id)
    verdict = DirectoryVerdict(directory_id, counts(left), counts(right), checksum(left), checksum(right))
    if not verdict.equal:
        verdict.differences = differences(left, right)
    return verdict


def verify(
    mirror: MirrorTable,
    conn: psycopg.Connection[Any],
    *,
    schema: str,
    environment: str,
    directory_id: str | None = None,
    settle_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyReport:
    reader = SinkReader(conn, schema=schema, environment=environment)
    if directory_id is not None:
        directory_ids = [directory_id]
    else:
        directory_ids = sorted(set(live_directory_ids(mirror)) | set(reader.directory_ids()))
    verdicts = {d: _compare(mirror, reader, d) for d in directory_ids}
    unsettled = [d for d, verdict in verdicts.items() if not verdict.equal]
    if unsettled and settle_seconds > 0:
        sleep(settle_seconds)
        for directory in unsettled:
            verdicts[directory] = _compare(mirror, reader, directory)
    return VerifyReport(schema=schema, environment=environment, directories=[verdicts[d] for d in directory_ids])
