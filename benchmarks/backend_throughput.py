"""onnxruntime vs torch eager, fp32 on the CPU, in alternating rounds: the ratio of the CPU target.

    python benchmarks/backend_throughput.py --preset paper-256 --batch-sizes 1,8 --seconds 20 \
        --json benchmarks/results/cpu_ort_vs_torch_paper-256.json

The runners are ``maskface bench``'s torch-fp32 and onnxruntime-cpu-fp32 (same random model, same inputs,
host to host), but here they run in alternating rounds (torch, onnxruntime, torch, ...) so that machine
noise hits both alike; the ratio is the median of per-round ratios. ``maskface bench`` gives the full
table (latency percentiles, memory, accuracy, roofline) with the backends run one after the other.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import environment, scratch, write_result  # noqa: E402

RUNNERS = {"torch": "torch-fp32", "onnxruntime": "onnxruntime-cpu-fp32"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper-256")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per backend, batch and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from maskface_rt.benchmarking.models import ModelSource, fixed_inputs
    from maskface_rt.benchmarking.runners import RunnerContext, make_runner
    from maskface_rt.benchmarking.timing import measure

    batches = sorted({int(b) for b in args.batch_sizes.split(",")})
    rows = []
    with scratch() as tmp:
        source = ModelSource.open(None, args.preset, Path(tmp), max(batches))
        labels, styles = fixed_inputs(source, max(batches))
        ctx = RunnerContext(source, "cpu", "--device cpu")
        runners = {key: make_runner(name, ctx) for key, name in RUNNERS.items()}
        notes = {}
        for runner in runners.values():
            runner.build()
            runner.load()
            notes[runner.name] = runner.notes
        for batch in batches:
            for runner in runners.values():
                runner.prepare(labels[:batch], styles[:batch])
                measure(runner.run_once, warmup_s=args.warmup, duration_s=0)
            rounds = [
                {
                    key: batch
                    * measure(runner.run_once, warmup_s=0, duration_s=args.seconds, min_iterations=2).calls_per_s
                    for key, runner in runners.items()
                }
                for _ in range(args.rounds)
            ]
            row = {
                "batch": batch,
                **{f"{key}_images_per_s": statistics.median(r[key] for r in rounds) for key in runners},
                "ratio_onnxruntime_over_torch": statistics.median(r["onnxruntime"] / r["torch"] for r in rounds),
                "rounds": rounds,
            }
            rows.append(row)
            print(
                f"{args.preset} batch {batch}: torch {row['torch_images_per_s']:.2f} img/s, onnxruntime "
                f"{row['onnxruntime_images_per_s']:.2f} img/s, ratio {row['ratio_onnxruntime_over_torch']:.2f}x",
                flush=True,
            )
        for runner in runners.values():
            runner.close()
    write_result(
        args.json,
        {
            "benchmark": "backend_throughput",
            "preset": args.preset,
            "precision": "fp32",
            "device": "cpu",
            "seconds_per_round": args.seconds,
            "rows": rows,
            "runners": notes,
            "command": " ".join(sys.argv),
            "environment": environment(),
        },
    )


if __name__ == "__main__":
    main()
