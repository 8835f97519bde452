"""Bare backend images/s: onnxruntime vs torch eager, fp32 on the CPU, measured side by side.

    python benchmarks/backend_throughput.py --preset paper-256 --batch-sizes 1,8 --seconds 20 \
        --json benchmarks/results/cpu_ort_vs_torch_paper-256.json

The two backends run the same randomly initialised model in alternating rounds (torch, onnxruntime,
torch, ...), so machine noise hits both alike; the ratio is the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import environment, make_export, make_model, scratch, write_result  # noqa: E402


def images_per_s(backend, labels: np.ndarray, styles: np.ndarray, seconds: float) -> float:
    """Calls on one batch for at least ``seconds`` (and 2 calls); images per second."""
    calls, t0 = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - t0 < seconds:
        backend.generate(labels, styles)
        calls += 1
    return calls * len(labels) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper-256")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per backend, batch and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from maskface_rt.backends import open_backend

    batches = [int(b) for b in args.batch_sizes.split(",")]
    with scratch() as tmp:
        model = make_model(args.preset, Path(tmp))
        export = make_export(model, Path(tmp), max_batch=max(max(batches), 3))
        backends = {"torch": open_backend(model, "torch", device="cpu"),
                    "onnxruntime": open_backend(export, "onnxruntime", device="cpu")}
        cfg = backends["torch"].config
        rows = []
        for batch in batches:
            rng = np.random.default_rng(batch)
            labels = rng.integers(0, cfg.num_classes, (batch, cfg.img_size, cfg.img_size), dtype=np.uint8)
            styles = backends["torch"].styles_for_seed(0, batch)
            for backend in backends.values():
                images_per_s(backend, labels, styles, args.warmup)
            rounds = [{name: images_per_s(b, labels, styles, args.seconds) for name, b in backends.items()}
                      for _ in range(args.rounds)]
            row = {"batch": batch,
                   **{f"{name}_images_per_s": statistics.median(r[name] for r in rounds) for name in backends},
                   "ratio_onnxruntime_over_torch": statistics.median(r["onnxruntime"] / r["torch"] for r in rounds),
                   "rounds": rounds}
            rows.append(row)
            print(f"{args.preset} batch {batch}: torch {row['torch_images_per_s']:.2f} img/s, onnxruntime "
                  f"{row['onnxruntime_images_per_s']:.2f} img/s, ratio {row['ratio_onnxruntime_over_torch']:.2f}x",
                  flush=True)
    write_result(args.json, {"benchmark": "backend_throughput", "preset": args.preset, "precision": "fp32",
                             "device": "cpu", "seconds_per_round": args.seconds, "rows": rows,
                             "command": " ".join(sys.argv), "environment": environment()})


if __name__ == "__main__":
    main()
