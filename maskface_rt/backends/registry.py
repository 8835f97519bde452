"""The one table of runtime backends: each name's class, runtime, model kind, devices, precision and needs,
and what ``auto`` picks for each model kind.

``open_backend``, ``resolve_backend_name``, ``precision_problem``, ``maskface doctor``, bench and eval read it;
adding a backend is one row here (and its module). Backend modules are imported only when a row is used
(``load``, ``available``), so reading the table never imports torch, onnxruntime, openvino or TensorRT.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from maskface_rt.backends.probes import has_cuda_provider, native_bf16
from maskface_rt.devices import backend_device
from maskface_rt.errors import MaskfaceError
from maskface_rt.model_kind import ModelKind, export_folder_of

_EXPORT_FIRST = "export it first: maskface export MODEL --out DIR"
_ENGINE_DEVICES = ("auto", "cuda", "cuda:N")


@dataclass(frozen=True)
class BackendSpec:
    """One backend: ``cls`` in ``module`` runs models of ``kind`` on ``devices`` (maskface_rt.devices spellings)."""

    name: str  # --backend
    module: str  # imported on first use
    cls: str
    library: str  # the library that runs the model (its Python module may differ: needs)
    kind: ModelKind
    devices: tuple[str, ...]
    needs: tuple[str, ...]  # the Python modules it imports
    kind_hint: str  # what to do when given a model of another kind
    takes_precision: bool = False  # --precision auto|fp32|bf16
    takes_threads: bool = False  # ``threads``: CPU threads of its math (default: every core this process may use)
    options: dict[str, Any] = field(default_factory=dict)  # fixed keyword arguments of ``cls`` (and ``available``)
    #: the whole message when it cannot run here (None: "the NAME backend cannot run here: <why>")
    unavailable_message: str | None = None

    def load_module(self) -> ModuleType:
        return importlib.import_module(self.module)

    def available(self) -> tuple[bool, str]:
        """Whether it can run here, and how (or why not), from the backend module's own ``available``."""
        return self.load_module().available(**self.options)

    def check_available(self) -> None:
        """A one-line error when it cannot run here."""
        ok, detail = self.available()
        if not ok:
            raise MaskfaceError(None, self.unavailable_message or f"the {self.name} backend cannot run here: {detail}")

    def open(
        self,
        model: Path,
        *,
        device: str,
        precision: str = "auto",
        threads: int | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> Any:
        """The backend on ``model`` (a path of ``kind``): a GeneratorBackend. ``threads`` applies to the
        backends that take it (the CPU ones) and is ignored by the others; ``arguments``: more keyword arguments
        of ``cls`` (bench's: the torch backend's precision and AdaIN, OpenVINO without its compiled-model cache)."""
        backend_device(device, self.name, self.devices)  # the table's devices: the classes keep no copy
        cls = getattr(self.load_module(), self.cls)
        target = export_folder_of(model) if self.kind is ModelKind.ONNX_EXPORT else model
        extra: dict[str, Any] = {"precision": precision} if self.takes_precision else {}
        if self.takes_threads and threads is not None:
            extra["threads"] = threads
        return cls(target, device=device, **self.options, **extra, **(arguments or {}))


REGISTRY: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "onnxruntime",
            "maskface_rt.backends.onnxruntime_backend",
            "OnnxRuntimeBackend",
            "onnxruntime",
            ModelKind.ONNX_EXPORT,
            ("auto", "cpu", "cuda"),
            ("onnxruntime",),
            _EXPORT_FIRST,
            takes_threads=True,
        ),
        BackendSpec(
            "openvino",
            "maskface_rt.backends.openvino_backend",
            "OpenVinoBackend",
            "openvino",
            ModelKind.ONNX_EXPORT,
            ("auto", "cpu"),
            ("openvino",),
            _EXPORT_FIRST,
            takes_precision=True,
            takes_threads=True,
        ),
        BackendSpec(
            "torch",
            "maskface_rt.backends.torch_backend",
            "TorchBackend",
            "torch",
            ModelKind.CHECKPOINT,
            ("auto", "cpu", "cuda", "cuda:N"),
            ("torch",),
            "the torch backend runs .safetensors checkpoints",
            unavailable_message="a .safetensors checkpoint needs torch (pip install 'maskface-rt[train]'), or "
            "export it on a machine with torch and use the onnxruntime backend",
        ),
        BackendSpec(
            "tensorrt",
            "maskface_rt.backends.trt.runner",
            "TensorRTBackend",
            "tensorrt",
            ModelKind.ENGINE,
            _ENGINE_DEVICES,
            ("tensorrt", "cuda.bindings"),
            "the tensorrt backend runs .engine files",
            options={"runtime": "tensorrt"},
        ),
        BackendSpec(
            "tensorrt-rtx",
            "maskface_rt.backends.trt.runner",
            "TensorRTBackend",
            "tensorrt_rtx",
            ModelKind.ENGINE,
            _ENGINE_DEVICES,
            ("tensorrt_rtx", "cuda.bindings"),
            "the tensorrt-rtx backend runs .engine files",
            options={"runtime": "tensorrt-rtx"},
        ),
    )
}

