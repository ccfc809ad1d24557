"""Reconcile writes pages while it lists the next: the checkpoint only ever moves past pages whose writes finished."""

from __future__ import annotations

import threading
import time

import pytest

from shared.reconcile.phases import OnePageAhead

pytestmark = pytest.mark.unit


def test_results_are_applied_in_order_in_the_caller_thread() -> None:
    applied: list[tuple[int, str]] = []
    caller = threading.current_thread().name
    with OnePageAhead(depth=2) as writes:
        for page in range(5):
            delay = 0.03 if page % 2 == 0 else 0.0  # later pages may finish first

            def write(page: int = page, delay: float = delay) -> list[bool]:
                time.sleep(delay)
                return [True] * page

            def done(written: list[bool], page: int = page) -> None:
                applied.append((page, threading.current_thread().name))

            writes.submit(write, done)
    assert [page for page, _ in applied] == [0, 1, 2, 3, 4]
    assert {thread for _, thread in applied} == {caller}


def test_at_most_depth_pages_are_in_flight() -> None:
    in_flight, peak, lock = 0, 0, threading.Lock()

    def write() -> list[bool]:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1
        return []

    with OnePageAhead(depth=2) as writes:
        for _ in range(6):
            writes.submit(write, lambda written: None)
    assert peak == 2


def test_a_pause_still_applies_the_pages_in_flight_before_the_checkpoint() -> None:
    applied: list[int] = []

    class Paused(Exception):
        pass

    with pytest.raises(Paused), OnePageAhead() as writes:
        writes.submit(lambda: [True], lambda written: applied.append(1))
        raise Paused
    assert applied == [1]


def test_a_failed_write_raises_and_nothing_after_it_is_applied() -> None:
    applied: list[int] = []

    def fail() -> list[bool]:
        raise RuntimeError("write of USER#x failed")

    with pytest.raises(RuntimeError, match="USER#x"), OnePageAhead(depth=1) as writes:
        writes.submit(fail, lambda written: applied.append(1))
        writes.submit(lambda: [True], lambda written: applied.append(2))
    assert applied == []
