"""Fused AdaIN + LeakyReLU kernel vs the unfused torch ops vs torch.compile, on a CUDA GPU.

    python benchmarks/fused_adain_bench.py --json benchmarks/results/gpu_fused_adain_<gpu>.json

Shapes: every AdaIN of the generator (paper-256 by default, found with forward hooks on AdaINAct), fp16,
batch 1, 8 and 32. Each implementation is captured in a CUDA graph of back-to-back calls that cycle
through enough input copies to exceed the L2 cache, so times are GPU times from DRAM (CUDA events,
median of repetitions). Effective GB/s counts the bytes an ideal kernel moves: x read once, y written
once, gamma and beta read once. Target: >= 80% of the card's peak DRAM bandwidth for planes of 64x64
and larger. Needs CUDA and triton; runs on the GPU validation machine (../shared/GPU.md).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskface_rt.benchmarking.environment import environment
from maskface_rt.benchmarking.scripts import write_result

#: Input copies cycled through are at least this many bytes (H100/H200 L2: 50/60 MB).
ROTATE_BYTES = 256 << 20
TARGET_FRACTION = 0.8


def peak_gbs(device_name: str) -> float | None:
    """Peak DRAM bandwidth of the card, from the package's table of GPUs."""
    from maskface_rt.benchmarking.peaks import gpu_entry

    entry = gpu_entry(device_name)
    return entry.dram_gbs if entry is not None else None


def adain_shapes(preset_name: str) -> dict[tuple[int, int, int], int]:
    """(C, H, W) of each AdaINAct input in one generator forward -> how many times it occurs."""
    import torch

    from maskface_rt.config import preset
    from maskface_rt.networks import AdaINAct, Generator

    cfg = preset(preset_name)
    with torch.device("meta"):
        generator = Generator(cfg)
    shapes: collections.Counter = collections.Counter()
    for module in generator.modules():
        if isinstance(module, AdaINAct):
            module.register_forward_pre_hook(lambda _, args: shapes.update([tuple(args[0].shape[1:])]))
    with torch.no_grad():
        generator(
            torch.zeros(1, cfg.img_size, cfg.img_size, dtype=torch.long, device="meta"),
            torch.zeros(1, cfg.style_dim, device="meta"),
        )
    return dict(sorted(shapes.items(), key=lambda item: item[0][1]))


def gpu_time_us(fn: Callable[..., Any], sets: list[tuple], calls: int, reps: int) -> float:
    """Median GPU time per call of ``fn`` over the rotating argument ``sets``, from a CUDA graph."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for args in sets * 2:
            fn(*args)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(calls):
            fn(*sets[i % len(sets)])
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0 / calls)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper-256")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--calls", type=int, default=20, help="calls per CUDA graph")
    parser.add_argument("--reps", type=int, default=20, help="graph replays timed (median taken)")
    parser.add_argument("--peak-gbs", type=float, default=None, help="peak DRAM GB/s (default: from the GPU name)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit(
            "fused_adain_bench needs a CUDA GPU and triton (torch.cuda.is_available() is False here); "
            "it runs on the GPU validation machine, see ../shared/GPU.md"
        )
    import triton
    from maskface_rt.kernels.torch_op import adain_act_reference

    device_name = torch.cuda.get_device_name()
    peak = args.peak_gbs or peak_gbs(device_name)
    eps, slope = 1e-5, 0.2
    impls: dict[str, Callable[..., torch.Tensor]] = {
        "fused": lambda x, g, b: torch.ops.maskface.fused_adain(x, g, b, eps, slope),
        "torch": lambda x, g, b: adain_act_reference(x, g, b, eps, slope),
    }
    if not args.no_compile:
        compiled = torch.compile(adain_act_reference, dynamic=False)
        impls["compile"] = lambda x, g, b: compiled(x, g, b, eps, slope)
    rows = []
    header = f"{'shape (C,H,W)':>16s} {'batch':>5s} " + " ".join(
        f"{n + ' us':>11s} {'GB/s':>7s} {'peak':>5s}" for n in impls
    )
    print(f"{device_name}, peak {peak or '?'} GB/s, fp16\n{header}")
    for (c, h, w), count in adain_shapes(args.preset).items():
        for batch in args.batches:
            numel = batch * c * h * w
            moved = 2 * numel * 2 + 2 * batch * c * 2
            copies = max(2, -(-ROTATE_BYTES // (2 * numel * 2)))
            sets = [
                (
                    torch.randn(batch, c, h, w, device="cuda", dtype=torch.float16),
                    0.5 * torch.randn(batch, c, device="cuda", dtype=torch.float16),
                    0.5 * torch.randn(batch, c, device="cuda", dtype=torch.float16),
                )
                for _ in range(copies)
            ]
            err = (impls["fused"](*sets[0]).float() - impls["torch"](*sets[0]).float()).abs().max().item()
            row: dict[str, Any] = {
                "shape": [c, h, w],
                "occurrences": count,
                "batch": batch,
                "bytes": moved,
                "max_abs_diff_fused_vs_torch": err,
            }
            cells = []
            for name, fn in impls.items():
                us = gpu_time_us(fn, sets, args.calls, args.reps)
                gbs = moved / us / 1e3
                row[name] = {"us": us, "gbs": gbs, "fraction_of_peak": gbs / peak if peak else None}
                cells.append(f"{us:11.1f} {gbs:7.0f} {f'{gbs / peak:.0%}' if peak else '?':>5s}")
            rows.append(row)
            print(f"{str((c, h, w)):>16s} {batch:5d} " + " ".join(cells), flush=True)
            del sets
            torch.cuda.empty_cache()
    large = [r["fused"]["fraction_of_peak"] for r in rows if r["shape"][1] * r["shape"][2] >= 64 * 64]
    verdict = None
    if peak and large:
        verdict = min(large) >= TARGET_FRACTION
        print(
            f"fused, planes >= 64x64: {min(large):.0%}..{max(large):.0%} of peak "
            f"(target {TARGET_FRACTION:.0%}: {'met' if verdict else 'NOT met'})"
        )
    write_result(
        args.json,
        {
            "benchmark": "fused_adain",
            "preset": args.preset,
            "dtype": "fp16",
            "device": device_name,
            "peak_gbs": peak,
            "target_fraction": TARGET_FRACTION,
            "target_met": verdict,
            "triton": triton.__version__,
            "command": " ".join(sys.argv),
            "environment": environment(),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
