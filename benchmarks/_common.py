"""Helpers shared by the benchmark scripts: a model of a preset, its export, the environment."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any


def make_model(preset_name: str, folder: Path, seed: int = 0) -> Path:
    """A randomly initialised model file of the preset (speed does not depend on training)."""
    import torch

    from maskface_rt.checkpoint import save_model
    from maskface_rt.config import preset
    from maskface_rt.networks import Nets

    torch.manual_seed(seed)
    path = folder / f"{preset_name}.safetensors"
    save_model(path, Nets(preset(preset_name), with_discriminator=False), weights="random-init")
    return path


def make_export(model: Path, folder: Path, max_batch: int = 64) -> Path:
    from maskface_rt.export.onnx_export import export_onnx

    out = folder / f"{model.stem}-onnx"
    export_onnx(model, out, max_batch=max_batch)
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    import numpy
    import onnxruntime

    from maskface_rt import __version__
    from maskface_rt.backends.onnxruntime_backend import cpu_threads

    env: dict[str, Any] = {"cpu": cpu_model(), "cpu_threads": cpu_threads(), "python": platform.python_version(),
                           "numpy": numpy.__version__, "onnxruntime": onnxruntime.__version__,
                           "maskface_rt": __version__}
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        env["torch"] = None
    try:
        env["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                           cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except OSError:
        env["git_commit"] = None
    env["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    return env


def write_result(path: Path | None, result: dict[str, Any]) -> None:
    if path is None:
        return
    from maskface_rt.fileio import write_json_atomic

    write_json_atomic(path, result, overwrite=True)
    print(f"wrote {path}")


def scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="maskface-bench-")


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2)
