"""Each AWS or WorkOS rule the simulator models, pinned on a tiny case (`simulator/`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.reconcile import wave_budget
from simulator.engine import Simulation
from simulator.esm import INITIAL_POLLERS, EventSourceMapping
from simulator.fifo import FifoQueue, Message
from simulator.partitions import SDK_DYNAMODB_ATTEMPTS, PartitionCeiling, retry_delays
from simulator.reconcile_wave import WaveDesign, requests_per_directory, run_wave

pytestmark = pytest.mark.unit


def queue(sim: Simulation, *, window: int = 120_000, visibility: float = 30.0, receives: int = 5) -> FifoQueue:
    return FifoQueue(
        "q",
        visibility_timeout=visibility,
        max_receive_count=receives,
        schedule=sim.after,
        now=lambda: sim.now,
        scan_window=window,
    )


def groups(batch: list[Message]) -> list[str]:
    return [message.group for message in batch]


def test_a_batch_fills_from_one_group_first_then_mixes_others_up_to_ten() -> None:
    q = queue(Simulation())
    for n in range(4):
        q.send("a", n)
    for n in range(12):
        q.send("b", n)
    batch = q.receive()
    assert groups(batch) == ["a"] * 4 + ["b"] * 6
    assert [m.payload for m in batch if m.group == "b"] == [0, 1, 2, 3, 4, 5]  # in order within the group


def test_a_group_with_a_batch_in_flight_returns_nothing_more_until_it_is_deleted() -> None:
    q = queue(Simulation())
    for n in range(15):
        q.send("a", n)
    first = q.receive()
    assert len(first) == 10 and q.receive() == []
    for message in first:
        q.delete(message)
    assert [m.payload for m in q.receive()] == [10, 11, 12, 13, 14]


def test_groups_beyond_the_scan_window_are_not_seen_however_idle() -> None:
    q = queue(Simulation(), window=5)
    for n in range(6):
        q.send("giant", n)
    q.send("small", 0)
    assert groups(q.receive()) == ["giant"] * 6  # takes the giant's whole window-visible run
    assert q.receive() == []  # the small group's message is the 7th: beyond the first 5
    q2 = queue(Simulation(), window=7)
    for n in range(6):
        q2.send("giant", n)
    q2.send("small", 0)
    assert groups(q2.receive()) == ["giant"] * 6 + ["small"]  # within the window: the batch fills up with it


def test_an_undeleted_message_is_visible_again_after_the_timeout_then_dead_lettered() -> None:
    sim = Simulation()
    q = queue(sim, visibility=30.0, receives=2)
    q.send("a", "poison")
    assert len(q.receive()) == 1
    sim.run(until=29.0)
    assert q.receive() == []  # still in flight: the group stays locked
    sim.run(until=31.0)
    assert len(q.receive()) == 1  # second receive
    sim.run(until=62.0)
    assert q.dead_lettered and q.stored == 0 and q.receive() == []


def test_the_mapping_starts_with_five_pollers_and_never_passes_its_maximum_concurrency() -> None:
    sim = Simulation()
    q = queue(sim)
    running: list[int] = []

    def invoke(batch: list[Message], done: Callable[[], None]) -> None:
        running.append(mapping.running)

        def finish() -> None:
            for message in batch:
                q.delete(message)
            done()

        sim.after(1.0, finish)

    mapping = EventSourceMapping(q, maximum_concurrency=8, invoke=invoke, now=lambda: sim.now)
    q.on_available = mapping.poll
    for group in range(50):
        q.send(f"g{group}", group)
    assert mapping.running == INITIAL_POLLERS
    sim.run()
    assert mapping.peak == 8 and q.stored == 0


def test_a_partition_serves_a_thousand_wcu_a_second_and_the_sdk_retries_throttles() -> None:
    ceiling = PartitionCeiling(burst_seconds=0.0)
    first = ceiling.write("d", 1_000.0, 0.0)
    assert (first.done_at, first.throttled) == (0.0, 0)
    second = ceiling.write("d", 10.0, 0.0)  # the partition is busy for the next second
    assert second.throttled > 0 and second.done_at is not None and second.done_at >= 1.0
    assert ceiling.write("other", 10.0, 0.0).throttled == 0  # another directory, another partition


def test_a_write_throttled_past_the_sdks_attempts_fails() -> None:
    ceiling = PartitionCeiling(burst_seconds=0.0)
    ceiling.write("d", 100_000.0, 0.0)  # 100 s of work queued
    result = ceiling.write("d", 1.0, 0.0)
    assert result.done_at is None and result.throttled == SDK_DYNAMODB_ATTEMPTS


def test_throttles_back_off_as_botocore_standard_mode_does() -> None:
    """rand(0, 1) x min(1 s x 2^i, 20 s) (botocore retries/standard.py), at the jitter's mean; checked against
    botocore's own ExponentialBackoff with its random source fixed at the mean."""
    from botocore.retries.standard import ExponentialBackoff, RetryContext

    assert retry_delays(8) == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    throttled = _AlwaysThrottled()
    botocore = ExponentialBackoff(random=lambda: 0.5, service_name="dynamodb", throttling_detector=throttled)  # type: ignore[arg-type]
    contexts = [RetryContext(attempt_number=n) for n in range(1, 8)]
    assert [botocore.delay_amount(context) for context in contexts] == retry_delays(8)


