"""maskface bench: timing statistics, FLOPs, peaks, reports, runner availability, the command end to end."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import math
import mmap
import os
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from maskface_rt.backends.registry import REGISTRY
from maskface_rt.benchmarking import environment, flops, memory, peaks, report
from maskface_rt.benchmarking.models import ModelSource, Unavailable, fixed_inputs, reference_images
from maskface_rt.benchmarking.runners import (
    BACKEND_NAMES,
    BackendRunner,
    Runner,
    RunnerContext,
    make_runner,
    runner_class,
)
from maskface_rt.benchmarking.suite import BenchInputs, BenchOptions, _exit_code, bench_device, run_runners
from maskface_rt.benchmarking.timing import measure, summarize
from maskface_rt.benchmarking.variants import VARIANTS, Variant, bench_variants
from maskface_rt.cli.bench import BenchCommand, bench
from maskface_rt.config import preset
from maskface_rt.devices import device_kinds, parse_device
from maskface_rt.errors import ExitCode, MaskfaceError

# The main CLI registers the command exactly like this.
app = typer.Typer()
app.command("bench", cls=BenchCommand)(bench)


@app.callback()
def _root() -> None:
    """A root with a callback, as in maskface_rt.cli, so 'bench' stays a subcommand."""


def _invoke(*args: str):
    # A wide terminal, so that a one-line message stays on one line inside typer's error box.
    return CliRunner().invoke(app, ["bench", *args], env={"NO_COLOR": "1", "COLUMNS": "300"})


# --- timing ----------------------------------------------------------------------------------------------


def test_stats_of_synthetic_samples():
    stats = summarize([float(v) for v in range(100, 0, -1)])  # 1..100, unordered
    assert (stats.count, stats.min, stats.mean, stats.median) == (100, 1.0, 50.5, 50.5)
    assert stats.p90 == pytest.approx(90.1) and stats.p99 == pytest.approx(99.01)  # linear interpolation
    one = summarize([0.25])
    assert one.min == one.median == one.p99 == 0.25
    assert stats.as_ms("latency")["latency_p90_ms"] == pytest.approx(90100.0)
    with pytest.raises(ValueError):
        summarize([])


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_measure_is_time_based_with_a_minimum_of_calls():
    clock = _FakeClock()

    def call() -> None:
        clock.now += 0.1

    m = measure(call, warmup_s=0.35, duration_s=1.0, min_iterations=3, clock=clock)
    assert m.warmup_calls == 4  # until 0.35 s have passed
    assert len(m.samples) == 10 and m.measured_s == pytest.approx(1.0)
    assert all(s == pytest.approx(0.1) for s in m.samples) and m.calls_per_s == pytest.approx(10.0)
    m = measure(call, warmup_s=0.0, duration_s=0.0, min_iterations=5, clock=clock)
    assert m.warmup_calls == 1 and len(m.samples) == 5  # at least one warm-up call, at least min_iterations

    def device_timed() -> float:
        clock.now += 0.1
        return 0.02  # what CUDA events would say

    m = measure(device_timed, warmup_s=0.0, duration_s=0.5, device_timed=True, clock=clock)
    assert set(m.samples) == {0.02} and len(m.samples) == 5
    m = measure(lambda: np.zeros(3), warmup_s=0.0, duration_s=0.0, min_iterations=2, clock=clock)
    assert m.samples == (0.0, 0.0)  # without device_timed a return value is ignored


# --- FLOPs and peaks -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_flops_match_torch_flop_counter(tiny_export):
    from maskface_rt.benchmarking.flops import onnx_flops, torch_flops

    counted = onnx_flops(tiny_export / "generator.onnx")
    expected = torch_flops(preset("tiny-64"))
    assert abs(counted - expected) / expected < 0.02, (counted, expected)
    assert torch_flops(preset("paper-256")) == pytest.approx(98.5e9, rel=1e-3)


def test_gpu_peak_table_matches_device_names():
    h100 = peaks.gpu_peak("NVIDIA H100 80GB HBM3", "fp16")
    assert h100.tflops == 989.4 and "H100 SXM" in h100.source
    assert peaks.gpu_peak("NVIDIA H100 PCIe", "tf32").tflops == 378.0
    assert peaks.gpu_peak("NVIDIA H200", "fp16").tflops == 989.4
    assert peaks.gpu_entry("NVIDIA GH200 480GB").label == "NVIDIA GH200"
    assert peaks.gpu_entry("NVIDIA A100-SXM4-80GB").dram_gbs == 2039.0
    assert peaks.gpu_entry("NVIDIA A10").label == "NVIDIA A10" and peaks.gpu_entry("NVIDIA A10G") is None
    assert peaks.gpu_entry("NVIDIA L40S").label == "NVIDIA L40S" and peaks.gpu_entry("NVIDIA L4").label == "NVIDIA L4"
    assert peaks.gpu_peak("Tesla T4", "tf32").tflops is None
    assert "--peak-tflops" in peaks.gpu_peak("Some Future GPU", "fp16").source
    assert peaks.peak_kind("cuda:0", "fp16") == "fp16" and peaks.peak_kind("cuda:0", "bf16") == "fp16"
    assert peaks.peak_kind("cuda:0", "fp32", tf32=True) == "tf32" and peaks.peak_kind("cpu", "fp32", True) == "fp32"


def test_cpu_peak_estimate_from_cpuinfo():
    info = (
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.00GHz\n"
        "cpu MHz\t\t: 2000.000\nsiblings\t: 8\ncpu cores\t: 4\nflags\t\t: fpu sse2 avx avx2 fma avx512f\n\n"
        "processor\t: 1\n"
    )
    peak = peaks.cpu_peak(8, info)  # 8 threads = 4 cores with SMT
    assert peak.kind == "fp32" and "estimate" in peak.source and "4 cores" in peak.source
    clock = peak.tflops * 1e3 / (4 * 64)
    assert clock > 0.5  # the clock comes from cpufreq where present, else the model name (2.0 GHz)
    assert peaks.flops_per_cycle({"avx512f"}, "AuthenticAMD", 25) == 32
    assert peaks.flops_per_cycle({"avx512f"}, "AuthenticAMD", 26) == 64
    assert peaks.flops_per_cycle({"avx2", "fma"}, "GenuineIntel", 6) == 32
    assert peaks.flops_per_cycle({"sse2"}, "GenuineIntel", 6) == 8


def test_cpu_bf16_peak_comes_from_the_bf16_units():
    def info(flags: str) -> str:
        return (
            "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel name\t: Intel(R) Xeon(R) @ 2.00GHz\n"
            f"siblings\t: 2\ncpu cores\t: 2\nflags\t\t: avx2 fma avx512f {flags}\n"
        )

    assert peaks.peak_kind("cpu", "bf16") == "bf16"
    fp32 = peaks.cpu_peak(2, info(""), kind="fp32")
    emulated = peaks.cpu_peak(2, info(""), kind="bf16")
    avx512_bf16 = peaks.cpu_peak(2, info("avx512_bf16"), kind="bf16")
    amx = peaks.cpu_peak(2, info("avx512_bf16 amx_tile amx_bf16"), kind="bf16")
    assert emulated.kind == "bf16" and emulated.tflops == fp32.tflops and "emulated" in emulated.source
    assert avx512_bf16.tflops == 2 * fp32.tflops and "AVX512-BF16" in avx512_bf16.source
    assert amx.tflops == 16 * fp32.tflops and "AMX-BF16" in amx.source
    assert peaks.bf16_flops_per_cycle({"avx512_bf16"}, "AuthenticAMD", 25) == (64, "AVX512-BF16")


# --- environment and memory ------------------------------------------------------------------------------


def test_environment_names_machine_and_versions():
    env = environment.environment()
    for key in (
        "cpu",
        "cpu_threads",
        "gpus",
        "cuda_driver",
        "python",
        "numpy",
        "onnxruntime",
        "torch",
        "tensorrt",
        "triton",
        "maskface_rt",
        "git_commit",
    ):
        assert key in env
    import platform

    import onnxruntime

    import maskface_rt

    assert (env["onnxruntime"], env["numpy"], env["maskface_rt"]) == (
        onnxruntime.__version__,
        np.__version__,
        maskface_rt.__version__,
    )
    assert env["python"].startswith(platform.python_version()) and env["cpu_threads"] == len(os.sched_getaffinity(0))


def test_the_cpu_is_named_with_its_family_and_model_numbers():
    """Virtual machines name a Zen 4 and a Zen 5 alike ("AMD EPYC"): the numbers tell them apart."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo here")
    fields = dict(line.split(":", 1) for line in info.split("\n\n")[0].splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    if "cpu family" not in fields:
        pytest.skip("this /proc/cpuinfo has no cpu family (not x86)")
    name = environment.cpu_model()
    assert name == f"{fields['model name']} (family {fields['cpu family']} model {fields['model']})"
    assert environment.environment()["cpu"] == name


def _resident(nbytes: int) -> mmap.mmap:
    """nbytes of fresh pages, written: resident whatever the process freed before (malloc may hand back pages
    that are already resident, which would not raise RSS)."""
    pages = mmap.mmap(-1, nbytes)
    np.frombuffer(pages, dtype=np.uint8)[:] = 1  # in place: no temporary copy to raise the high-water mark
    return pages


def test_memory_probe_sees_an_allocation():
    if memory.rss_bytes() is None:
        pytest.skip("no /proc/self/status here")
    probe = memory.MemoryProbe("cpu")
    probe.start()
    loaded = _resident(32 << 20)  # what a runner's load keeps: 32 MiB
    probe.loaded()
    others = _resident(48 << 20)  # another runner loaded after it: not its memory
    probe.begin_row()
    if not probe.resettable:
        pytest.skip("the kernel refuses to reset VmHWM here: the peak would be the process's lifetime peak")
    block = _resident(64 << 20)  # 64 MiB during the row
    assert (60 << 20) + (30 << 20) <= probe.peak() < (96 << 20) + (40 << 20)
    for pages in (block, loaded, others):
        pages.close()


# --- reports ---------------------------------------------------------------------------------------------


def _rows() -> list[dict]:
    rows = []
    for name, rate in (("torch-fp32", 10.0), ("onnxruntime-cpu-fp32", 15.0)):
        for batch in (1, 2, 8):
            row = dict.fromkeys(report.COLUMNS)
            row.update(
                backend=name,
                device="cpu",
                batch=batch,
                status="ok",
                images_per_s=rate * batch**0.3,
                latency_median_ms=1000 * batch / rate,
                latency_p99_ms=1100 * batch / rate,
                psnr_db=math.inf,
                max_abs_error=0,
            )
            rows.append(row)
    unavailable = dict.fromkeys(report.COLUMNS)
    unavailable.update(backend="tensorrt-fp16", device="cpu", status="unavailable", reason="needs a CUDA GPU")
    return [*rows, unavailable]


def test_json_csv_and_png_are_written_atomically_and_readable(tmp_path):
    rows = _rows()
    report.write_json(tmp_path / "r.json", rows, {"benchmark": "maskface bench"})
    report.write_csv(tmp_path / "r.csv", rows)
    report.write_plot(tmp_path / "r.png", rows, "test plot")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["columns"] == list(report.COLUMNS) and len(data["rows"]) == 7
    assert data["rows"][0]["psnr_db"] == "inf" and data["rows"][-1]["reason"] == "needs a CUDA GPU"
    with open(tmp_path / "r.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(report.COLUMNS) and len(table) == 7 and table[-1]["status"] == "unavailable"
    with Image.open(tmp_path / "r.png") as image:
        assert image.format == "PNG" and image.size == (report.WIDTH, report.HEIGHT)
        pixels = np.asarray(image.convert("RGB"))
    assert (pixels != report.BACKGROUND).any(axis=-1).mean() > 0.01
    assert any((pixels == colour).all(axis=-1).any() for colour in report.PALETTE[:2])  # the two series
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json", "r.png"]  # no temp files left

    before = (tmp_path / "r.csv").read_bytes()
    with pytest.raises(MaskfaceError, match="already exists"):
        report.write_csv(tmp_path / "r.csv", rows[:1])
    assert (tmp_path / "r.csv").read_bytes() == before
    report.write_csv(tmp_path / "r.csv", rows[:1], overwrite=True)
    assert (tmp_path / "r.csv").read_bytes() != before
    report.write_plot(tmp_path / "empty.png", rows[-1:], "nothing ran")  # a plot without data still says so
    with Image.open(tmp_path / "empty.png") as image:
        assert image.size == (report.WIDTH, report.HEIGHT)


def test_exit_codes():
    ok = {"status": "ok"}
    assert _exit_code([ok, {"status": "unavailable"}], named=False) == ExitCode.OK
    assert _exit_code([ok, {"status": "unavailable"}], named=True) == ExitCode.PARTIAL
    assert _exit_code([ok, {"status": "failed"}], named=False) == ExitCode.PARTIAL
    assert _exit_code([{"status": "unavailable"}], named=False) == ExitCode.NOTHING_RAN


# --- runners ---------------------------------------------------------------------------------------------


class _LoggedRunner(Runner):
    """A runner that only records its calls in a shared log (the real ones are timed in the tests below)."""

    def __init__(self, name: str, log: list[str], fail_on_call: int | None = None) -> None:
        super().__init__(RunnerContext(None, "cpu", "the device asked for is the CPU"), name)  # type: ignore[arg-type]
        self.log, self.fail_on_call, self.calls, self.closed = log, fail_on_call, 0, False

    def available(self) -> tuple[bool, str]:
        return True, ""

    def load(self) -> None:
        self.log.append(f"load {self.name}")

    def prepare(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        self.batch = len(labels)
        return np.zeros((len(labels), 4, 4, 3), np.uint8)

    def run_once(self) -> None:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("out of memory")
        self.log.append(f"{self.name}{self.batch}")

    def close(self) -> None:
        self.closed = True


def test_backends_alternate_in_rounds_and_a_failing_one_drops_out_alone():
    log: list[str] = []
    # Each warm-up and each round is 2 calls (one untimed): c fails on its 13th, batch 2's second round.
    runners = [_LoggedRunner("a", log), _LoggedRunner("b", log), _LoggedRunner("c", log, fail_on_call=13)]
    options = BenchOptions(("a", "b", "c"), (1, 2), warmup_s=0.0, duration_s=0.0, min_iterations=3, rounds=3)
    labels, styles = np.zeros((2, 4, 4), np.uint8), np.zeros((2, 8), np.float32)
    seen: list[tuple[str, int]] = []
    rows = run_runners(runners, options, BenchInputs(labels, styles, None, "no reference"), seen.append, print)
    calls = [entry for entry in log if not entry.startswith("load")]
    runs = [name for i, name in enumerate(calls) if i == 0 or calls[i - 1] != name]  # consecutive calls merged
    # All loaded first; per batch size: each warmed up in turn, then rounds a b c a b c a b c.
    assert log[:3] == ["load a", "load b", "load c"]
    assert runs == ["a1", "b1", "c1", *["a1", "b1", "c1"] * 3, "a2", "b2", "c2", "a2", "b2", "c2", *["a2", "b2"] * 2]
    assert [(r["backend"], r["batch"], r["status"]) for r in rows] == [
        ("a", 1, "ok"),
        ("a", 2, "ok"),
        ("b", 1, "ok"),
        ("b", 2, "ok"),
        ("c", 1, "ok"),
        ("c", 2, "failed"),
    ]
    assert rows[-1]["reason"] == "out of memory" and rows[-1]["images_per_s"] is None
    for row in rows[:-1]:
        assert row["rounds"] == 3 and row["iterations"] == 3  # one timed call per round (min 3 over 3 rounds)
        assert row["images_per_s_min"] <= row["images_per_s"] <= row["images_per_s_max"]
        assert row["warmup_iterations"] == 2 and row["accuracy_note"] == "no reference"
    assert sorted(seen, key=lambda r: (r["backend"], r["batch"])) == rows and all(r.closed for r in runners)


def test_unavailable_backends_are_listed_with_reasons(tiny_model, tiny_export, tmp_path):
    device, no_cuda = bench_device("auto")
    if device != "cpu":
        pytest.skip("this machine has a CUDA GPU")
    source = ModelSource(preset("tiny-64"), tiny_model, tmp_path, 2, "tiny")
    ctx = RunnerContext(source, device, no_cuda)
    verdicts = {name: make_runner(name, ctx).available() for name in BACKEND_NAMES}
    for name in ("torch-fp32", "onnxruntime-cpu-fp32"):
        assert verdicts[name] == (True, "")
    openvino = importlib.util.find_spec("openvino") is not None
    for name in ("openvino-cpu-fp32", "openvino-cpu-bf16"):
        assert verdicts[name][0] is openvino and (openvino or "pip install" in verdicts[name][1]), verdicts[name]
    cpu = ("torch-fp32", "torch-compile-fp32", "onnxruntime-cpu-fp32", "openvino-cpu-fp32", "openvino-cpu-bf16")
    cuda_only = [n for n in BACKEND_NAMES if n not in cpu]
    for name in cuda_only:
        ok, reason = verdicts[name]
        assert not ok and reason.startswith("needs a CUDA GPU: none found"), (name, reason)
    forced_cpu = RunnerContext(source, "cpu", "the device asked for is the CPU")
    assert make_runner("tensorrt-fp16", forced_cpu).available() == (
        False,
        "needs a CUDA GPU: the device asked for is the CPU",
    )

    exported = ModelSource.open(tiny_export, "paper-256", tmp_path, 2)
    ctx = RunnerContext(exported, "cpu", no_cuda)
    assert make_runner("onnxruntime-cpu-fp32", ctx).available() == (True, "")
    ok, reason = make_runner("torch-fp32", ctx).available()
    assert not ok and "checkpoint" in reason
    with pytest.raises(Unavailable, match="needs a checkpoint"):
        reference_images(exported, np.zeros((1, 64, 64), np.uint8), np.zeros((1, 32), np.float32), "cpu", [1])
    too_big = ModelSource.open(tiny_export, "paper-256", tmp_path, 64)
    ok, reason = make_runner("onnxruntime-cpu-fp32", RunnerContext(too_big, "cpu", no_cuda)).available()
    assert not ok and "declares max batch 16" in reason


def test_every_bench_row_is_a_registry_row_and_every_registry_row_that_runs_here_has_one(tiny_model, tmp_path):
    """Bench keeps no table of its own: each row is a variant of a registry row, and each registry row that runs on
    this machine's kind of device (the CPU, or a GPU) has a bench row that runs there."""
    rows = bench_variants()
    assert tuple(v.name for v in rows) == BACKEND_NAMES and len(set(BACKEND_NAMES)) == len(BACKEND_NAMES)
    assert [v.name for v in rows if v.row not in REGISTRY] == [] and {v.row for v in rows} == set(REGISTRY)
    device, no_cuda = bench_device("auto")
    kind = parse_device(device).kind
    source = ModelSource(preset("tiny-64"), tiny_model, tmp_path, 2, "tiny")
    runners = [make_runner(name, RunnerContext(source, device, no_cuda)) for name in BACKEND_NAMES]
    assert all(r.spec is REGISTRY[r.variant.row] and r.name == r.variant.name for r in runners)
    here = {r.spec.name for r in runners if parse_device(r.device).kind == kind and r.device_problem() is None}
    assert here == {name for name, spec in REGISTRY.items() if kind in device_kinds(spec.devices)}


def test_a_backend_added_to_the_registry_is_a_bench_row_without_an_edit_to_bench(tiny_export, tmp_path, monkeypatch):
    """A row bench has no variants or runner of its own for runs as it is, through the registry."""
    spec = dataclasses.replace(REGISTRY["onnxruntime"], name="ort-copy", library="ort-copy")
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    rows = bench_variants(REGISTRY)
    assert rows[: len(VARIANTS)] == VARIANTS and rows[-1] == Variant("ort-copy", "fp32")
    assert rows[-1].name == "ort-copy-fp32" and runner_class(spec) is BackendRunner
    source = ModelSource.open(tiny_export, "paper-256", tmp_path, 2)
    runner = BackendRunner(RunnerContext(source, "cpu", "the device asked for is the CPU"), rows[-1])
    assert runner.available() == (True, "") and (runner.device, runner.family) == ("cpu", "ort-copy")
    runner.build()
    runner.load()
    labels, styles = fixed_inputs(source, 2)
    try:
        images = runner.prepare(labels, styles)
        assert images.shape == (2, 64, 64, 3) and np.array_equal(runner.run_once(), images)
        with pytest.raises(Unavailable, match="runs on the CPU"):
            runner.prepare_device()
    finally:
        runner.close()
    assert runner.notes.startswith("onnxruntime CPUExecutionProvider")


def test_a_bound_generator_runs_its_batch_again_and_writes_what_generate_gives(tiny_export):
    """bench's device time goes through the backend's bind_generator, never its sessions: onnxruntime's IOBinding,
    bound once (on the CPU here), writes what generate gives; the default of the other backends calls generate."""
    from maskface_rt.backends import open_backend
    from maskface_rt.backends.base import GeneratorBackend
    from maskface_rt.graph_contract import IMAGE

    with open_backend(tiny_export, "onnxruntime", device="cpu") as backend:
        labels = np.stack([np.full((64, 64), k, np.uint8) for k in range(3)])
        styles = backend.styles_for_seed(0, 3)
        expected = backend.generate(labels, styles)
        run = backend.bind_generator(labels, styles)
        assert run() is None and run() is None
        assert np.array_equal(run.args[-1][IMAGE].numpy(), expected)  # the output OrtValue the binding wrote
        default = GeneratorBackend.bind_generator(backend, labels, styles)
        calls: list[int] = []
        backend.generate = lambda labels, styles: calls.append(len(labels))  # what the default calls
        default()
        assert calls == [3]


def test_the_reference_of_each_batch_size_is_run_at_that_batch_size(tiny_model, tmp_path, monkeypatch):
    """torch may round differently at another batch size (oneDNN on an AVX2 CPU: one level at batch 1 against
    batch 2): a row compared with a slice of a larger batch would show torch's own jitter as its error."""
    from maskface_rt.backends.torch_backend import TorchBackend

    source = ModelSource(preset("tiny-64"), tiny_model, tmp_path, 4, "tiny")
    labels, styles = fixed_inputs(source, 4)
    batches_run = []
    generate = TorchBackend.generate

    def recorded(self, labels, styles):
        batches_run.append(len(labels))
        return generate(self, labels, styles)

    monkeypatch.setattr(TorchBackend, "generate", recorded)
    reference = reference_images(source, labels, styles, "cpu", [4, 1, 2, 1])
    assert batches_run == [1, 2, 4] and sorted(reference) == [1, 2, 4]
    for batch, images in reference.items():
        assert images.shape == (batch, 64, 64, 3) and images.dtype == np.uint8


# --- the command -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_end_to_end_on_tiny64(tmp_path):
    out = tmp_path / "results"
    done = _invoke(
        "--preset",
        "tiny-64",
        "--backend",
        "onnxruntime-cpu-fp32",
        "--backend",
        "torch-fp32",
        "--batch-sizes",
        "1,2",
        "--warmup-s",
        "0.2",
        "--duration-s",
        "0.5",
        "--iterations",
        "2",
        "--rounds",
        "1",  # the alternating rounds have their own tests (a fake clock); one keeps this end-to-end run short
        "--device",
        "cpu",
        "--json",
        str(out / "b.json"),
        "--csv",
        str(out / "b.csv"),
        "--plot",
        str(out / "b.png"),
    )
    assert done.exit_code == 0, (done.stderr, done.exception)
    data = json.loads((out / "b.json").read_text())
    rows = {(r["backend"], r["batch"]): r for r in data["rows"]}
    assert list(rows) == [
        ("torch-fp32", 1),
        ("torch-fp32", 2),
        ("onnxruntime-cpu-fp32", 1),
        ("onnxruntime-cpu-fp32", 2),
    ]
    for row in rows.values():
        assert list(row) == list(report.COLUMNS)
        assert row["status"] == "ok" and row["iterations"] >= 2 and row["images_per_s"] > 0 and row["rounds"] == 1
        assert row["latency_min_ms"] <= row["latency_median_ms"] <= row["latency_p90_ms"] <= row["latency_p99_ms"]
        assert row["gflops_per_image"] == pytest.approx(data["flops_per_image"] / 1e9)
        assert row["achieved_tflops"] > 0 and row["peak_fraction"] is not None and row["peak_memory_mb"] is not None
        assert row["gpu_compute_median_ms"] is None and row["gpu_compute_note"]
    for batch in (1, 2):
        assert float(rows["onnxruntime-cpu-fp32", batch]["psnr_db"]) > 40
        assert rows["torch-fp32", batch]["psnr_db"] == "inf" and rows["torch-fp32", batch]["max_abs_error"] == 0
    # Counted from the exported graph; torch's own flop counter on the same architecture must agree.
    assert data["flops_per_image"] == pytest.approx(flops.torch_flops(preset("tiny-64")), rel=0.01)
    assert data["environment"]["cpu"] and data["command"].startswith("maskface bench --preset tiny-64")
    assert "torch-fp32" in data["notes"] and data["reference"].startswith("torch fp32 on cpu")
    with open(out / "b.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4
    with Image.open(out / "b.png") as image:
        assert image.format == "PNG"
    assert "onnxruntime-cpu-fp32" in done.stderr and "img/s" in done.stderr

    again = _invoke(
        "--preset", "tiny-64", "--backend", "onnxruntime-cpu-fp32", "--batch-sizes", "1", "--json", str(out / "b.json")
    )
    assert isinstance(again.exception, MaskfaceError) and "already exists" in str(again.exception)


def test_bench_on_an_export_folder_and_named_unavailable_backends(tiny_export, tmp_path):
    done = _invoke(
        "--model",
        str(tiny_export),
        "--backend",
        "onnxruntime-cpu-fp32,tensorrt-fp16",
        "--batch-sizes",
        "2",
        "--warmup-s",
        "0",
        "--duration-s",
        "0.1",
        "--iterations",
        "1",
        "--device",
        "cpu",
        "--json",
        "-",
    )
    assert done.exit_code == int(ExitCode.PARTIAL), (done.stderr, done.exception)  # a named backend did not run
    rows = json.loads(done.stdout)["rows"]  # --json -: the result on stdout, nothing else there
    assert [(r["backend"], r["status"]) for r in rows] == [
        ("onnxruntime-cpu-fp32", "ok"),
        ("tensorrt-fp16", "unavailable"),
    ]
    assert rows[0]["psnr_db"] is None and "needs a checkpoint" in rows[0]["accuracy_note"]
    assert rows[1]["batch"] is None and rows[1]["reason"] == "needs a CUDA GPU: the device asked for is the CPU"
    assert "unavailable: tensorrt-fp16: needs a CUDA GPU" in done.stderr

    nothing = _invoke("--model", str(tiny_export), "--backend", "torch-fp16", "--batch-sizes", "1", "--device", "cpu")
    assert nothing.exit_code == int(ExitCode.NOTHING_RAN)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "tensorrt"], "unknown backend 'tensorrt'; valid: all, torch-fp32,"),
        (["--batch-sizes", "1,x"], "is not a comma-separated list of positive integers"),
        (["--batch-sizes", "0,8"], "is not a comma-separated list of positive integers"),
        (["--device", "gpu"], "unknown device 'gpu'; valid: auto, cpu, cuda, cuda:N"),
        (["--preset", "huge"], "unknown preset 'huge'; valid: paper-256, tiny-64, tiny-128"),
        (["--peak-tflops", "0"], "must be positive"),
        (["--json", "same.out", "--csv", "same.out"], "must name different files"),
        (["--warmup-s", "-1"], "--warmup-s"),
    ],
)
def test_bad_options_are_one_line_usage_errors(args, message):
    done = _invoke(*args)
    assert done.exit_code == 2, done.stderr
    assert any(message in line for line in done.stderr.splitlines()), done.stderr


