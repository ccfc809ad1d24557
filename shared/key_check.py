"""What a WorkOS API key sees, set against what the mirror holds: the evidence every deletion by reconcile needs.

A WorkOS API key belongs to one environment (staging, production). Under a key of another environment every
directory the mirror holds answers 404, which is exactly what a deleted directory answers. So a 404 alone is never
evidence: a directory is gone only if a complete, successful `GET /directories` listing under the same key does not
contain it *and* contains at least one directory or organization this mirror already knows (the key is of the
mirror's environment). Only a mirror that has never held a directory (no directory item at all, live or tombstone,
read strongly consistently from the table, not from the lagging `directories` index) takes any key as its own: a
mirror whose only directory was deleted, or whose first directory is not indexed yet, still needs the evidence.

The same view serves three callers: reconcile before it tombstones a directory (`shared.reconcile.phases`), the
Events API tail when WorkOS refuses its cursor (an environment change, not an expiry, when the key sees none of
the mirror), and `dsync check-key`, which an operator runs before rotating the key.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol


class DirectoryListing(Protocol):
    def list_directories(self) -> Iterator[dict[str, Any]]: ...


class MirrorDirectories(Protocol):
    def live_directories(self) -> list[tuple[str, str | None]]:
        """(directory id, organization id) of every live directory the mirror holds."""
        ...

    def holds_any_directory(self) -> bool:
        """Whether the table holds any directory's item at all (tombstones included); strongly consistent."""
        ...


@dataclass(frozen=True)
class KeyView:
    """The key's directories against the mirror's live ones."""

    known: tuple[str, ...]  # held by the mirror and listed under the key
    missing: tuple[str, ...]  # held by the mirror, not listed under the key
    unknown: tuple[str, ...]  # listed under the key, not held by the mirror
    shared_organizations: tuple[str, ...]  # organizations of both (a directory may be re-created in one)
    listed: frozenset[str]
    mirror_ever_held: bool = True  # the table holds a directory's item (live or tombstone): there is a mirror

    @property
    def same_environment(self) -> bool:
        """The key sees something the mirror knows, or there is no mirror yet to lose."""
        return bool(self.known or self.shared_organizations) or not (self.missing or self.mirror_ever_held)

    def lists(self, directory_id: str) -> bool:
        return directory_id in self.listed

    def as_dict(self) -> dict[str, Any]:
        return {
            "same_environment": self.same_environment,
            "known": list(self.known),
            "missing": list(self.missing),
            "unknown": list(self.unknown),
            "shared_organizations": list(self.shared_organizations),
        }


def compare(
    listed: Iterable[dict[str, Any]], mirror: Iterable[tuple[str, str | None]], *, mirror_ever_held: bool
) -> KeyView:
    listing = list(listed)
    listed_ids = {str(directory["id"]) for directory in listing}
    listed_organizations = {str(d["organization_id"]) for d in listing if d.get("organization_id")}
    held = dict(mirror)
    held_organizations = {organization for organization in held.values() if organization}
    return KeyView(
        known=tuple(sorted(listed_ids & held.keys())),
        missing=tuple(sorted(held.keys() - listed_ids)),
        unknown=tuple(sorted(listed_ids - held.keys())),
        shared_organizations=tuple(sorted(listed_organizations & held_organizations)),
        listed=frozenset(listed_ids),
        mirror_ever_held=mirror_ever_held or bool(held),
    )


def mirror_view(listed: Iterable[dict[str, Any]], mirror: MirrorDirectories) -> KeyView:
    """`compare` against the mirror; the consistent "ever held a directory" read only when the index shows none."""
    live = mirror.live_directories()
    return compare(listed, live, mirror_ever_held=bool(live) or mirror.holds_any_directory())


class KeyCheck:
    """Lists the key's directories (the whole listing: an error raises, it is never taken as empty) and compares."""

    def __init__(self, api: DirectoryListing, mirror: MirrorDirectories) -> None:
        self._api = api
        self._mirror = mirror

    def view(self) -> KeyView:
        return mirror_view(self._api.list_directories(), self._mirror)

    def mirror_knows_any(self, directory_ids: Collection[str]) -> bool:
        """Whether the mirror holds one of these live directories, or has never held any (the table only)."""
        live = {directory_id for directory_id, _ in self._mirror.live_directories()}
        return bool(live & set(directory_ids)) or (not live and not self._mirror.holds_any_directory())

    def known_directories_visible(self) -> bool:
        """The tail's question (before reading by time, after a refused cursor): is this key of the mirror's
        environment? A mirror that never held a directory has nothing to protect, so no listing is needed: the tail
        of a new deployment starts even while WorkOS's list API is down."""
        if not self._mirror.live_directories() and not self._mirror.holds_any_directory():
            return True
        return self.view().same_environment


WRONG_ENVIRONMENT = (
    "the WorkOS API key sees none of the directories or organizations this mirror holds: it is most likely a key "
    "of another WorkOS environment (staging instead of production?). Nothing was deleted; check the key with "
    '`dsync check-key` (docs/runbook.md, "Rotating the WorkOS API key")'
)
