"""Run the runners over the batch sizes and collect one row per backend and batch size.

Every runner gets the same inputs (procedural masks and the styles of indices 0..B-1 for the seed, the
first B of them at batch B) and its uint8 images are compared with torch fp32's. Per row: a
time-based warm-up, then host-to-host calls for the measured duration (latency statistics, images/s,
peak memory); on a GPU, the same again on device-resident inputs and outputs (GPU compute time);
then the roofline columns from the FLOPs per image and the device's peak.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskface_rt.benchmarking import environment as env
from maskface_rt.benchmarking import flops, peaks
from maskface_rt.benchmarking.memory import MemoryProbe
from maskface_rt.benchmarking.models import ModelSource, Unavailable, fixed_inputs, reference_images, torch_installed
from maskface_rt.benchmarking.report import COLUMNS
from maskface_rt.benchmarking.runners import Runner, RunnerContext, make_runner
from maskface_rt.benchmarking.timing import measure
from maskface_rt.devices import parse_device
from maskface_rt.errors import ExitCode, MaskfaceError
from maskface_rt.parity import ParityAccumulator

DEFAULT_PRESET = "paper-256"


@dataclass(frozen=True)
class BenchOptions:
    backends: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    named: bool = False  # the backends were named, not 'all': one that cannot run makes the exit code 3
    model: Path | None = None
    preset: str = DEFAULT_PRESET
    device: str = "auto"
    warmup_s: float = 2.0
    duration_s: float = 5.0
    min_iterations: int = 10
    peak_tflops: float | None = None
    seed: int = 0


@dataclass
class BenchResult:
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    exit_code: ExitCode


def resolve_device(name: str) -> tuple[str, str]:
    """A --device value -> (the bench's device, "cpu" or "cuda:N"; why CUDA-only runners cannot run here or '')."""
    device = parse_device(name)
    if device.kind == "cpu":
        return "cpu", "--device cpu was given"
    found = env.gpu_names()
    if device.kind == "auto":
        return ("cuda:0", "") if found else ("cpu", "none found (neither nvidia-smi nor torch sees one)")
    index = device.index or 0
    if index >= len(found):
        raise MaskfaceError(None, f"--device {name}: this machine has {len(found)} CUDA GPU(s)")
    return f"cuda:{index}", ""


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def _row(runner: Runner, batch: int | None, status: str, reason: str = "") -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        backend=runner.name,
        family=runner.family,
        precision=runner.precision,
        device=runner.device,
        batch=batch,
        status=status,
        reason=reason,
    )
    return row


def _measure_batch(
    runner: Runner,
    batch: int,
    labels: np.ndarray,
    styles: np.ndarray,
    reference: np.ndarray | None,
    reference_note: str,
    probe: MemoryProbe,
    options: BenchOptions,
) -> dict[str, Any]:
    row = _row(runner, batch, "ok")
    timing = {"warmup_s": options.warmup_s, "duration_s": options.duration_s, "min_iterations": options.min_iterations}
    probe.begin_row()
    start = time.perf_counter()
    images = runner.prepare(labels[:batch], styles[:batch])
    row["prepare_s"] = time.perf_counter() - start
    host = measure(runner.run_once, **timing)
    peak = probe.peak()
    stats = host.stats
    row.update(
        stats.as_ms("latency"),
        iterations=stats.count,
        warmup_iterations=host.warmup_calls,
        warmup_s=host.warmup_s,
        measured_s=host.measured_s,
        images_per_s=batch * host.calls_per_s,
        peak_memory_mb=None if peak is None else peak / 2**20,
    )
    if reference is not None:
        accumulator = ParityAccumulator()
        accumulator.update(reference[:batch], images)
        parity = accumulator.result()
        row.update(
            max_abs_error=parity.max_abs_error,
            mean_abs_error=parity.mean_abs_error,
            psnr_db=parity.psnr_db,
            identical_images=parity.identical_images,
        )
    else:
        row["accuracy_note"] = reference_note
    if runner.device.startswith("cuda"):
        try:
            runner.prepare_device()
            device = measure(runner.run_device, device_timed=True, **timing)
            row.update(device.stats.as_ms("gpu_compute"))
        except Unavailable as e:
            row["gpu_compute_note"] = str(e)
        except Exception as e:  # a device-time failure must not cost the row its host figures
            row["gpu_compute_note"] = f"failed: {_one_line(e)}"
    else:
        row["gpu_compute_note"] = "CPU: no device copies"
    return row


def _run_runner(
    runner: Runner,
    options: BenchOptions,
    labels: np.ndarray,
    styles: np.ndarray,
    reference: np.ndarray | None,
    reference_note: str,
    on_row: Callable[[dict[str, Any]], None],
    on_stage: Callable[[str], None],
) -> list[dict[str, Any]]:
    ok, reason = runner.available()
    if not ok:
        return [_row(runner, None, "unavailable", reason)]
    rows = []
    try:
        on_stage(f"{runner.name}: building and loading")
        start = time.perf_counter()
        runner.build()
        build_s = time.perf_counter() - start
        probe = MemoryProbe(runner.device)
        probe.start()
        start = time.perf_counter()
        runner.load()
        load_s = time.perf_counter() - start
        for batch in options.batch_sizes:
            on_stage(f"{runner.name}: batch {batch}")
            try:
                row = _measure_batch(runner, batch, labels, styles, reference, reference_note, probe, options)
                row.update(build_s=build_s, load_s=load_s)
            except Unavailable as e:
                row = _row(runner, batch, "unavailable", str(e))
            except Exception as e:  # one backend's failure is a row, not the end of the benchmark
                row = _row(runner, batch, "failed", _one_line(e))
            rows.append(row)
            on_row(row)
    except Unavailable as e:
        rows.append(_row(runner, None, "unavailable", str(e)))
    except Exception as e:
        rows.append(_row(runner, None, "failed", _one_line(e)))
    finally:
        runner.close()
    return rows