def test_preset_and_model_together_is_a_usage_error(tiny_export):
    done = _invoke("--model", str(tiny_export), "--preset", "tiny-64")
    assert done.exit_code == 2 and "--model has its own config" in done.stderr


def test_targets_are_checked_from_reports():
    from maskface_rt.benchmarking.targets import check

    def row(backend: str, device: str, batch: int, rate: float, **extra) -> dict:
        return {"backend": backend, "device": device, "batch": batch, "status": "ok", "images_per_s": rate, **extra}

    cpu = {
        "config": preset("tiny-128").to_dict(),
        "environment": {"cpu_threads": 2, "cpu": "AMD EPYC"},
        "rows": [
            row("torch-fp32", "cpu", 1, 10.0),
            row("onnxruntime-cpu-fp32", "cpu", 1, 14.0),
            row("torch-fp32", "cpu", 8, 10.0),
            row("onnxruntime-cpu-fp32", "cpu", 8, 12.0),
        ],
    }
    verdicts = check(cpu)
    assert [v.passed for v in verdicts] == [True, False] and verdicts[0].value == pytest.approx(1.4)
    assert "2 threads of AMD EPYC" in verdicts[0].line() and verdicts[1].line().startswith("[FAIL]")
    assert check({**cpu, "config": preset("tiny-64").to_dict()}) == []

    gpu = {
        "config": preset("paper-256").to_dict(),
        "environment": {"gpus": [{"name": "NVIDIA H100 80GB HBM3"}]},
        "rows": [
            row("torch-fp32", "cuda:0", 32, 100.0),
            row("torch-compile-fp16", "cuda:0", 32, 700.0),
            row(
                "tensorrt-plugin-fp16",
                "cuda:0",
                32,
                1000.0,
                compute_peak_fraction=0.55,
                peak_source="datasheet: NVIDIA H100 SXM dense fp16",
            ),
        ],
    }
    assert [v.passed for v in check(gpu)] == [True, True, True]
    gpu["rows"] = gpu["rows"][:2]
    assert [v.passed for v in check(gpu)] == [None, None, None]  # not measured, not failed


