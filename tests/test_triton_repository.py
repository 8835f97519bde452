"""maskface triton without a server: the three flavours' repositories, checked by Triton's schema (tritonclient's
model_config_pb2) and by structure against the graph contract; engine sets (made here: full TensorRT cannot build
on this machine) and their refusals; atomic writes, no overwrite unasked; the CLI's exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tritonclient.grpc", reason="the [triton] extra (tritonclient) is not installed")

from typer.testing import CliRunner

from maskface_rt.backends.trt.engine_file import (
    EngineSidecar,
    cache_key,
    engine_files,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from maskface_rt.backends.trt.profile import BuildProfile
from maskface_rt.bundled import default_model
from maskface_rt.cli import app
from maskface_rt.cuda.device import DeviceInfo
from maskface_rt.errors import MaskfaceError, OptionError
from maskface_rt.export_format import read_manifest, sha256_file
from maskface_rt.graph_contract import GRAPH_IO, GRAPHS, TENSOR_DTYPES, tensor_shape
from maskface_rt.triton import repository
from maskface_rt.triton.config import TRITON_TYPES, check_ensemble, parse_config, tensor_signature
from maskface_rt.triton.repository import MODEL_NAMES, RepositoryOptions, write_repository

MODELS = (*MODEL_NAMES.values(), "maskface", "maskface_reference")
H100 = DeviceInfo("NVIDIA H100 80GB HBM3", "9.0")


def _parsed(repo: Path) -> dict:
    return {name: parse_config((repo / name / "config.pbtxt").read_text(), name) for name in MODELS}


def _engine_set(folder: Path, **changes) -> Path:
    """An engine set as maskface build leaves it (three plan files of arbitrary bytes and a valid sidecar)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(default_model())
    engines = {}
    for graph, path in engine_files(folder / "faces.engine").items():
        path.write_bytes(b"\x00plan " + graph.encode() * 50)  # a raw plan: no header of maskface's
        engines[graph] = {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    key_args = dict(
        onnx_sha256={g: manifest.graphs[g]["sha256"] for g in GRAPHS},
        tensorrt_version="10.9.0.34",
        device=H100,
        profile=BuildProfile(1, 8, 32),
        plugin=False,
        workspace_mib=None,
        optimization_level=3,
        package_version="0.1.0",
    )
    fields = dict(
        tensorrt_version="10.9.0.34",
        device=H100,
        onnx_sha256=key_args["onnx_sha256"],
        profile=BuildProfile(1, 8, 32),
        plugin=False,
        precision="fp32",
        build_seconds=1.0,
        model={"format": "maskface-onnx/1", "config": manifest.config.to_dict(), "label_order": "celebamask"},
        engines=engines,
        cache_key=cache_key(**key_args),
        package_version="0.1.0",
    )
    fields.update(changes)
    write_sidecar(folder / "faces.engine", EngineSidecar(**fields))
    return folder / "faces.engine"


@pytest.mark.parametrize("platform", ["onnxruntime_onnx", "python"])
def test_export_flavours_pass_the_schema_and_match_the_graph_contract(tmp_path, platform):
    repo = tmp_path / "repo"
    result = write_repository(default_model(), repo, RepositoryOptions(platform=platform, max_batch=16))
    assert result.models == MODELS and sorted(p.name for p in repo.iterdir()) == sorted(MODELS)
    parsed = _parsed(repo)
    config = read_manifest(default_model()).config
    for graph, name in MODEL_NAMES.items():
        message = parsed[name]
        inputs, output = GRAPH_IO[graph]
        expected = {
            t: (TRITON_TYPES[TENSOR_DTYPES[t]], tensor_shape(t, config, 1)[1:]) for t in (*inputs, output)
        }  # dims without the batch dimension, uint8 images as TYPE_UINT8
        assert tensor_signature(message) == expected
        assert message.max_batch_size == 16 and message.dynamic_batching.max_queue_delay_microseconds == 2000
        kind = "KIND_CPU" if platform == "python" else "KIND_GPU"
        assert [type(message).DESCRIPTOR.fields_by_name["instance_group"].message_type.enum_types_by_name["Kind"]
                .values_by_number[g.kind].name for g in message.instance_group] == [kind]  # fmt: skip
        version = repo / name / "1"
        if platform == "onnxruntime_onnx":
            assert message.platform == "onnxruntime_onnx"
            source = default_model() / read_manifest(default_model()).graphs[graph]["file"]
            assert (version / "model.onnx").read_bytes() == source.read_bytes()
        else:
            assert message.backend == "python" and message.parameters["maskface_graph"].string_value == graph
            assert (version / "model.py").is_file() and read_manifest(version / "model").config == config
    assert tensor_signature(parsed["maskface"]) == {
        "labels": ("TYPE_UINT8", (64, 64)),
        "latent": ("TYPE_FP32", (16,)),
        "image": ("TYPE_UINT8", (64, 64, 3)),
    }
    assert tensor_signature(parsed["maskface_reference"]) == {
        "labels": ("TYPE_UINT8", (64, 64)),
        "reference": ("TYPE_UINT8", (64, 64, 3)),
        "image": ("TYPE_UINT8", (64, 64, 3)),
    }
    steps = [s.model_name for s in parsed["maskface"].ensemble_scheduling.step]
    assert steps == ["maskface_style_encoder", "maskface_generator"]
    steps = [s.model_name for s in parsed["maskface_reference"].ensemble_scheduling.step]
    assert steps == ["maskface_style_decoder", "maskface_generator"]
    assert not list(tmp_path.glob(".maskface-triton-*")) and not list(repo.glob(".*"))  # no temp folder left


def test_a_config_outside_the_schema_is_one_line_naming_the_file():
    good = 'name: "m" backend: "python" max_batch_size: 4'
    assert parse_config(good, "m/config.pbtxt").max_batch_size == 4
    for bad in (
        good + " max_batch: 3",
        good + " instance_group [ { kind: KIND_TPU } ]",
        'name: "m" max_batch_size: "x"',
    ):
        with pytest.raises(MaskfaceError, match=r"^m/config\.pbtxt: not a valid Triton model configuration") as e:
            parse_config(bad, "m/config.pbtxt")
        assert "\n" not in str(e.value)


def test_the_ensembles_wiring_is_checked(tmp_path):
    repo = tmp_path / "repo"
    write_repository(default_model(), repo, RepositoryOptions(platform="onnxruntime_onnx"))
    parsed = _parsed(repo)
    check_ensemble(parsed["maskface"], parsed, "maskface/config.pbtxt")
    parsed["maskface_generator"].input[0].dims[0] = 32  # labels [32, 64]: the ensemble's [64, 64] no longer fits
    with pytest.raises(MaskfaceError, match=r"maskface_generator's tensor 'labels' is TYPE_UINT8 \[32, 64\]"):
        check_ensemble(parsed["maskface"], parsed, "maskface/config.pbtxt")
    del parsed["maskface_style_decoder"]
    with pytest.raises(MaskfaceError, match="'maskface_style_decoder' is not in the repository"):
        check_ensemble(parsed["maskface_reference"], parsed, "maskface_reference/config.pbtxt")


def test_tensorrt_plan_from_an_engine_set_copies_the_plans_exactly_and_says_what_built_them(tmp_path):
    engine = _engine_set(tmp_path / "engines", plugin=True, plugin_implementation="aot")
    repo = tmp_path / "repo"
    done = CliRunner().invoke(app, ["triton", str(engine), "--out", str(repo), "--preferred-batch-sizes", "8,4"])
    assert done.exit_code == 0, done.output
    assert "TensorRT 10.9.0.34" in done.output and "H100" in done.output  # the rule, printed
    parsed = _parsed(repo)
    for graph, path in engine_files(engine).items():
        name = MODEL_NAMES[graph]
        assert (repo / name / "1" / "model.plan").read_bytes() == path.read_bytes()  # no header added
        built = json.loads((repo / name / "built_with.json").read_text())
        assert built["tensorrt_version"] == "10.9.0.34" and built["device"]["compute_capability"] == "9.0"
        assert parsed[name].platform == "tensorrt_plan" and parsed[name].max_batch_size == 32  # the profile's max
        assert list(parsed[name].dynamic_batching.preferred_batch_size) == [4, 8]
    assert parsed["maskface"].max_batch_size == 32


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"runtime": "tensorrt-rtx", "compute_capabilities": ["8.6"], "device": None},
            "Triton's TensorRT backend runs TensorRT, not TensorRT-RTX; serve it with --platform python",
        ),
        ({"plugin": True}, "does not say the FusedAdaIN plugin is embedded"),
        ({"profile": BuildProfile(2, 8, 32)}, "rebuild with --min-batch 1"),
    ],
)
def test_engine_sets_triton_cannot_load_are_refused_in_one_line(tmp_path, changes, message):
    engine = _engine_set(tmp_path / "engines", **changes)
    done = CliRunner().invoke(app, ["triton", str(engine), "--out", str(tmp_path / "repo")])
    assert done.exit_code == 1 and isinstance(done.exception, MaskfaceError)  # cli.main prints it as one line
    assert message in str(done.exception) and "\n" not in str(done.exception) and not (tmp_path / "repo").exists()


