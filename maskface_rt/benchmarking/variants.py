"""Bench's rows: the backends of the one table (``backends/registry.REGISTRY``), each run as it is or as variants.

A row of ``maskface bench`` is a ``Variant`` of one registry row: that row, the precision it runs at, and what
bench changes about how it runs (a pinned device; torch's fused AdaIN kernel, torch.compile or CUDA graphs; an
engine with the FusedAdaIN plugin). Its ``--backend`` name is made from those, so the name cannot say one thing and
the runner do another. ``VARIANTS`` holds the variants bench measures of the rows it has them for; a registry row
without any is measured as it is (``Variant.default``), so a backend added to the registry is a bench row without
an edit here. Reading this module imports no runtime and no backend module (as reading the registry does not).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from maskface_rt.backends.registry import REGISTRY, BackendSpec
from maskface_rt.model_kind import ModelKind

__all__ = ["BACKEND_NAMES", "VARIANTS", "Variant", "bench_variants", "variant_named"]

#: What a variant may say it runs in.
MODES = ("eager", "compile", "cudagraphs")


@dataclass(frozen=True)
class Variant:
    """One bench row: registry row ``row`` at ``precision`` (an export's or engine's, or what the backend is asked
    for), run as bench says."""

    row: str  # a REGISTRY name
    precision: str  # fp32, fp16 or bf16
    device: str | None = None  # "cpu" or "cuda": runs there whatever the bench's device; None: the bench's device
    fused: bool = False  # the generator's AdaIN as the fused Triton kernel (a checkpoint's row: torch)
    mode: str = "eager"  # eager, compile (torch.compile) or cudagraphs (one CUDA graph per batch size): torch
    plugin: bool = False  # an engine whose generator's AdaIN + LeakyReLU are maskface::FusedAdaIN plugin nodes

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")

    @property
    def name(self) -> str:
        """The --backend name: the row, then what the variant changes, then the precision (torch-compile-fp16)."""
        tags = (self.device, self.fused and "fused", self.mode != "eager" and self.mode, self.plugin and "plugin")
        return "-".join([self.row, *(tag for tag in tags if tag), self.precision])

    @classmethod
    def default(cls, spec: BackendSpec) -> Variant:
        """A registry row as it is: fp32, or fp16 for an engine (bench builds fp16 engines)."""
        return cls(spec.name, "fp16" if spec.kind is ModelKind.ENGINE else "fp32")


#: Bench's variants of the registry rows it has them for, in report order (and that of --backend all).
VARIANTS: tuple[Variant, ...] = (
    Variant("torch", "fp32"),  # on the bench's device: the CPU target's baseline and the reference's backend
    Variant("torch", "fp16"),
    Variant("torch", "bf16"),
    Variant("torch", "fp16", fused=True),
    Variant("torch", "fp32", mode="compile"),
    Variant("torch", "fp16", mode="compile"),
    Variant("torch", "fp16", mode="cudagraphs"),
    Variant("torch", "fp16", fused=True, mode="cudagraphs"),
    Variant("onnxruntime", "fp32", device="cpu"),
    Variant("onnxruntime", "fp32", device="cuda"),
    Variant("onnxruntime", "fp16", device="cuda"),
    Variant("openvino", "fp32", device="cpu"),
    Variant("openvino", "bf16", device="cpu"),
    Variant("tensorrt", "fp16"),
    Variant("tensorrt", "fp16", plugin=True),
)


def bench_variants(
    registry: Mapping[str, BackendSpec] = REGISTRY, variants: Iterable[Variant] = VARIANTS
) -> tuple[Variant, ...]:
    """Bench's rows in report order: ``variants``, then every registry row they name none of, as it is (in the
    registry's order)."""
    variants = tuple(variants)
    named = {variant.row for variant in variants}
    return (*variants, *(Variant.default(spec) for name, spec in registry.items() if name not in named))


_ROWS = {variant.name: variant for variant in bench_variants()}
#: The --backend names of maskface bench, in report order.
BACKEND_NAMES = tuple(_ROWS)


def variant_named(name: str) -> Variant:
    """The row of a --backend name (one of BACKEND_NAMES; KeyError for any other)."""
    return _ROWS[name]