@pytest.mark.parametrize(
    ("isa", "threshold", "flag"),
    [(["avx512f", "avx512_bf16"], 1.8, "avx512_bf16"), (["avx512_bf16", "amx_tile", "amx_bf16"], 2.5, "amx_bf16")],
    ids=["avx512-bf16", "amx-bf16"],
)
def test_openvino_bf16_target_is_judged_on_paper_256_by_the_cpus_bf16_instructions(isa, threshold, flag):
    from maskface_rt.benchmarking.environment import NATIVE_BF16_FLAGS
    from maskface_rt.benchmarking.targets import BF16_RATIOS, check

    assert {name for name, _ in BF16_RATIOS} == set(NATIVE_BF16_FLAGS)

    def row(backend: str, batch: int, rate: float) -> dict:
        return {"backend": backend, "device": "cpu", "batch": batch, "status": "ok", "images_per_s": rate}

    def report(name: str, ratio: float, cpu_isa: list[str]) -> dict:
        return {
            "config": preset(name).to_dict(),
            "environment": {"cpu_threads": 2, "cpu": "AMD EPYC 9R14", "cpu_isa": cpu_isa},
            "rows": [row("onnxruntime-cpu-fp32", 8, 100.0), row("openvino-cpu-bf16", 8, 100.0 * ratio)],
        }

    (verdict,) = check(report("paper-256", threshold + 0.01, isa))
    assert verdict.passed is True and verdict.value == pytest.approx(threshold + 0.01)
    assert verdict.threshold == threshold and verdict.line().endswith(f"2 threads of AMD EPYC 9R14, bf16 on {flag}")
    assert [v.passed for v in check(report("paper-256", threshold - 0.01, isa))] == [False]
    # The bundled model's architecture: its ratio is reported, never judged, however low.
    (bundled,) = check(report("tiny-64", 0.5, isa))
    assert bundled.passed is None and bundled.value == pytest.approx(0.5) and bundled.line().startswith("[reported]")
    (emulated,) = check(report("paper-256", 2.4, ["avx512f", "avx512_vnni"]))
    assert emulated.passed is None and "bf16 emulated, measured 2.4" in emulated.line()
    no_batch_8 = report("paper-256", 3.0, isa)
    no_batch_8["rows"][1]["batch"] = 1  # no batch-8 bf16 row: the target does not apply to this report
    assert check(no_batch_8) == []