def test_an_rtx_engine_set_can_take_the_python_flavour(tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="the python flavour of an RTX set needs its backend installed")
    engine = _engine_set(tmp_path / "engines", runtime="tensorrt-rtx", compute_capabilities=["8.6"], device=None)
    repo = tmp_path / "repo"
    write_repository(engine, repo, RepositoryOptions(platform="python"))
    generator = _parsed(repo)["maskface_generator"]
    assert generator.parameters["maskface_backend"].string_value == "tensorrt-rtx"
    assert read_sidecar(repo / "maskface_generator" / "1" / generator.parameters["maskface_model"].string_value)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--platform", "tensorrt_plan"], "--platform"),
        (["--platform", "triton"], "--platform"),
        (["--max-batch", "65"], "--max-batch"),
        (["--preferred-batch-sizes", "4,128", "--max-batch", "8"], "--preferred-batch-sizes"),
        (["--instances", "0"], "--instances"),
        (["--instance-kind", "tpu"], "--instance-kind"),
        (["--platform", "onnxruntime_onnx", "--backend", "openvino"], "--backend"),
        (["--platform", "python", "--backend", "tensorrt"], "--backend"),
        (["--max-queue-delay-us", "-1"], "--max-queue-delay-us"),
    ],
)
def test_bad_options_exit_2_naming_the_flag_before_any_write(tmp_path, args, flag):
    out = tmp_path / "repo"
    done = CliRunner().invoke(app, ["triton", str(default_model()), "--out", str(out), *args])
    assert done.exit_code == 2, done.output
    assert flag in done.output and not out.exists()


