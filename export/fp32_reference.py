"""An fp32 twin of any exported graph that ONNX Runtime runs: the reference of the engine parity check.

An export may be fp16 and its generator may carry FusedAdaIN nodes (``--plugin``), which ONNX Runtime
cannot run. ``fp32_reference`` returns a copy in which

- fp16 initializers become fp32 (the fp16-rounded weights, so the check measures the engine's
  arithmetic, not the export's weight rounding), Casts to fp16 cast to fp32, fp16 value types are fp32;
- a model-local function ``maskface.FusedAdaIN`` gives each FusedAdaIN node its meaning in standard ops
  (two-pass instance-norm statistics, (1 + gamma) * x_hat + beta, LeakyRelu), the node's eps and
  negative_slope passed through attribute references.

Plain onnx, no torch.
"""

from __future__ import annotations

import numpy as np
import onnx
from maskface_rt.kernels.onnx_op import DOMAIN, OP_TYPE
from onnx import TensorProto, helper, numpy_helper

_FP16, _FP32 = TensorProto.FLOAT16, TensorProto.FLOAT
#: Opset of the function body (what maskface export writes and onnxruntime runs).
FUNCTION_OPSET = 18


def _attribute_ref(name: str, ref: str, kind: int) -> onnx.AttributeProto:
    attribute = onnx.AttributeProto()
    attribute.name, attribute.ref_attr_name, attribute.type = name, ref, kind
    return attribute


def fused_adain_function() -> onnx.FunctionProto:
    """maskface.FusedAdaIN(x [N, C, H, W], gamma [N, C], beta [N, C]) in standard ONNX ops (fp32)."""
    eps = helper.make_node("Constant", [], ["eps"])
    eps.attribute.append(_attribute_ref("value_float", "eps", onnx.AttributeProto.FLOAT))
    act = helper.make_node("LeakyRelu", ["pre"], ["y"])
    act.attribute.append(_attribute_ref("alpha", "negative_slope", onnx.AttributeProto.FLOAT))
    nodes = [
        helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([2, 3], np.int64))),
        helper.make_node("Constant", [], ["one"], value_float=1.0),
        eps,
        helper.make_node("ReduceMean", ["x", "axes"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["x", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["squared"]),
        helper.make_node("ReduceMean", ["squared", "axes"], ["var"], keepdims=1),
        helper.make_node("Add", ["var", "eps"], ["var_eps"]),
        helper.make_node("Sqrt", ["var_eps"], ["std"]),
        helper.make_node("Div", ["centred", "std"], ["normed"]),
        helper.make_node("Unsqueeze", ["gamma", "axes"], ["gamma4"]),
        helper.make_node("Unsqueeze", ["beta", "axes"], ["beta4"]),
        helper.make_node("Add", ["gamma4", "one"], ["scale"]),
        helper.make_node("Mul", ["normed", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "beta4"], ["pre"]),
        act,
    ]
    return helper.make_function(
        DOMAIN,
        OP_TYPE,
        ["x", "gamma", "beta"],
        ["y"],
        nodes,
        [helper.make_opsetid("", FUNCTION_OPSET)],
        attributes=["eps", "negative_slope", "plugin_namespace"],
    )


def _fp32_tensor(tensor: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)


def _to_fp32(graph: onnx.GraphProto) -> None:
    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type == _FP16:
            graph.initializer[i].CopyFrom(_fp32_tensor(tensor))
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name in ("to", "dtype") and attribute.type == onnx.AttributeProto.INT and attribute.i == _FP16:
                attribute.i = _FP32
            elif attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == _FP16:
                attribute.t.CopyFrom(_fp32_tensor(attribute.t))
            elif attribute.type == onnx.AttributeProto.GRAPH:
                _to_fp32(attribute.g)
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.tensor_type.elem_type == _FP16:
            value.type.tensor_type.elem_type = _FP32


def fp32_reference(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` that ONNX Runtime runs in fp32 (see the module docstring)."""
    reference = onnx.ModelProto()
    reference.CopyFrom(model)
    _to_fp32(reference.graph)
    if any(node.domain == DOMAIN and node.op_type == OP_TYPE for node in reference.graph.node):
        kept = [f for f in reference.functions if not (f.domain == DOMAIN and f.name == OP_TYPE)]
        del reference.functions[:]
        reference.functions.extend([*kept, fused_adain_function()])
    return reference


def reference_session(model: onnx.ModelProto, threads: int | None = None):
    """An ONNX Runtime CPU session of ``fp32_reference(model)``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(fp32_reference(model).SerializeToString(), options, providers=["CPUExecutionProvider"])
