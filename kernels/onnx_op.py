"""The plugin-flavoured ONNX node ``maskface.FusedAdaIN``: how the exporter writes it, how numpy runs it.

Node: op_type FusedAdaIN, domain maskface, inputs (x [N, C, H, W], gamma [N, C], beta [N, C]), output y
like x; attributes plugin_namespace="maskface" (TensorRT's ONNX parser finds the plugin
``maskface::FusedAdaIN`` by it), eps and negative_slope (floats).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from maskface_rt.kernels.config import DEFAULT_EPS, DEFAULT_SLOPE
from maskface_rt.kernels.reference import fused_adain_reference
from onnx.reference.op_run import OpRun

DOMAIN = "maskface"
OP_TYPE = "FusedAdaIN"
PLUGIN_NAMESPACE = "maskface"
DOMAIN_VERSION = 1


def register_schema() -> None:
    """Make the node known to onnx (checker, onnxscript), once per process."""
    if onnx.defs.has(OP_TYPE, DOMAIN):
        return
    schema = onnx.defs.OpSchema
    tensor = schema.FormalParameter
    onnx.defs.register_schema(
        schema(
            OP_TYPE,
            DOMAIN,
            DOMAIN_VERSION,
            "LeakyReLU((1 + gamma) * InstanceNorm(x) + beta); TensorRT plugin maskface::FusedAdaIN.",
            inputs=[tensor("x", "T", "[N, C, H, W]"), tensor("gamma", "T", "[N, C]"), tensor("beta", "T", "[N, C]")],
            outputs=[tensor("y", "T", "like x")],
            type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "fp32 or fp16, as the plugin")],
            attributes=[
                schema.Attribute("eps", schema.AttrType.FLOAT, "instance norm epsilon"),
                schema.Attribute("negative_slope", schema.AttrType.FLOAT, "LeakyReLU slope"),
                schema.Attribute("plugin_namespace", schema.AttrType.STRING, "TensorRT plugin namespace"),
            ],
        )
    )


def single_node_model(
    elem_type: int = onnx.TensorProto.FLOAT, eps: float = DEFAULT_EPS, negative_slope: float = DEFAULT_SLOPE
) -> onnx.ModelProto:
    """A model of one FusedAdaIN node with dynamic [N, C, H, W] input (checks, TensorRT plugin tests)."""
    helper = onnx.helper
    node = helper.make_node(
        OP_TYPE,
        ["x", "gamma", "beta"],
        ["y"],
        domain=DOMAIN,
        eps=eps,
        negative_slope=negative_slope,
        plugin_namespace=PLUGIN_NAMESPACE,
    )
    graph = helper.make_graph(
        [node],
        "fused_adain",
        [
            helper.make_tensor_value_info("x", elem_type, ["N", "C", "H", "W"]),
            helper.make_tensor_value_info("gamma", elem_type, ["N", "C"]),
            helper.make_tensor_value_info("beta", elem_type, ["N", "C"]),
        ],
        [helper.make_tensor_value_info("y", elem_type, ["N", "C", "H", "W"])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
    )


class FusedAdaIN(OpRun):
    """numpy implementation for ``onnx.reference.ReferenceEvaluator(model, new_ops=[FusedAdaIN])``."""

    op_domain = DOMAIN

    def _run(
        self,
        x: np.ndarray,
        gamma: np.ndarray,
        beta: np.ndarray,
        eps: float | None = None,
        negative_slope: float | None = None,
        plugin_namespace: str | None = None,
    ) -> tuple[np.ndarray]:
        return (fused_adain_reference(x, gamma, beta, eps, negative_slope),)


def translation_table() -> dict[Callable[..., Any], Callable[..., Any]]:
    """``custom_translation_table`` for torch.onnx.export(dynamo=True): maskface::fused_adain -> FusedAdaIN."""
    import maskface_rt.kernels.torch_op  # noqa: F401  (registers the op)
    import onnxscript
    import torch

    register_schema()
    opset = onnxscript.values.Opset(DOMAIN, DOMAIN_VERSION)

    def fused_adain(x: Any, gamma: Any, beta: Any, eps: float, negative_slope: float) -> Any:
        return opset.FusedAdaIN(
            x, gamma, beta, eps=float(eps), negative_slope=float(negative_slope), plugin_namespace=PLUGIN_NAMESPACE
        )

    return {torch.ops.maskface.fused_adain.default: fused_adain}