def test_onnxruntime_rows_run_without_torch(tiny_export, tmp_path):
    import subprocess
    import sys

    script = f"""
import sys
sys.modules["torch"] = None  # as if torch were not installed: find_spec says so and importing fails
import json, typer
from typer.testing import CliRunner
from maskface_rt.cli.bench import BenchCommand, bench
app = typer.Typer()
app.command("bench", cls=BenchCommand)(bench)
@app.callback()
def _root(): pass
done = CliRunner().invoke(app, ["bench", "--model", {str(tiny_export)!r}, "--backend", "all", "--batch-sizes", "1",
                                "--warmup-s", "0", "--duration-s", "0.05", "--iterations", "1", "--device", "cpu",
                                "--json", {str(tmp_path / "t.json")!r}])
assert done.exit_code == 0, (done.output, done.exception)
assert sys.modules["torch"] is None
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {r["backend"]: r for r in json.loads((tmp_path / "t.json").read_text())["rows"]}
    assert rows["onnxruntime-cpu-fp32"]["status"] == "ok" and rows["onnxruntime-cpu-fp32"]["gflops_per_image"] > 0
    assert rows["torch-fp32"]["status"] == "unavailable" and rows["torch-fp32"]["reason"].startswith("torch is not")


def test_json_is_a_stdout_flag_and_json_file_writes_a_file(tiny_export, tmp_path):
    common = (
        "--model",
        str(tiny_export),
        "--backend",
        "onnxruntime-cpu-fp32",
        "--batch-sizes",
        "1",
        "--warmup-s",
        "0",
        "--duration-s",
        "0.05",
        "--iterations",
        "1",
        "--device",
        "cpu",
    )
    flag = _invoke(*common, "--json", "--csv", str(tmp_path / "b.csv"))  # a bare --json before another option
    assert flag.exit_code == 0, (flag.stderr, flag.exception)
    assert [r["backend"] for r in json.loads(flag.stdout)["rows"]] == ["onnxruntime-cpu-fp32"]
    assert "deprecated" not in flag.stderr and (tmp_path / "b.csv").is_file()

    to_file = _invoke(*common, "--json-file", str(tmp_path / "b.json"))
    assert to_file.exit_code == 0 and to_file.stdout == "", to_file.stderr
    assert json.loads((tmp_path / "b.json").read_text())["rows"][0]["status"] == "ok"

    old = _invoke(*common, "--json", str(tmp_path / "old.json"))  # the old spelling still writes the file
    assert old.exit_code == 0 and (tmp_path / "old.json").is_file(), old.stderr
    notes = [line for line in old.stderr.splitlines() if "deprecated" in line]
    assert len(notes) == 1 and "--json-file FILE" in notes[0]

    both = _invoke(*common, "--json", "--json-file", str(tmp_path / "c.json"))
    assert both.exit_code == 2 and "not both" in both.stderr and not (tmp_path / "c.json").exists()
