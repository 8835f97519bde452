"""The TensorRT plugin ``maskface::FusedAdaIN`` (a quickly deployable plugin, tensorrt.plugin, TensorRT 10.9+).

Importing this module registers it: do so before parsing a ``maskface export --plugin`` graph. It has
an AOT implementation (the Triton kernel's PTX for this GPU, embedded in the engine: running the engine
needs no Python) and a JIT one (the Triton kernel launched from Python at run time). TensorRT picks
with the network flags PREFER_AOT_PYTHON_PLUGINS / PREFER_JIT_PYTHON_PLUGINS. Types: fp16 or fp32,
linear format. The rules themselves (shapes, kernel variant, launch parameters) live in ``config``
and ``ptx``, plain functions tested without TensorRT.
"""

# No `from __future__ import annotations`: tensorrt.plugin checks these signatures' annotations as classes.

try:
    import tensorrt as trt
    import tensorrt.plugin as trtp
except ImportError as e:
    raise ImportError(
        "maskface_rt.kernels.trt_plugin needs TensorRT 10.9 or newer with its Python plugin API "
        "(pip install tensorrt, on a machine with a CUDA GPU)"
    ) from e

from maskface_rt.kernels import ptx
from maskface_rt.kernels.config import check_ranks
from maskface_rt.kernels.onnx_op import OP_TYPE, PLUGIN_NAMESPACE

PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{OP_TYPE}"
_DTYPES = {trt.float16: "fp16", trt.float32: "fp32"}


def _arch() -> str:
    import torch

    return ptx.arch_for_capability(*torch.cuda.get_device_capability())


@trtp.register(PLUGIN_ID)
def _desc(
    x: trtp.TensorDesc, gamma: trtp.TensorDesc, beta: trtp.TensorDesc, eps: float, negative_slope: float
) -> trtp.TensorDesc:
    check_ranks(x.ndim, gamma.ndim, beta.ndim)
    return x.like()


@trtp.autotune(PLUGIN_ID)
def _autotune(
    x: trtp.TensorDesc, gamma: trtp.TensorDesc, beta: trtp.TensorDesc, outputs: tuple[trtp.TensorDesc]
) -> list[trtp.AutoTuneCombination]:
    return [trtp.AutoTuneCombination("FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16", "LINEAR")]


@trtp.aot_impl(PLUGIN_ID)
def _aot(
    x: trtp.TensorDesc,
    gamma: trtp.TensorDesc,
    beta: trtp.TensorDesc,
    eps: float,
    negative_slope: float,
    outputs: tuple[trtp.TensorDesc],
    tactic: int,
) -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymIntExprs]:
    n, c, h, w = x.shape_expr
    hw = h * w
    kernel = ptx.aot_kernel(
        _arch(), _DTYPES[x.dtype], hw.constant_value() if hw.is_constant else None, eps, negative_slope
    )
    params = trtp.KernelLaunchParams()
    params.grid_x = n * c
    params.block_x = kernel.block_x
    params.shared_mem = kernel.shared_mem
    return kernel.name, kernel.ptx, params, trtp.SymIntExprs.from_tuple([trtp.SymInt32(hw)])


@trtp.impl(PLUGIN_ID)
def _jit(
    x: trtp.Tensor,
    gamma: trtp.Tensor,
    beta: trtp.Tensor,
    eps: float,
    negative_slope: float,
    outputs: tuple[trtp.Tensor],
    stream: int,
) -> None:
    import torch
    from maskface_rt.kernels.fused_adain import launch

    with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
        launch(*(torch.as_tensor(t, device="cuda") for t in (x, gamma, beta, outputs[0])), eps, negative_slope)
