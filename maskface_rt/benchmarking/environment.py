"""The machine and software a benchmark ran on: CPU, GPU, driver, CUDA, package versions, git commit.

Package versions come from the installed distributions' metadata, so nothing is imported for them;
torch's CUDA build and device name are reported when torch is already loaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from maskface_rt.backends.probes import cpu_threads

#: Report key -> distribution names that provide it (the first installed one is reported).
DISTRIBUTIONS = {
    "maskface_rt": ("maskface-rt",),
    "numpy": ("numpy",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "openvino": ("openvino",),
    "torch": ("torch",),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11"),
    "triton": ("triton",),
    "cuda_python": ("cuda-python", "cuda-bindings"),
    "pillow": ("pillow",),
    "typer": ("typer",),
    "rich": ("rich",),
}
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "CUDA_VISIBLE_DEVICES", "MASKFACE_FUSED_ADAIN")


def cpu_model() -> str:
    """The CPU's model name with its family and model numbers, which tell apart CPUs that virtual machines name
    alike ("AMD EPYC (family 25 model 17)" is a Zen 4, "(family 26 model 2)" a Zen 5)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # the first processor's block is enough
            continue
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']} model {fields['model']})"
    return name


#: The /proc/cpuinfo flags that decide the CPU rows' speed and peak (fp32 SIMD width, int8 and bf16 units).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
#: The flags of the CPU units that execute bf16 natively; without them OpenVINO emulates bf16 on the fp32 units.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_isa() -> list[str]:
    """Which of ISA_FLAGS this CPU has (empty where /proc/cpuinfo is missing)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [flag for flag in ISA_FLAGS if flag in flags]


def package_version(key: str) -> str | None:
    for dist in DISTRIBUTIONS.get(key, (key,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _run(args: list[str]) -> str | None:
    if shutil.which(args[0]) is None:
        return None
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def gpus() -> list[dict[str, str]]:
    """What nvidia-smi says about each GPU (empty without nvidia-smi)."""
    fields = ("name", "driver_version", "memory.total", "compute_cap", "clocks.max.sm")
    out = _run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"])
    return [
        dict(zip(fields, (v.strip() for v in line.split(",")), strict=False))
        for line in (out or "").splitlines()
        if line.strip()
    ]


def gpu_names() -> list[str]:
    """CUDA device names in index order: nvidia-smi's, else torch's (when installed and it sees a GPU)."""
    names = [gpu.get("name", "") for gpu in gpus()]
    if names or importlib.util.find_spec("torch") is None:
        return names
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def driver_cuda_version() -> str | None:
    """The CUDA version the driver supports (nvidia-smi's header)."""
    out = _run(["nvidia-smi"]) or ""
    marker = "CUDA Version:"
    if marker not in out:
        return None
    return out.split(marker, 1)[1].split()[0]


def git_commit() -> str | None:
    """HEAD of the checkout the package runs from, with '-dirty' for uncommitted changes."""
    here = Path(__file__).resolve().parent
    head = _run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"])
    if not head:
        return None
    dirty = _run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"])
    return head.strip() + ("-dirty" if dirty and dirty.strip() else "")


def _torch_details() -> dict[str, Any]:
    """torch's CUDA build and device, when a runner has loaded torch (never imported for this alone)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}

    details: dict[str, Any] = {"torch_cuda": torch.version.cuda, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        details["cudnn"] = torch.backends.cudnn.version()
        details["cuda_device"] = torch.cuda.get_device_name()
        details["cuda_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    return details


def environment() -> dict[str, Any]:
    """Everything a result needs to be compared with another: machine, versions, commit."""
    env: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_isa": cpu_isa(),
        "cpu_threads": cpu_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpus": gpus(),
        "cuda_driver": driver_cuda_version(),
        **{key: package_version(key) for key in DISTRIBUTIONS},
        **_torch_details(),
        "git_commit": git_commit(),
        "env": {name: os.environ.get(name) for name in ENV_VARS},
    }
    return env
