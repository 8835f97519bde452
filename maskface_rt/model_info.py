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
from maskface_rt.export_format import MANIFEST, read_manifest, sha256_file
from maskface_rt.fileio import SPECIAL_FILES, what_is_there
from maskface_rt.model_kind import ModelKind, classify

SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024


_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "U16": 2,
    "U32": 4,
    "U64": 8,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor dtypes/shapes and ``__metadata__``), checked: every
    tensor has a known dtype, a shape of non-negative integers and data offsets inside the file that fit it."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > SAFETENSORS_HEADER_LIMIT:
                raise ValueError(f"header of {length} bytes")
            header = json.loads(f.read(length))
        data_bytes = path.stat().st_size - 8 - length
    except (OSError, struct.error, ValueError, RecursionError) as e:
        raise MaskfaceError(path, f"not a readable safetensors file ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise MaskfaceError(path, "not a safetensors file: the header is not a JSON object")
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise MaskfaceError(path, "not a safetensors file: __metadata__ must map names to strings")
            continue
        if _tensor_problem(info, data_bytes):
            raise MaskfaceError(path, f"not a safetensors file: tensor {name!r} {_tensor_problem(info, data_bytes)}")
    return header


def _tensor_problem(info: Any, data_bytes: int) -> str | None:
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        return "must have exactly a dtype, a shape and data_offsets"
    shape, offsets, size = info["shape"], info["data_offsets"], _DTYPE_BYTES.get(info["dtype"])
    if size is None:
        return f"has an unknown dtype {info['dtype']!r}"
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        return f"has a bad shape {shape!r}"
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(type(o) is int for o in offsets)
        and 0 <= offsets[0] <= offsets[1] <= data_bytes
    ):
        return f"has data offsets {offsets!r} outside the file's {data_bytes} data bytes"
    if offsets[1] - offsets[0] != size * int(np.prod(shape, dtype=object)):
        return f"of shape {shape} does not fit its {offsets[1] - offsets[0]} bytes"
    return None


def describe_checkpoint(path: Path) -> dict[str, Any]:
    from maskface_rt.config import ModelConfig

    header = read_safetensors_header(path)
    meta = header.pop("__metadata__", {}) or {}
    params: dict[str, int] = defaultdict(int)
    for name, info in header.items():
        params[name.split(".", 1)[0]] += int(np.prod(info["shape"], dtype=object))
    out: dict[str, Any] = {
        "kind": "checkpoint",
        "path": str(path),
        "format": meta.get("format"),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "parameters": dict(params),
    }
    for key in ("weights", "step", "maskface_version", "data"):
        if key in meta:
            out[key] = meta[key]
    if "config" in meta:
        try:
            out["config"] = ModelConfig.from_json(meta["config"]).to_dict()
        except (ValueError, TypeError, RecursionError) as e:
            raise MaskfaceError(path, f"bad model config in metadata ({e})") from None
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
    return {
        "kind": "onnx",
        "path": str(path),
        "bytes": path.stat().st_size,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": io(model.graph.input),
        "outputs": io(model.graph.output),
        "nodes": len(model.graph.node),
        "metadata": props,
    }


def describe_export(folder: Path) -> dict[str, Any]:
    manifest = read_manifest(folder)
    return {
        "kind": "onnx-export",
        "path": str(folder),
        **manifest.to_dict(),
        "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()},
    }


def describe_engine(path: Path) -> dict[str, Any]:
    from maskface_rt.backends.trt.engine_file import read_sidecar

    return {"kind": "engine", "path": str(path), "bytes": path.stat().st_size, **read_sidecar(path).to_dict()}


#: How a model file of each kind is described (an export folder: describe_export).
_DESCRIBE_FILE = {
    ModelKind.CHECKPOINT: describe_checkpoint,
    ModelKind.ONNX_EXPORT: describe_onnx,
    ModelKind.ONNX_GRAPH: describe_onnx,
    ModelKind.ENGINE: describe_engine,
}


def describe(model: str | Path) -> dict[str, Any]:
    model = Path(model)
    kind = classify(model)
    if model.is_dir() and kind is ModelKind.ONNX_EXPORT:
        return describe_export(model)
    found = what_is_there(model, missing="no such model file or export folder")
    if found == "folder":
        raise MaskfaceError(model, f"is a folder without {MANIFEST}: not a maskface export folder")
    if found != "file":
        raise MaskfaceError(model, f"is a {found}, not a model file" if found in SPECIAL_FILES else found)
    if kind is None:
        raise MaskfaceError(
            model,
            "unknown model type; expected a .safetensors checkpoint, an export folder, a .onnx "
            "graph or a TensorRT .engine",
        )
    return _DESCRIBE_FILE[kind](model)
