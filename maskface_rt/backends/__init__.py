"""Runtime backends behind one generator interface, and the choice among them.

``open_backend`` picks the implementation by name; modules of runtimes that are not used are never
imported (the onnxruntime, openvino and tensorrt paths never import torch).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from maskface_rt.backends.base import GeneratorBackend, latent_for_style
from maskface_rt.backends.openvino_backend import PRECISIONS
from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import MANIFEST

__all__ = ["BACKENDS", "ENGINE_BACKENDS", "PRECISIONS", "GeneratorBackend", "ModelKind", "latent_for_style",
           "model_kind", "open_backend", "precision_problem"]

BACKENDS = ("auto", "onnxruntime", "openvino", "torch", "tensorrt", "tensorrt-rtx")
#: Backends that run engines (maskface build), each its own runtime (the sidecar says which built them).
ENGINE_BACKENDS = ("tensorrt", "tensorrt-rtx")


class ModelKind(str, Enum):
    CHECKPOINT = "checkpoint"  # a .safetensors model file (maskface train)
    ONNX_EXPORT = "onnx-export"  # a folder made by maskface export
    ENGINE = "engine"  # a TensorRT or TensorRT-RTX .engine file


def model_kind(model: Path) -> ModelKind:
    """What a --model path is, or a one-line error saying what it should be."""
    if model.is_dir():
        if (model / MANIFEST).is_file():
            return ModelKind.ONNX_EXPORT
        raise MaskfaceError(model, f"is a folder without {MANIFEST}: not a maskface export (make one with "
                                   "'maskface export MODEL --out DIR')")
    if not model.exists():
        raise MaskfaceError(model, "no such model file or folder")
    if model.suffix == ".onnx" and (model.parent / MANIFEST).is_file():
        return ModelKind.ONNX_EXPORT
    if model.suffix == ".safetensors":
        return ModelKind.CHECKPOINT
    if model.suffix in (".engine", ".plan"):
        return ModelKind.ENGINE
    raise MaskfaceError(model, "unknown model type; expected a .safetensors checkpoint, a maskface export "
                               "folder or a TensorRT .engine")


def _torch_importable() -> bool:
    from maskface_rt.backends.torch_backend import available

    return available()[0]


def _openvino_available() -> tuple[bool, str]:
    from maskface_rt.backends.openvino_backend import available

    return available()


def _onnx_export_runtime(precision: str) -> str:
    """auto for an export: OpenVINO where it runs bf16 natively (3-4x onnxruntime fp32 there) or where a
    precision was asked for, else onnxruntime (OpenVINO fp32 is no faster; emulated bf16 is slower)."""
    if not _openvino_available()[0]:
        return "onnxruntime"
    from maskface_rt.backends.openvino_backend import resolve_precision

    return "openvino" if precision != "auto" or resolve_precision("auto") == "bf16" else "onnxruntime"


def precision_problem(model: Path, backend: str, precision: str) -> str | None:
    """Why --precision cannot be used with ``model`` on ``backend``, or None (checked before any work)."""
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}"
    backend = resolve_backend_name(model_kind(model), backend, model, precision)
    if precision != "auto" and backend != "openvino":
        return (f"{precision} applies to the openvino backend only ({backend} runs the export's own precision); "
                "pass --backend openvino, or leave --precision at auto")
    return None


def resolve_backend_name(kind: ModelKind, backend: str, model: Path | None = None, precision: str = "auto") -> str:
    """The runtime for a model: 'auto' takes the fastest that can run it here; for an engine, the runtime its
    sidecar names (``model``; TensorRT when it names none)."""
    if backend not in BACKENDS:
        raise MaskfaceError(None, f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = {ModelKind.CHECKPOINT: "torch", ModelKind.ENGINE: _engine_runtime(model)}.get(kind) \
            or _onnx_export_runtime(precision)
    needs = {"torch": ModelKind.CHECKPOINT, "onnxruntime": ModelKind.ONNX_EXPORT,
             "openvino": ModelKind.ONNX_EXPORT} | dict.fromkeys(ENGINE_BACKENDS, ModelKind.ENGINE)
    if backend not in needs:  # an engine's sidecar names a runtime this version does not know
        raise MaskfaceError(model, f"was built for the runtime {backend!r}; this maskface runs engines of "
                                   f"{', '.join(ENGINE_BACKENDS)}")
    if needs[backend] is not kind:
        hint = {"onnxruntime": "export it first: maskface export MODEL --out DIR",
                "openvino": "export it first: maskface export MODEL --out DIR",
                "torch": "the torch backend runs .safetensors checkpoints"}.get(
                    backend, f"the {backend} backend runs .engine files")
        raise MaskfaceError(None, f"backend {backend} cannot run a {kind.value}; {hint}")
    if backend == "openvino":
        ok, detail = _openvino_available()
        if not ok:
            raise MaskfaceError(None, f"the openvino backend cannot run here: {detail}")
    if backend == "torch" and not _torch_importable():
        raise MaskfaceError(None, "a .safetensors checkpoint needs torch (pip install 'maskface-rt[train]'), "
                                  "or export it on a machine with torch and use the onnxruntime backend")
    if backend in ENGINE_BACKENDS:
        from maskface_rt.backends.tensorrt_backend import available

        ok, detail = available(backend)
        if not ok:
            raise MaskfaceError(None, f"the {backend} backend cannot run here: {detail}")
    return backend


def _engine_runtime(engine: Path | None) -> str:
    if engine is None:
        return "tensorrt"
    from maskface_rt.tensorrt_compat import sidecar_runtime

    return sidecar_runtime(engine)


def open_backend(model: str | Path, backend: str = "auto", *, device: str = "auto",
                 precision: str = "auto") -> GeneratorBackend:
    """Open ``model`` on the named backend ('auto': the fastest that can run it here); ``precision``
    (auto, fp32, bf16) is the openvino backend's."""
    model = Path(model)
    if problem := precision_problem(model, backend, precision):
        raise MaskfaceError("--precision", problem)
    name = resolve_backend_name(model_kind(model), backend, model, precision)
    if name == "onnxruntime":
        from maskface_rt.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model if model.is_dir() else model.parent, device=device)
    if name == "openvino":
        from maskface_rt.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(model if model.is_dir() else model.parent, device=device, precision=precision)
    if name in ENGINE_BACKENDS:
        from maskface_rt.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(model, runtime=name, device=device)
    from maskface_rt.backends.torch_backend import TorchBackend

    return TorchBackend(model, device=device)
