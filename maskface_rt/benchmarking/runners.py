"""One runner per bench row (a ``variants.Variant`` of a registry row), behind one small interface.

A runner is made for the model under test and the benchmark's device, says whether it can run here
(``available``: the reason when not), makes the files it needs (``build``: exports, engines), loads
(``load``), binds a batch (``prepare``, which runs it once and returns its uint8 images), and runs
it host to host (``run_once``: numpy labels and styles in, numpy uint8 images out, as ``maskface
generate`` uses a backend). On a GPU it also runs with inputs and outputs already on the device
(``prepare_device``, ``run_device``), which gives the GPU compute time apart from host<->device copies.

Every runner opens its registry row (``REGISTRY[row].open``: the backend ``maskface generate`` runs) on the model
of the row's kind (the checkpoint, an export of its precision, or an engine bench builds) and keeps only what
timing needs: torch.compile or a CUDA graph around the torch backend's ``generate_on_device``, and otherwise the
backend's ``bind_generator`` (ONNX Runtime's IOBinding on device values, the TensorRT backend's device buffers).
A registry row without a runner of its own runs through the generic one (``BackendRunner``).
torch, onnxruntime, openvino and tensorrt are imported only inside the runners that use them.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskface_rt.backends.base import GeneratorBackend
from maskface_rt.backends.registry import REGISTRY, BackendSpec
from maskface_rt.benchmarking.models import TORCH_MISSING, ModelSource, Unavailable, torch_installed
from maskface_rt.benchmarking.variants import BACKEND_NAMES, Variant, variant_named
from maskface_rt.devices import device_kinds, parse_device, spelling_for
from maskface_rt.errors import OptionError
from maskface_rt.model_kind import ModelKind

if TYPE_CHECKING:
    import torch

__all__ = ["BACKEND_NAMES", "BackendRunner", "Runner", "RunnerContext", "Unavailable", "make_runner", "runner_class"]

NO_CHECKPOINT = "needs a .safetensors checkpoint; --model is an export folder"


@dataclass(frozen=True)
class RunnerContext:
    source: ModelSource
    device: str  # the benchmark's device: "cpu" or "cuda:N"
    no_cuda: str  # why CUDA-only runners cannot run ("" when device is CUDA)


class Runner(abc.ABC):
    family = ""  # torch, onnxruntime, openvino or tensorrt
    precision = "fp32"

    def __init__(self, ctx: RunnerContext, name: str) -> None:
        self.ctx = ctx
        self.name = name
        self.device = ctx.device

    @property
    def source(self) -> ModelSource:
        return self.ctx.source

    @property
    def on_cuda(self) -> bool:
        """Whether this runner runs on a CUDA GPU."""
        return parse_device(self.device).is_cuda

    @property
    def tf32(self) -> bool:
        """Whether fp32 math may run on TF32 tensor cores (for the roofline's peak)."""
        return False

    @property
    def notes(self) -> str:
        """What a reader needs to know about how this runner runs."""
        return ""

    @abc.abstractmethod
    def available(self) -> tuple[bool, str]:
        """(True, "") or (False, why not); cheap: loads no model."""

    def build(self) -> None:
        """Make the files this runner needs (exports, engines)."""

    @abc.abstractmethod
    def load(self) -> None:
        """Load the model into the runtime."""

    @abc.abstractmethod
    def prepare(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        """Bind one batch, run it once (compiling or capturing what needs it) and return its uint8 images."""

    @abc.abstractmethod
    def run_once(self) -> np.ndarray:
        """One call on the bound batch, host to host."""

    def prepare_device(self) -> None:
        """Put the bound batch and the outputs on the device for ``run_device``."""
        raise Unavailable("runs on the CPU: no separate device time")

    def run_device(self) -> float | None:
        """One call on device-resident inputs and outputs, finished on return: its GPU time in seconds
        (CUDA events), or None when the caller's host clock around the call is the measure."""
        raise Unavailable("no device-resident run")

    def close(self) -> None:
        """Free the runtime's resources."""


# --- any registry row ----------------------------------------------------------------------------------


class BackendRunner(Runner):
    """A registry row as bench's variant of it: opened through the registry on the model of the row's kind, run
    host to host through ``generate`` and on the device through the backend's ``bind_generator``."""

    library = ""  # the registry rows (their ``library``) this class is the runner of; "": any without its own

    def __init__(self, ctx: RunnerContext, variant: Variant) -> None:
        super().__init__(ctx, variant.name)
        self.variant, self.spec = variant, REGISTRY[variant.row]
        self.family = self.family or self.spec.library
        self.precision = variant.precision
        self.device = self._device()
        self.model: Path | None = None
        self.backend: Any = None
        self.description = ""  # the backend's, once loaded (notes are read after it is closed)
        self.labels: np.ndarray | None = None  # the batch ``prepare`` binds
        self.styles: np.ndarray | None = None
        self.run_bound: Callable[[], None] | None = None  # that batch bound on the device (``prepare_device``)

    def _device(self) -> str:
        """Where the row runs: the variant's device, else the bench's where the row runs on its kind, else the CPU."""
        kinds = device_kinds(self.spec.devices)
        if self.variant.device == "cpu" or (parse_device(self.ctx.device).kind not in kinds and "cpu" in kinds):
            return "cpu"
        return self.ctx.device

    @property
    def needs_cuda(self) -> bool:
        """Whether this row runs on a CUDA GPU only."""
        return self.variant.device == "cuda" or "cpu" not in device_kinds(self.spec.devices)

    @property
    def export_precision(self) -> str:
        """The export the row runs: a backend that takes a precision (OpenVINO) compiles the fp32 export at its
        own; the others run an export of theirs."""
        return "fp32" if self.spec.takes_precision else self.precision

    def device_problem(self) -> str | None:
        device = parse_device(self.device)
        if self.needs_cuda and not device.is_cuda:
            return f"needs a CUDA GPU: {self.ctx.no_cuda}"
        if spelling_for(device, self.spec.devices) is None:
            return f"the {self.spec.name} backend runs on cuda:0 only"
        return None

    def _runtime_problem(self) -> str | None:
        """Why the row's runtime cannot run this variant here (beyond the registry's ``available``), or None."""
        return None

    def _model_problem(self) -> str | None:
        """Why the model this row runs cannot be had, or None."""
        kind = self.spec.kind
        if kind is ModelKind.CHECKPOINT:
            return None if self.source.checkpoint is not None else NO_CHECKPOINT
        if kind is ModelKind.ENGINE:
            try:
                importlib.import_module("maskface_rt.export.engine_builder")
            except ImportError as e:
                return f"the engine builder is not part of this build ({e})"
            missing = [m for m in ("triton", "torch") if importlib.util.find_spec(m) is None]
            if self.variant.plugin and missing:
                return (
                    f"the FusedAdaIN plugin's kernel is compiled at build time with {' and '.join(missing)} "
                    "(pip install 'maskface-rt[train,kernels]')"
                )
        ok, reason = self.source.can_export(self.export_precision, self.variant.plugin)
        return None if ok else reason

    def available(self) -> tuple[bool, str]:
        if problem := self.device_problem():
            return False, problem
        ok, detail = self.spec.available()
        if not ok:
            return False, detail
        problem = self._runtime_problem() or self._model_problem()
        return (False, problem) if problem else (True, "")

    def build(self) -> None:
        kind = self.spec.kind
        if kind is ModelKind.CHECKPOINT:
            self.model = self.source.checkpoint
        elif kind is ModelKind.ONNX_EXPORT:
            self.model = self.source.export(self.export_precision)
        else:
            self.model = self.source.engine(self.variant.plugin, self.device, self.spec.name)

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments of the backend's class beyond the registry's (``BackendSpec.open``)."""
        return {}

    def load(self) -> None:
        assert self.model is not None, "build() makes the model that load() opens"
        self.backend = self.spec.open(
            self.model,
            device=spelling_for(parse_device(self.device), self.spec.devices) or self.device,
            precision=self.precision if self.spec.takes_precision else "auto",
            arguments=self.arguments(),
        )
        self.description = self.backend.description

    @property
    def notes(self) -> str:
        return self.description

    def prepare(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        self.labels, self.styles = labels, styles
        self.run_bound = None
        return self.run_once()

    def run_once(self) -> np.ndarray:
        return self.backend.generate(self.labels, self.styles)

    def prepare_device(self) -> None:
        if not self.on_cuda:
            super().prepare_device()
        if type(self.backend).bind_generator is GeneratorBackend.bind_generator:
            raise Unavailable(f"the {self.spec.name} backend binds no device buffers: its time would include copies")
        self.run_bound = self.backend.bind_generator(self.labels, self.styles)

    def run_device(self) -> float | None:
        run_bound = self.run_bound
        assert run_bound is not None, "prepare_device() binds the batch that run_device() runs"
        run_bound()  # finished on return (the backend synchronises)
        return None

    def close(self) -> None:
        self.run_bound = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None


# --- torch ---------------------------------------------------------------------------------------------


class TorchRunner(BackendRunner):
    """The generator in PyTorch: eager, torch.compile or a CUDA graph; optionally with the fused AdaIN kernel.

    The uint8 labels go to the device as bytes and the images come back as uint8 NHWC, converted on
    the device, as in the exported graphs."""

    library = family = "torch"

    def __init__(self, ctx: RunnerContext, variant: Variant) -> None:
        super().__init__(ctx, variant)
        self.mode, self.fused = variant.mode, variant.fused
        self.fn: Callable[..., torch.Tensor] | None = None  # the generator on device tensors (``load``)
        self.labels_dev: torch.Tensor | None = None  # the batch ``prepare`` put on the device
        self.styles_dev: torch.Tensor | None = None
        # cudagraphs mode: the graph ``prepare`` captured on that batch, and its output buffer
        self.captured: tuple[torch.cuda.CUDAGraph, torch.Tensor] | None = None

    @property
    def needs_cuda(self) -> bool:
        """fp16 and bf16 (the torch backend runs them on CUDA only), the fused kernel and CUDA graphs need a GPU."""
        return super().needs_cuda or self.precision != "fp32" or self.fused or self.mode == "cudagraphs"

    @property
    def tf32(self) -> bool:
        if not self.on_cuda or self.precision != "fp32":
            return False
        import torch

        return bool(torch.backends.cudnn.allow_tf32)

    @property
    def notes(self) -> str:
        parts = {
            "eager": "eager",
            "compile": "torch.compile (default mode, dynamic=False: one graph per batch size)",
            "cudagraphs": "one CUDA graph per batch size (torch.cuda.graphs)",
        }[self.mode]
        parts += "; fused AdaIN Triton kernel" if self.fused else "; AdaIN in torch ops"
        if not self.on_cuda:
            import torch

            parts += f"; torch threads: {torch.get_num_threads()}"
        if self.tf32:
            parts += "; torch defaults: cuDNN convolutions may use TF32"
        return parts

    def available(self) -> tuple[bool, str]:
        if not torch_installed():
            return False, TORCH_MISSING
        if problem := self._model_problem() or self.device_problem():
            return False, problem
        on_cuda = self.on_cuda
        if on_cuda:
            import torch

            if not torch.cuda.is_available():
                return False, f"torch {torch.__version__} sees no CUDA device"
        if (self.fused or (self.mode == "compile" and on_cuda)) and importlib.util.find_spec("triton") is None:
            return False, "triton is not installed (pip install 'maskface-rt[kernels]')"
        if self.mode == "compile" and not on_cuda and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
            return False, "torch.compile on the CPU needs a C++ compiler (none on PATH)"
        if self.precision == "bf16":
            import torch

            if not torch.cuda.is_bf16_supported():
                return False, f"{torch.cuda.get_device_name()} has no bf16 support"
        return True, ""

    def arguments(self) -> dict[str, Any]:
        return {"precision": self.precision, "adain": "fused" if self.fused else "torch", "generator_only": True}

    def load(self) -> None:
        import torch

        self.torch = torch
        super().load()
        forward = self.backend.generate_on_device
        self.fn = torch.compile(forward, dynamic=False) if self.mode == "compile" else forward

    def _forward(self) -> Callable[..., torch.Tensor]:
        """The generator on device tensors that ``load`` made."""
        assert self.fn is not None, "load() makes the generator that prepare() binds"
        return self.fn

    def _device_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The labels and styles ``prepare`` put on the device."""
        assert self.labels_dev is not None and self.styles_dev is not None, "prepare() puts the batch on the device"
        return self.labels_dev, self.styles_dev

    def prepare(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        torch, fn = self.torch, self._forward()
        self.labels, self.styles = labels, styles
        self.captured = None
        if self.mode == "compile":
            torch._dynamo.reset()  # a fresh graph per batch size, never the recompile limit's eager fallback
        with torch.no_grad():
            self.labels_dev = labels_dev = torch.from_numpy(labels).to(self.device)
            self.styles_dev = styles_dev = torch.from_numpy(styles).to(self.device)
            if self.mode == "cudagraphs":
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):  # allocations, cuDNN autotuning and Triton compilation happen outside capture
                        fn(labels_dev, styles_dev)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    out_dev = fn(labels_dev, styles_dev)
                self.captured = graph, out_dev
        return self.run_once()

    def run_once(self) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            if self.captured is not None:
                graph, out_dev = self.captured
                labels_dev, styles_dev = self._device_batch()
                labels_dev.copy_(torch.from_numpy(self.labels))
                styles_dev.copy_(torch.from_numpy(self.styles))
                graph.replay()
                return out_dev.cpu().numpy()
            fn = self._forward()
            out = fn(torch.from_numpy(self.labels).to(self.device), torch.from_numpy(self.styles).to(self.device))
            return out.cpu().numpy()

    def prepare_device(self) -> None:
        if not self.on_cuda:
            Runner.prepare_device(self)
        self.start = self.torch.cuda.Event(enable_timing=True)
        self.end = self.torch.cuda.Event(enable_timing=True)

    def run_device(self) -> float:
        with self.torch.no_grad():
            self.start.record()
            if self.captured is not None:
                self.captured[0].replay()
            else:
                self._forward()(*self._device_batch())
            self.end.record()
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1e3

    def close(self) -> None:
        torch = getattr(self, "torch", None)
        self.captured = self.fn = self.labels_dev = self.styles_dev = None
        super().close()
        if torch is not None:
            if self.mode == "compile":
                torch._dynamo.reset()
            if self.on_cuda:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()


# --- export folders ------------------------------------------------------------------------------------


class OnnxRuntimeRunner(BackendRunner):
    """The exported generator in the package's onnxruntime backend (CPU, or CUDA with IOBinding)."""

    library = family = "onnxruntime"

    @property
    def tf32(self) -> bool:
        return self.on_cuda and self.precision == "fp32"  # the CUDA execution provider's default (use_tf32)

    @property
    def notes(self) -> str:
        if self.on_cuda:
            return "CUDAExecutionProvider; device time: host clock around run_with_iobinding on CUDA OrtValues"
        from maskface_rt.backends.probes import cpu_threads

        return f"CPUExecutionProvider, {cpu_threads()} intra-op threads"

    def _runtime_problem(self) -> str | None:
        from maskface_rt.backends.probes import has_cuda_provider

        if self.on_cuda and not has_cuda_provider():
            return "onnxruntime has no CUDA execution provider (pip install onnxruntime-gpu)"
        return None


class OpenVinoRunner(BackendRunner):
    """The fp32 export compiled by the package's openvino backend at the row's precision (CPU only)."""

    library = family = "openvino"

    @property
    def notes(self) -> str:
        from maskface_rt.backends.probes import cpu_threads

        return f"OpenVINO CPU plugin, {cpu_threads()} threads, 1 stream, LATENCY hint; runs: {self.description}"

    def arguments(self) -> dict[str, Any]:
        # No compiled-model cache: the bench's exports live in a scratch folder, their blobs would be litter.
        return {"cache": False}

    def load(self) -> None:
        try:
            super().load()
        except OptionError as e:  # bf16 where OpenVINO runs none (a CPU without AVX-512): the row cannot run here
            raise Unavailable(e.problem) from None


# --- engines -------------------------------------------------------------------------------------------


class EngineRunner(BackendRunner):
    """An fp16 engine that bench builds (strongly typed, from the fp16 export; with ``plugin`` the generator's
    AdaIN + LeakyReLU are maskface::FusedAdaIN plugin nodes) for the row's runtime (TensorRT or TensorRT-RTX), in
    the package's backend of that runtime."""

    family = "tensorrt"

    @property
    def runtime(self) -> str:
        return self.spec.name

    @property
    def plugin(self) -> bool:
        return self.variant.plugin

    @property
    def notes(self) -> str:
        backend = self.description
        return (
            f"one engine for batch 1..{self.source.max_batch}, optimised for {self.source.max_batch}"
            + ("; FusedAdaIN plugin" if self.plugin else "")
            + (f"; {backend}" if backend else "")
            + "; device time: host clock around the backend's run (its CUDA graph where captured) on "
            "device-resident buffers"
        )


# --- the rows ------------------------------------------------------------------------------------------

#: Runners of their own for some libraries (torch's compile and CUDA graphs, onnxruntime's CUDA provider,
#: OpenVINO's cache and notes); any other registry row runs through the engine runner or the generic one.
_LIBRARY_RUNNERS: dict[str, type[BackendRunner]] = {
    cls.library: cls for cls in (TorchRunner, OnnxRuntimeRunner, OpenVinoRunner)
}


def runner_class(spec: BackendSpec) -> type[BackendRunner]:
    """The runner of a registry row."""
    if spec.library in _LIBRARY_RUNNERS:
        return _LIBRARY_RUNNERS[spec.library]
    return EngineRunner if spec.kind is ModelKind.ENGINE else BackendRunner


def make_runner(name: str, ctx: RunnerContext) -> BackendRunner:
    """The runner of a --backend name (one of BACKEND_NAMES)."""
    variant = variant_named(name)
    return runner_class(REGISTRY[variant.row])(ctx, variant)
