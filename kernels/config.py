"""Launch rules of the fused AdaIN kernel, shared by the torch op, the PTX build and the TensorRT plugin.

No triton, torch or tensorrt here: these are plain functions, tested on any machine.

The kernel runs one program per (sample, channel) plane, so the grid is N*C. A plane of at most
``MAX_SINGLE_PASS`` elements is held on chip: one read, one write. A larger plane, or one whose size
is only known at run time, is walked in chunks of ``LOOP_BLOCK``: one read for the statistics, one
read (mostly from L2) and one write for the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Largest plane (H*W) that one program keeps in registers (128x128).
MAX_SINGLE_PASS = 16384
#: Chunk of the looped kernel, elements per iteration.
LOOP_BLOCK = 4096
LOOP_WARPS = 8
#: Plugin and PTX dtypes (the torch op also takes bf16).
PLUGIN_DTYPES = ("fp16", "fp32")
DEFAULT_EPS = 1e-5
DEFAULT_SLOPE = 0.2


@dataclass(frozen=True)
class KernelConfig:
    """Compile-time choices of one kernel variant."""

    block: int
    num_warps: int
    single_pass: bool
    #: The plane size is a known multiple of 16, so loads and stores may be vectorised.
    hw_multiple_of_16: bool

    @property
    def hw_rule(self) -> str:
        """Which plane sizes H*W (the kernel's int32 argument) this variant is valid for."""
        rules = ([f"<= {self.block}"] if self.single_pass else []) + (
            ["a multiple of 16"] if self.hw_multiple_of_16 else []
        )
        return "H*W " + " and ".join(rules) if rules else "any H*W"

    @property
    def tag(self) -> str:
        kind = "single" if self.single_pass else "loop"
        return f"{kind}{self.block}w{self.num_warps}{'a16' if self.hw_multiple_of_16 else ''}"


def next_power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def kernel_config(hw: int | None) -> KernelConfig:
    """The variant for planes of ``hw`` elements (None: any size, decided at run time)."""
    if hw is None:
        return KernelConfig(LOOP_BLOCK, LOOP_WARPS, single_pass=False, hw_multiple_of_16=False)
    if hw < 1:
        raise ValueError(f"a plane needs at least one element, got H*W = {hw}")
    aligned = hw % 16 == 0
    if hw > MAX_SINGLE_PASS:
        return KernelConfig(LOOP_BLOCK, LOOP_WARPS, single_pass=False, hw_multiple_of_16=aligned)
    block = max(32, next_power_of_two(hw))
    return KernelConfig(block, min(16, max(1, block // 512)), single_pass=True, hw_multiple_of_16=aligned)


def grid(n: int, c: int) -> int:
    """Programs per launch: one per plane (CUDA allows 2**31 - 1 blocks along x)."""
    planes = n * c
    if not 1 <= planes < 2**31:
        raise ValueError(f"N*C = {planes} planes is outside 1..2**31-1")
    return planes


def check_constants(eps: float, negative_slope: float) -> tuple[float, float]:
    """eps and the LeakyReLU slope as the kernel bakes them in (constexprs), checked."""
    eps, negative_slope = float(eps), float(negative_slope)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps}")
    if not math.isfinite(negative_slope):
        raise ValueError(f"negative_slope must be finite, got {negative_slope}")
    return eps, negative_slope


def check_ranks(x: int, gamma: int, beta: int) -> None:
    """The shape rule where only ranks are known (TensorRT's register step): x 4-D, gamma and beta 2-D."""
    if x != 4:
        raise ValueError(f"x must be [N, C, H, W], got {x} dims")
    if gamma != 2 or beta != 2:
        raise ValueError(f"gamma and beta must be [N, C], got {gamma} and {beta} dims")


def check_shapes(x: tuple[int, ...], gamma: tuple[int, ...], beta: tuple[int, ...]) -> None:
    """x [N, C, H, W] with gamma and beta [N, C]; raises ValueError naming what is wrong. y is like x."""
    check_ranks(len(x), len(gamma), len(beta))
    for name, shape in (("gamma", gamma), ("beta", beta)):
        if tuple(shape) != tuple(x[:2]):
            raise ValueError(f"{name} must be [N, C] = {tuple(x[:2])}, got {tuple(shape)}")
