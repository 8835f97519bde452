"""Two ``maskface bench`` rows on the CPU in alternating rounds: the ratio of the second to the first.

    python benchmarks/backend_throughput.py --preset paper-256 --batch-sizes 1,8 --seconds 20 \
        --json benchmarks/results/cpu_ort_vs_torch_paper-256.json
    python benchmarks/backend_throughput.py --model maskface_rt/data/demo-model --batch-sizes 1,8 \
        --backends onnxruntime-cpu-fp32,openvino-cpu-fp32 --json benchmarks/results/cpu_ort_vs_openvino_tiny-64.json

The runners are ``maskface bench``'s (default: torch-fp32 then onnxruntime-cpu-fp32, the CPU target's pair;
same model, same inputs, host to host), but here they run in alternating rounds (first, second, first, ...)
so that machine noise hits both alike; the ratio is the median of per-round ratios. ``maskface bench``
gives the full table (latency percentiles, memory, accuracy, roofline) with the backends run one after the other.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from maskface_rt.benchmarking.environment import environment
from maskface_rt.benchmarking.scripts import scratch, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper-256", help="a random init of this preset, without --model")
    parser.add_argument("--model", type=Path, default=None, help="a checkpoint or an export folder")
    parser.add_argument("--backends", default="torch-fp32,onnxruntime-cpu-fp32", help="FIRST,SECOND bench rows")
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
    names = args.backends.split(",")
    if len(names) != 2:
        parser.error(f"--backends takes two bench rows, FIRST,SECOND; got {args.backends!r}")
    first, second = names
    rows = []
    with scratch() as tmp:
        source = ModelSource.open(args.model, args.preset, Path(tmp), max(batches))
        labels, styles = fixed_inputs(source, max(batches))
        ctx = RunnerContext(source, "cpu", "--device cpu")
        runners = {name: make_runner(name, ctx) for name in names}
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
                "images_per_s": {key: statistics.median(r[key] for r in rounds) for key in runners},
                "ratio_second_over_first": statistics.median(r[second] / r[first] for r in rounds),
                "rounds": rounds,
            }
            rows.append(row)
            speeds = ", ".join(f"{key} {value:.2f} img/s" for key, value in row["images_per_s"].items())
            print(
                f"{source.description} batch {batch}: {speeds}, ratio {row['ratio_second_over_first']:.2f}x", flush=True
            )
        for runner in runners.values():
            runner.close()
    write_result(
        args.json,
        {
            "benchmark": "backend_throughput",
            "model": source.description,
            "backends": names,
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
