"""maskface build: option checks, the CLI, the fp32 reference, parity and the cache on any machine; real
TensorRT builds (marked tensorrt) where TensorRT and a CUDA GPU are present, skipped elsewhere with the reason."""

import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import typer
from maskface_rt.export.engine_builder import BuildOptions, check_build_options, check_parity, compare, find_cached
from maskface_rt.export.fp32_reference import fp32_reference, fused_adain_function
from maskface_rt.kernels.onnx_op import single_node_model
from maskface_rt.kernels.reference import fused_adain_reference
from typer.testing import CliRunner

from maskface_rt.backends.trt.engine_file import (
    EngineSidecar,
    cache_key,
    engine_files,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from maskface_rt.backends.trt.parse import OnnxParseError, format_parser_error
from maskface_rt.backends.trt.profile import BuildProfile
from maskface_rt.cli.build import build
from maskface_rt.cuda.device import DeviceInfo
from maskface_rt.errors import MaskfaceError, OptionError
from maskface_rt.export_format import MANIFEST, sha256_file
from maskface_rt.graph_contract import GRAPHS, sample_inputs
from maskface_rt.parity import PARITY_PSNR_DB, STYLE_PARITY
from maskface_rt.parity import ParityCheck as EngineParity


@pytest.fixture()
def plugin_flagged_export(tiny_export, tmp_path):
    """The tiny export with maskface.json saying plugin: the graphs are intact, only the flavour differs
    (enough for checks that read the manifest)."""
    folder = tmp_path / "plugin-export"
    shutil.copytree(tiny_export, folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "plugin": True}))
    return folder


def _no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)


# ----------------------------------------------------------------------------- option checks


def test_valid_options_give_a_plan(tiny_export, tmp_path):
    plan = check_build_options(
        tiny_export / "generator.onnx", tmp_path / "out" / "faces.engine", BuildOptions(plugin=False)
    )
    assert plan.folder == tiny_export and plan.profile == BuildProfile(1, 8, 16)  # the export declares 16
    assert plan.engines == engine_files(tmp_path / "out" / "faces.engine")
    assert plan.onnx_sha256 == {g: sha256_file(tiny_export / f"{g}.onnx") for g in GRAPHS}


@pytest.mark.parametrize(
    ("out", "options", "message"),
    [
        ("faces.trt", {}, r"^out: .*faces\.trt: an engine file name must end in \.engine or \.plan"),
        ("faces.engine", {"optimization_level": 6}, r"^optimization_level: 6 is invalid; valid: 0\.\.5"),
        ("faces.engine", {"workspace_mib": 0}, r"^workspace_mib: 0 MiB is invalid; valid: 1\.\.1048576 MiB"),
        ("faces.engine", {"device": "cpu"}, r"^device: the tensorrt backend runs on a CUDA GPU"),
        ("faces.engine", {"min_batch": 0}, r"^min_batch: 0 is invalid; valid: 1 or more"),
        (
            "faces.engine",
            {"opt_batch": 12, "max_batch": 10},
            r"^opt_batch: 12 is outside the min\.\.max batch; valid: 1\.\.10",
        ),
        ("faces.engine", {"max_batch": 64}, r"^max_batch: 64 is above the export's largest batch 16"),
        (
            "faces.engine",
            {"plugin": True},
            r"^plugin: .* is a portable export \(no FusedAdaIN nodes\); .* --plugin .* or build "
            r"this one without the plugin",
        ),
    ],
)
def test_bad_options_are_refused_with_what_is_valid(tiny_export, tmp_path, out, options, message):
    with pytest.raises(OptionError, match=message):
        check_build_options(
            tiny_export, tmp_path / out, BuildOptions(**{"plugin": False, "runtime": "tensorrt", **options})
        )
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_flavour_mismatch_both_ways(plugin_flagged_export, tmp_path):
    with pytest.raises(
        OptionError, match=r"^plugin: .* is a plugin export \(FusedAdaIN nodes\); build it with the plugin"
    ):
        check_build_options(plugin_flagged_export, tmp_path / "faces.engine", BuildOptions(plugin=False))
    plan = check_build_options(plugin_flagged_export, tmp_path / "faces.engine", BuildOptions(runtime="tensorrt"))
    assert plan.options.plugin and plan.runtime.name == "tensorrt" and plan.targets == ()


