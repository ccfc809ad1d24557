"""A claim in the docs is a test: the commands, outputs and numbers README.md, docs/runbook.md and docs/scale.md name
exist in the code, with the values the code has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsync.cli import build_parser
from shared.model.lanes import LANES_PER_DIRECTORY
from shared.resources import Outputs

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = {name: (ROOT / name).read_text() for name in ("README.md", "docs/runbook.md", "docs/scale.md")}


def subcommands() -> set[str]:
    parser = build_parser()
    (commands,) = [action for action in parser._actions if action.dest == "command"]
    return set(commands.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_every_dsync_command_the_docs_name_exists(doc: str) -> None:
    named = set(re.findall(r"`dsync ([a-z][a-z-]+)", DOCS[doc])) | set(
        re.findall(r"^dsync ([a-z][a-z-]+)", DOCS[doc], re.M)
    )
    assert named <= subcommands(), (doc, sorted(named - subcommands()))


def test_every_stack_output_the_runbook_queries_exists() -> None:
    keys = {value for name, value in vars(Outputs).items() if name.isupper()}
    queried = set(re.findall(r"OutputKey=='(\w+)'", "\n".join(DOCS.values())))
    assert queried and queried <= keys, sorted(queried - keys)


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_the_lane_counts_the_docs_give_are_the_codes(doc: str) -> None:
    """16 entity lanes per directory, plus the directory's own lane: 17 message groups."""
    for count in re.findall(r"\b(\d+) (?:entity )?lanes\b", DOCS[doc]):
        assert int(count) == LANES_PER_DIRECTORY, doc
    for count in re.findall(r"\b(\d+) message groups\b", DOCS[doc]):
        assert int(count) == LANES_PER_DIRECTORY + 1, doc


def test_the_runbook_opens_with_a_triage_flowchart() -> None:
    runbook = DOCS["docs/runbook.md"]
    assert runbook.index("```mermaid") < runbook.index("## Signature failures")
    for command in re.findall(r"dsync ([a-z-]+)", runbook.split("```mermaid")[1].split("```")[0]):
        assert command in subcommands()
