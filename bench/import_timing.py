"""Shared by the cold-start benchmarks: the import cost of code snippets, each in a fresh interpreter.

Samples are interleaved so machine noise hits every case alike; medians are reported, net of the interpreter's own
start-up (the `pass` case).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sample(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - started


def net_medians(cases: dict[str, str], *, samples: int) -> dict[str, float]:
    """Median seconds per case, minus the median of an empty interpreter."""
    cases = {"interpreter": "pass", **cases}
    for code in cases.values():  # warm the .pyc caches once
        sample(code)
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(samples):
        for name, code in cases.items():
            timings[name].append(sample(code))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    base = medians.pop("interpreter")
    return {name: max(0.0, value - base) for name, value in medians.items()}
