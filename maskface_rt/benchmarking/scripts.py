"""What the benchmark scripts (benchmarks/*.py) share: a scratch folder, a model file's export, a result file.

The scripts measure with the rest of this package (``models``, ``environment``, ``timing``, the runners of
``maskface bench``); they import it as installed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

__all__ = ["make_export", "scratch", "write_result"]


def make_export(model: Path, folder: Path, max_batch: int = 64) -> Path:
    """The fp32 export of ``model`` in ``folder`` (needs torch)."""
    from maskface_rt.export.onnx_export import export_onnx

    out = folder / f"{model.stem}-onnx"
    export_onnx(model, out, max_batch=max_batch)
    return out


def write_result(path: Path | None, result: dict[str, Any]) -> None:
    """``result`` as JSON at ``path`` (replaced atomically), and a line saying so; nothing when ``path`` is None."""
    if path is None:
        return
    from maskface_rt.fileio import write_json_atomic

    write_json_atomic(path, result, overwrite=True)
    print(f"wrote {path}")


def scratch() -> tempfile.TemporaryDirectory:
    """A temporary folder for a script's models and exports."""
    return tempfile.TemporaryDirectory(prefix="maskface-bench-")
