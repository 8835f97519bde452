"""export/reference_ops.py: the fast Conv and AveragePool give onnx.reference's own results."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from maskface_rt.export.reference_ops import FAST_OPS
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

DTYPES = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16}


def _node_model(op: str, inputs: dict[str, np.ndarray], opset: int, **attrs) -> onnx.ModelProto:
    elem = DTYPES[next(iter(inputs.values())).dtype.type]
    node = helper.make_node(op, list(inputs), ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        op,
        [helper.make_tensor_value_info(name, elem, value.shape) for name, value in inputs.items()],
        [helper.make_tensor_value_info("y", elem, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _both(op: str, inputs: dict[str, np.ndarray], opset: int, **attrs) -> tuple[np.ndarray, np.ndarray]:
    """(fast, onnx.reference's own) outputs of one node."""
    model = _node_model(op, inputs, opset, **attrs)
    (fast,) = ReferenceEvaluator(model, new_ops=list(FAST_OPS)).run(None, inputs)
    (own,) = ReferenceEvaluator(model).run(None, inputs)
    return fast, own


CONVS = {
    "3x3 pad 1 bias": dict(kernel=3, pads=[1, 1, 1, 1], strides=[1, 1], bias=True),
    "1x1 no bias": dict(kernel=1, pads=[0, 0, 0, 0], strides=[1, 1], bias=False),
    "3x3 stride 2 uneven pads": dict(kernel=3, pads=[0, 1, 2, 0], strides=[2, 2], bias=True),
}


@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", list(CONVS))
def test_conv_matches_onnx_reference(case: str, dtype: type, opset: int) -> None:
    spec = CONVS[case]
    rng = np.random.default_rng(3)
    inputs = {
        "x": rng.standard_normal((2, 5, 9, 11)).astype(dtype),
        "w": (rng.standard_normal((4, 5, spec["kernel"], spec["kernel"])) * 0.3).astype(dtype),
    }
    if spec["bias"]:
        inputs["b"] = rng.standard_normal(4).astype(dtype)
    fast, own = _both("Conv", inputs, opset, pads=spec["pads"], strides=spec["strides"])
    assert fast.dtype == own.dtype == dtype and fast.shape == own.shape
    # fp16: the fast path rounds once from float32, onnx.reference after float16 arithmetic
    tolerance = 1e-5 if dtype == np.float32 else 2e-2
    np.testing.assert_allclose(fast.astype(np.float32), own.astype(np.float32), rtol=tolerance, atol=tolerance)


def test_fp16_conv_is_closer_to_fp32_than_onnx_reference() -> None:
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 32, 8, 8)), rng.standard_normal((8, 32, 3, 3)) * 0.2
    half = {"x": x.astype(np.float16), "w": w.astype(np.float16)}
    fast, own = _both("Conv", half, 18, pads=[1, 1, 1, 1])
    (exact,) = ReferenceEvaluator(
        _node_model("Conv", {k: v.astype(np.float32) for k, v in half.items()}, 18, pads=[1, 1, 1, 1])
    ).run(None, {k: v.astype(np.float32) for k, v in half.items()})
    assert np.abs(fast - exact).max() <= np.abs(own - exact).max()


@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
def test_average_pool_matches_onnx_reference(dtype: type, opset: int) -> None:
    x = {"x": np.random.default_rng(5).standard_normal((2, 3, 8, 10)).astype(dtype)}
    fast, own = _both("AveragePool", x, opset, kernel_shape=[2, 2], strides=[2, 2])
    assert fast.dtype == own.dtype == dtype and fast.shape == own.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(fast.astype(np.float32), own.astype(np.float32), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    ("op", "attrs"),
    [
        ("Conv", dict(group=2)),
        ("Conv", dict(dilations=[2, 2])),
        ("AveragePool", dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0)),
        ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    ],
    ids=["conv-groups", "conv-dilated", "pool-padded", "pool-ceil"],
)
def test_other_forms_fall_back_to_onnx_reference(op: str, attrs: dict) -> None:
    rng = np.random.default_rng(6)
    inputs = {"x": rng.standard_normal((1, 4, 7, 7)).astype(np.float32)}
    if op == "Conv":
        inputs["w"] = rng.standard_normal((4, 4 // attrs.get("group", 1), 3, 3)).astype(np.float32)
    fast, own = _both(op, inputs, 18, **attrs)
    np.testing.assert_array_equal(fast, own)
