"""The contract of the three inference graphs, shared by export, engines and every backend (no torch here).

- Names: ``GRAPHS`` (also the inference networks' attribute names on ``Nets`` and in model files).
- I/O: ``GRAPH_IO`` (inputs and output by name: runtimes bind by name), ``TENSOR_DTYPES``, ``tensor_shape``.
- Images cross a graph's edge as uint8 NHWC; inside they are float NCHW in [-1, 1]: ``x / 127.5 - 1`` on the
  way in, ``floor((y + 1) * 127.5 + 0.5)`` clamped to 0..255 on the way out (rounding half up). The torch
  side of both is in ``networks`` (``from_uint8_nhwc``, ``to_uint8_nhwc``); ``check_uint8_io`` checks an ONNX
  graph keeps uint8 at its edges (TensorRT's ONNX parser refuses uint8 anywhere else).
- ``sample_inputs``: random but valid inputs of each graph, for the checks of export, build and tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from maskface_rt.config import ModelConfig
from maskface_rt.errors import MaskfaceError

GRAPHS = ("generator", "style_encoder", "style_decoder")

#: Graph I/O names (the runtime binds by name).
LABELS, STYLE, IMAGE, LATENT = "labels", "style", "image", "latent"

#: Each graph's inputs and output, by name (engines bind by name).
GRAPH_IO: dict[str, tuple[tuple[str, ...], str]] = {
    "generator": ((LABELS, STYLE), IMAGE),
    "style_encoder": ((LATENT,), STYLE),
    "style_decoder": ((IMAGE,), STYLE),
}
TENSOR_DTYPES: dict[str, np.dtype] = {
    LABELS: np.dtype(np.uint8),
    STYLE: np.dtype(np.float32),
    IMAGE: np.dtype(np.uint8),
    LATENT: np.dtype(np.float32),
}


def tensor_shape(name: str, config: ModelConfig, batch: int) -> tuple[int, ...]:
    """The shape of one graph tensor at ``batch``."""
    size = config.img_size
    tails = {LABELS: (size, size), STYLE: (config.style_dim,), IMAGE: (size, size, 3), LATENT: (config.latent_dim,)}
    return (batch, *tails[name])


def graph_feeds(graph: str, *arrays: np.ndarray) -> dict[str, np.ndarray]:
    """``arrays``, in ``graph``'s input order, as its feeds: by name, contiguous, in the contract's dtypes."""
    names, _ = GRAPH_IO[graph]
    return {name: np.ascontiguousarray(a, dtype=TENSOR_DTYPES[name]) for name, a in zip(names, arrays, strict=True)}


def sample_inputs(graph: str, cfg: ModelConfig, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random but valid inputs of one graph (labels of every class, normal styles and latents, any pixels)."""
    rng = np.random.default_rng([seed, batch])
    if graph == "generator":
        return {
            LABELS: rng.integers(0, cfg.num_classes, tensor_shape(LABELS, cfg, batch), dtype=np.uint8),
            STYLE: rng.standard_normal(tensor_shape(STYLE, cfg, batch)).astype(np.float32),
        }
    if graph == "style_encoder":
        return {LATENT: rng.standard_normal(tensor_shape(LATENT, cfg, batch)).astype(np.float32)}
    return {IMAGE: rng.integers(0, 256, tensor_shape(IMAGE, cfg, batch), dtype=np.uint8)}


def check_uint8_io(model: Any, where: str | Path) -> None:
    """uint8 only on the graph's inputs and outputs, each touching exactly one Cast; everything between is
    float or integer (TensorRT's ONNX parser refuses uint8 on any intermediate tensor). ``model`` is an
    ``onnx.ModelProto``; a violation is a one-line error naming ``where``, the node and the tensor."""
    import onnx

    uint8 = onnx.TensorProto.UINT8
    graph = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output, *graph.value_info]}
    types.update({t.name: t.data_type for t in graph.initializer})
    inputs = {v.name for v in graph.input if v.type.tensor_type.elem_type == uint8}
    outputs = {v.name for v in graph.output if v.type.tensor_type.elem_type == uint8}
    for name in sorted(inputs):
        nodes = [n for n in graph.node if name in n.input]
        if [n.op_type for n in nodes] != ["Cast"]:
            found = ", ".join(f"{n.name!r} ({n.op_type})" for n in nodes) or "no node"
            raise MaskfaceError(where, f"uint8 input {name!r} must feed exactly one Cast node; it feeds {found}")
    for name in sorted(outputs - {o for n in graph.node for o in n.output}):
        raise MaskfaceError(where, f"uint8 output {name!r} must come from a Cast node; no node produces it")
    for node in graph.node:
        label = f"node {node.name!r} ({node.op_type})"
        to = next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None
        for name in node.output:
            if name in outputs and node.op_type != "Cast":
                raise MaskfaceError(where, f"{label} produces the uint8 output {name!r}; only a Cast may")
            if name not in outputs and uint8 in (types.get(name), to):
                raise MaskfaceError(
                    where,
                    f"{label} produces the uint8 intermediate {name!r} (TensorRT accepts "
                    "uint8 only as a graph input or output)",
                )
        for name in node.input:
            if name not in inputs and types.get(name) == uint8:
                raise MaskfaceError(
                    where,
                    f"{label} takes the uint8 intermediate {name!r} (TensorRT accepts "
                    "uint8 only as a graph input or output)",
                )
