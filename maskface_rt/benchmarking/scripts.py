"""Helpers shared by the benchmark scripts: a model of a preset, its export, the environment.

The implementations live in the package (maskface_rt.benchmarking), which ``maskface bench`` uses too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from maskface_rt.benchmarking.environment import environment
from maskface_rt.benchmarking.models import random_model as make_model

__all__ = ["environment", "make_export", "make_model", "scratch", "write_result"]


def make_export(model: Path, folder: Path, max_batch: int = 64) -> Path:
    from maskface_rt.export.onnx_export import export_onnx

    out = folder / f"{model.stem}-onnx"
    export_onnx(model, out, max_batch=max_batch)
    return out


def write_result(path: Path | None, result: dict[str, Any]) -> None:
    if path is None:
        return
    from maskface_rt.fileio import write_json_atomic

    write_json_atomic(path, result, overwrite=True)
    print(f"wrote {path}")


def scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="maskface-bench-")
