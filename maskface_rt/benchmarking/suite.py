"""Run the runners over the batch sizes and collect one row per backend and batch size.

Every runner gets the same inputs (procedural masks and the styles of indices 0..B-1 for the seed, the
first B of them at batch B) and its uint8 images are compared with torch fp32's. All runners are loaded
together; per batch size each one is prepared and warmed up (peak memory, accuracy), then the runners are
timed host to host in alternating rounds (A B C A B C ...: a load change on a shared machine hits every
row alike), each row's images/s the median over its rounds and its latency statistics over every call;
on a GPU, the device-resident inputs and outputs are timed after that (GPU compute time); then the roofline
columns from the FLOPs per image and the device's peak.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from maskface_rt.benchmarking import environment as env
from maskface_rt.benchmarking import flops, peaks
from maskface_rt.benchmarking.memory import MemoryProbe
from maskface_rt.benchmarking.models import ModelSource, Unavailable, fixed_inputs, reference_images, torch_installed
from maskface_rt.benchmarking.report import COLUMNS
from maskface_rt.benchmarking.runners import Runner, RunnerContext, make_runner
from maskface_rt.benchmarking.timing import Measurement, measure, summarize
from maskface_rt.devices import parse_device
from maskface_rt.errors import ExitCode, MaskfaceError, OptionError
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
    rounds: int = 3  # alternating rounds; each measures duration_s / rounds and min_iterations / rounds calls
    peak_tflops: float | None = None
    seed: int = 0


@dataclass
class BenchResult:
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    exit_code: ExitCode


def bench_device(name: str) -> tuple[str, str]:
    """A --device value -> (the bench's device, "cpu" or "cuda:N"; why CUDA-only runners cannot run here or '')."""
    device = parse_device(name)
    if device.kind == "cpu":
        return "cpu", "the device asked for is the CPU"
    found = env.gpu_names()
    if device.kind == "auto":
        return ("cuda:0", "") if found else ("cpu", "none found (neither nvidia-smi nor torch sees one)")
    index = device.index or 0
    if index >= len(found):
        raise OptionError("device", f"{name}: this machine has {len(found)} CUDA GPU(s)")
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


@dataclass(frozen=True)
class BenchInputs:
    """What every runner is given: the masks and styles of the largest batch, and torch fp32's images of the first
    B of them for each batch size B, run at that batch size (None, with ``reference_note`` saying why, where there is
    no reference)."""

    labels: np.ndarray
    styles: np.ndarray
    reference: dict[int, np.ndarray] | None
    reference_note: str


@dataclass
class _Loaded:
    """A runner that loaded, with its memory probe and how long building and loading took."""

    runner: Runner
    probe: MemoryProbe
    build_s: float
    load_s: float


def _load(runner: Runner, on_stage: Callable[[str], None]) -> _Loaded | dict[str, Any]:
    """The runner built and loaded, or its row saying why it cannot run (closed then)."""
    ok, reason = runner.available()
    if not ok:
        return _row(runner, None, "unavailable", reason)
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
        probe.loaded()
    except Exception as e:  # one backend's failure is a row, not the end of the benchmark
        runner.close()
        return _failed(runner, None, e)
    return _Loaded(runner, probe, build_s, load_s)


def _failed(runner: Runner, batch: int | None, error: Exception) -> dict[str, Any]:
    """The row of a runner that raised: unavailable (it said why) or failed."""
    return _row(runner, batch, "unavailable" if isinstance(error, Unavailable) else "failed", _one_line(error))


def _prepare_row(loaded: _Loaded, batch: int, inputs: BenchInputs, options: BenchOptions) -> dict[str, Any]:
    """Bind the batch, warm up, and fill what does not need timing: memory and accuracy."""
    runner = loaded.runner
    row = _row(runner, batch, "ok")
    row.update(build_s=loaded.build_s, load_s=loaded.load_s)
    loaded.probe.begin_row()
    start = time.perf_counter()
    images = runner.prepare(inputs.labels[:batch], inputs.styles[:batch])
    row["prepare_s"] = time.perf_counter() - start
    warmup = measure(runner.run_once, warmup_s=options.warmup_s, duration_s=0.0)
    peak = loaded.probe.peak()
    row.update(
        warmup_iterations=warmup.warmup_calls + len(warmup.samples),
        warmup_s=warmup.warmup_s + warmup.measured_s,
        peak_memory_mb=None if peak is None else peak / 2**20,
    )
    if inputs.reference is not None:
        accumulator = ParityAccumulator()
        accumulator.update(inputs.reference[batch], images)
        parity = accumulator.result()
        row.update(
            max_abs_error=parity.max_abs_error,
            mean_abs_error=parity.mean_abs_error,
            psnr_db=parity.psnr_db,
            identical_images=parity.identical_images,
        )
    else:
        row["accuracy_note"] = inputs.reference_note
    return row


def _timed_rounds(runners: dict[Runner, dict[str, Any]], options: BenchOptions) -> dict[Runner, list[Measurement]]:
    """Host-to-host timing in alternating rounds: round r times every runner once, in order; each round is
    preceded by one untimed call (the caches the previous runner left). A runner that fails drops out."""
    measure_round = partial(
        measure,
        warmup_s=0.0,
        duration_s=options.duration_s / options.rounds,
        min_iterations=-(-options.min_iterations // options.rounds),
    )
    timed: dict[Runner, list[Measurement]] = {runner: [] for runner in runners}
    for _ in range(options.rounds):
        for runner in runners:
            if runners[runner]["status"] != "ok":
                continue
            try:
                timed[runner].append(measure_round(runner.run_once))
            except Exception as e:  # its row says so; the others go on alternating
                runners[runner] = _failed(runner, runners[runner]["batch"], e)
    return timed


def _timing_columns(batch: int, rounds: list[Measurement]) -> dict[str, Any]:
    """The row's timing: latency over every call of every round, images/s the median of the rounds' rates."""
    samples = [sample for measurement in rounds for sample in measurement.samples]
    rates = [batch * m.calls_per_s for m in rounds]
    return {
        **summarize(samples).as_ms("latency"),
        "iterations": len(samples),
        "rounds": len(rounds),
        "measured_s": sum(m.measured_s for m in rounds),
        "images_per_s": float(np.median(rates)),
        "images_per_s_min": min(rates),
        "images_per_s_max": max(rates),
    }


def _device_timing(runner: Runner, options: BenchOptions) -> dict[str, Any]:
    """GPU compute time with inputs and outputs on the device (after the host rounds), or why there is none."""
    if not runner.on_cuda:
        return {"gpu_compute_note": "CPU: no device copies"}
    try:
        runner.prepare_device()
        return measure(
            runner.run_device,
            warmup_s=options.warmup_s,
            duration_s=options.duration_s,
            min_iterations=options.min_iterations,
            device_timed=True,
        ).stats.as_ms("gpu_compute")
    except Unavailable as e:
        return {"gpu_compute_note": str(e)}
    except Exception as e:  # a device-time failure must not cost the row its host figures
        return {"gpu_compute_note": f"failed: {_one_line(e)}"}


def _measure_batch(
    loaded: list[_Loaded], batch: int, inputs: BenchInputs, options: BenchOptions, on_stage: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Every loaded runner at one batch size: prepared and warmed up one after another, then timed in
    alternating rounds, then (on a GPU) device-timed; one row each, in runner order."""
    rows: dict[Runner, dict[str, Any]] = {}
    for item in loaded:
        on_stage(f"{item.runner.name}: batch {batch}, warming up")
        try:
            rows[item.runner] = _prepare_row(item, batch, inputs, options)
        except Exception as e:  # one backend's failure is a row, not the end of the benchmark
            rows[item.runner] = _failed(item.runner, batch, e)
    on_stage(f"batch {batch}: {options.rounds} alternating rounds")
    timed = _timed_rounds(rows, options)
    for runner, row in rows.items():
        if row["status"] == "ok":
            row.update(_timing_columns(batch, timed[runner]))
            on_stage(f"{runner.name}: batch {batch}, device time")
            row.update(_device_timing(runner, options))
    return list(rows.values())


def run_runners(
    runners: list[Runner],
    options: BenchOptions,
    inputs: BenchInputs,
    on_row: Callable[[dict[str, Any]], None],
    on_stage: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Rows in runner order, then batch order: unavailable runners' one row each, then every batch size of
    the others (all loaded together, so that their timing can alternate)."""
    rows: list[dict[str, Any]] = []
    loaded: list[_Loaded] = []
    try:
        for runner in runners:
            item = _load(runner, on_stage)
            if isinstance(item, _Loaded):
                loaded.append(item)
            else:
                rows.append(item)
                on_row(item)
        for batch in options.batch_sizes:
            for row in _measure_batch(loaded, batch, inputs, options, on_stage):
                rows.append(row)
                on_row(row)
    finally:
        for item in loaded:
            item.runner.close()
    order = {runner.name: i for i, runner in enumerate(runners)}
    return sorted(rows, key=lambda row: (order[row["backend"]], row["batch"] or 0))


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
    rows: list[dict[str, Any]], flops_per_image: int | None, options: BenchOptions, runners: Mapping[str, Runner]
) -> None:
    gpu_names = env.gpu_names()
    cpu = {kind: peaks.cpu_peak(env.cpu_threads(), kind=kind) for kind in ("fp32", "bf16")}
    for row in rows:
        if row["status"] != "ok":
            continue
        device, runner = parse_device(row["device"]), runners[row["backend"]]
        kind = peaks.peak_kind(row["device"], row["precision"], runner.tf32)
        if options.peak_tflops is not None:
            peak = peaks.Peak(options.peak_tflops, kind, "--peak-tflops")
        elif device.is_cuda:
            index = device.index or 0
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
    device, no_cuda = bench_device(options.device)
    max_batch = max(options.batch_sizes)
    with tempfile.TemporaryDirectory(prefix="maskface-bench-") as scratch:
        on_stage("preparing the model and the inputs")
        source = ModelSource.open(options.model, options.preset, Path(scratch), max_batch, options.seed)
        labels, styles = fixed_inputs(source, max_batch, options.seed)
        reference, reference_note = None, ""
        try:
            on_stage("computing the torch fp32 reference")
            reference = reference_images(source, labels, styles, device, options.batch_sizes)
        except Unavailable as e:
            reference_note = str(e)
        except Exception as e:  # accuracy columns say why; speed can still be measured
            reference_note = f"the torch fp32 reference failed: {_one_line(e)}"
        ctx = RunnerContext(source, device, no_cuda)
        runners = {name: make_runner(name, ctx) for name in options.backends}
        inputs = BenchInputs(labels, styles, reference, reference_note)
        rows = run_runners(list(runners.values()), options, inputs, on_row, on_stage)
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
        "rounds": options.rounds,
        "timing": f"runners alternate in {options.rounds} rounds per batch size (A B C A B C ...), each round "
        "after one untimed call; images/s is the median of a row's rounds, latency statistics are over all its "
        "calls",
        "seed": options.seed,
        "inputs": f"procedural masks (maskface synth seed {options.seed}, pairs 0..B-1) and styles F(z) of "
        f"indices 0..B-1 (seed {options.seed})",
        "reference": reference_note or f"torch fp32 on {device} at the row's batch size, no TF32, AdaIN in torch ops",
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
