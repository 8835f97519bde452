"""The TensorRT objects this package calls, as Protocols: what the type checker holds the runner and compat to.

The bindings (``tensorrt``, ``tensorrt_rtx``) ship no type information; these Protocols name the members used
here, with the types of TensorRT 10.9-11 and TensorRT-RTX 1.7's Python API. Any object with those members
fits, the tests' CPU stand-ins included. Nothing here imports TensorRT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class ExecutionContext(Protocol):
    """``IExecutionContext``: one engine's state for one set of input shapes."""

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool: ...

    def set_tensor_address(self, name: str, address: int) -> bool: ...

    def get_tensor_shape(self, name: str) -> Sequence[int]: ...

    def execute_async_v3(self, stream_handle: int) -> bool: ...

    def set_device_memory(self, memory: int, size: int) -> None: ...


class Engine(Protocol):
    """``ICudaEngine``: a deserialized engine (tensor names, modes, dtypes, shapes, profiles)."""

    @property
    def num_io_tensors(self) -> int: ...

    @property
    def num_optimization_profiles(self) -> int: ...

    @property
    def device_memory_size_v2(self) -> int: ...

    def get_tensor_name(self, index: int) -> str: ...

    def get_tensor_mode(self, name: str) -> Any: ...  # trt.TensorIOMode

    def get_tensor_dtype(self, name: str) -> Any: ...  # trt.DataType

    def get_tensor_shape(self, name: str) -> Sequence[int]: ...

    def get_tensor_profile_shape(self, name: str, profile: int) -> Sequence[Sequence[int]]: ...

    def create_execution_context(self, strategy_or_config: Any) -> ExecutionContext | None: ...

    def create_engine_inspector(self) -> Any: ...

    def create_runtime_config(self) -> Any: ...  # TensorRT-RTX only


class Runtime(Protocol):
    """``trt.Runtime``: what deserializes engines (and, in TensorRT-RTX, judges an engine's validity)."""

    def deserialize_cuda_engine(self, blob: bytes) -> Engine | None: ...
