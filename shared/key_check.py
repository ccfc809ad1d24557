"""What a WorkOS API key sees, set against what the mirror holds: the evidence every deletion by reconcile needs.

A WorkOS API key belongs to one environment (staging, production). Under a key of another environment every
directory the mirror holds answers 404, which is exactly what a deleted directory answers. So a 404 alone is never
evidence: a directory is gone only if a complete, successful `GET /directories` listing under the same key does not
contain it *and* contains at least one directory or organization this mirror already knows (the key is of the
mirror's environment). An empty mirror has nothing to delete, so any key is of "its" environment.

The same view serves three callers: reconcile before it tombstones a directory (`shared.reconcile_phases`), the
Events API tail when WorkOS refuses its cursor (an environment change, not an expiry, when the key sees none of
the mirror), and `dsync check-key`, which an operator runs before rotating the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol


class DirectoryListing(Protocol):
    def list_directories(self) -> Iterator[dict[str, Any]]: ...


class MirrorDirectories(Protocol):
    def live_directories(self) -> list[tuple[str, str | None]]:
        """(directory id, organization id) of every live directory the mirror holds."""
        ...


@dataclass(frozen=True)
class KeyView:
    """The key's directories against the mirror's live ones."""

    known: tuple[str, ...]  # held by the mirror and listed under the key
    missing: tuple[str, ...]  # held by the mirror, not listed under the key
    unknown: tuple[str, ...]  # listed under the key, not held by the mirror
    shared_organizations: tuple[str, ...]  # organizations of both (a directory may be re-created in one)
    listed: frozenset[str]

    @property
    def same_environment(self) -> bool:
        """The key sees something the mirror knows, or the mirror holds nothing to lose."""
        return bool(self.known or self.shared_organizations) or not self.missing

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


def compare(listed: Iterable[dict[str, Any]], mirror: Iterable[tuple[str, str | None]]) -> KeyView:
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
    )


class KeyCheck:
    """Lists the key's directories (the whole listing: an error raises, it is never taken as empty) and compares."""

    def __init__(self, api: DirectoryListing, mirror: MirrorDirectories) -> None:
        self._api = api
        self._mirror = mirror

    def view(self) -> KeyView:
        return compare(self._api.list_directories(), self._mirror.live_directories())

    def known_directories_visible(self) -> bool:
        """The tail's question after a refused cursor: is this key still of the mirror's environment?"""
        return self.view().same_environment


WRONG_ENVIRONMENT = (
    "the WorkOS API key sees none of the directories or organizations this mirror holds: it is most likely a key "
    "of another WorkOS environment (staging instead of production?). Nothing was deleted; check the key with "
    "`dsync check-key` (docs/runbook.md, 'Rotate the WorkOS API key')"
)
