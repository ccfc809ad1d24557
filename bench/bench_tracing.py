"""What Powertools Tracer (the X-Ray SDK) would add to each function's cold start.

Fresh interpreters, interleaved, medians; the interpreter's own start-up is subtracted. The handlers do not use the
Tracer: this is the measurement behind that choice (README "Observability").
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 9
TRACER = "from aws_lambda_powertools import Tracer; Tracer(service='dsync-bench')"
CASES = {
    "interpreter": "pass",
    "ingest handler": "import functions.ingest.handler",
    "ingest handler + Tracer": f"import functions.ingest.handler; {TRACER}",
    "apply handler": "import functions.apply.handler",
    "apply handler + Tracer": f"import functions.apply.handler; {TRACER}",
}


def sample(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - started


def main() -> None:
    for code in CASES.values():
        sample(code)
    timings: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(SAMPLES):
        for name, code in CASES.items():
            timings[name].append(sample(code))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    base = medians["interpreter"]
    for name, value in medians.items():
        print(f"{name:26s} net {max(0.0, value - base) * 1000:7.1f} ms")
    for handler in ("ingest handler", "apply handler"):
        plain, traced = medians[handler] - base, medians[f"{handler} + Tracer"] - base
        print(f"{handler}: Tracer adds {(traced - plain) * 1000:.0f} ms, ratio with/without {traced / plain:.2f}")


if __name__ == "__main__":
    main()
