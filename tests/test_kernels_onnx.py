"""The plugin-flavoured ONNX export (maskface export --plugin) and the numpy FusedAdaIN node."""

import json

import numpy as np
import onnx
import pytest
from cli_support import maskface, maskface_here, unimportable
from maskface_rt.kernels.onnx_op import DOMAIN, OP_TYPE, FusedAdaIN, register_schema, single_node_model
from maskface_rt.kernels.reference import fused_adain_reference
from onnx import TensorProto
from onnx.reference import ReferenceEvaluator

from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import read_manifest

torch = pytest.importorskip("torch")

from maskface_rt.export import onnx_export  # noqa: E402
from maskface_rt.export.onnx_export import export_onnx  # noqa: E402
from maskface_rt.export.reference_ops import FAST_OPS  # noqa: E402


@pytest.mark.parametrize(("elem_type", "dtype"), [(TensorProto.FLOAT, np.float32), (TensorProto.FLOAT16, np.float16)])
def test_reference_evaluator_runs_the_node(elem_type, dtype):
    register_schema()
    eps, slope = float(np.float32(1e-3)), float(np.float32(0.1))  # as the float attributes store them
    model = single_node_model(elem_type, eps=eps, negative_slope=slope)
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(0)
    feeds = {
        "x": rng.standard_normal((2, 3, 5, 6)).astype(dtype) * 3,
        "gamma": rng.standard_normal((2, 3)).astype(dtype),
        "beta": rng.standard_normal((2, 3)).astype(dtype),
    }
    (y,) = ReferenceEvaluator(model, new_ops=[FusedAdaIN]).run(None, feeds)
    assert y.dtype == dtype
    expected = fused_adain_reference(feeds["x"], feeds["gamma"], feeds["beta"], eps, slope)
    assert np.array_equal(y, expected)
    # The attributes reach the kernel: another slope gives another result where values are negative.
    (other,) = ReferenceEvaluator(single_node_model(elem_type, eps=eps, negative_slope=0.3), new_ops=[FusedAdaIN]).run(
        None, feeds
    )
    assert not np.array_equal(y, other)


def test_checker_rejects_a_malformed_node():
    register_schema()
    model = single_node_model(TensorProto.FLOAT)
    del model.graph.node[0].input[2]
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)


@pytest.fixture(scope="module")
def plugin_export(tiny_model, tmp_path_factory):
    """The fp32 plugin export of the tiny model, made through the CLI."""
    out = tmp_path_factory.mktemp("plugin") / "tiny64-plugin"
    done = maskface_here("export", str(tiny_model), "--out", str(out), "--plugin", "--max-batch", "8", "--json")
    assert done.returncode == 0, done.stderr
    return out, done


def _fused_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == OP_TYPE]


def test_plugin_export_has_one_node_per_adain(plugin_export):
    out, _ = plugin_export
    model = onnx.load(str(out / "generator.onnx"))
    nodes = _fused_nodes(model)
    assert len(nodes) == 6  # tiny-64: three AdainResBlks, two AdaIN + LeakyReLU each
    assert {(o.domain, o.version) for o in model.opset_import} >= {(DOMAIN, 1)}
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in nodes:
        assert node.domain == DOMAIN and len(node.input) == 3 and len(node.output) == 1
        attrs = {a.name: a for a in node.attribute}
        assert set(attrs) == {"plugin_namespace", "eps", "negative_slope"}
        assert [attrs[k].type for k in ("plugin_namespace", "eps", "negative_slope")] == [
            onnx.AttributeProto.STRING,
            onnx.AttributeProto.FLOAT,
            onnx.AttributeProto.FLOAT,
        ]
        assert attrs["plugin_namespace"].s == b"maskface"
        assert attrs["eps"].f == pytest.approx(1e-5) and attrs["negative_slope"].f == pytest.approx(0.2)
        # gamma and beta are the two halves of the style's affine layer
        assert producers[node.input[1]].op_type == producers[node.input[2]].op_type == "Split"
    # No unfused AdaIN is left: the only LeakyRelus follow instance norms of the encoder and to_rgb.
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("InstanceNormalization") == ops.count("LeakyRelu")
    portable_style = onnx.load(str(out / "style_encoder.onnx"))
    assert not _fused_nodes(portable_style)


