import json

import numpy as np
import onnx
import pytest
from cli_support import maskface, unimportable

torch = pytest.importorskip("torch")

from maskface_rt.export import onnx_export  # noqa: E402
from maskface_rt.export.onnx_export import export_onnx  # noqa: E402

from maskface_rt.backends import open_backend  # noqa: E402
from maskface_rt.config import preset  # noqa: E402
from maskface_rt.errors import MaskfaceError  # noqa: E402
from maskface_rt.export_format import MANIFEST, read_manifest, sha256_file  # noqa: E402
from maskface_rt.graph_contract import GRAPHS  # noqa: E402


def test_fp32_export_passes_its_checks_and_records_metadata(tiny_model, tiny_export):
    manifest = read_manifest(tiny_export)
    assert manifest.config == preset("tiny-64")
    assert manifest.precision == "fp32" and manifest.max_batch == 16
    assert manifest.source_sha256 == sha256_file(tiny_model)
    assert manifest.parity["generator"]["max_abs_error"] <= 1e-4
    for graph in GRAPHS:
        model = onnx.load(str(tiny_export / f"{graph}.onnx"))
        onnx.checker.check_model(model, full_check=True)
        props = {p.key: p.value for p in model.metadata_props}
        assert props == manifest.metadata_props(graph)
        assert json.loads(props["maskface.config"]) == preset("tiny-64").to_dict()
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch


def test_generator_graph_moves_uint8_at_its_edges(tiny_export):
    model = onnx.load(str(tiny_export / "generator.onnx"))
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert types == {"labels": onnx.TensorProto.UINT8, "style": onnx.TensorProto.FLOAT, "image": onnx.TensorProto.UINT8}


def test_fp16_export_keeps_statistics_in_fp32(tiny_export_fp16):
    """The session's fp16 export (export_onnx, parity checked before it was published: its manifest says how)."""
    parity = read_manifest(tiny_export_fp16).parity
    assert set(parity) == {"generator", "style_encoder", "style_decoder"}
    assert all(p["max_abs_error"] <= p["tolerance"] for p in parity.values())
    assert parity["generator"]["tolerance"] == onnx_export.GENERATOR_TOLERANCE["fp16"]
    model = onnx.load(str(tiny_export_fp16 / "generator.onnx"))
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    dtypes = {t.data_type for t in model.graph.initializer if t.name in conv_weights}
    assert dtypes == {onnx.TensorProto.FLOAT16}
    # Every statistics reduction runs in fp32: each ReduceMean / InstanceNormalization input is cast up.
    producers = {o: n for n in model.graph.node for o in n.output}
    value_types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    stats = [n for n in model.graph.node if n.op_type in ("ReduceMean", "InstanceNormalization")]
    assert stats
    for node in stats:
        src = node.input[0]
        dtype = value_types.get(src)
        if dtype is None and src in producers and producers[src].op_type == "Cast":
            dtype = next(a.i for a in producers[src].attribute if a.name == "to")
        assert dtype == onnx.TensorProto.FLOAT, node.name


@pytest.mark.parametrize("batch", [1, 5, 16])
def test_dynamic_batch_on_onnxruntime(tiny_export, batch):
    with open_backend(tiny_export, "onnxruntime") as backend:
        labels = np.random.default_rng(batch).integers(0, 19, (batch, 64, 64), dtype=np.uint8)
        styles = backend.styles_for_seed(0, batch)
        images = backend.generate(labels, styles)
        assert images.shape == (batch, 64, 64, 3) and images.dtype == np.uint8
        assert backend.encode_style(images).shape == (batch, 32)


def test_torch_and_onnxruntime_agree(tiny_model, tiny_export):
    labels = np.random.default_rng(0).integers(0, 19, (4, 64, 64), dtype=np.uint8)
    with open_backend(tiny_model, "torch") as ref, open_backend(tiny_export, "onnxruntime") as ort:
        styles = ref.styles_for_seed(3, 4)
        assert np.abs(styles - ort.styles_for_seed(3, 4)).max() < 1e-4
        diff = np.abs(ref.generate(labels, styles).astype(np.int16) - ort.generate(labels, styles))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
        photo = ref.generate(labels, styles)
        assert np.abs(ref.encode_style(photo) - ort.encode_style(photo)).max() < 1e-3


@pytest.mark.slow
def test_failed_parity_check_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(onnx_export.GENERATOR_TOLERANCE, "fp32", 0.0)
    out = tmp_path / "never"
    with pytest.raises(MaskfaceError, match="failed its parity check: generator: max abs error"):
        export_onnx(tiny_model, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_options_are_checked_before_any_work(tiny_model, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(MaskfaceError, match="is not empty"):
        export_onnx(tiny_model, tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(MaskfaceError, match="^opset: 12 is not supported; valid: 18..23"):
        export_onnx(tiny_model, tmp_path / "x", opset=12)
    with pytest.raises(MaskfaceError, match="no such checkpoint"):
        export_onnx(tmp_path / "missing.safetensors", tmp_path / "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_tampered_export_is_refused(tiny_export, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in tiny_export.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    data = (copy / "style_encoder.onnx").read_bytes()
    (copy / "style_encoder.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(MaskfaceError, match="style_encoder.onnx: sha256 does not match"):
        read_manifest(copy)
    (copy / MANIFEST).unlink()
    with pytest.raises(MaskfaceError, match="without maskface.json"):
        open_backend(copy)


def test_backend_choice_errors(tiny_model, tiny_export, auto_bf16):
    with pytest.raises(MaskfaceError, match="backend onnxruntime cannot run a checkpoint; export it first"):
        open_backend(tiny_model, "onnxruntime")
    with pytest.raises(MaskfaceError, match="backend torch cannot run a onnx-export"):
        open_backend(tiny_export, "torch")
    with pytest.raises(MaskfaceError, match="unknown backend 'tvm'"):
        open_backend(tiny_export, "tvm")
    # auto: OpenVINO bf16 for an export where the CPU runs bf16 natively (as $MASKFACE_NATIVE_BF16 says here)
    with open_backend(tiny_export) as chosen:
        assert (chosen.name, getattr(chosen, "precision", None)) == (
            ("openvino", "bf16") if auto_bf16 else ("onnxruntime", None)
        )
    with open_backend(tiny_model) as chosen:
        assert chosen.name == "torch"


def test_onnxruntime_path_runs_with_torch_unimportable(tiny_export, tmp_path):
    """The deployed runtime never imports torch: run info and generate where 'import torch' fails."""
    from maskface_rt.synth import write_dataset

    write_dataset(tmp_path / "data", 3, 64, seed=2)
    no_torch = unimportable("torch")  # any 'import torch' now raises ImportError
    masks, out = str(tmp_path / "data" / "masks"), str(tmp_path / "out")
    done = maskface(
        "generate", masks, "--out", out, "--model", str(tiny_export), "--styles", "2", "--json", prelude=no_torch
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["images_written"] == 6
    assert len(list((tmp_path / "out").glob("*_s[01].png"))) == 6
    info = maskface("info", str(tiny_export), "--json", prelude=no_torch)
    assert info.returncode == 0 and json.loads(info.stdout)["kind"] == "onnx-export"
