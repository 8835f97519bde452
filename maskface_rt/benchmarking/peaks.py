"""Peak TFLOPS of the device a row ran on, for the roofline columns.

GPUs: dense (no structured sparsity) peaks from the vendors' datasheets, per math mode: fp32 on CUDA
cores, TF32 and fp16/bf16 on tensor cores (fp32 accumulate where the datasheet gives both), and the
peak DRAM bandwidth (for the fused AdaIN kernel's benchmark). CPUs: an
estimate, usable cores x clock x FLOPs per cycle and core from the SIMD flags of /proc/cpuinfo
(two FMA units assumed; AMD Zen 2-4 run AVX-512 on 256-bit units); bf16 rows take the bf16 matrix
instructions' rate (AMX-BF16 tiles, else AVX512-BF16 dot products) and, without either, the fp32 peak
(bf16 is then emulated on the fp32 units). ``--peak-tflops`` overrides both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from maskface_rt.devices import parse_device

#: Math modes a row's peak is taken for (bf16: CPU rows; bf16 on a GPU runs at its fp16 tensor-core peak).
KINDS = ("fp32", "tf32", "fp16", "bf16")


@dataclass(frozen=True)
class GpuPeak:
    pattern: str  # regex searched in the CUDA device name
    label: str
    fp32: float
    tf32: float | None  # None: no TF32 tensor cores
    fp16: float  # dense fp16/bf16 tensor-core peak
    dram_gbs: float  # peak DRAM bandwidth, GB/s


#: Most specific first; \b keeps "A10" from matching "A100" or "A10G", "H200" from "GH200".
GPU_PEAKS: tuple[GpuPeak, ...] = (
    GpuPeak(r"\bGH200\b", "NVIDIA GH200", 67.0, 494.7, 989.4, 4000.0),
    GpuPeak(r"\bH200 NVL\b", "NVIDIA H200 NVL", 60.0, 417.5, 835.5, 4800.0),
    GpuPeak(r"\bH200\b", "NVIDIA H200 SXM", 67.0, 494.7, 989.4, 4800.0),
    GpuPeak(r"\bH100 NVL\b", "NVIDIA H100 NVL", 60.0, 417.5, 835.5, 3900.0),
    GpuPeak(r"\bH100 PCIe\b", "NVIDIA H100 PCIe", 51.2, 378.0, 756.0, 2000.0),
    GpuPeak(r"\bH100\b", "NVIDIA H100 SXM", 67.0, 494.7, 989.4, 3350.0),  # "NVIDIA H100 80GB HBM3"
    GpuPeak(r"\bA100-SXM4-80GB\b", "NVIDIA A100 SXM4 80GB", 19.5, 156.0, 312.0, 2039.0),
    GpuPeak(r"\bA100 80GB PCIe\b", "NVIDIA A100 PCIe 80GB", 19.5, 156.0, 312.0, 1935.0),
    GpuPeak(r"\bA100\b", "NVIDIA A100 40GB", 19.5, 156.0, 312.0, 1555.0),
    GpuPeak(r"\bL40S\b", "NVIDIA L40S", 91.6, 183.0, 362.1, 864.0),
    GpuPeak(r"\bL40\b", "NVIDIA L40", 90.5, 90.5, 181.0, 864.0),
    GpuPeak(r"\bL4\b", "NVIDIA L4", 30.3, 60.0, 121.0, 300.0),
    GpuPeak(r"\bA10\b", "NVIDIA A10", 31.2, 62.5, 125.0, 600.0),
    GpuPeak(r"\bRTX A6000\b", "NVIDIA RTX A6000", 38.7, 77.4, 154.8, 768.0),
    GpuPeak(r"\bRTX 4090\b", "NVIDIA GeForce RTX 4090", 82.6, 82.6, 165.2, 1008.0),
    GpuPeak(r"\bRTX 3090\b", "NVIDIA GeForce RTX 3090", 35.6, 35.6, 71.0, 936.0),
    GpuPeak(r"\bT4\b", "NVIDIA T4", 8.1, None, 65.0, 320.0),
    GpuPeak(r"\bV100-SXM", "NVIDIA V100 SXM2", 15.7, None, 125.0, 900.0),
    GpuPeak(r"\bV100\b", "NVIDIA V100 PCIe", 14.0, None, 112.0, 900.0),
)


def gpu_entry(device_name: str) -> GpuPeak | None:
    """The table's entry for a CUDA device name (torch.cuda.get_device_name / nvidia-smi), if any."""
    return next((entry for entry in GPU_PEAKS if re.search(entry.pattern, device_name)), None)


