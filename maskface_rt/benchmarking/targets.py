"""The performance targets of the benchmark issue, checked against ``maskface bench`` JSON reports.

- CPU: onnxruntime-cpu-fp32 >= 1.3x torch-fp32 images/s for paper-256 and tiny-128, batch 1 and 8
  (the target is stated for 2 cores; each verdict names the cores the report ran on).
- CPU, OpenVINO: openvino-cpu-bf16 / onnxruntime-cpu-fp32 images/s at batch 8, by the bf16 instructions in the
  report's ``cpu_isa``: >= 2.5x with AMX-BF16 (Sapphire Rapids and later), >= 1.8x with AVX512-BF16 alone (Zen 4,
  Cooper Lake: its bf16 dot product doubles the fp32 FMA rate, so ~2x is that ISA's ceiling). Judged on paper-256
  (the paper's model, compute-bound); reported, not judged, for tiny-64 (the bundled model's architecture, where
  memory traffic and per-call overhead weigh more). Where bf16 was emulated the ratio goes into the detail and
  the target counts as not measured.
- GPU, paper-256, batch 32: tensorrt-plugin-fp16 >= 8x torch-fp32 and >= 1.3x torch-compile-fp16
  images/s, and >= 50% of the card's dense fp16 tensor-core peak (on its GPU compute time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskface_rt.benchmarking.environment import NATIVE_BF16_FLAGS
from maskface_rt.config import PRESETS
from maskface_rt.devices import parse_device

CPU_PRESETS, CPU_BATCHES, CPU_RATIO = ("paper-256", "tiny-128"), (1, 8), 1.3
BF16_PRESETS, BF16_BATCH, BF16_JUDGED = ("tiny-64", "paper-256"), 8, "paper-256"
#: openvino-cpu-bf16 / onnxruntime-cpu-fp32 at batch 8 by the CPU's best bf16 instructions (the first one it has).
BF16_RATIOS = (("amx_bf16", 2.5), ("avx512_bf16", 1.8))
GPU_PRESET, GPU_BATCH = "paper-256", 32
GPU_RATIOS = (("torch-fp32", 8.0), ("torch-compile-fp16", 1.3))
GPU_PEAK_FRACTION = 0.5


@dataclass(frozen=True)
class Verdict:
    target: str
    value: float | None
    threshold: float
    detail: str = ""
    judged: bool = True  # False: the figure is reported beside a target that is judged elsewhere

    @property
    def passed(self) -> bool | None:
        """None: not measured in this report, or reported only."""
        return None if self.value is None or not self.judged else self.value >= self.threshold

    def line(self) -> str:
        verdict = {True: "pass", False: "FAIL", None: "not measured"}[self.passed]
        if not self.judged and self.value is not None:
            verdict = "reported"
        value = "-" if self.value is None else f"{self.value:.3g}"
        return f"[{verdict}] {self.target}: {value} (>= {self.threshold:g}){'; ' + self.detail if self.detail else ''}"


def preset_of(report: dict[str, Any]) -> str | None:
    return next((name for name, cfg in PRESETS.items() if cfg.to_dict() == report.get("config")), None)


def _row(report: dict[str, Any], backend: str, batch: int, cuda: bool) -> dict[str, Any] | None:
    for row in report.get("rows", []):
        if (row["backend"], row["batch"], row["status"]) == (backend, batch, "ok") and _on_cuda(row) == cuda:
            return row
    return None


def _on_cuda(row: dict[str, Any]) -> bool:
    return parse_device(row["device"]).is_cuda


def _ratio(report: dict[str, Any], backend: str, baseline: str, batch: int, cuda: bool) -> float | None:
    a, b = _row(report, backend, batch, cuda), _row(report, baseline, batch, cuda)
    return None if a is None or b is None else a["images_per_s"] / b["images_per_s"]


def check(report: dict[str, Any]) -> list[Verdict]:
    """The verdicts of the targets that apply to this report's preset and devices."""
    name = preset_of(report)
    verdicts = []
    env = report.get("environment", {})
    if name in CPU_PRESETS and any(
        row["device"] == "cpu" and row["backend"] == "torch-fp32" for row in report.get("rows", [])
    ):
        cores = f"{env.get('cpu_threads')} threads of {env.get('cpu')}"
        for batch in CPU_BATCHES:
            verdicts.append(
                Verdict(
                    f"CPU {name} batch {batch}: onnxruntime-cpu-fp32 / torch-fp32 images/s",
                    _ratio(report, "onnxruntime-cpu-fp32", "torch-fp32", batch, cuda=False),
                    CPU_RATIO,
                    cores,
                )
            )
    if bf16 := bf16_verdict(report):
        verdicts.append(bf16)
    if name == GPU_PRESET and any(_on_cuda(row) for row in report.get("rows", [])):
        gpu = ", ".join(g.get("name", "") for g in env.get("gpus", [])) or "GPU"
        for baseline, threshold in GPU_RATIOS:
            verdicts.append(
                Verdict(
                    f"GPU {name} batch {GPU_BATCH}: tensorrt-plugin-fp16 / {baseline} images/s",
                    _ratio(report, "tensorrt-plugin-fp16", baseline, GPU_BATCH, cuda=True),
                    threshold,
                    gpu,
                )
            )
        row = _row(report, "tensorrt-plugin-fp16", GPU_BATCH, cuda=True)
        verdicts.append(
            Verdict(
                f"GPU {name} batch {GPU_BATCH}: tensorrt-plugin-fp16 fraction of the dense fp16 peak "
                "(GPU compute time)",
                None if row is None else row.get("compute_peak_fraction"),
                GPU_PEAK_FRACTION,
                row["peak_source"] if row else gpu,
            )
        )
    return verdicts


