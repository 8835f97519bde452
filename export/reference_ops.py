"""Conv and AveragePool for onnx.reference at BLAS speed, for the plugin export's check.

The plugin generator graph is run by onnx.reference (its FusedAdaIN nodes by the numpy kernel reference).
onnx.reference's own Conv computes in the graph's dtype (numpy float16 arithmetic has no BLAS) and its
AveragePool loops in Python over every output pixel: together >95% of the check's time. These replace
them for the forms the exporter writes (2-D, one group, no dilation, explicit pads, no ceil mode),
computing in float32 and rounding to the graph's dtype once, as ONNX Runtime does; any other form runs
onnx.reference's own implementation.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from onnx.reference.ops.op_average_pool import AveragePool_19
from onnx.reference.ops.op_conv import Conv as _ReferenceConv
from onnx.reference.ops.op_pool_common import CommonPool


def _windows(x: np.ndarray, kernel: tuple[int, int], strides: list[int] | None) -> np.ndarray:
    """[N, C, H', W', kh, kw] view of every kernel window of x [N, C, H, W] at the given strides."""
    sh, sw = strides or (1, 1)
    return sliding_window_view(x, kernel, axis=(2, 3))[:, :, ::sh, ::sw]


def _plain(auto_pad, dilations, rank: int) -> bool:
    no_auto_pad = auto_pad in (None, "NOTSET", b"NOTSET")
    return rank == 4 and no_auto_pad and all(d == 1 for d in (dilations or ()))


class Conv(_ReferenceConv):
    """Conv as a float32 matrix product over the input's windows."""

    def _run(self, X, W, B=None, auto_pad=None, dilations=None, group=None, kernel_shape=None, pads=None, strides=None):
        if not _plain(auto_pad, dilations, X.ndim) or (group or 1) != 1:
            return super()._run(X, W, B, auto_pad, dilations, group, kernel_shape, pads, strides)
        top, left, bottom, right = pads or (0, 0, 0, 0)
        x = np.pad(X.astype(np.float32), ((0, 0), (0, 0), (top, bottom), (left, right)))
        windows = _windows(x, W.shape[2:], strides)
        y = np.tensordot(windows, W.astype(np.float32), axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
        if B is not None:
            y += B.astype(np.float32)[None, :, None, None]
        return (y.astype(X.dtype),)


class AveragePool(AveragePool_19):
    """AveragePool without padding as a float32 mean over the input's windows."""

    def _run(
        self,
        x,
        auto_pad=None,
        ceil_mode=None,
        dilations=None,
        kernel_shape=None,
        pads=None,
        strides=None,
        count_include_pad=None,
    ):
        if not _plain(auto_pad, dilations, x.ndim) or ceil_mode or any(pads or ()):
            return CommonPool._run(
                self,
                "AVG",
                count_include_pad,
                x,
                auto_pad=auto_pad,
                ceil_mode=ceil_mode,
                dilations=dilations,
                kernel_shape=kernel_shape,
                pads=pads,
                strides=strides,
            )
        windows = _windows(x, tuple(kernel_shape), strides)
        return (windows.mean(axis=(4, 5), dtype=np.float32).astype(x.dtype),)


#: Pass to ``ReferenceEvaluator(model, new_ops=[*FAST_OPS, ...])``.
FAST_OPS = (Conv, AveragePool)
