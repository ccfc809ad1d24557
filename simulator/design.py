"""The designs the simulator compares: the one before #12, and the one this repository deploys.

`CURRENT` is read from the deployed configuration (`shared.model.lanes`, `shared.resources`), so the simulator's verdict
is about the stack as it is, not about numbers copied here.
"""

from __future__ import annotations

from shared import resources
from shared.model import lanes
from simulator.pipeline import Design
from simulator.reconcile_wave import WaveDesign

BASELINE = Design(
    "baseline (one FIFO group per directory)",
    lanes_per_directory=1,
    apply_max_concurrency=1_000,  # no ScalingConfig: the mapping's own ceiling
    overflow=False,
    api_rate=500.0,  # the stage throttle's default then
    api_burst=1_000.0,
)
CURRENT = Design(
    f"current ({lanes.LANES_PER_DIRECTORY} lanes per directory, overflow queue)",
    lanes_per_directory=lanes.LANES_PER_DIRECTORY,
    apply_max_concurrency=resources.APPLY_MAX_CONCURRENCY,
    overflow=True,
    overflow_max_concurrency=resources.OVERFLOW_MAX_CONCURRENCY,
    main_lane_attempts=resources.EVENT_LANE_DYNAMODB_ATTEMPTS,
    api_rate=float(resources.API_THROTTLE_RATE_LIMIT),
    api_burst=float(resources.API_THROTTLE_BURST_LIMIT),
)
BASELINE_WAVE = WaveDesign("baseline (every directory each wave)", concurrency=5, budgeted=False)
CURRENT_WAVE = WaveDesign("current (budgeted wave)", concurrency=resources.RECONCILE_MAX_CONCURRENCY, budgeted=True)
DESIGNS = {"current": (CURRENT, CURRENT_WAVE), "baseline": (BASELINE, BASELINE_WAVE)}
