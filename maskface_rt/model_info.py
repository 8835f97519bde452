"""``maskface info MODEL``: what a checkpoint, an export folder or an ONNX graph says about itself.

Reads headers and metadata only (no torch, no session), so it is instant on any model.
"""

from __future__ import annotations

import json
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import read_manifest, sha256_file
from maskface_rt.model_kind import ModelKind, classify

SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor dtypes/shapes and ``__metadata__``)."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > SAFETENSORS_HEADER_LIMIT:
                raise ValueError(f"header of {length} bytes")
            return json.loads(f.read(length))
    except (OSError, struct.error, ValueError) as e:
        raise MaskfaceError(path, f"not a readable safetensors file ({e})") from None


def describe_checkpoint(path: Path) -> dict[str, Any]:
    header = read_safetensors_header(path)
    meta = header.pop("__metadata__", {}) or {}
    params: dict[str, int] = defaultdict(int)
    for name, info in header.items():
        params[name.split(".", 1)[0]] += int(np.prod(info["shape"], dtype=np.int64))
    out: dict[str, Any] = {"kind": "checkpoint", "path": str(path), "format": meta.get("format"),
                           "sha256": sha256_file(path), "bytes": path.stat().st_size,
                           "parameters": dict(params)}
    for key in ("weights", "step", "maskface_version", "data"):
        if key in meta:
            out[key] = meta[key]
    if "config" in meta:
        out["config"] = json.loads(meta["config"])
    return out


def describe_onnx(path: Path) -> dict[str, Any]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf decode errors have no common base
        raise MaskfaceError(path, f"not a readable ONNX model ({e})") from None

    def io(values) -> dict[str, Any]:
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    props = {p.key: p.value for p in model.metadata_props}
    if "maskface.config" in props:
        props["maskface.config"] = json.loads(props["maskface.config"])
    return {"kind": "onnx", "path": str(path), "bytes": path.stat().st_size,
            "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
            "inputs": io(model.graph.input), "outputs": io(model.graph.output), "nodes": len(model.graph.node),
            "metadata": props}


def describe_export(folder: Path) -> dict[str, Any]:
    manifest = read_manifest(folder)
    return {"kind": "onnx-export", "path": str(folder), **manifest.to_dict(),
            "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}}


def describe_engine(path: Path) -> dict[str, Any]:
    from maskface_rt.engine_format import read_sidecar

    return {"kind": "engine", "path": str(path), "bytes": path.stat().st_size, **read_sidecar(path).to_dict()}


#: How a model file of each kind is described (an export folder: describe_export).
_DESCRIBE_FILE = {ModelKind.CHECKPOINT: describe_checkpoint, ModelKind.ONNX_EXPORT: describe_onnx,
                  ModelKind.ONNX_GRAPH: describe_onnx, ModelKind.ENGINE: describe_engine}


def describe(model: str | Path) -> dict[str, Any]:
    model = Path(model)
    kind = classify(model)
    if model.is_dir() and kind is ModelKind.ONNX_EXPORT:
        return describe_export(model)
    if not model.is_file():
        raise MaskfaceError(model, "no such model file or export folder")
    if kind is None:
        raise MaskfaceError(model, "unknown model type; expected a .safetensors checkpoint, an export folder, a .onnx "
                                   "graph or a TensorRT .engine")
    return _DESCRIBE_FILE[kind](model)
