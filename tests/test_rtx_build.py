"""maskface build --runtime tensorrt-rtx: real engines built with TensorRT for RTX on the CPU (no GPU needed
to build), the runtime table, and TensorRT-RTX's error paths as one-line errors. Needs tensorrt-rtx
(requirements-test.txt pins it, so CI does not skip these)."""

import json
import os
import shutil
import sys

import pytest
import typer
from cli_support import maskface, maskface_here
from typer.testing import CliRunner

from maskface_rt.backends.trt.compat import RUNTIMES, installed_runtimes, load_timing_cache, logged_error, make_logger
from maskface_rt.backends.trt.engine_file import engine_files, read_sidecar
from maskface_rt.bundled import BUNDLED_MODEL
from maskface_rt.cli.build import build
from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import MANIFEST, sha256_file
from maskface_rt.graph_contract import GRAPHS

trt_rtx = pytest.importorskip("tensorrt_rtx", reason="needs TensorRT for RTX: pip install 'maskface-rt[tensorrt-rtx]'")

RTX = RUNTIMES["tensorrt-rtx"]


pytestmark = pytest.mark.slow  # real TensorRT-RTX builds of fresh exports


def _cli(*args):
    app = typer.Typer(add_completion=False)
    app.command("build")(build)
    app.command("noop")(lambda: None)  # keeps "build" a subcommand, as in the maskface app
    return CliRunner().invoke(app, ["build", *args], env={"NO_COLOR": "1", "COLUMNS": "200"})


def _build(export, engine, *extra):
    """``maskface build EXPORT --out ENGINE --runtime tensorrt-rtx --no-plugin --json``: (exit code, JSON or None, output)."""
    done = _cli(str(export), "--out", str(engine), "--runtime", "tensorrt-rtx", "--no-plugin", "--json", *extra)
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception
    return done.exit_code, (json.loads(done.stdout) if done.exit_code == 0 else None), done.output


def _stamps(engine):
    return {p: os.stat(p).st_mtime_ns for p in engine_files(engine).values()}


@pytest.fixture(scope="module")
def built(tiny_export, tiny_export_fp16, tmp_path_factory):
    """The fp32 and fp16 exports of the tiny model, each built once: precision -> (engine, JSON summary)."""
    root = tmp_path_factory.mktemp("rtx-engines")
    results = {}
    for precision, export in (("fp32", tiny_export), ("fp16", tiny_export_fp16)):
        engine = root / precision / "tiny.engine"
        code, summary, output = _build(export, engine, "--max-batch", "4")
        assert code == 0, output
        results[precision] = (engine, summary)
    return results


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_portable_exports_build_on_the_cpu(built, precision):
    engine, summary = built[precision]
    assert not summary["cache_hit"] and summary["runtime"] == "tensorrt-rtx"
    sizes = {p.name: p.stat().st_size for p in engine_files(engine).values()}
    assert len(sizes) == 3 and all(size > 100_000 for size in sizes.values())  # real engines, all three graphs
    sidecar = read_sidecar(engine)
    assert sidecar.runtime == "tensorrt-rtx" and sidecar.tensorrt_version == trt_rtx.__version__
    assert sidecar.compute_capabilities == list(RTX.default_compute_capabilities)
    assert sidecar.device is None  # built without a GPU
    assert sidecar.precision == precision and sidecar.plugin is False and sidecar.profile.max == 4
    assert sidecar.parity["status"] == "not run" and sidecar.parity["reason"] == "no GPU"
    assert sidecar.parity["results"] == []
    assert summary["parity_status"] == "not run (no GPU)" and summary["parity"] == []
    for graph, path in engine_files(engine).items():
        assert sidecar.engines[graph]["sha256"] == sha256_file(path)


def test_fp16_engines_are_smaller_than_fp32(built):
    fp32, fp16 = (engine_files(built[p][0])["generator"].stat().st_size for p in ("fp32", "fp16"))
    assert fp16 < 0.8 * fp32  # strongly typed: the fp16 graph's precision reaches the engine


def test_info_names_the_runtime_and_targets(built):
    from maskface_rt.model_info import describe

    info = describe(built["fp16"][0])
    assert info["kind"] == "engine" and info["runtime"] == "tensorrt-rtx"
    assert info["compute_capabilities"] == list(RTX.default_compute_capabilities) and info["device"] is None


def test_cache_hit_force_and_changes_rebuild(tiny_export_fp16, tmp_path):
    engine = tmp_path / "c.engine"
    code, first, output = _build(tiny_export_fp16, engine, "--max-batch", "2")
    assert code == 0 and not first["cache_hit"], output
    stamps = _stamps(engine)
    code, second, _ = _build(tiny_export_fp16, engine, "--max-batch", "2")
    assert code == 0 and second["cache_hit"] and second["sidecar"] == first["sidecar"]
    assert _stamps(engine) == stamps  # nothing rewritten
    code, forced, _ = _build(tiny_export_fp16, engine, "--max-batch", "2", "--force")
    assert code == 0 and not forced["cache_hit"]
    code, other, _ = _build(tiny_export_fp16, engine, "--max-batch", "3")
    assert code == 0 and not other["cache_hit"] and read_sidecar(engine).profile.max == 3  # a changed profile
    code, turing, _ = _build(
        tiny_export_fp16, engine, "--max-batch", "3", "--compute-capability", "sm75,8.6", "--compute-capability", "12.0"
    )
    assert code == 0 and not turing["cache_hit"]  # changed targets
    assert read_sidecar(engine).compute_capabilities == ["7.5", "8.6", "12.0"]
    assert turing["sidecar"]["cache_key"] != other["sidecar"]["cache_key"]