class _AlwaysThrottled:
    def is_throttling_error_from_context(self, context: object) -> bool:
        return True


def test_reconcile_requests_count_pages_and_each_groups_members() -> None:
    assert requests_per_directory(1_000, 20, 3.0) == 1 + 10 + 1 + 20 * 2


def test_a_wave_of_every_directory_at_five_at_a_time_overruns_the_hour() -> None:
    wave = run_wave(WaveDesign("baseline", concurrency=5, budgeted=False), directories=2_000)
    assert wave.seconds > 3_600 and wave.in_wave == 2_000


def test_a_budgeted_wave_fits_its_period_and_takes_the_neediest_first() -> None:
    wave = run_wave(WaveDesign("budgeted", concurrency=20, budgeted=True), directories=10_000)
    assert wave.seconds <= 3_600 and wave.rate_limited == 0 and wave.rotation_waves > 1
    never = wave_budget.Candidate("new", last_finished_at=None, last_requests=None, users=50, groups=2)
    drifted = wave_budget.Candidate("drifted", last_finished_at=5.0, last_requests=40, drifted=True)
    oldest = wave_budget.Candidate("oldest", last_finished_at=1.0, last_requests=40)
    recent = wave_budget.Candidate("recent", last_finished_at=9.0, last_requests=40)
    selection = wave_budget.select([recent, oldest, drifted, never], budget=never.cost + drifted.cost + oldest.cost)
    assert [c.directory_id for c in selection.chosen] == ["new", "drifted", "oldest"]
    assert [c.directory_id for c in selection.deferred] == ["recent"]
    assert wave_budget.select([recent], budget=0.0).chosen == [recent]  # never an empty wave


def test_a_directory_whose_runs_keep_failing_waits_its_turn_instead_of_heading_every_wave() -> None:
    """Issue #17: tiers aged by nothing, so a directory that always failed was chosen first forever."""
    failing = wave_budget.Candidate("failing", last_finished_at=None, last_requests=40, last_attempted_at=9.0)
    oldest = wave_budget.Candidate("oldest", last_finished_at=1.0, last_requests=40, last_attempted_at=1.0)
    never = wave_budget.Candidate("never", last_finished_at=None, last_requests=40)
    selection = wave_budget.select([failing, oldest, never], budget=never.cost + oldest.cost)
    assert [c.directory_id for c in selection.chosen] == ["never", "oldest"]
    assert [c.directory_id for c in selection.deferred] == ["failing"]


def test_twenty_directories_at_four_requests_a_second_are_eighty_percent_of_the_key() -> None:
    assert wave_budget.max_concurrency() == 20


def test_deliveries_beyond_the_api_throttle_are_answered_429_and_retried_by_workos() -> None:
    from simulator.calibration import Calibration, EventCost
    from simulator.pipeline import Design, Event, Pipeline

    cost = EventCost("dsync.user.updated", {}, wcu_per_event=1.0, rcu_per_batch=10.0, depth=3.0)
    design = Design("tiny", lanes_per_directory=4, apply_max_concurrency=10, overflow=False, api_rate=10, api_burst=5)
    pipeline = Pipeline(design, Calibration({"dsync.user.updated": cost}))
    pipeline.deliver(Event("d", "dsync.user.updated", f"u{n}", 0.0, small=True) for n in range(20))
    figures = pipeline.run()
    assert figures.rejected_deliveries > 0
    assert len(figures.small_latencies) == 20  # every one applied in the end
    assert figures.small_max >= 60.0  # the retried ones waited for WorkOS's retry