AUTO = "auto"
#: --backend values: auto, then the table's names.
BACKENDS = (AUTO, *REGISTRY)
#: Backends that run engines (maskface build), each its own runtime (the sidecar says which built them).
ENGINE_BACKENDS = tuple(name for name, spec in REGISTRY.items() if spec.kind is ModelKind.ENGINE)
#: The precisions a backend may be asked for (--precision): auto (the backend's choice), or one that the backends
#: which take a precision (``takes_precision``: OpenVINO) run; the others run the precision of their model.
PRECISIONS = ("auto", "fp32", "bf16")
#: The --backend help text of the CLI.
BACKEND_HELP = f"{', '.join(BACKENDS[:-1])} or {BACKENDS[-1]} (auto: an engine runs on the runtime that built it)."


def _engine_runtime(engine: Path | None, precision: str, device: str) -> str:
    """An engine runs on the runtime its sidecar names (TensorRT when it names none)."""
    if engine is None:
        return "tensorrt"
    from maskface_rt.backends.trt.compat import sidecar_runtime

    return sidecar_runtime(engine)


def _onnx_export_runtime(model: Path | None, precision: str, device: str) -> str:
    """An export: OpenVINO where a precision was asked for (it alone takes one) or, on the CPU, where it runs
    bf16 natively (3-4x onnxruntime fp32); else onnxruntime, which a GPU (``device`` cuda, or auto where
    onnxruntime has CUDA) always gets. Without native bf16, OpenVINO fp32 is faster at batch >= 2 but a
    single image costs it 1.3-1.5x onnxruntime's time, padded to two for batch-invariant bytes (docs)."""
    if not REGISTRY["openvino"].available()[0]:
        return "onnxruntime"
    if precision != "auto":
        return "openvino"
    if device.startswith("cuda"):
        return "onnxruntime"
    if device == "auto" and has_cuda_provider():
        return "onnxruntime"
    return "openvino" if native_bf16() else "onnxruntime"


#: What ``auto`` picks for each model kind: (model path or None, --precision, --device) -> backend name.
AUTO_CHOICE: dict[ModelKind, Callable[[Path | None, str, str], str]] = {
    ModelKind.CHECKPOINT: lambda model, precision, device: "torch",
    ModelKind.ONNX_EXPORT: _onnx_export_runtime,
    ModelKind.ENGINE: _engine_runtime,
}


def backend_spec(name: str) -> BackendSpec:
    """The row of a --backend name ('auto' is resolved by ``resolve_backend_name``), or a one-line error."""
    if name not in REGISTRY:
        raise MaskfaceError(None, f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    return REGISTRY[name]
