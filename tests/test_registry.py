"""The one homes of devices (maskface_rt.devices), model kinds (model_kind) and backends (backends.registry)."""

import importlib
import subprocess
import sys

import pytest

from maskface_rt.backends import BACKENDS, ENGINE_BACKENDS, REGISTRY, resolve_backend_name
from maskface_rt.backends.registry import AUTO_CHOICE, BACKEND_HELP
from maskface_rt.bundled import BUNDLED_MODEL
from maskface_rt.devices import (
    DEVICE_SPELLINGS,
    Device,
    DeviceError,
    backend_device,
    cuda_index,
    device_kinds,
    parse_device,
    spelling_for,
)
from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import MANIFEST
from maskface_rt.model_kind import ModelKind, classify, export_folder_of, model_kind


@pytest.mark.parametrize(
    ("text", "device"),
    [("auto", Device("auto")), ("cpu", Device("cpu")), ("cuda", Device("cuda")), ("cuda:3", Device("cuda", 3))],
)
def test_parse_device_accepts_the_four_spellings(text, device):
    assert parse_device(text) == device and str(device) == text


@pytest.mark.parametrize("text", ["gpu", "CUDA", "cuda:", "cuda:-1", "cuda:1x", " cpu", "mps", ""])
def test_parse_device_refuses_anything_else_with_a_value_error(text):
    with pytest.raises(ValueError) as caught:
        parse_device(text)
    assert str(caught.value) == f"unknown device {text!r}; valid: auto, cpu, cuda, cuda:N"
    assert isinstance(caught.value, MaskfaceError)


def test_a_backends_spellings_say_which_kinds_of_device_it_runs_on_and_how_it_is_given_one():
    assert device_kinds(REGISTRY["onnxruntime"].devices) == {"cpu", "cuda"}
    assert device_kinds(REGISTRY["openvino"].devices) == {"cpu"} and device_kinds(("auto",)) == set()
    assert device_kinds(REGISTRY["tensorrt"].devices) == {"cuda"}
    onnxruntime, tensorrt = REGISTRY["onnxruntime"].devices, REGISTRY["tensorrt"].devices
    assert (
        spelling_for(Device("cuda", 0), onnxruntime) == "cuda" and spelling_for(Device("cuda", 1), onnxruntime) is None
    )
    assert spelling_for(Device("cuda", 1), tensorrt) == "cuda:1" and spelling_for(Device("cpu"), tensorrt) is None
    assert spelling_for(Device("cpu"), onnxruntime) == "cpu" and spelling_for(Device("cuda"), onnxruntime) == "cuda"


def test_backend_device_names_the_backend_and_what_it_takes():
    assert backend_device("cuda:2", "torch", DEVICE_SPELLINGS) == Device("cuda", 2)
    with pytest.raises(
        DeviceError,
        match=r"^the openvino backend runs on the CPU only; --device cuda:1 is not valid "
        r"with it \(valid: auto, cpu\)$",
    ):
        backend_device("cuda:1", "openvino", REGISTRY["openvino"].devices)
    with pytest.raises(
        DeviceError,
        match=r"^the onnxruntime backend takes --device cuda, not a numbered GPU \(cuda:1\); choose the GPU with "
        r"CUDA_VISIBLE_DEVICES=1 \(valid: auto, cpu, cuda\)$",
    ):
        backend_device("cuda:1", "onnxruntime", REGISTRY["onnxruntime"].devices)
    with pytest.raises(DeviceError, match="^the tensorrt-rtx backend runs on a CUDA GPU"):
        cuda_index("cpu", "tensorrt-rtx")
    assert cuda_index("cuda:5", "tensorrt-rtx") == 5


def test_model_kind_of_each_path(tmp_path):
    folder = BUNDLED_MODEL
    assert classify(folder) is ModelKind.ONNX_EXPORT and model_kind(folder) is ModelKind.ONNX_EXPORT
    graph = next(folder.glob("*.onnx"))
    assert model_kind(graph) is ModelKind.ONNX_EXPORT and export_folder_of(graph) == folder
    lone = tmp_path / "g.onnx"
    lone.write_bytes(b"")
    assert classify(lone) is ModelKind.ONNX_GRAPH
    with pytest.raises(MaskfaceError, match="unknown model type"):
        model_kind(lone)  # maskface info describes it; no backend runs it
    for name, kind in (
        ("m.safetensors", ModelKind.CHECKPOINT),
        ("g.engine", ModelKind.ENGINE),
        ("g.plan", ModelKind.ENGINE),
    ):
        (tmp_path / name).write_bytes(b"")
        assert model_kind(tmp_path / name) is kind
    with pytest.raises(MaskfaceError, match=f"is a folder without {MANIFEST}"):
        model_kind(tmp_path)
    with pytest.raises(MaskfaceError, match="no such model file or folder"):
        model_kind(tmp_path / "missing.safetensors")


def test_the_registry_is_the_one_table():
    assert BACKENDS == ("auto", "onnxruntime", "openvino", "torch", "tensorrt", "tensorrt-rtx")
    assert ENGINE_BACKENDS == ("tensorrt", "tensorrt-rtx")
    assert set(AUTO_CHOICE) == {ModelKind.CHECKPOINT, ModelKind.ONNX_EXPORT, ModelKind.ENGINE}
    assert all(name in BACKEND_HELP for name in BACKENDS)
    for name, spec in REGISTRY.items():
        module = importlib.import_module(spec.module)
        # The engine runtimes share one class, whose instance is named once by the runtime it is opened with (the
        # class has no name to overwrite); every other class is its row's.
        cls = getattr(module, spec.cls)
        assert (getattr(cls, "name", None) is None) if spec.kind is ModelKind.ENGINE else cls.name == name
        assert set(spec.devices) <= set(DEVICE_SPELLINGS) and "auto" in spec.devices
        ok, detail = spec.available()
        assert isinstance(ok, bool) and detail
    assert [n for n, s in REGISTRY.items() if s.takes_precision] == ["openvino"]


def test_resolve_backend_name_reads_the_table():
    assert resolve_backend_name(ModelKind.CHECKPOINT, "auto") == "torch"
    with pytest.raises(MaskfaceError, match="^unknown backend 'ort'; valid: auto, onnxruntime"):
        resolve_backend_name(ModelKind.ONNX_EXPORT, "ort")
    with pytest.raises(MaskfaceError, match="^backend openvino cannot run a engine; export it first"):
        resolve_backend_name(ModelKind.ENGINE, "openvino")


def test_reading_the_registry_and_devices_imports_no_runtime_and_no_backend_it_describes():
    code = (
        "import sys, maskface_rt.backends.registry, maskface_rt.devices, maskface_rt.model_kind; "
        "from maskface_rt.backends.registry import REGISTRY; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'tensorrt_rtx') if m in sys.modules)); "
        "print(sorted({s.module for s in REGISTRY.values()} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split("\n")[:2] == ["[]", "[]"], done.stdout + done.stderr
