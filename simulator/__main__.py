"""`python -m simulator [--design current|baseline] [--quick]`: every scenario's figures beside its targets, then
one line `verdict: PASS|FAIL` with the headline figures."""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from simulator import scenarios
from simulator.calibration import Calibration, calibrate
from simulator.design import DESIGNS
from simulator.pipeline import Design
from simulator.reconcile_wave import WaveOutcome, run_wave

RATES = (100.0, 500.0, 2_000.0)
SMALL_P99_TARGET = 60.0
GIANT_AFTER_LAST_SEND_TARGET = 600.0
WAVE_PERIOD = 3_600.0


@dataclass(frozen=True)
class Job:
    scenario: str
    rate: float
    design: Design
    calibration: Calibration
    users: int


def _run(job: Job) -> scenarios.Outcome:
    if job.scenario == "a":
        giant = list(scenarios.onboarding_events(job.users, max(1, job.users // 200), 3))
    else:
        giant = list(scenarios.mass_update_events(job.users))
    return scenarios.run(job.scenario, job.design, job.calibration, rate=job.rate, giant=giant)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--design", choices=sorted(DESIGNS), default="current")
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes (for a smoke run)")
    args = parser.parse_args(argv)
    design, wave_design = DESIGNS[args.design]
    started = time.monotonic()
    calibration = calibrate()
    print(f"design: {design.name}")
    print("apply cost per batch of 10, measured on the real applier (moto, in-process):")
    for cost in calibration.costs.values():
        calls = ", ".join(f"{name} {count:.1f}" for name, count in cost.requests_per_batch.items())
        print(f"  {cost.event_type:24} {cost.wcu_per_event:.1f} WCU/event, {cost.depth:.1f} round trips deep ({calls})")
    scale = 10 if args.quick else 1
    jobs = [Job("a", rate, design, calibration, 100_000 // scale) for rate in RATES]
    jobs += [Job("c", rate, design, calibration, 250_000 // scale) for rate in RATES]
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 2)) as pool:
        outcomes = list(pool.map(_run, jobs))
    wave = run_wave(wave_design, directories=10_000 // scale)
    print(_table(outcomes))
    print(_wave_line(wave))
    verdict = _verdict(outcomes, wave)
    print(f"(simulated in {time.monotonic() - started:.0f} s)")
    print(verdict)
    return 0


def _table(outcomes: list[scenarios.Outcome]) -> str:
    names = {"a": "(a) onboarding", "c": "(c) mass update"}
    header = (
        f"{'scenario':16} {'rate/s':>6} {'events':>8} | {'small p50':>9} {'p99 ≤60s':>9} {'max':>7} | "
        f"{'giant done after last send ≤600s':>32} | {'peak backlog events/overflow':>28} | "
        f"{'peak conc.':>10} {'throttled':>9} {'429 to WorkOS':>13} {'DLQ':>4}"
    )
    lines = [header, "-" * len(header)]
    for outcome in outcomes:
        figures = outcome.figures
        done = f"{outcome.giant_done_after_last_send:.0f} s" + ("" if outcome.giant_complete else " (incomplete)")
        backlog = f"{figures.peak_main_backlog:,} / {figures.peak_overflow_backlog:,}"
        lines.append(
            f"{names[outcome.scenario]:16} {outcome.rate:>6.0f} {outcome.giant_events:>8,} | "
            f"{figures.small_p50:>8.2f}s {figures.small_percentile(0.99):>8.1f}s {figures.small_max:>6.1f}s | "
            f"{done:>32} | {backlog:>28} | {figures.peak_concurrency:>10} {figures.throttled_requests:>9,} "
            f"{figures.rejected_deliveries:>13,} {figures.dead_lettered:>4}"
        )
    return "\n".join(lines)


def _wave_line(wave: WaveOutcome) -> str:
    return (
        f"(b) reconcile wave: {wave.directories:,} directories of 1,000 users, {wave.in_wave:,} in this wave "
        f"({wave.planned_requests:,} requests, {wave.key_share:.0%} of the key's 6,000/min): "
        f"{wave.seconds:,.0f} s of a {WAVE_PERIOD:,.0f} s period (target: inside it), "
        f"{wave.rate_limited:,} answered 429; "
        f"every directory reconciled every {wave.rotation_waves} wave(s)"
    )


def _verdict(outcomes: list[scenarios.Outcome], wave: WaveOutcome) -> str:
    worst_p99 = max(outcome.figures.small_percentile(0.99) for outcome in outcomes)
    onboarding = [outcome for outcome in outcomes if outcome.scenario == "a"]
    worst_giant = max(outcome.giant_done_after_last_send for outcome in onboarding)
    complete = all(outcome.giant_complete for outcome in outcomes)
    passed = (
        worst_p99 <= SMALL_P99_TARGET
        and worst_giant <= GIANT_AFTER_LAST_SEND_TARGET
        and complete
        and wave.seconds <= WAVE_PERIOD
    )
    return (
        f"verdict: {'PASS' if passed else 'FAIL'} - small directories' p99 {worst_p99:.1f} s (≤ 60 s), "
        f"giant onboarding done {worst_giant:.0f} s after its last send (≤ 600 s), "
        f"reconcile wave {wave.seconds:,.0f} s (≤ {WAVE_PERIOD:,.0f} s)"
        + ("" if complete else ", some giant events never applied")
    )


if __name__ == "__main__":
    sys.exit(main())