def test_an_existing_model_folder_is_never_replaced_unasked_and_other_models_stay(tmp_path):
    repo = tmp_path / "repo"
    (repo / "someone_else" / "1").mkdir(parents=True)
    write_repository(default_model(), repo, RepositoryOptions(platform="onnxruntime_onnx"))
    before = (repo / "maskface_generator" / "config.pbtxt").read_text()
    with pytest.raises(MaskfaceError, match="maskface_generator: already exists.*--overwrite"):
        write_repository(default_model(), repo, RepositoryOptions(platform="python"))
    assert (repo / "maskface_generator" / "config.pbtxt").read_text() == before
    write_repository(default_model(), repo, RepositoryOptions(platform="python", overwrite=True))
    assert 'backend: "python"' in (repo / "maskface_generator" / "config.pbtxt").read_text()
    assert not (repo / "maskface_generator" / "1" / "model.onnx").exists()  # replaced as a whole
    assert (repo / "someone_else" / "1").is_dir() and not list(repo.glob(".*"))


def test_a_write_that_fails_leaves_no_repository_and_no_temp_folder(tmp_path, monkeypatch):
    calls = []

    def failing_copy(source, target, linked):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        target.write_bytes(source.read_bytes())

    monkeypatch.setattr(repository, "_copy", failing_copy)
    with pytest.raises(OSError):
        write_repository(default_model(), tmp_path / "repo", RepositoryOptions(platform="python"))
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "repo").mkdir()
    with pytest.raises(OSError):
        calls.clear()
        write_repository(default_model(), tmp_path / "repo", RepositoryOptions(platform="python"))
    assert list((tmp_path / "repo").iterdir()) == []


def test_a_publish_that_fails_halfway_puts_the_earlier_models_back(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    write_repository(default_model(), repo, RepositoryOptions(platform="onnxruntime_onnx"))
    before = {name: (repo / name / "config.pbtxt").read_text() for name in MODELS}
    renames = []
    real_rename = repository.os.rename

    def rename(source, target):
        renames.append(target)
        if len(renames) == 5:  # the third model's move into place
            raise OSError(5, "Input/output error")
        real_rename(source, target)

    monkeypatch.setattr(repository.os, "rename", rename)
    with pytest.raises(OSError):
        write_repository(default_model(), repo, RepositoryOptions(platform="python", overwrite=True))
    monkeypatch.undo()
    assert {name: (repo / name / "config.pbtxt").read_text() for name in MODELS} == before
    assert sorted(p.name for p in repo.iterdir()) == sorted(MODELS)


def test_a_bad_model_is_one_line_exit_1(tmp_path):
    for model, message in ((tmp_path / "missing", "no such model"), (tmp_path, "not a maskface export")):
        done = CliRunner().invoke(app, ["triton", str(model), "--out", str(tmp_path / "repo")])
        assert done.exit_code == 1 and isinstance(done.exception, MaskfaceError) and message in str(done.exception)
    with pytest.raises(OptionError, match="onnxruntime_onnx needs an export folder"):
        engine = _engine_set(tmp_path / "engines")
        write_repository(engine, tmp_path / "repo", RepositoryOptions(platform="onnxruntime_onnx"))
    assert sidecar_path(engine).is_file() and not (tmp_path / "repo").exists()


def test_writing_a_repository_imports_no_torch(tmp_path):
    """maskface triton, the python backend's model and the server launcher: no torch (the deployed runtime)."""
    code = (
        "import sys\nfrom pathlib import Path\nfrom maskface_rt.cli import main\n"
        f"sys.argv = ['maskface', 'triton', {str(default_model())!r}, '--out', {str(tmp_path / 'r')!r}, "
        "'--platform', 'python']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "import maskface_rt.triton.python_model, maskface_rt.triton.server  # what runs inside Triton, and beside it\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
