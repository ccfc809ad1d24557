"""What Powertools Tracer (the X-Ray SDK) would add to each function's cold start.

Fresh interpreters, interleaved, medians, net of the interpreter's start-up (import_timing.py). The handlers do not
use the Tracer: this is the measurement behind that choice (README "Observability").
"""

from __future__ import annotations

from import_timing import net_medians

TRACER = "from aws_lambda_powertools import Tracer; Tracer(service='dsync-bench')"
CASES = {
    "ingest handler": "import functions.ingest.handler",
    "ingest handler + Tracer": f"import functions.ingest.handler; {TRACER}",
    "apply handler": "import functions.apply.handler",
    "apply handler + Tracer": f"import functions.apply.handler; {TRACER}",
}


def main() -> None:
    medians = net_medians(CASES, samples=9)
    for name, value in medians.items():
        print(f"{name:26s} net {value * 1000:7.1f} ms")
    for handler in ("ingest handler", "apply handler"):
        plain, traced = medians[handler], medians[f"{handler} + Tracer"]
        print(f"{handler}: Tracer adds {(traced - plain) * 1000:.0f} ms, ratio with/without {traced / plain:.2f}")


if __name__ == "__main__":
    main()