def test_the_bundled_demo_model_builds(tmp_path):
    engine = tmp_path / "demo.engine"
    code, summary, output = _build(BUNDLED_MODEL, engine)
    assert code == 0, output
    assert summary["runtime"] == "tensorrt-rtx" and set(read_sidecar(engine).engines) == set(GRAPHS)
    assert all(p.stat().st_size > 0 for p in engine_files(engine).values())


@pytest.fixture()
def broken_export(tiny_export, tmp_path):
    """The tiny export with a uint8 intermediate added on purpose to its generator (style -> Cast uint8 -> Cast
    float), the manifest's sha256 updated so that the graph reaches TensorRT's parser."""
    import onnx
    from onnx import TensorProto, helper

    folder = tmp_path / "broken"
    shutil.copytree(tiny_export, folder)
    model = onnx.load(str(folder / "generator.onnx"))
    for node in model.graph.node:
        node.input[:] = ["style_float" if name == "style" else name for name in node.input]
    model.graph.node.insert(0, helper.make_node("Cast", ["style_uint8"], ["style_float"], to=TensorProto.FLOAT))
    model.graph.node.insert(
        0, helper.make_node("Cast", ["style"], ["style_uint8"], to=TensorProto.UINT8, name="broken/to_uint8")
    )
    onnx.save(model, str(folder / "generator.onnx"))
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["graphs"]["generator"]["sha256"] = sha256_file(folder / "generator.onnx")
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


def test_a_parser_failure_is_one_line_naming_the_graph_and_node(broken_export, tmp_path):
    out = str(tmp_path / "out" / "b.engine")
    done = maskface_here("build", str(broken_export), "--out", out, "--runtime", "tensorrt-rtx", "--no-plugin")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: {broken_export / 'generator.onnx'}: TensorRT-RTX's ONNX parser failed: node 0 "
        "'broken/to_uint8' (Cast): "
    )
    assert "legalUINT8" in last
    assert not (tmp_path / "out").exists()  # nothing written


def test_plugin_builds_are_refused_before_any_work(tiny_export, tmp_path):
    plugin_export = tmp_path / "plugin-export"
    shutil.copytree(tiny_export, plugin_export)
    manifest = json.loads((plugin_export / MANIFEST).read_text())
    (plugin_export / MANIFEST).write_text(json.dumps({**manifest, "plugin": True}))
    for export in (plugin_export, tiny_export):  # --plugin is the default
        done = _cli(str(export), "--out", str(tmp_path / "out" / "p.engine"), "--runtime", "tensorrt-rtx")
        text = " ".join(done.output.replace("│", " ").split())
        assert done.exit_code == 2, done.output
        assert "Invalid value for --runtime: tensorrt-rtx: TensorRT-RTX has no Python plugin API" in text
        assert "make a portable export ('maskface export MODEL --out DIR [--fp16]')" in text
        assert "build that without the plugin" in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--runtime", "tensorrt", "--compute-capability", "8.6"],
            "Invalid value for --compute-capability: is for the tensorrt-rtx runtime",
        ),
        (
            ["--runtime", "tensorrt-rtx", "--compute-capability", "9.0"],
            "Hopper (H100/H200, sm_90) is not a TensorRT-RTX target",
        ),
        (
            ["--runtime", "tensorrt-rtx", "--compute-capability", "8.6,sm_70"],
            "Invalid value for --compute-capability: sm_70 is not a TensorRT-RTX target; valid: 7.5",
        ),
        (
            ["--runtime", "tensorrt-llm"],
            "Invalid value for --runtime: tensorrt-llm is unknown; valid: tensorrt, tensorrt-rtx",
        ),
        (
            ["--runtime", "tensorrt-rtx", "--timing-cache", "t.cache"],
            "Invalid value for --timing-cache: TensorRT-RTX has no timing cache",
        ),
        (["--runtime", "tensorrt-rtx", "--layer-info"], "Invalid value for --layer-info: reads the built engines back"),
    ],
)
def test_runtime_options_are_checked_first(tiny_export, tmp_path, args, message):
    done = _cli(str(tiny_export), "--out", str(tmp_path / "out" / "o.engine"), "--no-plugin", *args)
    text = " ".join(done.output.replace("│", " ").split())
    assert done.exit_code == 2 and message in text, done.output
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:Use Deprecated in TensorRT-RTX:DeprecationWarning")  # its timing cache: no-ops
def test_a_corrupt_timing_cache_is_an_error_naming_the_file(tmp_path):
    config = trt_rtx.Builder(make_logger(trt_rtx)).create_builder_config()
    garbage = tmp_path / "garbage.cache"
    garbage.write_bytes(b"not a timing cache" * 20)
    with pytest.raises(MaskfaceError, match=r"garbage\.cache: is not a timing cache TensorRT can read"):
        load_timing_cache(config, garbage)  # TensorRT itself only warns and hands back an empty cache
    assert load_timing_cache(config, tmp_path / "missing.cache") is not None  # created by the build
    empty = tmp_path / "empty.cache"
    empty.write_bytes(bytes(config.create_timing_cache(b"").serialize()))
    assert load_timing_cache(config, empty) is not None  # a cache that is empty is still a cache


