"""Does ``maskface generate`` keep the backend busy? Pipeline images/s vs the bare backend's.

    python benchmarks/generate_efficiency.py --preset tiny-128 --batch-size 8 --masks 48 --styles 2 \
        --json benchmarks/results/cpu_generate_efficiency_tiny-128.json

Same model (random init, exported fp32), same batch size, same number of images. The bare figure is
``backend.generate`` on pre-decoded label maps with nothing else to do; the pipeline figure is
``run_generate`` from PNG masks on disk to PNG files (decode, batching, encode, atomic writes).
Rounds alternate bare and pipeline; the efficiency is the median of per-round ratios. Target >= 0.90.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from maskface_rt.benchmarking.environment import environment
from maskface_rt.benchmarking.models import random_model
from maskface_rt.benchmarking.scripts import make_export, scratch, write_result


def bare(backend, labels: np.ndarray, styles: np.ndarray, batch: int) -> float:
    """images/s of the backend alone over the same jobs as the pipeline (every mask x every style)."""
    jobs_l = np.repeat(labels, len(styles), axis=0)
    jobs_s = np.tile(styles, (len(labels), 1))
    t0 = time.perf_counter()
    for i in range(0, len(jobs_l), batch):
        backend.generate(jobs_l[i : i + batch], jobs_s[i : i + batch])
    return len(jobs_l) / (time.perf_counter() - t0)


def pipeline(backend, masks: Path, styles: int, batch: int) -> float:
    from maskface_rt.generation.pipeline import run_generate
    from maskface_rt.generation.plan import GenerateOptions

    with tempfile.TemporaryDirectory(prefix="maskface-gen-") as out:
        report = run_generate(backend, masks, GenerateOptions(out=Path(out), styles=styles, batch_size=batch))
        assert not report.skipped, report.skipped
        return report.images_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny-128")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--masks", type=int, default=48)
    parser.add_argument("--styles", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from maskface_rt.backends import open_backend
    from maskface_rt.mask_io import discover_masks
    from maskface_rt.synth import write_dataset

    with scratch() as tmp:
        tmp = Path(tmp)
        export = make_export(random_model(args.preset, tmp), tmp, max_batch=max(args.batch_size, 3))
        backend = open_backend(export, "onnxruntime", device="cpu")
        size = backend.config.img_size
        write_dataset(tmp / "data", args.masks, size, seed=5)
        labels = np.stack([s.read(size=size) for s in discover_masks(tmp / "data" / "masks")])
        styles = backend.styles_for_seed(0, args.styles)
        bare(backend, labels[: args.batch_size], styles, args.batch_size)  # warm-up
        rounds = []
        for _ in range(args.rounds):
            b = bare(backend, labels, styles, args.batch_size)
            p = pipeline(backend, tmp / "data" / "masks", args.styles, args.batch_size)
            rounds.append({"bare_images_per_s": b, "pipeline_images_per_s": p, "efficiency": p / b})
            print(f"bare {b:.2f} img/s, pipeline {p:.2f} img/s, efficiency {p / b:.3f}", flush=True)
    efficiency = statistics.median(r["efficiency"] for r in rounds)
    print(
        f"{args.preset} batch {args.batch_size}: generate reaches {efficiency:.1%} of the bare backend (target >= 90%)"
    )
    write_result(
        args.json,
        {
            "benchmark": "generate_efficiency",
            "preset": args.preset,
            "batch_size": args.batch_size,
            "masks": args.masks,
            "styles": args.styles,
            "backend": backend.description,
            "efficiency": efficiency,
            "rounds": rounds,
            "command": " ".join(sys.argv),
            "environment": environment(),
        },
    )


if __name__ == "__main__":
    main()
