"""TensorRT-clean graphs: uint8 only at a graph's inputs and outputs (check_uint8_io), and TensorRT's own
ONNX parser on exported graphs (tensorrt_parse; its tests run where tensorrt_rtx is installed, as in CI)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from cli_support import maskface_here
from onnx import TensorProto, helper

from maskface_rt.bundled import BUNDLED_MODEL
from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import graph_file
from maskface_rt.graph_contract import GRAPHS, check_uint8_io

U8, F32 = TensorProto.UINT8, TensorProto.FLOAT


def _model(nodes, inputs, outputs, opset=18, domains=()):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
    )
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(graph, opset_imports=opsets)


def _cast(name, src, dst, to):
    return helper.make_node("Cast", [src], [dst], name=name, to=to)


def _transpose(name, src, dst, perm=(0, 3, 1, 2)):
    return helper.make_node("Transpose", [src], [dst], name=name, perm=list(perm))


NHWC, NCHW = [1, 4, 4, 3], [1, 3, 4, 4]


def good_graph():
    """uint8 NHWC in -> Cast -> Transpose -> Relu -> Transpose -> Cast -> uint8 NHWC out (the exports' shape)."""
    return _model(
        [
            _cast("in_cast", "image", "f", F32),
            _transpose("to_nchw", "f", "x"),
            helper.make_node("Relu", ["x"], ["y"], name="relu"),
            _transpose("to_nhwc", "y", "z", (0, 2, 3, 1)),
            _cast("out_cast", "z", "out", U8),
        ],
        [("image", U8, NHWC)],
        [("out", U8, NHWC)],
    )


def test_a_graph_with_uint8_only_at_its_edges_passes():
    model = good_graph()
    onnx.checker.check_model(model, full_check=True)
    check_uint8_io(model, "good.onnx")


def _refusal(model, where="broken.onnx") -> str:
    onnx.checker.check_model(model, full_check=True)  # valid ONNX: only the uint8 rule is broken
    with pytest.raises(MaskfaceError) as info:
        check_uint8_io(model, where)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{where}: ")
    return message


def test_a_uint8_intermediate_is_refused():
    """The old generator's tail: Cast to uint8, then the Transpose."""
    model = _model(
        [
            _cast("in_cast", "image", "f", F32),
            _cast("early_cast", "f", "u8", U8),
            _transpose("late_transpose", "u8", "out", (0, 1, 2, 3)),
        ],
        [("image", U8, NHWC)],
        [("out", U8, NHWC)],
    )
    assert _refusal(model) == (
        "broken.onnx: node 'early_cast' (Cast) produces the uint8 intermediate 'u8' "
        "(TensorRT accepts uint8 only as a graph input or output)"
    )


def test_a_uint8_input_feeding_a_transpose_is_refused():
    """The old style decoder's head: Transpose on the uint8 input, then the Cast."""
    model = _model(
        [_transpose("node_permute", "image", "u8"), _cast("node_cast", "u8", "out", F32)],
        [("image", U8, NHWC)],
        [("out", F32, NCHW)],
    )
    assert _refusal(model, "style_decoder.onnx") == (
        "style_decoder.onnx: uint8 input 'image' must feed exactly one Cast node; it feeds 'node_permute' (Transpose)"
    )


def test_a_uint8_input_feeding_two_nodes_is_refused():
    model = _model(
        [
            _cast("a", "image", "f", F32),
            _cast("b", "image", "g", F32),
            helper.make_node("Add", ["f", "g"], ["out"], name="add"),
        ],
        [("image", U8, NHWC)],
        [("out", F32, NHWC)],
    )
    assert "it feeds 'a' (Cast), 'b' (Cast)" in _refusal(model)


def test_a_uint8_output_not_made_by_a_cast_is_refused():
    scale = helper.make_tensor("scale", F32, [], [0.5])
    model = _model(
        [helper.make_node("QuantizeLinear", ["x", "scale"], ["out"], name="quantize")],
        [("x", F32, NHWC)],
        [("out", U8, NHWC)],
    )
    model.graph.initializer.append(scale)
    assert (
        _refusal(model)
        == "broken.onnx: node 'quantize' (QuantizeLinear) produces the uint8 output 'out'; only a Cast may"
    )


def test_uint8_found_by_shape_inference_is_refused():
    """No value_info in the file: the uint8 type of an intermediate comes from shape inference."""
    model = _model(
        [
            _cast("in_cast", "image", "f", F32),
            _cast("c8", "f", "u8", U8),
            helper.make_node("Identity", ["u8"], ["u8b"], name="ident"),
            _cast("out_cast", "u8b", "out", F32),
        ],
        [("image", U8, NHWC)],
        [("out", F32, NHWC)],
    )
    assert not model.graph.value_info
    assert "node 'c8' (Cast) produces the uint8 intermediate 'u8'" in _refusal(model)


def test_the_bundled_demo_model_is_tensorrt_clean():
    for graph in GRAPHS:
        check_uint8_io(onnx.load(str(BUNDLED_MODEL / graph_file(graph))), graph_file(graph))


@pytest.mark.slow
def test_the_cli_refuses_an_export_that_breaks_the_check(tiny_model, tmp_path, monkeypatch):
    """The generator of before issue 15 (uint8 Cast before the NHWC Transpose): one line, exit 1, nothing written."""
    import maskface_rt.export.onnx_export as ox

    monkeypatch.setattr(
        ox, "to_uint8_nhwc", lambda x: ((x.float() + 1) * 127.5 + 0.5).floor().clamp(0, 255).byte().permute(0, 2, 3, 1)
    )
    out = tmp_path / "never"
    done = maskface_here("export", str(tiny_model), "--out", str(out), env={"COLUMNS": "300"})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert (
        lines[-1].startswith("error: generator.onnx: node ") and "(Cast) produces the uint8 intermediate" in lines[-1]
    )
    assert list(tmp_path.iterdir()) == []


# --- TensorRT's parser (tensorrt_rtx: the same onnx-tensorrt importer as TensorRT 10/11, no GPU needed) ---


@pytest.fixture
def trt():
    """(runtime, module) of TensorRT-RTX, as ``tensorrt_parse.find_parser`` gives them."""
    from maskface_rt.backends.trt.compat import RUNTIMES

    return RUNTIMES["tensorrt-rtx"], pytest.importorskip("tensorrt_rtx")


def test_the_parser_passes_a_clean_graph_and_refuses_a_uint8_intermediate(trt, tmp_path):
    from maskface_rt.backends.trt.parse import OnnxParseError, check_graph

    good = tmp_path / "good.onnx"
    onnx.save(good_graph(), str(good))
    assert check_graph(trt, good, good.name) == "parsed"
    broken = tmp_path / "broken.onnx"
    onnx.save(
        _model(
            [
                _cast("in_cast", "image", "f", F32),
                _cast("early_cast", "f", "u8", U8),
                _transpose("late_transpose", "u8", "out", (0, 1, 2, 3)),
            ],
            [("image", U8, NHWC)],
            [("out", U8, NHWC)],
        ),
        str(broken),
    )
    with pytest.raises(OnnxParseError) as info:
        check_graph(trt, broken, broken.name)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("broken.onnx: TensorRT's ONNX parser failed: node 1 'early_cast' (Cast): ")
    assert "does not support UINT8 types for intermediate tensors" in message


def _plugin_graph(extra_op: str | None = None):
    """x -> FusedAdaIN -> y, and optionally an unknown op of another domain after it."""
    nodes = [
        helper.make_node(
            "FusedAdaIN",
            ["x", "gamma", "beta"],
            ["y"],
            name="fused",
            domain="maskface",
            plugin_namespace="maskface",
            eps=1e-5,
            negative_slope=0.2,
        )
    ]
    domains = ["maskface"]
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["y"], ["z"], name="other", domain="other"))
        domains.append("other")
    shape = [1, 4, 2, 2]
    return _model(
        nodes,
        [("x", F32, shape), ("gamma", F32, [1, 4]), ("beta", F32, [1, 4])],
        [("z" if extra_op else "y", F32, shape)],
        domains=domains,
    )


