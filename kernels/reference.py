"""The numpy reference of the fused AdaIN + LeakyReLU: float64, two-pass statistics.

This is what the Triton kernel and the ONNX FusedAdaIN node are checked against.
"""

from __future__ import annotations

import numpy as np
from maskface_rt.kernels.config import check_shapes


def fused_adain_reference(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
    negative_slope: float,
    out_dtype: np.dtype | type | None = None,
) -> np.ndarray:
    """LeakyReLU((1 + gamma) * (x - mean) / sqrt(var + eps) + beta) per (n, c) plane of x [N, C, H, W].

    Computed in float64 from the inputs' values; returned in ``out_dtype`` (default: x's dtype).
    """
    check_shapes(x.shape, gamma.shape, beta.shape)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(2, 3), keepdims=True)
    centred = x64 - mean
    var = np.square(centred).mean(axis=(2, 3), keepdims=True)
    y = centred / np.sqrt(var + eps) * (1.0 + gamma.astype(np.float64)[:, :, None, None])
    y += beta.astype(np.float64)[:, :, None, None]
    y = np.where(y >= 0.0, y, y * negative_slope)
    return y.astype(out_dtype or x.dtype)
