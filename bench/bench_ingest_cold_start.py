"""Cold-start import cost of the ingest handler relative to a bare `import boto3`.

Each sample is a fresh interpreter (what a Lambda cold start pays); see import_timing.py. Target: ratio <= 1.5.
"""

from __future__ import annotations

from import_timing import net_medians

CASES = {
    "import boto3": "import boto3",
    "import ingest handler": "import functions.ingest.handler",
    "import workos (for scale)": "import workos",
}


def main() -> None:
    medians = net_medians(CASES, samples=15)
    for name, value in medians.items():
        print(f"{name:28s} net {value * 1000:7.1f} ms")
    ratio = medians["import ingest handler"] / medians["import boto3"]
    print(f"ratio ingest-handler / boto3 (net import time): {ratio:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
