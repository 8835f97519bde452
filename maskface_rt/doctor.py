"""``maskface doctor``: what this machine can run, and how to get what is missing."""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception:  # a broken install must not break the doctor
        return None


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _bundled_model() -> Check:
    from maskface_rt.bundled import describe_bundled
    from maskface_rt.errors import MaskfaceError

    try:
        return Check("bundled demo model", True, describe_bundled())
    except MaskfaceError as e:
        return Check("bundled demo model", False, str(e))


def checks(with_torch: bool = True) -> list[Check]:
    from maskface_rt import __version__
    from maskface_rt.backends.probes import cpu_threads

    gpus = _gpus()
    result = [
        Check("maskface-rt", True, __version__),
        Check("python", True, f"{platform.python_version()} on {platform.machine()}, {cpu_threads()} CPU threads"),
        Check("CUDA GPUs", bool(gpus), "; ".join(gpus) if gpus else "none found (nvidia-smi absent or no device)"),
    ]
    from maskface_rt.backends.registry import REGISTRY

    rows = {
        spec.name: Check(f"backend {spec.name}", *spec.available())
        for spec in REGISTRY.values()
        if with_torch or "torch" not in spec.needs
    }
    result.append(rows.pop("onnxruntime"))  # the CPU default first, then what depends on it
    result.append(_bundled_model())
    if result[-2].ok:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            result.append(
                Check(
                    "onnxruntime CUDA",
                    False,
                    "CPU build; for GPUs: pip uninstall onnxruntime && pip install onnxruntime-gpu",
                )
            )
    result.extend(rows.values())
    for module, hint in (
        ("triton", "pip install triton (Linux, for the fused kernel)"),
        ("cuda.bindings", "pip install cuda-python (CUDA buffers for TensorRT)"),
        ("onnx", "pip install onnx"),
        ("ray", "pip install 'maskface-rt[ray]' (maskface generate --ray)"),
    ):
        version = _version(module)
        result.append(Check(module, version is not None, version or f"not installed; {hint}"))
    result.append(Check("NO_COLOR", True, "set: plain output" if os.environ.get("NO_COLOR") else "not set"))
    return result
