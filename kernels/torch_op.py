"""The torch custom op ``maskface::fused_adain(x, gamma, beta, eps, negative_slope) -> y``.

CUDA runs the Triton kernel (triton is imported at the first CUDA call, not here); every other device
runs ``adain_act_reference``, the generator's AdaIN + LeakyReLU in torch ops. The fake implementation
lets torch.compile and torch.export trace through it; the backward is written out in torch ops (no
Triton backward kernel).
Importing this module registers the op.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adain_act_reference(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float, negative_slope: float
) -> torch.Tensor:
    """LeakyReLU((1 + gamma) * IN(x) + beta) with the statistics in fp32; output in x's dtype."""
    x32 = x.float()
    mean = x32.mean(dim=(2, 3), keepdim=True)
    var = (x32 - mean).square().mean(dim=(2, 3), keepdim=True)
    y = (x32 - mean) * torch.rsqrt(var + eps)
    y = (1 + gamma.float()[:, :, None, None]) * y + beta.float()[:, :, None, None]
    return F.leaky_relu(y, negative_slope).to(x.dtype)


@torch.library.custom_op("maskface::fused_adain", mutates_args=())
def fused_adain(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float, negative_slope: float
) -> torch.Tensor:
    """LeakyReLU((1 + gamma) * IN(x) + beta) for x [N, C, H, W], gamma and beta [N, C]; y in x's dtype."""
    return adain_act_reference(x, gamma, beta, eps, negative_slope).contiguous()


@fused_adain.register_kernel("cuda")
def fused_adain_triton(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float, negative_slope: float
) -> torch.Tensor:
    """The op's CUDA implementation: the Triton kernel on x's device (CPU tensors under TRITON_INTERPRET=1)."""
    from maskface_rt.kernels.fused_adain import launch

    x = x.contiguous()
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    if x.numel():
        launch(x, gamma.contiguous(), beta.contiguous(), out, eps, negative_slope)
    return out


@fused_adain.register_fake
def _fused_adain_fake(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float, negative_slope: float
) -> torch.Tensor:
    torch._check(x.dim() == 4, lambda: f"x must be [N, C, H, W], got {x.dim()} dims")
    torch._check(gamma.shape == x.shape[:2] and beta.shape == x.shape[:2], lambda: "gamma and beta must be [N, C]")
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
    x, gamma, beta, eps, negative_slope = inputs
    ctx.save_for_backward(x, gamma, beta)
    ctx.eps, ctx.negative_slope = eps, negative_slope


def _backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """Gradients of y = leaky((1 + gamma) * xhat + beta), xhat = (x - mean) * rstd, recomputed in fp32."""
    x, gamma, beta = ctx.saved_tensors
    x32 = x.float()
    mean = x32.mean(dim=(2, 3), keepdim=True)
    rstd = torch.rsqrt((x32 - mean).square().mean(dim=(2, 3), keepdim=True) + ctx.eps)
    xhat = (x32 - mean) * rstd
    scale = 1 + gamma.float()[:, :, None, None]
    z = scale * xhat + beta.float()[:, :, None, None]
    gz = grad.float() * torch.where(z >= 0, 1.0, ctx.negative_slope)
    gxhat = gz * scale
    gx = rstd * (gxhat - gxhat.mean(dim=(2, 3), keepdim=True) - xhat * (gxhat * xhat).mean(dim=(2, 3), keepdim=True))
    return (gx.to(x.dtype), (gz * xhat).sum(dim=(2, 3)).to(gamma.dtype), gz.sum(dim=(2, 3)).to(beta.dtype), None, None)


fused_adain.register_autograd(_backward, setup_context=_setup_context)