def test_inputs_and_outputs_that_cannot_work(tiny_export, tmp_path):
    with pytest.raises(MaskfaceError, match="no such export folder"):
        check_build_options(tmp_path / "missing", tmp_path / "a.engine", BuildOptions(plugin=False))
    stray = tmp_path / "stray.onnx"
    stray.write_bytes((tiny_export / "generator.onnx").read_bytes())
    with pytest.raises(MaskfaceError, match=r"is not in a maskface export folder \(no maskface\.json beside it\)"):
        check_build_options(stray, tmp_path / "a.engine", BuildOptions(plugin=False))
    (tmp_path / "dir.engine").mkdir()
    with pytest.raises(OptionError, match="^out: .*dir.engine is a folder"):
        check_build_options(tiny_export, tmp_path / "dir.engine", BuildOptions(plugin=False))
    (tmp_path / "t.cache").mkdir()
    with pytest.raises(OptionError, match="^timing_cache: .*t.cache is a folder"):
        check_build_options(
            tiny_export, tmp_path / "a.engine", BuildOptions(plugin=False, timing_cache=tmp_path / "t.cache")
        )


def test_files_not_written_by_maskface_build_are_kept_unless_forced(tiny_export, tmp_path):
    foreign = tmp_path / "faces.engine"
    foreign.write_bytes(b"someone else's plan")
    with pytest.raises(
        OptionError,
        match=r"faces\.engine exists without a sidecar \(faces\.engine\.json\), so it "
        r"was not written by maskface build; force the build to replace it",
    ):
        check_build_options(tiny_export, foreign, BuildOptions(plugin=False))
    check_build_options(tiny_export, foreign, BuildOptions(plugin=False, force=True))
    sidecar_path(foreign).write_text("{broken")
    with pytest.raises(OptionError, match="its sidecar cannot be read"):
        check_build_options(tiny_export, foreign, BuildOptions(plugin=False))


def _cli(*args):
    app = typer.Typer(add_completion=False)
    app.command("build")(build)
    app.command("noop")(lambda: None)  # keeps "build" a subcommand, as in the maskface app
    return CliRunner().invoke(app, ["build", *args], env={"NO_COLOR": "1"})


