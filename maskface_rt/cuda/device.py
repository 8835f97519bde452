"""CUDA for the TensorRT backend: device and pinned host buffers, one non-blocking stream, CUDA graphs.

Two implementations of one small interface:

- ``cuda-python`` (``cuda.bindings.runtime``): cudaMalloc / cudaMallocHost buffers, cudaMemcpyAsync,
  stream capture into graphs. The default, and what the ``[tensorrt]`` extra installs.
- ``torch``: torch tensors (pinned host, device) and torch.cuda.CUDAGraph, used only when torch is
  already imported in the process (so that both share torch's caching allocator). This module never
  imports torch itself.

Written against the documented cuda-python 12.6+/13.x and torch APIs; not run on this project's
machines (no GPU). The choice between them (``cuda_implementation``) is plain code; device strings are
``maskface_rt.devices.cuda_index``'s.
"""

from __future__ import annotations

import abc
import ctypes
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from maskface_rt.errors import MaskfaceError

CUDA_PYTHON, TORCH = "cuda-python", "torch"


@dataclass(frozen=True)
class DeviceInfo:
    """The GPU an engine is built for: TensorRT plans are specific to the GPU model."""

    name: str
    compute_capability: str  # "9.0"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d+\.\d+", self.compute_capability):
            raise ValueError(f"compute capability must look like '9.0', got {self.compute_capability!r}")

    @property
    def capability(self) -> tuple[int, int]:
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)

    def __str__(self) -> str:
        return f"{self.name} (compute capability {self.compute_capability})"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "compute_capability": self.compute_capability}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceInfo:
        return cls(data["name"], data["compute_capability"])


CUDA_PYTHON_HINT = "pip install cuda-python (the [tensorrt] and [tensorrt-rtx] extras include it)"


def _cuda_python_importable() -> bool:
    try:
        from cuda.bindings import runtime  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_with_cuda(modules: Mapping[str, Any]) -> bool:
    torch = modules.get("torch")
    if torch is None:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a half-initialised torch must not break the choice
        return False


def cuda_implementation(torch_with_cuda: bool, cuda_python: bool) -> str | None:
    """Which implementation to use: torch tensors when torch is loaded and sees a GPU, else cuda-python."""
    if torch_with_cuda:
        return TORCH
    if cuda_python:
        return CUDA_PYTHON
    return None


def available() -> tuple[bool, str]:
    """Whether CUDA buffers can be made here (without importing torch), and how."""
    choice = cuda_implementation(_torch_with_cuda(sys.modules), _cuda_python_importable())
    if choice is None:
        return False, f"cuda-python is not installed; {CUDA_PYTHON_HINT}"
    return True, f"CUDA through {choice}"


class HostDeviceBuffer(abc.ABC):
    """One tensor's memory: a pinned host array (``host``, full shape) and a device allocation of the same size.
    ``upload`` / ``download`` enqueue async copies of the first ``nbytes`` on the device's stream."""

    host: np.ndarray
    device_ptr: int

    @abc.abstractmethod
    def upload(self, nbytes: int) -> None: ...

    @abc.abstractmethod
    def download(self, nbytes: int) -> None: ...


class CudaDevice(abc.ABC):
    """One GPU, one non-default stream, the buffers and graphs made through it (freed by ``close``)."""

    kind: str
    info: DeviceInfo
    stream_handle: int  # what TensorRT's execute_async_v3 takes

    @abc.abstractmethod
    def buffer(self, shape: tuple[int, ...], dtype: np.dtype) -> HostDeviceBuffer: ...

    @abc.abstractmethod
    def scratch(self, nbytes: int) -> int:
        """A device allocation of ``nbytes`` (TensorRT's execution scratch memory); its pointer."""

    @abc.abstractmethod
    def synchronize(self) -> None: ...

    @abc.abstractmethod
    def capture(self, enqueue: Callable[[], bool]) -> Any | None:
        """Capture what ``enqueue`` puts on the stream into an instantiated CUDA graph; None when the capture
        failed (enqueue returned False or raised, or CUDA refused), the stream being usable again."""

    @abc.abstractmethod
    def replay(self, graph: Any) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return max(1, math.prod(shape) * np.dtype(dtype).itemsize)


# ----------------------------------------------------------------------------- cuda-python