def _is_bf16_target_row(row: dict[str, Any]) -> bool:
    """The bf16 row of the target's batch, or the row of a bf16 backend that could not run at all (batch None)."""
    return row["backend"] == "openvino-cpu-bf16" and row["batch"] in (BF16_BATCH, None) and not _on_cuda(row)


def bf16_threshold(cpu_isa: list[str]) -> tuple[str, float] | None:
    """The bf16 instructions the target is set for on a CPU with ``cpu_isa`` and its ratio, or None (emulated)."""
    return next(((flag, ratio) for flag, ratio in BF16_RATIOS if flag in cpu_isa), None)


def bf16_verdict(report: dict[str, Any]) -> Verdict | None:
    """The OpenVINO bf16 target's verdict (judged for paper-256, reported for tiny-64), or None where the report
    has no batch-8 bf16 row of its presets (or, on a CPU with native bf16, none that ran)."""
    name = preset_of(report)
    row = next((r for r in report.get("rows", []) if _is_bf16_target_row(r)), None)
    if name not in BF16_PRESETS or row is None:
        return None
    env = report.get("environment", {})
    ratio = _ratio(report, "openvino-cpu-bf16", "onnxruntime-cpu-fp32", BF16_BATCH, cuda=False)
    target = f"CPU {name} batch {BF16_BATCH}: openvino-cpu-bf16 / onnxruntime-cpu-fp32 images/s"
    cpu = f"{env.get('cpu_threads')} threads of {env.get('cpu')}"
    isa = bf16_threshold(env.get("cpu_isa", []))
    if isa is None:  # not judged: emulated, or not run at all (no AVX-512: OpenVINO runs no bf16)
        measured = "-" if ratio is None else f"{ratio:.3g}"
        ran = (
            f"bf16 emulated, measured {measured}" if row["status"] == "ok" else f"{row['status']}: {row.get('reason')}"
        )
        return Verdict(target, None, BF16_RATIOS[-1][1], f"{cpu} has no {'/'.join(NATIVE_BF16_FLAGS)}: {ran}")
    if row["status"] != "ok":
        return None
    flag, threshold = isa
    judged = name == BF16_JUDGED
    detail = f"{cpu}, bf16 on {flag}" + ("" if judged else f" (judged on {BF16_JUDGED}; reported here)")
    return Verdict(target, ratio, threshold, detail, judged=judged)
