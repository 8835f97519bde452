"""``maskface generate --ray`` vs local ``generate`` on the same machine and masks, and its memory.

    python benchmarks/ray_generate.py --masks 2000 --styles 4 --json-file benchmarks/results/cpu_ray_generate.json

1. Throughput: rounds alternate a local run (one process, its backend on every core, ``--workers 2``) and a
   ``--ray`` run (one local Ray instance of ``--cpus`` CPUs, started once; ``--cpus`` workers of 1 CPU, each
   backend on 1 thread), from the same masks to a fresh folder each time, on the bundled model. Each run's
   images/s is its report's (planning included; the --ray figure includes starting the workers, not Ray).
   The overhead ratio is the median of per-round ray/local ratios (goal >= 0.85 at 2000 masks x 4 styles).
2. Memory: ``maskface generate --ray`` as a subprocess (its own Ray instance) at each of ``--memory-masks``;
   peak RSS (VmHWM, polled from /proc) of the driver and the largest of its workers. Flat = masks streamed.
3. The driver's planning cost per mask (``generate.plan_run`` on an empty output folder), for the scaling
   arithmetic in docs/ray.md.

Masks are the example masks copied under new names. Run it on a quiet machine; figures from a shared
machine say so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from maskface_rt.benchmarking.environment import environment
from maskface_rt.benchmarking.scripts import write_result

ROOT = Path(__file__).resolve().parents[1]
WORKER_TITLE = b"ray::MapWorker(MapBatches(MaskWorker))"


def make_masks(folder: Path, count: int) -> Path:
    """``count`` masks: the single-file example masks, copied round-robin under new names."""
    examples = sorted((ROOT / "examples" / "masks").glob("[sh][ya]*"))
    folder.mkdir(parents=True)
    for i in range(count):
        source = examples[i % len(examples)]
        shutil.copy(source, folder / f"m{i:06d}_{source.name}")
    return folder


def throughput(masks: Path, args: argparse.Namespace, scratch: Path) -> list[dict[str, float]]:
    import ray

    from maskface_rt.backends import open_backend
    from maskface_rt.bundled import default_model
    from maskface_rt.generation.distributed import RayOptions, WorkerModel, run_generate_ray
    from maskface_rt.generation.pipeline import run_generate
    from maskface_rt.generation.plan import GenerateOptions

    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level=logging.WARNING)
    print(f"ray.init: {time.perf_counter() - t0:.1f} s (not counted below)", flush=True)
    rounds = []
    try:
        with open_backend(default_model(), "onnxruntime") as backend:
            for r in range(args.rounds):
                figures = {}
                for mode in ("local", "ray"):
                    out = scratch / f"{mode}-{r}"
                    opts = GenerateOptions(out=out, styles=args.styles, batch_size=args.batch_size)
                    if mode == "local":
                        report = run_generate(backend, masks, opts)
                    else:
                        model = WorkerModel(str(default_model()), "onnxruntime")
                        report = run_generate_ray(masks, opts, model, RayOptions(workers=args.cpus))
                    assert report.images_written == report.masks * args.styles, report.skipped
                    figures[f"{mode}_images_per_s"] = report.images_per_s
                    shutil.rmtree(out)
                figures["ratio"] = figures["ray_images_per_s"] / figures["local_images_per_s"]
                rounds.append(figures)
                print(
                    f"round {r}: local {figures['local_images_per_s']:.1f} img/s, --ray "
                    f"{figures['ray_images_per_s']:.1f} img/s, ratio {figures['ratio']:.3f}",
                    flush=True,
                )
    finally:
        ray.shutdown()
    return rounds


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _workers() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(WORKER_TITLE):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def memory(masks: Path, count: int, args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    """Peak RSS of a ``maskface generate --ray`` driver and of its largest worker, in MiB."""
    out = scratch / f"mem-{count}"
    command = [sys.executable, "-m", "maskface_rt", "generate", str(masks), "--out", str(out), "--ray", "--json"]
    command += ["--styles", str(args.memory_styles), "--ray-workers", str(args.cpus)]
    peaks = {"driver": 0, "worker": 0}
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("RAY_ADDRESS", None)
    log = scratch / f"mem-{count}.log"
    with (
        open(log, "w") as stderr,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env) as driver,
    ):
        stdout: list[str] = []
        reader = threading.Thread(target=lambda: stdout.append(driver.stdout.read()))
        reader.start()
        while driver.poll() is None:
            peaks["driver"] = max(peaks["driver"], _hwm_kib(driver.pid))
            peaks["worker"] = max([peaks["worker"], *map(_hwm_kib, _workers())])
            time.sleep(0.2)
        reader.join()
    if driver.returncode != 0:
        sys.exit(f"maskface generate --ray failed ({driver.returncode}):\n{log.read_text()[-3000:]}")
    report = json.loads(stdout[0])
    assert report["images_written"] == count * args.memory_styles, report["skipped"]
    shutil.rmtree(out)
    result = {
        "masks": count,
        "driver_peak_rss_mib": peaks["driver"] / 1024,
        "worker_peak_rss_mib": peaks["worker"] / 1024,
        "images_per_s": report["images_per_s"],
    }
    print(
        f"{count} masks x {args.memory_styles} styles: driver peak {result['driver_peak_rss_mib']:.0f} MiB, "
        f"worker peak {result['worker_peak_rss_mib']:.0f} MiB",
        flush=True,
    )
    return result


def planning_cost(masks: Path, count: int, args: argparse.Namespace, scratch: Path) -> float:
    """Seconds per mask of the driver's checks and plan (discover + existing-output checks)."""
    from maskface_rt.generation.plan import GenerateOptions, plan_run

    opts = GenerateOptions(out=scratch / "plan-out", styles=args.styles)
    plan_run(masks, opts)  # warm the file-system cache: what a rerun sees
    t0 = time.perf_counter()
    plan_run(masks, opts)
    return (time.perf_counter() - t0) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masks", type=int, default=2000, help="masks of the throughput rounds")
    parser.add_argument("--styles", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="Ray CPUs = workers of 1 CPU")
    parser.add_argument("--memory-masks", default="200,5000", help="mask counts of the memory runs ('' to skip)")
    parser.add_argument("--memory-styles", type=int, default=1, help="styles of the memory runs")
    parser.add_argument("--json-file", type=Path, default=None)
    args = parser.parse_args()
    counts = [int(c) for c in args.memory_masks.split(",") if c]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"CPU: {cpu}, {os.cpu_count()} logical cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="maskface-ray-bench-") as tmp:
        scratch = Path(tmp)
        masks = make_masks(scratch / "masks", max([args.masks, *counts]))
        subset = scratch / "subset"
        subset.mkdir()
        for path in sorted(masks.iterdir())[: args.masks]:
            os.link(path, subset / path.name)
        plan_s = planning_cost(subset, args.masks, args, scratch)
        print(f"driver planning: {plan_s * 1e6:.0f} us per mask", flush=True)
        rounds = throughput(subset, args, scratch) if args.rounds else []
        mem = []
        for count in counts:
            folder = scratch / f"masks-{count}"
            folder.mkdir()
            for path in sorted(masks.iterdir())[:count]:
                os.link(path, folder / path.name)
            mem.append(memory(folder, count, args, scratch))
    ratio = statistics.median(r["ratio"] for r in rounds) if rounds else None
    if ratio is not None:
        print(f"{args.masks} masks x {args.styles} styles: --ray reaches {ratio:.1%} of local (goal >= 85%)")
    write_result(
        args.json_file,
        {
            "benchmark": "ray_generate",
            "command": " ".join(["python", *sys.argv]),
            "settings": vars(args) | {"json_file": str(args.json_file)},
            "planning_us_per_mask": plan_s * 1e6,
            "rounds": rounds,
            "ratio": ratio,
            "memory": mem,
            "environment": environment(),
        },
    )


if __name__ == "__main__":
    main()