class _CudaPythonBuffer(HostDeviceBuffer):
    def __init__(self, device: CudaPythonDevice, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._device = device
        size = _nbytes(shape, dtype)
        self._host_ptr = device.call(device.rt.cudaMallocHost(size), "cudaMallocHost")
        self.device_ptr = device.call(device.rt.cudaMalloc(size), "cudaMalloc")
        raw = memoryview((ctypes.c_ubyte * size).from_address(self._host_ptr)).cast("B")
        used = math.prod(shape) * np.dtype(dtype).itemsize
        self.host = np.frombuffer(raw, np.uint8)[:used].view(dtype).reshape(shape)

    def _copy(self, dst: int, src: int, nbytes: int, kind: Any, what: str) -> None:
        rt = self._device.rt
        self._device.call(rt.cudaMemcpyAsync(dst, src, nbytes, kind, self._device.stream), what)

    def upload(self, nbytes: int) -> None:
        self._copy(
            self.device_ptr,
            self._host_ptr,
            nbytes,
            self._device.rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
            "cudaMemcpyAsync (host to device)",
        )

    def download(self, nbytes: int) -> None:
        self._copy(
            self._host_ptr,
            self.device_ptr,
            nbytes,
            self._device.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
            "cudaMemcpyAsync (device to host)",
        )

    def free(self) -> None:
        rt = self._device.rt
        self.host = np.empty(0, self.host.dtype)  # no view may outlive the pinned memory
        if self.device_ptr:
            rt.cudaFree(self.device_ptr)
            self.device_ptr = 0
        if self._host_ptr:
            rt.cudaFreeHost(self._host_ptr)
            self._host_ptr = 0


class CudaPythonDevice(CudaDevice):
    kind = CUDA_PYTHON

    def __init__(self, index: int = 0) -> None:
        try:
            from cuda.bindings import runtime as rt
        except ImportError as e:
            raise MaskfaceError(None, f"cuda-python is not installed ({e}); {CUDA_PYTHON_HINT}") from None
        self.rt = rt
        err, count = rt.cudaGetDeviceCount()
        if err != rt.cudaError_t.cudaSuccess or count == 0:
            why = self.error_name(err) if err != rt.cudaError_t.cudaSuccess else "no device"
            raise MaskfaceError(
                None, f"no usable CUDA GPU here (cudaGetDeviceCount: {why}); TensorRT needs an NVIDIA GPU and driver"
            )
        if index >= count:
            raise MaskfaceError(None, f"device cuda:{index} does not exist; this machine has {count} CUDA GPU(s)")
        self.call(rt.cudaSetDevice(index), "cudaSetDevice")
        prop = self.call(rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
        name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        self.info = DeviceInfo(name.split("\x00", 1)[0].strip(), f"{prop.major}.{prop.minor}")
        self.stream = self.call(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")
        self.stream_handle = int(self.stream)
        self._buffers: list[_CudaPythonBuffer] = []
        self._scratch: list[int] = []
        self._graphs: list[Any] = []

    def error_name(self, err: Any) -> str:
        found = self.rt.cudaGetErrorName(err)
        name = found[1] if isinstance(found, tuple) else found
        return name.decode() if isinstance(name, bytes) else str(name)

    def call(self, result: Any, what: str) -> Any:
        """The value of a cuda-python call's (error, value...) tuple, or a one-line error."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            raise MaskfaceError(None, f"CUDA error in {what}: {self.error_name(err)}")
        return values[0] if len(values) == 1 else (tuple(values) or None)

    def buffer(self, shape: tuple[int, ...], dtype: np.dtype) -> HostDeviceBuffer:
        buf = _CudaPythonBuffer(self, tuple(shape), np.dtype(dtype))
        self._buffers.append(buf)
        return buf

    def scratch(self, nbytes: int) -> int:
        pointer = self.call(self.rt.cudaMalloc(max(1, nbytes)), "cudaMalloc")
        self._scratch.append(pointer)
        return int(pointer)

    def synchronize(self) -> None:
        self.call(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def capture(self, enqueue: Callable[[], bool]) -> Any | None:
        rt = self.rt
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        if rt.cudaStreamBeginCapture(self.stream, mode)[0] != rt.cudaError_t.cudaSuccess:
            rt.cudaGetLastError()
            return None
        ok = False
        try:
            ok = bool(enqueue())
        except Exception:  # TensorRT refusing capture: fall back to plain execution
            ok = False
        finally:
            err, graph = rt.cudaStreamEndCapture(self.stream)
        if err != rt.cudaError_t.cudaSuccess or not ok:
            if graph is not None and int(graph) != 0:
                rt.cudaGraphDestroy(graph)
            rt.cudaGetLastError()  # clear the capture's error
            return None
        err, executable = rt.cudaGraphInstantiate(graph, 0)
        rt.cudaGraphDestroy(graph)
        if err != rt.cudaError_t.cudaSuccess:
            rt.cudaGetLastError()
            return None
        self._graphs.append(executable)
        return executable

    def replay(self, graph: Any) -> None:
        self.call(self.rt.cudaGraphLaunch(graph, self.stream), "cudaGraphLaunch")

    def close(self) -> None:
        if getattr(self, "stream", None) is None:
            return
        rt = self.rt
        rt.cudaStreamSynchronize(self.stream)
        for graph in self._graphs:
            rt.cudaGraphExecDestroy(graph)
        for buf in self._buffers:
            buf.free()
        for pointer in self._scratch:
            rt.cudaFree(pointer)
        self._graphs, self._buffers, self._scratch = [], [], []
        rt.cudaStreamDestroy(self.stream)
        self.stream = None


# ----------------------------------------------------------------------------- torch (already loaded)


class _TorchBuffer(HostDeviceBuffer):
    def __init__(self, device: TorchDevice, shape: tuple[int, ...], dtype: np.dtype) -> None:
        torch = device.torch
        self._device = device
        size = _nbytes(shape, dtype)
        self._host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
        self._gpu = torch.empty(size, dtype=torch.uint8, device=device.device)
        self.device_ptr = int(self._gpu.data_ptr())
        used = math.prod(shape) * np.dtype(dtype).itemsize
        self.host = self._host.numpy()[:used].view(dtype).reshape(shape)

    def upload(self, nbytes: int) -> None:
        with self._device.torch.cuda.stream(self._device.stream):
            self._gpu[:nbytes].copy_(self._host[:nbytes], non_blocking=True)

    def download(self, nbytes: int) -> None:
        with self._device.torch.cuda.stream(self._device.stream):
            self._host[:nbytes].copy_(self._gpu[:nbytes], non_blocking=True)


class TorchDevice(CudaDevice):
    kind = TORCH

    def __init__(self, index: int = 0) -> None:
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available():
            raise MaskfaceError(None, "torch sees no CUDA GPU here")
        if index >= torch.cuda.device_count():
            raise MaskfaceError(
                None, f"device cuda:{index} does not exist; this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            )
        self.torch = torch
        self.device = torch.device("cuda", index)
        torch.cuda.set_device(self.device)
        major, minor = torch.cuda.get_device_capability(self.device)
        self.info = DeviceInfo(torch.cuda.get_device_name(self.device), f"{major}.{minor}")
        self.stream = torch.cuda.Stream(self.device)
        self.stream_handle = int(self.stream.cuda_stream)
        self._keep: list[Any] = []

    def buffer(self, shape: tuple[int, ...], dtype: np.dtype) -> HostDeviceBuffer:
        buf = _TorchBuffer(self, tuple(shape), np.dtype(dtype))
        self._keep.append(buf)
        return buf

    def scratch(self, nbytes: int) -> int:
        block = self.torch.empty(max(1, nbytes), dtype=self.torch.uint8, device=self.device)
        self._keep.append(block)
        return int(block.data_ptr())

    def synchronize(self) -> None:
        self.stream.synchronize()

    def capture(self, enqueue: Callable[[], bool]) -> Any | None:
        graph = self.torch.cuda.CUDAGraph()
        ok = False
        try:
            with self.torch.cuda.stream(self.stream):
                graph.capture_begin(capture_error_mode="thread_local")
                try:
                    ok = bool(enqueue())
                finally:
                    graph.capture_end()
        except Exception:  # capture refused: fall back to plain execution
            return None
        if not ok:
            return None
        self._keep.append(graph)
        return graph

    def replay(self, graph: Any) -> None:
        with self.torch.cuda.stream(self.stream):
            graph.replay()

    def close(self) -> None:
        if self._keep:
            self.stream.synchronize()
        self._keep.clear()


def open_cuda_device(index: int = 0, implementation: str | None = None) -> CudaDevice:
    """The CUDA device of the TensorRT backend: torch's when torch is loaded and sees a GPU, else cuda-python's
    (``implementation`` names one instead)."""
    choice = implementation or cuda_implementation(_torch_with_cuda(sys.modules), _cuda_python_importable())
    if choice is None:
        raise MaskfaceError(None, f"the TensorRT backend needs cuda-python for its GPU buffers; {CUDA_PYTHON_HINT}")
    if choice not in (CUDA_PYTHON, TORCH):
        raise MaskfaceError(None, f"unknown CUDA implementation {choice!r}; valid: {CUDA_PYTHON}, {TORCH}")
    return TorchDevice(index) if choice == TORCH else CudaPythonDevice(index)
