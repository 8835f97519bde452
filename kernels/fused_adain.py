"""The fused AdaIN + LeakyReLU Triton kernel and its launcher.

y = LeakyReLU((1 + gamma) * (x - mean) / sqrt(var + eps) + beta, slope) per (n, c) plane of x [N, C, H, W]
(fp16, bf16 or fp32); gamma and beta [N, C]; statistics in fp32; y in x's dtype.

Kernel ABI (what the TensorRT AOT plugin launches): x, gamma, beta pointers, then the int32 plane size
H*W, then the y pointer; eps and slope are constexprs. Grid: N*C programs (see ``config``).

Numerics: the statistics are taken of ``x - x[0]`` (the plane's first element: subtracting a value of
the same magnitude is exact, so a large mean cannot swamp a small variance), two-pass in registers
for a plane held on chip, per-lane Welford merged with Chan's formula for a looped plane.

Importing this module imports triton; set TRITON_INTERPRET=1 before that to run it on CPU tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import triton
import triton.language as tl
from maskface_rt.kernels.config import check_constants, check_shapes, grid, kernel_config

if TYPE_CHECKING:
    import torch


@triton.jit
def _welford_merge(mean_a, m2_a, n_a, mean_b, m2_b, n_b):
    n = n_a + n_b
    frac = tl.where(n > 0, n_b / tl.maximum(n, 1.0), 0.0)
    delta = mean_b - mean_a
    return mean_a + delta * frac, m2_a + m2_b + delta * delta * n_a * frac, n


@triton.jit
def fused_adain_kernel(
    x_ptr,
    gamma_ptr,
    beta_ptr,
    hw,
    y_ptr,
    BLOCK: tl.constexpr,
    SINGLE_PASS: tl.constexpr,
    EPS: tl.constexpr,
    SLOPE: tl.constexpr,
):
    plane = tl.program_id(0).to(tl.int64)
    x_plane = x_ptr + plane * hw
    y_plane = y_ptr + plane * hw
    scale = 1.0 + tl.load(gamma_ptr + plane).to(tl.float32)
    shift = tl.load(beta_ptr + plane).to(tl.float32)
    pivot = tl.load(x_plane).to(tl.float32)
    offs = tl.arange(0, BLOCK)
    if SINGLE_PASS:
        mask = offs < hw
        d = tl.where(mask, tl.load(x_plane + offs, mask=mask, other=0.0).to(tl.float32) - pivot, 0.0)
        mean = tl.sum(d, axis=0) / hw
        centred = tl.where(mask, d - mean, 0.0)
        var = tl.sum(centred * centred, axis=0) / hw
        y = centred * (tl.rsqrt(var + EPS) * scale) + shift
        y = tl.where(y >= 0.0, y, y * SLOPE)
        tl.store(y_plane + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        acc_mean = tl.zeros([BLOCK], dtype=tl.float32)
        acc_m2 = tl.zeros([BLOCK], dtype=tl.float32)
        acc_n = tl.zeros([BLOCK], dtype=tl.float32)
        for i in range(0, tl.cdiv(hw, BLOCK)):
            idx = i * BLOCK + offs
            mask = idx < hw
            d = tl.load(x_plane + idx, mask=mask, other=0.0).to(tl.float32) - pivot
            # Every lane still in bounds has seen i + 1 elements: one reciprocal per chunk.
            inv_count = 1.0 / (i + 1.0)
            delta = d - acc_mean
            acc_mean += tl.where(mask, delta * inv_count, 0.0)
            acc_m2 += tl.where(mask, delta * (d - acc_mean), 0.0)
            acc_n += tl.where(mask, 1.0, 0.0)
        mean, m2, _ = tl.reduce((acc_mean, acc_m2, acc_n), 0, _welford_merge)
        mult = tl.rsqrt(m2 / hw + EPS) * scale
        for i in range(0, tl.cdiv(hw, BLOCK)):
            idx = i * BLOCK + offs
            mask = idx < hw
            d = tl.load(x_plane + idx, mask=mask, other=0.0).to(tl.float32) - pivot
            y = (d - mean) * mult + shift
            y = tl.where(y >= 0.0, y, y * SLOPE)
            tl.store(y_plane + idx, y.to(y_ptr.dtype.element_ty), mask=mask)


def launch(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, out: torch.Tensor, eps: float, negative_slope: float
) -> torch.Tensor:
    """Run the kernel on contiguous tensors (CUDA, or CPU under TRITON_INTERPRET=1); writes and returns ``out``."""
    check_shapes(tuple(x.shape), tuple(gamma.shape), tuple(beta.shape))
    eps, negative_slope = check_constants(eps, negative_slope)
    for name, t in (("x", x), ("gamma", gamma), ("beta", beta), ("out", out)):
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous")
    if out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(f"out must be {tuple(x.shape)} {x.dtype}, got {tuple(out.shape)} {out.dtype}")
    n, c, h, w = x.shape
    cfg = kernel_config(h * w)
    fused_adain_kernel[(grid(n, c),)](
        x,
        gamma,
        beta,
        h * w,
        out,
        BLOCK=cfg.block,
        SINGLE_PASS=cfg.single_pass,
        EPS=eps,
        SLOPE=negative_slope,
        num_warps=cfg.num_warps,
    )
    return out