def _text(output):
    """The CLI's words without the error panel's borders."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def test_cli_refuses_bad_options_with_exit_2(tiny_export, tmp_path):
    done = _cli(str(tiny_export), "--out", str(tmp_path / "faces.engine"), "--no-plugin", "--max-batch", "99")
    assert done.exit_code == 2
    assert "Invalid value for --max-batch: 99 is above the export's largest batch 16" in _text(done.output)
    done = _cli(str(tiny_export), "--out", str(tmp_path / "faces.engine"))  # plugin by default
    text = _text(done.output)  # here TensorRT-RTX, which has no plugin API, is the runtime --runtime auto takes
    assert done.exit_code == 2 and "Invalid value for --runtime:" in text and "without the plugin" in text
    done = _cli(str(tiny_export), "--out", str(tmp_path / "faces.engine"), "--no-plugin", "--optimization-level", "9")
    assert done.exit_code == 2 and "valid: 0..5" in done.output
    assert not any(tmp_path.iterdir())


def test_cli_without_tensorrt_says_how_to_install(tiny_export, tmp_path, monkeypatch):
    _no_tensorrt(monkeypatch)
    done = _cli(
        str(tiny_export), "--out", str(tmp_path / "faces.engine"), "--no-plugin", "--json", "--runtime", "tensorrt"
    )
    assert done.exit_code == 1 and isinstance(done.exception, MaskfaceError)  # cli.main prints it as one line
    assert "TensorRT is not installed here" in str(done.exception)
    assert "pip install 'maskface-rt[tensorrt]'" in str(done.exception)
    assert done.stdout == "" and not any(tmp_path.iterdir())


def test_parser_errors_name_the_node_and_operator():
    assert (
        format_parser_error(12, "/decode.0/conv1/Conv", "Conv", "Invalid  weights\n type")
        == "node 12 '/decode.0/conv1/Conv' (Conv): Invalid weights type"
    )
    assert format_parser_error(3, "", "FusedAdaIN", "plugin not found") == "node 3 (FusedAdaIN): plugin not found"
    assert format_parser_error(-1, "", "", "model has no graph") == "model has no graph"
    error = OnnxParseError("generator.onnx", ["node 3 (FusedAdaIN): plugin not found", "node 9 (Conv): x"])
    assert error.node_errors == ["node 3 (FusedAdaIN): plugin not found", "node 9 (Conv): x"]
    assert str(error) == (
        "generator.onnx: TensorRT's ONNX parser failed: node 3 (FusedAdaIN): plugin not found (and 1 more)"
    )


# ----------------------------------------------------------------------------- the fp32 reference and parity


@pytest.mark.parametrize(
    ("elem_type", "dtype"), [(onnx.TensorProto.FLOAT, np.float32), (onnx.TensorProto.FLOAT16, np.float16)]
)
def test_fused_adain_function_matches_the_numpy_reference(elem_type, dtype):
    import onnxruntime as ort

    eps, slope = float(np.float32(1e-3)), float(np.float32(0.1))
    reference = fp32_reference(single_node_model(elem_type, eps=eps, negative_slope=slope))
    assert [f.name for f in reference.functions] == ["FusedAdaIN"]
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in reference.graph.input)
    session = ort.InferenceSession(reference.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 5, 7, 9)) * 3 + 1).astype(dtype)
    gamma, beta = rng.standard_normal((2, 5)).astype(dtype), rng.standard_normal((2, 5)).astype(dtype)
    (y,) = session.run(
        None, {"x": x.astype(np.float32), "gamma": gamma.astype(np.float32), "beta": beta.astype(np.float32)}
    )
    expected = fused_adain_reference(x, gamma, beta, eps, slope, np.float64)
    assert np.abs(y - expected).max() < 1e-4
    assert fused_adain_function().domain == "maskface"


def _run_reference(path, feeds, output):
    import onnxruntime as ort

    model = fp32_reference(onnx.load(str(path)))
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run([output], feeds)[0]


@pytest.mark.slow
def test_fp32_reference_runs_a_tiny_plugin_export_fp16_on_onnxruntime(tiny_plugin_export_fp16, tiny_export):
    model = onnx.load(str(tiny_plugin_export_fp16 / "generator.onnx"))
    assert any(n.op_type == "FusedAdaIN" for n in model.graph.node)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    reference = fp32_reference(model)
    assert not any(t.data_type == onnx.TensorProto.FLOAT16 for t in reference.graph.initializer)
    from maskface_rt.config import preset

    config = preset("tiny-64")
    feeds = sample_inputs("generator", config, 3)
    got = _run_reference(tiny_plugin_export_fp16 / "generator.onnx", feeds, "image")
    want = _run_reference(tiny_export / "generator.onnx", feeds, "image")  # fp32 portable
    parity = compare("generator", want, got, "fp16")
    # Only the fp16 rounding of the weights separates them: far inside the fp16 bound.
    assert parity.passed and parity.value > PARITY_PSNR_DB["fp16"] + 10 and parity.max_uint8_diff <= 2
    for graph in ("style_encoder", "style_decoder"):
        feeds = sample_inputs(graph, config, 3)
        styles = compare(
            graph,
            _run_reference(tiny_export / f"{graph}.onnx", feeds, "style"),
            _run_reference(tiny_plugin_export_fp16 / f"{graph}.onnx", feeds, "style"),
            "fp16",
        )
        assert styles.passed, styles.line()


def test_sample_inputs_are_valid_and_repeatable():
    from maskface_rt.config import preset

    config = preset("tiny-64")
    feeds = sample_inputs("generator", config, 4)
    assert feeds["labels"].shape == (4, 64, 64) and feeds["labels"].dtype == np.uint8
    assert feeds["labels"].max() == 18 and feeds["style"].shape == (4, 32) and feeds["style"].dtype == np.float32
    assert all(np.array_equal(a, b) for a, b in zip(feeds.values(), sample_inputs("generator", config, 4).values()))
    assert sample_inputs("style_decoder", config, 2)["image"].shape == (2, 64, 64, 3)
    assert sample_inputs("style_encoder", config, 2)["latent"].shape == (2, 16)


def test_parity_measures_and_bounds():
    images = np.random.default_rng(0).integers(1, 255, (2, 8, 8, 3), dtype=np.uint8)
    same = compare("generator", images, images.copy(), "fp16")
    assert same.value == math.inf and same.passed and same.to_dict()["value"] == "inf"
    assert EngineParity.from_dict(same.to_dict()) == same
    off_by_one = compare("generator", images, images + 1, "fp32")
    assert off_by_one.value == pytest.approx(10 * math.log10(255**2), abs=1e-9)  # 48.13 dB
    assert off_by_one.passed and off_by_one.max_uint8_diff == 1
    assert "highest bound that would pass 48.1 dB [ok]" in off_by_one.line()
    noise = compare("generator", images, np.zeros_like(images), "fp16")
    assert not noise.passed and "[FAILED]" in noise.line()
    styles = np.full((2, 4), 4.0, np.float32)
    err = compare("style_encoder", styles, styles + 0.1, "fp32")
    assert err.value == pytest.approx(0.1 / 4) and not err.passed  # relative to the largest |style|
    assert compare("style_encoder", styles, styles + 0.1, "fp16").passed
    assert STYLE_PARITY["fp16"] > STYLE_PARITY["fp32"] and PARITY_PSNR_DB["fp16"] < PARITY_PSNR_DB["fp32"]


def test_check_parity_against_onnxruntime(tiny_export, tmp_path):
    import onnxruntime as ort

    plan = check_build_options(tiny_export, tmp_path / "faces.engine", BuildOptions(plugin=False, opt_batch=3))
    sessions = {
        g: ort.InferenceSession(str(tiny_export / f"{g}.onnx"), providers=["CPUExecutionProvider"]) for g in GRAPHS
    }
    seen = []

    def same_graph(graph, feeds):  # an "engine" that is the exported graph itself
        seen.append((graph, len(next(iter(feeds.values())))))
        return sessions[graph].run(None, feeds)[0]

    results = check_parity(plan, same_graph)
    assert seen == [("generator", 3), ("style_encoder", 3), ("style_decoder", 3)]  # the profile's opt batch
    assert [r.graph for r in results] == list(GRAPHS) and all(r.passed for r in results)
    assert results[0].value == math.inf and results[1].value == 0.0

    def broken(graph, feeds):
        out = same_graph(graph, feeds)
        return np.zeros_like(out) if graph == "generator" else out

    assert [r.passed for r in check_parity(plan, broken)] == [False, True, True]


def test_cache_hit_needs_the_same_key_and_intact_engines(tiny_export, tmp_path):
    plan = check_build_options(tiny_export, tmp_path / "faces.engine", BuildOptions(plugin=False))
    device = DeviceInfo("NVIDIA H100 80GB HBM3", "9.0")
    key = cache_key(
        onnx_sha256=plan.onnx_sha256,
        tensorrt_version="10.9.0.34",
        device=device,
        profile=plan.profile,
        plugin=False,
        workspace_mib=None,
        optimization_level=3,
        package_version="0.1.0",
    )
    assert find_cached(plan, key) is None  # nothing built yet
    engines = {}
    for graph, path in plan.engines.items():
        path.write_bytes(f"plan of {graph}".encode())
        engines[graph] = {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    sidecar = EngineSidecar(
        tensorrt_version="10.9.0.34",
        device=device,
        onnx_sha256=plan.onnx_sha256,
        profile=plan.profile,
        plugin=False,
        precision="fp32",
        build_seconds=1.0,
        model=plan.manifest.to_dict(),
        engines=engines,
        cache_key=key,
        package_version="0.1.0",
    )
    write_sidecar(plan.out, sidecar)
    assert find_cached(plan, key) == read_sidecar(plan.out)
    assert find_cached(plan, "0" * 64) is None  # anything in the key changed: rebuild
    plan.engines["style_decoder"].write_bytes(b"truncated")
    assert find_cached(plan, key) is None  # an engine no longer matches its sidecar: rebuild
    # an existing maskface build is replaced without --force
    check_build_options(tiny_export, plan.out, BuildOptions(plugin=False))


# ----------------------------------------------------------------------------- TensorRT and a GPU


def _tensorrt_gpu():
    """Skip unless TensorRT (10.9+) and a CUDA GPU are usable here."""
    pytest.importorskip("tensorrt", reason="needs TensorRT: pip install 'maskface-rt[tensorrt]'")
    from maskface_rt.cuda.device import open_cuda_device

    try:
        open_cuda_device().close()
    except MaskfaceError as e:
        pytest.skip(f"needs a CUDA GPU usable from Python ({e})")


@pytest.fixture(scope="module")
def trt_exports(tiny_model, tmp_path_factory):
    """The tiny model exported in the four flavours (made only where TensorRT and a GPU are present)."""
    _tensorrt_gpu()
    from maskface_rt.export.onnx_export import export_onnx

    root = tmp_path_factory.mktemp("trt-exports")
    return {
        (precision, plugin): export_onnx(
            tiny_model,
            root / f"{precision}-{'plugin' if plugin else 'portable'}",
            fp16=precision == "fp16",
            plugin=plugin,
            max_batch=8,
        ).out
        for precision in ("fp32", "fp16")
        for plugin in (False, True)
    }


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("plugin", [False, True], ids=["portable", "plugin"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_engines_and_parity_with_onnxruntime(trt_exports, tiny_export, tmp_path, precision, plugin):
    from maskface_rt.export.engine_builder import build_engine

    from maskface_rt.backends import open_backend

    engine = tmp_path / "tiny.engine"
    result = build_engine(
        trt_exports[(precision, plugin)],
        engine,
        BuildOptions(plugin=plugin, min_batch=1, opt_batch=2, max_batch=4, layer_info=True),
    )
    assert not result.cache_hit and all(p.passed for p in result.parity), [p.line() for p in result.parity]
    sidecar = read_sidecar(engine)
    assert sidecar.plugin is plugin and sidecar.precision == precision and sidecar.profile == BuildProfile(1, 2, 4)
    assert set(json.loads(result.layer_info.read_text())) == set(GRAPHS)
    labels = np.random.default_rng(3).integers(0, 19, (6, 64, 64), dtype=np.uint8)  # 6 > max 4: split
    with open_backend(engine, "tensorrt") as trt_backend, open_backend(tiny_export, "onnxruntime") as ort_backend:
        assert trt_backend.max_batch == 4 and trt_backend.description.startswith("tensorrt ")
        styles = ort_backend.styles_for_seed(0, 6)
        checks = [
            compare("style_encoder", styles, trt_backend.styles_for_seed(0, 6), precision),
            compare("generator", ort_backend.generate(labels, styles), trt_backend.generate(labels, styles), precision),
        ]
        images = ort_backend.generate(labels[:3], styles[:3])
        checks.append(
            compare("style_decoder", ort_backend.encode_style(images), trt_backend.encode_style(images), precision)
        )
        assert all(c.passed for c in checks), [c.line() for c in checks]


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("cuda", ["cuda-python", "torch"])
def test_cuda_graph_replay_equals_plain_execution(trt_exports, tmp_path, cuda):
    from maskface_rt.export.engine_builder import build_engine

    from maskface_rt.backends.trt.runner import TensorRTBackend

    if cuda == "cuda-python":
        pytest.importorskip("cuda.bindings", reason="needs cuda-python: pip install 'maskface-rt[tensorrt]'")

    engine = tmp_path / "g.engine"
    build_engine(trt_exports[("fp16", True)], engine, BuildOptions(min_batch=2, opt_batch=3, max_batch=3))
    rng = np.random.default_rng(5)
    batches = [
        (rng.integers(0, 19, (n, 64, 64), dtype=np.uint8), rng.standard_normal((n, 32)).astype(np.float32))
        for n in (3, 1, 3, 5, 3, 1)
    ]
    with (
        TensorRTBackend(engine, cuda_graphs=False, cuda_implementation=cuda) as plain,
        TensorRTBackend(engine, cuda_graphs=True, cuda_implementation=cuda) as graphs,
    ):
        assert graphs.cuda.kind == cuda
        for labels, styles in batches:
            assert np.array_equal(graphs.generate(labels, styles), plain.generate(labels, styles))
        assert graphs._runner("generator").policy.captured == {2, 3}


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_cache_hit_skips_the_build_and_force_rebuilds(trt_exports, tmp_path):
    from maskface_rt.export.engine_builder import build_engine

    engine = tmp_path / "c.engine"
    cache = tmp_path / "timing.cache"
    options = BuildOptions(plugin=False, max_batch=2, timing_cache=cache)
    first = build_engine(trt_exports[("fp32", False)], engine, options)
    assert not first.cache_hit and cache.is_file()
    stamp = {p: os.stat(p).st_mtime_ns for p in engine_files(engine).values()}
    second = build_engine(trt_exports[("fp32", False)], engine, options)
    assert second.cache_hit and second.sidecar == first.sidecar
    assert {p: os.stat(p).st_mtime_ns for p in engine_files(engine).values()} == stamp
    third = build_engine(trt_exports[("fp32", False)], engine, BuildOptions(plugin=False, max_batch=2, force=True))
    assert not third.cache_hit
    other = build_engine(trt_exports[("fp32", False)], engine, BuildOptions(plugin=False, max_batch=3))
    assert not other.cache_hit and read_sidecar(engine).profile.max == 3  # a changed profile rebuilds


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_generate_cli_on_the_tensorrt_backend(trt_exports, tmp_path):
    from maskface_rt.export.engine_builder import build_engine

    from maskface_rt.synth import write_dataset

    engine = tmp_path / "faces.engine"
    build_engine(trt_exports[("fp16", True)], engine, BuildOptions(max_batch=4))
    write_dataset(tmp_path / "data", 3, 64, seed=4)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "maskface_rt",
            "generate",
            str(tmp_path / "data" / "masks"),
            "--out",
            str(tmp_path / "faces"),
            "--backend",
            "tensorrt",
            "--model",
            str(engine),
            "--styles",
            "5",
            "--batch-size",
            "8",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["images_written"] == 15 and summary["backend"].startswith("tensorrt ")