def _count_flops(source: ModelSource) -> tuple[int | None, str]:
    graph, problem = source.flops_graph(), ""
    if graph is not None:
        try:
            return flops.onnx_flops(graph), f"Conv/Gemm/MatMul shapes of {graph.name} (ONNX)"
        except MaskfaceError as e:
            problem = f" ({e})"
    if torch_installed():
        return flops.torch_flops(source.config), f"torch.utils.flop_counter on the generator (meta device){problem}"
    return None, f"no portable export and no torch to count FLOPs with{problem}"


def _roofline(
    rows: list[dict[str, Any]], flops_per_image: int | None, options: BenchOptions, runners: dict[str, Runner]
) -> None:
    gpu_names = env.gpu_names()
    cpu = {kind: peaks.cpu_peak(env.cpu_threads(), kind=kind) for kind in ("fp32", "bf16")}
    for row in rows:
        if row["status"] != "ok":
            continue
        device, runner = row["device"], runners[row["backend"]]
        kind = peaks.peak_kind(device, row["precision"], runner.tf32)
        if options.peak_tflops is not None:
            peak = peaks.Peak(options.peak_tflops, kind, "--peak-tflops")
        elif device.startswith("cuda"):
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            peak = peaks.gpu_peak(gpu_names[index] if index < len(gpu_names) else "unknown GPU", kind)
        else:
            peak = cpu[kind]
        row.update(peak_tflops=peak.tflops, peak_kind=peak.kind, peak_source=peak.source)
        if flops_per_image is None:
            continue
        row["gflops_per_image"] = flops_per_image / 1e9
        row["achieved_tflops"] = flops_per_image * row["images_per_s"] / 1e12
        if row["gpu_compute_median_ms"]:
            row["compute_tflops"] = flops_per_image * row["batch"] / (row["gpu_compute_median_ms"] / 1e3) / 1e12
        if peak.tflops:
            row["peak_fraction"] = row["achieved_tflops"] / peak.tflops
            if row["compute_tflops"] is not None:
                row["compute_peak_fraction"] = row["compute_tflops"] / peak.tflops


def _cpu_memory_kind() -> str:
    probe = MemoryProbe("cpu")
    probe.begin_row()  # finds out whether the high-water mark can be reset here
    return probe.kind


def _exit_code(rows: list[dict[str, Any]], named: bool) -> ExitCode:
    statuses = {row["status"] for row in rows}
    if "ok" not in statuses:
        return ExitCode.NOTHING_RAN
    if "failed" in statuses or (named and "unavailable" in statuses):
        return ExitCode.PARTIAL
    return ExitCode.OK


def run_bench(
    options: BenchOptions,
    *,
    on_row: Callable[[dict[str, Any]], None] = lambda row: None,
    on_stage: Callable[[str], None] = lambda text: None,
) -> BenchResult:
    """Every backend of ``options`` at every batch size; rows in backend order, then batch order."""
    device, no_cuda = resolve_device(options.device)
    max_batch = max(options.batch_sizes)
    with tempfile.TemporaryDirectory(prefix="maskface-bench-") as scratch:
        on_stage("preparing the model and the inputs")
        source = ModelSource.open(options.model, options.preset, Path(scratch), max_batch, options.seed)
        labels, styles = fixed_inputs(source, max_batch, options.seed)
        reference, reference_note = None, ""
        try:
            on_stage("computing the torch fp32 reference")
            reference = reference_images(source, labels, styles, device)
        except Unavailable as e:
            reference_note = str(e)
        except Exception as e:  # accuracy columns say why; speed can still be measured
            reference_note = f"the torch fp32 reference failed: {_one_line(e)}"
        ctx = RunnerContext(source, device, no_cuda)
        runners = {name: make_runner(name, ctx) for name in options.backends}
        rows: list[dict[str, Any]] = []
        for runner in runners.values():
            produced = _run_runner(runner, options, labels, styles, reference, reference_note, on_row, on_stage)
            if produced and produced[0]["batch"] is None:
                on_row(produced[0])
            rows += produced
        on_stage("counting FLOPs")
        flops_per_image, flops_source = _count_flops(source)
    _roofline(rows, flops_per_image, options, runners)
    ran = {row["backend"] for row in rows if row["status"] == "ok"}
    meta = {
        "benchmark": "maskface bench",
        "model": source.description,
        "config": source.config.to_dict(),
        "device": device,
        "batch_sizes": list(options.batch_sizes),
        "backends": list(options.backends),
        "warmup_s": options.warmup_s,
        "duration_s": options.duration_s,
        "min_iterations": options.min_iterations,
        "seed": options.seed,
        "inputs": f"procedural masks (maskface synth seed {options.seed}, pairs 0..B-1) and styles F(z) of "
        f"indices 0..B-1 (seed {options.seed})",
        "reference": reference_note or f"torch fp32 on {device}, no TF32, AdaIN in torch ops",
        "flops_per_image": flops_per_image,
        "flops_source": flops_source,
        "memory": {"cpu": _cpu_memory_kind(), "gpu": MemoryProbe("cuda:0").kind},
        "latency": "host to host per call: numpy labels and styles in, numpy uint8 images out",
        "gpu_compute": "per call with inputs and outputs on the device (CUDA events, or the host clock around "
        "a synchronous ONNX Runtime IOBinding run)",
        "notes": {name: runner.notes for name, runner in runners.items() if name in ran},
        "environment": env.environment(),
    }
    return BenchResult(rows, meta, _exit_code(rows, options.named))
