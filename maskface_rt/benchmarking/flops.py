"""FLOPs per image of the generator, counted from the model.

The count follows torch.utils.flop_counter's convention: multiply-accumulates of convolutions and
matrix products count 2 FLOPs, everything else (normalisation, activations, resampling, biases) 0.
``onnx_flops`` reads the exported graph's Conv / ConvTranspose / Gemm / MatMul shapes (no torch);
``torch_flops`` runs torch's counter on a generator built on the meta device (no weights, no compute).
"""

from __future__ import annotations

import math
from pathlib import Path

from maskface_rt.config import ModelConfig
from maskface_rt.errors import MaskfaceError

COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _shapes(model) -> dict[str, list[int | None]]:
    """Every tensor's shape after ONNX shape inference; unknown dimensions (the batch) are None."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int | None]] = {}
    graph = inferred.graph
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            shapes[info.name] = [
                d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim
            ]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _per_image(shape: list[int | None], what: str, where: str) -> list[int]:
    """The shape with its leading (batch) dimension set to 1; any other unknown dimension is an error."""
    if any(d is None for d in shape[1:]):
        raise MaskfaceError(where, f"cannot count FLOPs: {what} has an unknown non-batch dimension {shape}")
    return [1, *_known(shape[1:], what, where)] if shape else []


def _known(dims: list[int | None], what: str, where: str) -> list[int]:
    """Dimensions that must all be known (a weight's, a product's inner one)."""
    known = [d for d in dims if d is not None]
    if len(known) < len(dims):
        raise MaskfaceError(where, f"cannot count FLOPs: {what} has an unknown dimension {dims}")
    return known


def onnx_flops(graph: str | Path) -> int:
    """FLOPs per image of an ONNX graph whose leading dimension is the batch."""
    import onnx

    model = onnx.load(str(graph))
    where = str(graph)
    shapes = _shapes(model)
    total = 0
    for node in model.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        try:
            a, b = (shapes[name] for name in node.input[:2])
            out = shapes[node.output[0]]
        except KeyError as e:
            raise MaskfaceError(graph, f"cannot count FLOPs: no shape for {e} ({node.op_type} {node.name})") from None
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        # multiply-accumulates: (elements of one side, per image) x (the products each one takes part in)
        if node.op_type == "Conv":  # out [N, Cout, ...] from weight [Cout, Cin/groups, k...]
            elements, each = _per_image(out, node.output[0], where), _known(b[1:], node.input[1], where)
        elif node.op_type == "ConvTranspose":  # every input element meets a [Cout/groups, k...] slice
            elements, each = _per_image(a, node.input[0], where), _known(b[1:], node.input[1], where)
        elif node.op_type == "Gemm":  # A [M, K], or [K, M] with transA
            k = a[:1] if attrs.get("transA", 0) else a[-1:]
            elements, each = _per_image(out, node.output[0], where), _known(k, node.input[0], where)
        else:  # MatMul [..., M, K] x [..., K, N]
            elements, each = _per_image(out, node.output[0], where), _known(a[-1:], node.input[0], where)
        total += 2 * math.prod(elements) * math.prod(each)
    return total


def torch_flops(cfg: ModelConfig) -> int:
    """FLOPs per image of the generator of ``cfg`` by torch.utils.flop_counter (meta device: no memory, no compute)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from maskface_rt.networks import Generator

    with torch.device("meta"):
        generator = Generator(cfg)
        labels = torch.zeros(1, cfg.img_size, cfg.img_size, dtype=torch.long)
        style = torch.zeros(1, cfg.style_dim)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        generator(labels, style)
    return int(counter.get_total_flops())
