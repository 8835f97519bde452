"""Check the issue's performance targets against committed ``maskface bench`` JSON reports.

    python benchmarks/check_targets.py benchmarks/results/cpu_bench_*.json benchmarks/results/gpu_bench_*.json

One line per target that applies to a report (its preset and devices): pass, FAIL or not measured.
Exit 1 when a target fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", type=Path)
    args = parser.parse_args()
    from maskface_rt.benchmarking.targets import check

    failed = False
    for path in args.reports:
        print(f"{path}:")
        for verdict in check(json.loads(path.read_text())):
            print(f"  {verdict.line()}")
            failed |= verdict.passed is False
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