def test_plugin_not_found_is_the_only_complaint_accepted(trt, tmp_path):
    from maskface_rt.backends.trt.parse import OnnxParseError, check_graph

    path = tmp_path / "plugin.onnx"
    onnx.save(_plugin_graph(), str(path))
    assert check_graph(trt, path, path.name, plugin=True).startswith("parsed up to its 1 FusedAdaIN nodes")
    with pytest.raises(OnnxParseError, match=r"node 0 'fused' \(FusedAdaIN\): .*Plugin not found"):
        check_graph(trt, path, path.name)  # a portable graph may not have one
    onnx.save(_plugin_graph("Mystery"), str(path))
    with pytest.raises(OnnxParseError, match=r"plugin.onnx: TensorRT's ONNX parser failed: node 1 'other' \(Mystery\)"):
        check_graph(trt, path, path.name, plugin=True)


def test_the_parser_accepts_every_graph_of_the_tiny_export(trt, tiny_export):
    from maskface_rt.backends.trt.parse import check_export

    result = check_export(tiny_export, GRAPHS)
    assert result.runtime == "TensorRT-RTX" and result.version == trt[1].__version__
    assert result.graphs == {graph: "parsed" for graph in GRAPHS}


def test_the_parser_accepts_every_graph_of_the_bundled_demo_model(trt):
    from maskface_rt.backends.trt.parse import check_export

    assert check_export(BUNDLED_MODEL, GRAPHS).graphs == {graph: "parsed" for graph in GRAPHS}


def test_the_export_says_whether_the_parser_ran(monkeypatch):
    import dataclasses

    from maskface_rt.backends.trt import compat as tensorrt_compat
    from maskface_rt.backends.trt import parse as tensorrt_parse

    missing = dataclasses.replace(tensorrt_compat.RUNTIMES["tensorrt"], module="no_such_tensorrt_module")
    monkeypatch.setattr(tensorrt_compat, "RUNTIMES", {"tensorrt": missing})
    result = tensorrt_parse.check_export(Path("unused"), GRAPHS)
    assert not result.ran and result.skipped == "no_such_tensorrt_module is not installed"
    assert result.line() == "TensorRT parse check: not run (no_such_tensorrt_module is not installed)"
    assert json.loads(json.dumps(result.to_dict()))["ran"] is False
