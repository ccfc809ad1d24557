"""Cold-start import cost of the ingest handler relative to a bare `import boto3`.

Each sample is a fresh interpreter (what a Lambda cold start pays), interleaved so machine noise hits both sides
alike; the interpreter start-up itself (`pass`) is subtracted. Target: ratio <= 1.5.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 15
CASES = {
    "interpreter": "pass",
    "import boto3": "import boto3",
    "import ingest handler": "import functions.ingest.handler",
    "import workos (for scale)": "import workos",
}


def sample(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - started


def main() -> None:
    for code in CASES.values():  # warm the .pyc caches once
        sample(code)
    timings: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(SAMPLES):
        for name, code in CASES.items():
            timings[name].append(sample(code))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    base = medians["interpreter"]
    for name, value in medians.items():
        print(f"{name:28s} median {value * 1000:7.1f} ms  (net {max(0.0, value - base) * 1000:7.1f} ms)")
    boto3_net = medians["import boto3"] - base
    handler_net = medians["import ingest handler"] - base
    ratio = handler_net / boto3_net
    print(f"ratio ingest-handler / boto3 (net import time): {ratio:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