def test_deserialisation_failure_reports_the_first_error():
    logger = make_logger(trt_rtx)
    assert trt_rtx.Runtime(logger).deserialize_cuda_engine(b"not an engine" * 50) is None
    message = logged_error(logger)
    # The cause comes first; without a GPU, CUDA runtime errors follow it.
    assert message.startswith("IRuntime::deserializeCudaEngine: Error Code 1: Serialization"), message
    assert logged_error(logger) == ""  # reported once


def test_runtime_table():
    tensorrt = RUNTIMES["tensorrt"]
    tensorrt.check_version("10.9.0.34")
    tensorrt.check_version("11.4.0")
    with pytest.raises(
        MaskfaceError,
        match=r"TensorRT 10\.8\.0\.43 is too old; maskface needs TensorRT 10\.9 or "
        r"newer: pip install 'maskface-rt\[tensorrt\]'",
    ):
        tensorrt.check_version("10.8.0.43")
    RTX.check_version(trt_rtx.__version__)  # RTX numbers its releases 1.x
    with pytest.raises(MaskfaceError, match=r"TensorRT-RTX 1\.6\.0 is too old"):
        RTX.check_version("1.6.0")
    assert [RTX.compute_capability(v) for v in ("8.6", "86", "sm86", "SM_86", " sm120 ")] == ["8.6"] * 4 + ["12.0"]
    assert RTX.builds_without_gpu and not tensorrt.builds_without_gpu
    assert RTX.python_plugins is False and tensorrt.python_plugins is True
    assert RTX in installed_runtimes()
    for cc, (member, _) in RTX.compute_capabilities.items():  # every target is a member of the real enum
        assert hasattr(trt_rtx.ComputeCapability, member), cc


def test_network_flags_on_the_real_module():
    strongly_typed = 1 << int(trt_rtx.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert RTX.network_flags(trt_rtx, plugin=False) == strongly_typed
    assert not hasattr(trt_rtx.NetworkDefinitionCreationFlag, "PREFER_AOT_PYTHON_PLUGINS")
    with pytest.raises(MaskfaceError, match="TensorRT-RTX has no Python plugin API"):
        RTX.network_flags(trt_rtx, plugin=True)  # a one-line error, not an AttributeError


def test_neither_runtime_installed_says_how_to_install_both(tiny_export, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    assert installed_runtimes() == []
    done = _cli(str(tiny_export), "--out", str(tmp_path / "faces.engine"), "--no-plugin")
    assert done.exit_code == 1 and isinstance(done.exception, MaskfaceError)
    assert "neither TensorRT nor TensorRT-RTX is installed here" in str(done.exception)
    assert "maskface-rt[tensorrt]" in str(done.exception) and "maskface-rt[tensorrt-rtx]" in str(done.exception)
    assert not any(tmp_path.iterdir())


#: A stand-in GPU for the build's parity step: TensorRT-RTX builds the real engines on the CPU, and "running" them
#: is ONNX Runtime on the export's own graphs with every output made wrong, as a broken engine's would be.
_WRONG_ENGINES = """
import numpy as np
import onnxruntime as ort
from maskface_rt.cuda.device import DeviceInfo
from maskface_rt.export import engine_builder


class StandInGpu:
    info = DeviceInfo("stand-in GPU", "8.9")

    def close(self):
        pass


class WrongEngine:
    def __init__(self, path):
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(self, feeds):
        out = self.session.run(None, feeds)[0]
        return 255 - out if out.dtype == np.uint8 else out * 2 + 1

    def close(self):
        pass


engine_builder._open_gpu = lambda plan: (StandInGpu(), "")
engine_builder._runners = lambda trt, plan, blobs, cuda, logger: {
    graph: WrongEngine(plan.onnx_files[graph]) for graph in blobs
}
"""


def test_engines_that_fail_their_parity_check_exit_1_and_write_nothing(tiny_export, tmp_path):
    out = tmp_path / "engines" / "tiny.engine"
    out.parent.mkdir()
    args = [
        "build",
        str(tiny_export),
        "--out",
        str(out),
        "--runtime",
        "tensorrt-rtx",
        "--no-plugin",
        "--max-batch",
        "2",
    ]
    done = maskface(*args, prelude=_WRONG_ENGINES, timeout=900)
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(
        f"error: {out}: the engines failed their parity check (nothing was written): generator: PSNR"
    )
    assert "[FAILED]" in line and "Traceback" not in done.stderr
    assert list(out.parent.iterdir()) == []  # no engine, no sidecar, no temp file
