"""Runtime backends behind one generator interface, and the choice among them.

The backends are the rows of ``registry.REGISTRY``; ``open_backend`` picks one by name ('auto': the table's
``AUTO_CHOICE`` for the model's kind). Modules of runtimes that are not used are never imported (the
onnxruntime, openvino and tensorrt paths never import torch).
"""

from __future__ import annotations

from pathlib import Path

from maskface_rt.backends.base import GeneratorBackend, latent_for_style
from maskface_rt.backends.registry import (
    AUTO,
    AUTO_CHOICE,
    BACKENDS,
    ENGINE_BACKENDS,
    PRECISIONS,
    REGISTRY,
    backend_spec,
)
from maskface_rt.devices import DeviceError, backend_device
from maskface_rt.errors import MaskfaceError, OptionError
from maskface_rt.model_kind import ModelKind, model_kind

__all__ = [
    "BACKENDS",
    "ENGINE_BACKENDS",
    "PRECISIONS",
    "REGISTRY",
    "GeneratorBackend",
    "ModelKind",
    "latent_for_style",
    "model_kind",
    "open_backend",
    "backend_problem",
    "precision_problem",
    "resolve_backend_name",
]


def backend_problem(model: Path, backend: str, *, device: str = "auto", precision: str = "auto") -> OptionError | None:
    """Why ``backend`` (auto: the one chosen for ``model``, ``precision`` and ``device``) cannot take ``precision``
    (option "precision") or run on ``device`` (option "device"); None where it can. The backend is chosen once,
    before any work."""
    if precision not in PRECISIONS:
        return OptionError("precision", f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    name = resolve_backend_name(model_kind(model), backend, model, precision, device)
    spec = REGISTRY[name]
    if precision != "auto" and not spec.takes_precision:
        takers = " or ".join(s.name for s in REGISTRY.values() if s.takes_precision)
        return OptionError(
            "precision",
            f"{precision} applies to the {takers} backend only ({name} runs the export's own precision); "
            f"use the {takers} backend, or leave the precision at auto",
        )
    try:
        backend_device(device, name, spec.devices)
    except DeviceError as e:
        chosen = " (the backend auto takes here)" if backend == AUTO else ""
        return OptionError("device", f"{e.problem}{chosen}")
    return None


def precision_problem(model: Path, backend: str, precision: str) -> OptionError | None:
    """Why ``precision`` cannot be used with ``model`` on ``backend``, or None (checked before any work)."""
    found = backend_problem(model, backend, precision=precision)
    return found if found is not None and found.option == "precision" else None


def resolve_backend_name(
    kind: ModelKind, backend: str, model: Path | None = None, precision: str = "auto", device: str = "auto"
) -> str:
    """The backend for a model of ``kind``, checked to run it here: 'auto' takes the table's choice for
    ``precision`` and ``device`` (for an engine, the runtime its sidecar names, ``model``; TensorRT when it
    names none)."""
    name = AUTO_CHOICE[kind](model, precision, device) if backend == AUTO else backend_spec(backend).name
    if name not in REGISTRY:  # an engine's sidecar names a runtime this version does not know
        raise MaskfaceError(
            model, f"was built for the runtime {name!r}; this maskface runs engines of {', '.join(ENGINE_BACKENDS)}"
        )
    spec = REGISTRY[name]
    if spec.kind is not kind:
        raise MaskfaceError(None, f"backend {name} cannot run a {kind.value}; {spec.kind_hint}")
    spec.check_available()
    return name


def open_backend(
    model: str | Path,
    backend: str = "auto",
    *,
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
) -> GeneratorBackend:
    """Open ``model`` on the named backend ('auto': the fastest that can run it here); ``precision``
    (auto, fp32, bf16) is the openvino backend's; ``threads`` caps the CPU backends' math threads."""
    model = Path(model)
    if problem := precision_problem(model, backend, precision):
        raise problem
    name = resolve_backend_name(model_kind(model), backend, model, precision, device)
    return REGISTRY[name].open(model, device=device, precision=precision, threads=threads)