def test_plugin_export_is_checked_against_the_portable_graph(plugin_export):
    out, done = plugin_export
    manifest = read_manifest(out)
    assert manifest.plugin is True
    props = {p.key: p.value for p in onnx.load(str(out / "generator.onnx")).metadata_props}
    assert props["maskface.plugin"] == "true"
    parity = manifest.parity
    assert parity["generator"]["compared"] == onnx_export.PLUGIN_VS_PORTABLE
    assert parity["generator"]["batch_sizes"] == [1, 2]
    assert parity["generator"]["max_abs_error"] <= 1e-4
    assert parity["generator_portable"]["max_abs_error"] <= 1e-4
    assert set(parity) == {"generator", "generator_portable", "style_encoder", "style_decoder"}
    summary = json.loads(done.stdout)
    assert summary["manifest"]["plugin"] is True
    assert "generator: max abs error" in done.stderr and "onnx.reference with FusedAdaIN" in done.stderr
    assert f"next: maskface build {out} --out {out.with_suffix('.engine')}" in done.stderr.replace("\n", "")
    assert sorted(p.name for p in out.iterdir()) == [
        "generator.onnx",
        "maskface.json",
        "style_decoder.onnx",
        "style_encoder.onnx",
    ]


def test_plugin_export_passes_tensorrts_parser_but_for_the_plugin(plugin_export):
    """Where tensorrt_rtx is installed (CI): its parser cannot know FusedAdaIN (no plugin API); that is the only
    complaint accepted, and the portable twin, parsed in full, covers the rest of the generator."""
    trt = pytest.importorskip("tensorrt_rtx")
    out, done = plugin_export
    check = json.loads(done.stdout)["tensorrt_parse"]
    assert check["ran"] and check["runtime"] == "TensorRT-RTX" and check["version"] == trt.__version__
    assert check["graphs"]["generator"].startswith("parsed up to its 6 FusedAdaIN nodes")
    assert {g: check["graphs"][g] for g in ("generator_portable", "style_encoder", "style_decoder")} == {
        "generator_portable": "parsed",
        "style_encoder": "parsed",
        "style_decoder": "parsed",
    }
    assert f"TensorRT parse check (TensorRT-RTX {trt.__version__}, strongly typed)" in done.stderr.replace("\n", " ")


@pytest.mark.slow
def test_plugin_graph_matches_torch_through_the_reference_evaluator(plugin_export, tiny_model):
    """Independently of the export's own check: run the plugin graph in numpy and compare with torch."""
    from maskface_rt.checkpoint import load_model

    out, _ = plugin_export
    nets = load_model(tiny_model)
    model, pre = onnx_export.with_pre_quantization_output(onnx.load(str(out / "generator.onnx")))
    feeds = onnx_export.sample_inputs("generator", nets.cfg, 2, seed=5)
    _, got = ReferenceEvaluator(model, new_ops=[FusedAdaIN, *FAST_OPS]).run(["image", pre], feeds)
    with torch.no_grad():
        want = nets.generator(torch.from_numpy(feeds["labels"]).long(), torch.from_numpy(feeds["style"]))
    assert np.abs(got - want.numpy()).max() < 1e-4


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_onnx_runtimes_refuse_a_plugin_export(plugin_export, backend):
    from maskface_rt.backends import open_backend

    if backend == "openvino":
        pytest.importorskip("openvino")
    with pytest.raises(MaskfaceError, match=f"is a plugin export .* run only in TensorRT; .* for {backend}"):
        open_backend(plugin_export[0], backend)


@pytest.mark.slow
def test_fp16_plugin_export(tiny_plugin_export_fp16):
    parity = read_manifest(tiny_plugin_export_fp16).parity  # what the export checked before publishing
    assert set(parity) == {"generator", "generator_portable", "style_encoder", "style_decoder"}
    assert all(p["max_abs_error"] <= p["tolerance"] for p in parity.values())
    assert parity["generator"]["compared"] == onnx_export.PLUGIN_VS_PORTABLE
    assert parity["generator"]["tolerance"] == onnx_export.GENERATOR_TOLERANCE["fp16"]
    model = onnx.load(str(tiny_plugin_export_fp16 / "generator.onnx"))
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.output]}
    for node in _fused_nodes(model):
        assert {types[name] for name in [*node.input, *node.output]} == {TensorProto.FLOAT16}


@pytest.mark.slow
def test_a_failed_plugin_check_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(FusedAdaIN, "_run", lambda self, x, gamma, beta, **_: (x,))  # a wrong kernel
    with pytest.raises(MaskfaceError, match="failed its parity check: generator: max abs error"):
        export_onnx(tiny_model, tmp_path / "never", plugin=True, max_batch=4)
    assert list(tmp_path.iterdir()) == []


def test_cli_and_onnxruntime_path_work_without_triton(tiny_export, tmp_path):
    no_triton = unimportable("triton")  # any 'import triton' now raises ImportError
    info = maskface("info", str(tiny_export), "--json", prelude=no_triton)
    assert info.returncode == 0 and json.loads(info.stdout)["plugin"] is False, info.stderr
    ptx = maskface("plugin", "ptx", "--out", str(tmp_path / "ptx"), prelude=no_triton)
    assert ptx.returncode == 1 and "building PTX needs triton: pip install 'maskface-rt[kernels]'" in ptx.stderr
    assert not (tmp_path / "ptx").exists()
