"""What kind of model a path is: the one place that decides it (generate, bench, eval, info, build).

Torch-free; looks only at names and at the export manifest beside a path (nothing is loaded).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import MANIFEST
from maskface_rt.fileio import SPECIAL_FILES, what_is_there

#: The file name endings of a TensorRT engine (``maskface build``; the wing: backends/trt/engine_file.py).
ENGINE_SUFFIXES = (".engine", ".plan")


class ModelKind(str, Enum):
    CHECKPOINT = "checkpoint"  # a .safetensors model file (maskface train)
    ONNX_EXPORT = "onnx-export"  # a folder made by maskface export, or one of its .onnx graphs
    ENGINE = "engine"  # a TensorRT or TensorRT-RTX .engine file
    ONNX_GRAPH = "onnx"  # a lone .onnx graph outside an export folder (maskface info describes it; nothing runs it)


def classify(model: Path) -> ModelKind | None:
    """The kind ``model`` names (by its suffix, or a folder's manifest), None when none; existence is not checked."""
    if model.is_dir():
        return ModelKind.ONNX_EXPORT if (model / MANIFEST).is_file() else None
    if model.suffix == ".onnx":
        return ModelKind.ONNX_EXPORT if (model.parent / MANIFEST).is_file() else ModelKind.ONNX_GRAPH
    if model.suffix == ".safetensors":
        return ModelKind.CHECKPOINT
    if model.suffix in ENGINE_SUFFIXES:
        return ModelKind.ENGINE
    return None


def model_kind(model: Path) -> ModelKind:
    """What a --model path is (a kind a backend runs), or a one-line error saying what it should be."""
    kind = classify(model)
    found = what_is_there(model, missing="no such model file or folder")
    if found == "folder" and kind is None:
        raise MaskfaceError(
            model,
            f"is a folder without {MANIFEST}: not a maskface export (make one with 'maskface export MODEL --out DIR')",
        )
    if found in SPECIAL_FILES:
        raise MaskfaceError(model, f"is a {found}, not a model file")
    if found not in ("file", "folder"):
        raise MaskfaceError(model, found)
    if kind is None or kind is ModelKind.ONNX_GRAPH:
        raise MaskfaceError(
            model,
            "unknown model type; expected a .safetensors checkpoint, a maskface export folder or a TensorRT .engine",
        )
    return kind


def export_folder_of(model: Path) -> Path:
    """The export folder of an ONNX_EXPORT path: the folder itself, or the folder of one of its graphs."""
    return model if model.is_dir() else model.parent
