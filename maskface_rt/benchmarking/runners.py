"""One runner per backend and precision, behind one small interface.

A runner is made for the model under test and the benchmark's device, says whether it can run here
(``available``: the reason when not), makes the files it needs (``build``: exports, engines), loads
(``load``), binds a batch (``prepare``, which runs it once and returns its uint8 images), and runs
it host to host (``run_once``: numpy labels and styles in, numpy uint8 images out, as ``maskface
generate`` uses a backend). On a GPU it also runs with inputs and outputs already on the device
(``prepare_device``, ``run_device``), which gives the GPU compute time apart from host<->device copies.

Every runner runs the generator through the package's backend (maskface_rt/backends: what ``maskface
generate`` runs) and keeps only what timing needs: torch.compile or a CUDA graph around the torch backend's
``generate_on_device``, ONNX Runtime's IOBinding on device values, the TensorRT backend's ``bind_generator``.
torch, onnxruntime, openvino and tensorrt are imported only inside the runners that use them.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from maskface_rt.backends.registry import REGISTRY
from maskface_rt.benchmarking.models import TORCH_MISSING, ModelSource, Unavailable, torch_installed
from maskface_rt.graph_contract import IMAGE, LABELS, STYLE

if TYPE_CHECKING:
    import torch

    from maskface_rt.backends.base import GeneratorBackend
    from maskface_rt.backends.export_folder import ExportFolderBackend
    from maskface_rt.backends.torch_backend import TorchBackend

__all__ = ["BACKEND_NAMES", "Runner", "RunnerContext", "Unavailable", "make_runner"]


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
    def tf32(self) -> bool:
        """Whether fp32 math may run on TF32 tensor cores (for the roofline's peak)."""
        return False

    @property
    def notes(self) -> str:
        """What a reader needs to know about how this runner runs."""
        return ""

    def _needs_cuda(self) -> str | None:
        return None if self.ctx.device.startswith("cuda") else f"needs a CUDA GPU: {self.ctx.no_cuda}"

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


# --- torch ---------------------------------------------------------------------------------------------


class TorchRunner(Runner):
    """The generator in PyTorch: eager, torch.compile or a CUDA graph; optionally with the fused AdaIN kernel.

    The uint8 labels go to the device as bytes and the images come back as uint8 NHWC, converted on
    the device, as in the exported graphs."""

    family = "torch"

    def __init__(
        self,
        ctx: RunnerContext,
        name: str,
        precision: str,
        mode: str = "eager",
        fused: bool = False,
        cuda_only: bool = True,
    ) -> None:
        super().__init__(ctx, name)
        self.precision, self.mode, self.fused, self.cuda_only = precision, mode, fused, cuda_only
        self.graph: torch.cuda.CUDAGraph | None = None
        self.backend: TorchBackend | None = None
        self.fn: Callable[..., Any] | None = None

    @property
    def tf32(self) -> bool:
        if not self.device.startswith("cuda") or self.precision != "fp32":
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
        if not self.device.startswith("cuda"):
            import torch

            parts += f"; torch threads: {torch.get_num_threads()}"
        if self.tf32:
            parts += "; torch defaults: cuDNN convolutions may use TF32"
        return parts

    def available(self) -> tuple[bool, str]:
        if not torch_installed():
            return False, TORCH_MISSING
        if self.source.checkpoint is None:
            return False, "needs a .safetensors checkpoint; --model is an export folder"
        if self.cuda_only and (reason := self._needs_cuda()):
            return False, reason
        on_cuda = self.device.startswith("cuda")
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

    def load(self) -> None:
        import torch

        from maskface_rt.backends.torch_backend import TorchBackend

        assert self.source.checkpoint is not None  # available() said so
        self.torch = torch
        self.backend = TorchBackend(
            self.source.checkpoint,
            device=self.device,
            precision=self.precision,
            adain="fused" if self.fused else "torch",
            generator_only=True,
        )
        forward = self.backend.generate_on_device
        self.fn = torch.compile(forward, dynamic=False) if self.mode == "compile" else forward

    def prepare(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        assert self.fn is not None  # load() made it
        torch = self.torch
        self.labels, self.styles = labels, styles
        self.graph = None
        if self.mode == "compile":
            torch._dynamo.reset()  # a fresh graph per batch size, never the recompile limit's eager fallback
        with torch.no_grad():
            self.labels_dev = torch.from_numpy(labels).to(self.device)
            self.styles_dev = torch.from_numpy(styles).to(self.device)
            if self.mode == "cudagraphs":
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):  # allocations, cuDNN autotuning and Triton compilation happen outside capture
                        self.fn(self.labels_dev, self.styles_dev)
                torch.cuda.current_stream().wait_stream(side)
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    self.out_dev = self.fn(self.labels_dev, self.styles_dev)
        return self.run_once()

    def run_once(self) -> np.ndarray:
        assert self.fn is not None  # load() made it
        torch = self.torch
        with torch.no_grad():
            if self.graph is not None:
                self.labels_dev.copy_(torch.from_numpy(self.labels))
                self.styles_dev.copy_(torch.from_numpy(self.styles))
                self.graph.replay()
                return self.out_dev.cpu().numpy()
            out = self.fn(torch.from_numpy(self.labels).to(self.device), torch.from_numpy(self.styles).to(self.device))
            return out.cpu().numpy()

    def prepare_device(self) -> None:
        if not self.device.startswith("cuda"):
            super().prepare_device()
        self.start = self.torch.cuda.Event(enable_timing=True)
        self.end = self.torch.cuda.Event(enable_timing=True)

    def run_device(self) -> float:
        assert self.fn is not None  # load() made it
        with self.torch.no_grad():
            self.start.record()
            if self.graph is not None:
                self.graph.replay()
            else:
                self.fn(self.labels_dev, self.styles_dev)
            self.end.record()
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1e3

    def close(self) -> None:
        torch = self.torch if hasattr(self, "torch") else None
        self.graph = self.fn = self.labels_dev = self.styles_dev = self.out_dev = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        if torch is not None:
            if self.mode == "compile":
                torch._dynamo.reset()
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.empty_cache()


# --- onnxruntime ---------------------------------------------------------------------------------------


class OnnxRuntimeRunner(Runner):
    """The exported generator in the package's onnxruntime backend (CPU, or CUDA with IOBinding)."""

    family = "onnxruntime"

    def __init__(self, ctx: RunnerContext, name: str, precision: str, cuda: bool) -> None:
        super().__init__(ctx, name)
        self.precision, self.cuda = precision, cuda
        if not cuda:
            self.device = "cpu"
        self.backend: ExportFolderBackend | None = None
        self.values: dict[str, Any] | None = None

    @property
    def tf32(self) -> bool:
        return self.cuda and self.precision == "fp32"  # the CUDA execution provider's default (use_tf32)

    @property
    def notes(self) -> str:
        if self.cuda:
            return "CUDAExecutionProvider; device time: host clock around run_with_iobinding on CUDA OrtValues"
        from maskface_rt.backends.probes import cpu_threads

        return f"CPUExecutionProvider, {cpu_threads()} intra-op threads"

    def available(self) -> tuple[bool, str]:
        ok, detail = REGISTRY["onnxruntime"].available()
        if not ok:
            return False, detail
        if self.cuda:
            if reason := self._needs_cuda():
                return False, reason
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                return False, "onnxruntime has no CUDA execution provider (pip install onnxruntime-gpu)"
            if self.device not in ("cuda", "cuda:0"):
                return False, "the onnxruntime backend runs on cuda:0 only"
        return self.source.can_export(self.precision)

    def build(self) -> None:
        self.folder = self.source.export(self.precision)

    def load(self) -> None:
        from maskface_rt.backends.onnxruntime_backend import OnnxRuntimeBackend

        self.backend = OnnxRuntimeBackend(self.folder, device="cuda" if self.cuda else "cpu")

    def prepare(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        self.labels, self.styles = labels, styles
        return self.run_once()

    def run_once(self) -> np.ndarray:
        assert self.backend is not None  # load() opened it
        return self.backend.generate(self.labels, self.styles)

    def prepare_device(self) -> None:
        if not self.cuda:
            super().prepare_device()
        import onnxruntime as ort

        from maskface_rt.backends.onnxruntime_backend import OnnxRuntimeBackend

        assert isinstance(self.backend, OnnxRuntimeBackend)  # load() opened it, on CUDA
        self.session = self.backend.sessions["generator"]
        self.values = {
            LABELS: ort.OrtValue.ortvalue_from_numpy(self.labels, "cuda", 0),
            STYLE: ort.OrtValue.ortvalue_from_numpy(self.styles, "cuda", 0),
        }
        shape = [len(self.labels), self.source.config.img_size, self.source.config.img_size, 3]
        self.values[IMAGE] = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.uint8, "cuda", 0)
        self.binding = self.session.io_binding()
        self.binding.bind_ortvalue_input(LABELS, self.values[LABELS])
        self.binding.bind_ortvalue_input(STYLE, self.values[STYLE])
        self.binding.bind_ortvalue_output(IMAGE, self.values[IMAGE])

    def run_device(self) -> None:
        self.session.run_with_iobinding(self.binding)  # synchronises the device at the end of the run
        return None

    def close(self) -> None:
        self.binding = self.values = self.session = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None


class OpenVinoRunner(OnnxRuntimeRunner):
    """The fp32 export compiled by the package's openvino backend at the row's precision (CPU only)."""

    family = "openvino"

    def __init__(self, ctx: RunnerContext, name: str, precision: str) -> None:
        super().__init__(ctx, name, precision, cuda=False)
        self.executed = ""

    @property
    def notes(self) -> str:
        from maskface_rt.backends.probes import cpu_threads

        return f"OpenVINO CPU plugin, {cpu_threads()} threads, 1 stream, LATENCY hint; runs: {self.executed}"

    def available(self) -> tuple[bool, str]:
        ok, detail = REGISTRY["openvino"].available()
        return self.source.can_export("fp32") if ok else (False, detail)

    def build(self) -> None:
        self.folder = self.source.export("fp32")

    def load(self) -> None:
        from maskface_rt.backends.openvino_backend import OpenVinoBackend

        # No compiled-model cache: the bench's exports live in a scratch folder, their blobs would be litter.
        self.backend = OpenVinoBackend(self.folder, precision=self.precision, cache=False)
        self.executed = self.backend.description


# --- TensorRT ------------------------------------------------------------------------------------------


@runtime_checkable
class _BindsGenerator(Protocol):
    """A backend that binds the generator to one batch on the device (the tensorrt backend)."""

    def bind_generator(self, labels: np.ndarray, styles: np.ndarray) -> Callable[[], None]: ...


class TensorRTRunner(Runner):
    """A TensorRT fp16 engine (strongly typed, from the fp16 export; with ``plugin`` the generator's
    AdaIN + LeakyReLU are maskface::FusedAdaIN plugin nodes) in the package's tensorrt backend; with
    ``runtime="tensorrt-rtx"`` a TensorRT-RTX engine of the portable graph."""

    family = "tensorrt"
    precision = "fp16"

    def __init__(self, ctx: RunnerContext, name: str, plugin: bool, runtime: str = "tensorrt") -> None:
        super().__init__(ctx, name)
        self.plugin, self.runtime = plugin, runtime
        self.backend: GeneratorBackend | None = None
        self.run_bound: Callable[[], None] | None = None
        self.backend_description = ""

    @property
    def notes(self) -> str:
        backend = self.backend_description
        return (
            f"one engine for batch 1..{self.source.max_batch}, optimised for {self.source.max_batch}"
            + ("; FusedAdaIN plugin" if self.plugin else "")
            + (f"; {backend}" if backend else "")
            + "; device time: host clock around the backend's run (its CUDA graph where captured) on "
            "device-resident buffers"
        )

    def available(self) -> tuple[bool, str]:
        if reason := self._needs_cuda():
            return False, reason
        try:
            from maskface_rt.export.engine_builder import BuildOptions, build_engine  # noqa: F401
        except ImportError as e:
            return False, f"the TensorRT backend or engine builder is not part of this build ({e})"
        if self.runtime != "tensorrt" and "runtime" not in {f.name for f in dataclasses.fields(BuildOptions)}:
            return False, f"this version's engine builder cannot make {self.runtime} engines"
        ok, detail = REGISTRY[self.runtime].available()
        if not ok:
            return False, detail
        if self.plugin:
            missing = [m for m in ("triton", "torch") if importlib.util.find_spec(m) is None]
            if missing:
                return (
                    False,
                    f"the FusedAdaIN plugin's kernel is compiled at build time with {' and '.join(missing)} "
                    "(pip install 'maskface-rt[train,kernels]')",
                )
        return self.source.can_export("fp16", self.plugin)

    def build(self) -> None:
        self.engine = self.source.engine(self.plugin, self.device, self.runtime)

    def load(self) -> None:
        from maskface_rt.backends import open_backend

        self.backend = open_backend(self.engine, self.runtime, device=self.device)
        self.backend_description = self.backend.description  # e.g. whether it replays CUDA graphs

    def prepare(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        self.labels, self.styles = labels, styles
        self.run_bound = None
        return self.run_once()

    def run_once(self) -> np.ndarray:
        assert self.backend is not None  # load() opened it
        return self.backend.generate(self.labels, self.styles)

    def prepare_device(self) -> None:
        # load() opened the tensorrt backend (None is ruled out first: mypy cannot narrow an Optional by a protocol)
        assert self.backend is not None and isinstance(self.backend, _BindsGenerator)
        self.run_bound = self.backend.bind_generator(self.labels, self.styles)

    def run_device(self) -> None:
        assert self.run_bound is not None  # prepare_device() bound it
        self.run_bound()  # synchronises the stream before returning
        return None

    def close(self) -> None:
        self.run_bound = None
        if self.backend is not None:
            self.backend.close()
            self.backend = None


# --- the list ------------------------------------------------------------------------------------------

#: name -> (class, keyword arguments); the order of reports and of --backend all.
_SPECS: dict[str, tuple[type[Runner], dict[str, Any]]] = {
    "torch-fp32": (TorchRunner, {"precision": "fp32", "cuda_only": False}),
    "torch-fp16": (TorchRunner, {"precision": "fp16"}),
    "torch-bf16": (TorchRunner, {"precision": "bf16"}),
    "torch-fused-fp16": (TorchRunner, {"precision": "fp16", "fused": True}),
    "torch-compile-fp32": (TorchRunner, {"precision": "fp32", "mode": "compile", "cuda_only": False}),
    "torch-compile-fp16": (TorchRunner, {"precision": "fp16", "mode": "compile"}),
    "torch-cudagraphs-fp16": (TorchRunner, {"precision": "fp16", "mode": "cudagraphs"}),
    "torch-fused-cudagraphs-fp16": (TorchRunner, {"precision": "fp16", "mode": "cudagraphs", "fused": True}),
    "onnxruntime-cpu-fp32": (OnnxRuntimeRunner, {"precision": "fp32", "cuda": False}),
    "onnxruntime-cuda-fp32": (OnnxRuntimeRunner, {"precision": "fp32", "cuda": True}),
    "onnxruntime-cuda-fp16": (OnnxRuntimeRunner, {"precision": "fp16", "cuda": True}),
    "openvino-cpu-fp32": (OpenVinoRunner, {"precision": "fp32"}),
    "openvino-cpu-bf16": (OpenVinoRunner, {"precision": "bf16"}),
    "tensorrt-fp16": (TensorRTRunner, {"plugin": False}),
    "tensorrt-plugin-fp16": (TensorRTRunner, {"plugin": True}),
    "tensorrt-rtx-fp16": (TensorRTRunner, {"plugin": False, "runtime": "tensorrt-rtx"}),
}
BACKEND_NAMES = tuple(_SPECS)


def make_runner(name: str, ctx: RunnerContext) -> Runner:
    cls, kwargs = _SPECS[name]
    return cls(ctx, name, **kwargs)