@dataclass(frozen=True)
class Peak:
    tflops: float | None
    kind: str  # the math mode: fp32, tf32 or fp16
    source: str  # where the number comes from, or why there is none


def peak_kind(device: str, precision: str, tf32: bool = False) -> str:
    """The math mode a row's FLOPs run in: fp16/bf16 -> fp16 tensor cores; fp32 on CUDA with TF32 allowed -> tf32."""
    cuda = parse_device(device).is_cuda
    if precision in ("fp16", "bf16") and cuda:
        return "fp16"
    if precision == "bf16":
        return "bf16"
    return "tf32" if tf32 and cuda else "fp32"


def gpu_peak(device_name: str, kind: str) -> Peak:
    """The table's peak of a CUDA device for a math mode."""
    entry = gpu_entry(device_name)
    if entry is None:
        return Peak(None, kind, f"{device_name!r} is not in the peak table; pass --peak-tflops")
    value = getattr(entry, kind)
    if value is None:
        return Peak(None, kind, f"{entry.label} has no {kind} tensor cores")
    return Peak(value, kind, f"datasheet: {entry.label} dense {kind}")


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """The key: value pairs of the first processor block of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    return fields


def flops_per_cycle(flags: set[str], vendor: str, family: int) -> int:
    """fp32 FLOPs per cycle and core: vector lanes x 2 (FMA) x 2 FMA units."""
    if "avx512f" in flags:
        # Zen 4 (family 25) splits 512-bit ops over 256-bit units; Zen 5 (26) and Intel have full width.
        return 32 if vendor == "AuthenticAMD" and family < 26 else 64
    if "avx2" in flags and "fma" in flags:
        return 32
    if "avx" in flags:
        return 16  # one 8-wide add and one 8-wide multiply per cycle
    return 8


def bf16_flops_per_cycle(flags: set[str], vendor: str, family: int) -> tuple[int, str] | None:
    """bf16 FLOPs per cycle and core of the CPU's bf16 matrix instructions, or None without any."""
    if "amx_bf16" in flags:
        return 1024, "AMX-BF16"  # one TMUL: a 16x32 by 32x16 bf16 tile product (16 KFLOP) per 16 cycles
    if "avx512_bf16" in flags:
        # VDPBF16PS: 16 lanes x 2 products x 2 FLOPs, on two units (one 256-bit-wide pair on Zen 4).
        return (64 if vendor == "AuthenticAMD" and family < 26 else 128), "AVX512-BF16"
    return None


def _clock_ghz(fields: dict[str, str]) -> float | None:
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return int(max_freq.read_text()) / 1e6  # kHz
    except (OSError, ValueError):
        pass
    match = re.search(r"@\s*([\d.]+)\s*GHz", fields.get("model name", ""))
    if match:
        return float(match.group(1))
    try:
        return float(fields["cpu MHz"]) / 1e3
    except (KeyError, ValueError):
        return None


def cpu_peak(threads: int, cpuinfo: str | None = None, kind: str = "fp32") -> Peak:
    """An estimate of the fp32 (or bf16) peak of ``threads`` hardware threads (SMT siblings share a core's units)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return Peak(None, kind, "no /proc/cpuinfo to estimate the CPU peak from; pass --peak-tflops")
    fields = _cpuinfo_fields(cpuinfo)
    clock = _clock_ghz(fields)
    if clock is None:
        return Peak(None, kind, "no CPU clock in /proc/cpuinfo; pass --peak-tflops")
    try:
        per_core = int(fields.get("siblings", 1)) // max(int(fields.get("cpu cores", 1)), 1)
        family = int(fields.get("cpu family", 0))
    except ValueError:
        per_core, family = 1, 0
    cores = max(threads // max(per_core, 1), 1)
    flags, vendor = set(fields.get("flags", "").split()), fields.get("vendor_id", "")
    flops, unit = flops_per_cycle(flags, vendor, family), "fp32"
    if kind == "bf16":
        native = bf16_flops_per_cycle(flags, vendor, family)
        flops, unit = native if native else (flops, "fp32 (no AMX-BF16/AVX512-BF16: bf16 emulated)")
    return Peak(
        cores * clock * flops / 1e3, kind, f"estimate: {cores} cores x {clock:.2f} GHz x {flops} {unit} FLOP/cycle"
    )
