"""`dsync status`'s flags and exit codes, on the in-memory store (the table) and a stubbed queue read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dsync import cli
from dsync.commands import mirror
from dsync.commands.status_view import COLUMNS
from dsync.targets import Target
from tests.support.fake_store import FakeDirectoryStore, Unkindness
from tests.unit.read import test_status
from tests.unit.read.test_status import directory_id

pytestmark = pytest.mark.unit

TARGET = Target(
    description="the test's store",
    region="us-east-1",
    endpoint_url=None,
    table_name="t",
    event_queue_url="q",
    dead_letter_queue_url="dlq",
    work_queue_url="w",
)


def seed(store: FakeDirectoryStore, n: int, **kwargs: Any) -> str:
    return test_status.seed(store, n, now=datetime.now(UTC), **kwargs)  # the CLI reads the real clock


class World:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = FakeDirectoryStore()
        self.queues = {"queued": 0, "in_flight": 0, "dead_letters": 0}
        monkeypatch.setattr(cli, "_target", lambda args: TARGET)
        monkeypatch.setattr(mirror, "DirectoryTable", lambda *args, **kwargs: self.store)
        monkeypatch.setattr(mirror, "queue_status", lambda target: dict(self.queues))


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    world = World(monkeypatch)
    for n in range(3):
        seed(world.store, n)
    return world


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["status", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_piped_output_is_json_with_totals_and_every_directory(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    document = json.loads(out)
    assert code == 0 and document["summary"]["directories"] == 3 and len(document["directories"]) == 3
    assert document["attention"] == []


def test_a_terminal_gets_a_table_and_json_is_there_when_asked(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    code, out, _ = run(capsys)
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("DIRECTORY"))
    assert code == 0 and header.split() == [*COLUMNS[:6], "LAST", "EVENT", "APPLIED", "LAST", "RECONCILE"]
    rows = [line for line in lines if line.startswith("directory_")]
    assert len(rows) == 3 and len({len(row) for row in rows}) == 1  # fixed width
    assert lines[-1] == "nothing needs attention"
    _, out, _ = run(capsys, "--output", "json")
    assert json.loads(out)["summary"]["directories"] == 3
    _, out, _ = run(capsys, "--output", "table")  # also when piped
    assert out.startswith("queues ")


def test_summary_lists_no_directory(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--summary")
    document = json.loads(out)
    assert "directories" not in document and document["summary"]["mirror_counts"]["users_active"] == 9


def test_one_directory_and_an_unknown_one_exits_1_in_one_line(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--directory", directory_id(1))
    assert code == 0 and [d["id"] for d in json.loads(out)["directories"]] == [directory_id(1)]
    code, out, err = run(capsys, "--directory", "directory_01TYPO")
    assert code == 1 and out == ""
    assert err.splitlines()[-1].startswith("dsync status: directory 'directory_01TYPO' is unknown in the mirror")


def test_unhealthy_lists_only_the_directories_with_a_problem(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    seed(world.store, 7, health="invalid_credentials", unhealthy_since=timedelta(minutes=3))
    seed(world.store, 8, last_run="failed")
    _, out, _ = run(capsys, "--unhealthy")
    document = json.loads(out)
    assert [d["id"] for d in document["directories"]] == [directory_id(7), directory_id(8)]
    assert document["summary"]["directories"] == 5  # the totals still cover every directory


def test_check_exits_1_with_each_reason_on_stderr_when_something_needs_a_human(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--check")[0] == 0  # all fine
    world.queues["dead_letters"] = 1
    seed(world.store, 9, health="unlinked", unhealthy_since=timedelta(hours=3))
    seed(world.store, 10, last_run="refused")
    code, out, err = run(capsys, "--check")
    reasons = [line for line in err.splitlines() if line.startswith("dsync status: needs attention: ")]
    assert (
        code == 1
        and len(reasons) == 3
        and json.loads(out)["attention"] == [line.removeprefix("dsync status: needs attention: ") for line in reasons]
    )
    assert run(capsys)[0] == 0  # without --check the same state exits 0


def test_check_honours_the_operators_limits(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    seed(world.store, 11, health="validating", unhealthy_since=timedelta(minutes=20))
    assert run(capsys, "--check")[0] == 0  # 20 minutes: under the stack's 60
    assert run(capsys, "--check", "--unhealthy-minutes", "15")[0] == 1


@pytest.mark.parametrize("bad", [["--output", "yaml"], ["--unhealthy-minutes", "0"], ["--tail-poll-age-alarm", "x"]])
def test_bad_values_are_usage_errors(world: World, capsys: pytest.CaptureFixture[str], bad: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["status", *bad])
    assert raised.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_a_table_that_stays_throttled_is_one_line_and_exit_1(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.store.unkindness = Unkindness(throttle_rate=1.0)
    code, out, err = run(capsys)
    assert code == 1 and out == "" and err.splitlines()[-1].startswith("dsync status: the directory table did not")


def test_the_tail_past_its_alarm_needs_a_human(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setattr(
        "shared.read.status.tail_status", lambda table, now: {"poll_age_seconds": 900.0, "running": False}
    )
    code, _, err = run(capsys, "--check")
    assert code == 1 and "last polled 900 s ago (alarm at 300 s)" in err
    assert run(capsys, "--check", "--tail-poll-age-alarm", "1200")[0] == 0
