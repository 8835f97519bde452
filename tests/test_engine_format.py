"""Engine files without TensorRT: layout, profile, cache key, sidecar round trip, compatibility, batch planning."""

import dataclasses
import json

import numpy as np
import pytest

from maskface_rt.backends.trt.compat import RUNTIMES
from maskface_rt.backends.trt.engine_file import (
    ENGINE_FORMAT,
    EngineSidecar,
    TensorInfo,
    cache_key,
    check_compatible,
    check_engine_io,
    engine_files,
    layer_info_path,
    parse_version,
    read_sidecar,
    sidecar_path,
    verify_engine_files,
    write_sidecar,
)
from maskface_rt.backends.trt.profile import BuildProfile, plan_batches, profile_shapes
from maskface_rt.config import preset
from maskface_rt.cuda.device import DeviceInfo
from maskface_rt.errors import MaskfaceError, OptionError
from maskface_rt.export_format import sha256_file
from maskface_rt.graph_contract import tensor_shape

H100 = DeviceInfo("NVIDIA H100 80GB HBM3", "9.0")
CONFIG = preset("tiny-64")


def test_engine_set_layout(tmp_path):
    files = engine_files(tmp_path / "faces.engine")
    assert files == {
        "generator": tmp_path / "faces.engine",
        "style_encoder": tmp_path / "faces.style_encoder.engine",
        "style_decoder": tmp_path / "faces.style_decoder.engine",
    }
    assert engine_files("a/model.plan")["style_decoder"].name == "model.style_decoder.plan"
    assert sidecar_path(tmp_path / "faces.engine") == tmp_path / "faces.engine.json"
    assert layer_info_path(tmp_path / "faces.engine") == tmp_path / "faces.engine.layers.json"
    with pytest.raises(MaskfaceError, match=r"must end in \.engine or \.plan \(e\.g\. faces\.engine\)"):
        engine_files(tmp_path / "faces.trt")


def test_versions():
    assert parse_version("10.9.0.34") == (10, 9, 0, 34)
    assert parse_version("11.1.0") == (11, 1, 0)
    assert parse_version("10.13.0.post1") == (10, 13, 0)
    RUNTIMES["tensorrt"].check_version("10.9.0.34")
    RUNTIMES["tensorrt"].check_version("11.4.0")
    with pytest.raises(
        MaskfaceError,
        match=r"TensorRT 10\.8\.0\.43 is too old; .* 10\.9 or newer: pip install "
        r"'maskface-rt\[tensorrt\]'",
    ):
        RUNTIMES["tensorrt"].check_version("10.8.0.43")
    RUNTIMES["tensorrt-rtx"].check_version("1.7.1.116")  # TensorRT-RTX numbers its releases 1.x
    with pytest.raises(ValueError):
        parse_version("abc")


def test_device_info():
    assert H100.capability == (9, 0)
    assert str(H100) == "NVIDIA H100 80GB HBM3 (compute capability 9.0)"
    assert DeviceInfo.from_dict(H100.to_dict()) == H100
    with pytest.raises(ValueError, match="compute capability"):
        DeviceInfo("x", "sm_90")


@pytest.mark.parametrize(
    ("args", "limit", "expected"),
    [
        ((1, None, None), 16, (1, 8, 16)),  # max defaults to the export's max batch when below 32
        ((1, None, None), 64, (1, 8, 32)),
        ((1, None, None), None, (1, 8, 32)),
        ((1, None, 4), 16, (1, 4, 4)),  # opt follows a small max
        ((12, None, None), 64, (12, 12, 32)),  # opt follows a large min
        ((40, None, None), 64, (40, 40, 40)),  # max follows a large min
        ((2, 3, 5), 8, (2, 3, 5)),
    ],
)
def test_profile_defaults(args, limit, expected):
    profile = BuildProfile.resolve(*args, limit=limit)
    assert (profile.min, profile.opt, profile.max) == expected
    assert BuildProfile.from_dict(profile.to_dict()) == profile


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, None, None), r"^min_batch: 0 is invalid; valid: 1 or more"),
        ((1, 9, 8), r"^opt_batch: 9 is outside the min\.\.max batch; valid: 1\.\.8"),
        ((4, None, 2), r"^max_batch: 2 is below the min batch 4; valid: 4 or more"),
        ((1, 2, 3), None),
        (
            (1, None, 17),
            r"^max_batch: 17 is above the export's largest batch 16 .* valid: 1\.\.16, or re-export with "
            r"'maskface export MODEL --out DIR --max-batch 17'",
        ),
        ((20, None, None), r"^min_batch: 20 is above the export's largest batch 16"),
    ],
)
def test_profile_validation_says_what_is_valid(args, message):
    if message is None:
        BuildProfile.resolve(*args, limit=16)
        return
    with pytest.raises(OptionError, match=message):  # named as the library names it: the CLI shows the flag
        BuildProfile.resolve(*args, limit=16)


def test_profile_shapes_per_graph():
    profile = BuildProfile(1, 4, 8)
    assert profile_shapes("generator", CONFIG, profile) == {
        "labels": ((1, 64, 64), (4, 64, 64), (8, 64, 64)),
        "style": ((1, 32), (4, 32), (8, 32)),
    }
    assert profile_shapes("style_encoder", CONFIG, profile) == {"latent": ((1, 16), (4, 16), (8, 16))}
    assert profile_shapes("style_decoder", CONFIG, profile) == {
        "image": ((1, 64, 64, 3), (4, 64, 64, 3), (8, 64, 64, 3))
    }
    assert tensor_shape("image", CONFIG, 5) == (5, 64, 64, 3)


@pytest.mark.parametrize(
    ("count", "profile", "expected"),
    [
        (0, (1, 8, 8), []),
        (5, (1, 4, 8), [(0, 5, 5)]),
        (20, (1, 8, 8), [(0, 8, 8), (8, 16, 8), (16, 20, 4)]),
        (2, (4, 4, 8), [(0, 2, 4)]),  # below min: padded
        (10, (4, 4, 4), [(0, 4, 4), (4, 8, 4), (8, 10, 4)]),  # split, last one padded
        (9, (3, 3, 3), [(0, 3, 3), (3, 6, 3), (6, 9, 3)]),
    ],
)
def test_batch_plan_splits_above_max_and_pads_below_min(count, profile, expected):
    profile = BuildProfile(*profile)
    chunks = plan_batches(count, profile)
    assert [(c.start, c.stop, c.run_batch) for c in chunks] == expected
    assert sum(c.rows for c in chunks) == count
    for chunk in chunks:
        assert profile.min <= chunk.run_batch <= profile.max and chunk.padding == chunk.run_batch - chunk.rows


def test_batch_plan_covers_every_count():
    profile = BuildProfile(2, 4, 5)
    for count in range(0, 40):
        chunks = plan_batches(count, profile)
        assert [c.start for c in chunks] == list(range(0, count, 5))
        assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))
        assert (chunks[-1].stop if chunks else 0) == count
        assert all(2 <= c.run_batch <= 5 for c in chunks)
    with pytest.raises(ValueError):
        plan_batches(-1, profile)


KEY_ARGS = dict(
    onnx_sha256={"generator": "a" * 64, "style_encoder": "b" * 64, "style_decoder": "c" * 64},
    tensorrt_version="10.9.0.34",
    device=H100,
    profile=BuildProfile(1, 8, 32),
    plugin=True,
    workspace_mib=None,
    optimization_level=3,
    package_version="0.1.0",
)


def test_cache_key_is_stable_and_covers_every_input():
    key = cache_key(**KEY_ARGS)
    assert len(key) == 64 and key == cache_key(**KEY_ARGS)
    reordered = {**KEY_ARGS, "onnx_sha256": dict(reversed(list(KEY_ARGS["onnx_sha256"].items())))}
    assert cache_key(**reordered) == key
    changes = {
        "onnx_sha256": {**KEY_ARGS["onnx_sha256"], "style_decoder": "d" * 64},
        "tensorrt_version": "10.9.0.35",
        "device": DeviceInfo("NVIDIA H200", "9.0"),
        "profile": BuildProfile(1, 8, 16),
        "plugin": False,
        "workspace_mib": 4096,
        "optimization_level": 5,
        "package_version": "0.2.0",
        "runtime": "tensorrt-rtx",
        "compute_capabilities": ("8.6",),
    }
    keys = {name: cache_key(**{**KEY_ARGS, name: value}) for name, value in changes.items()}
    assert key not in keys.values() and len(set(keys.values())) == len(changes)
    assert cache_key(**{**KEY_ARGS, "device": DeviceInfo(H100.name, "8.0")}) != key
    assert cache_key(**{**KEY_ARGS, "device": None}) not in (key, *keys.values())  # TensorRT-RTX without a GPU


def _sidecar(tmp_path, **changes):
    """A sidecar with three real engine files (arbitrary bytes) beside ENGINE."""
    files = engine_files(tmp_path / "faces.engine")
    engines = {}
    for graph, path in files.items():
        path.write_bytes(graph.encode() * 100)
        engines[graph] = {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    fields = dict(
        tensorrt_version="10.9.0.34",
        device=H100,
        onnx_sha256=KEY_ARGS["onnx_sha256"],
        profile=BuildProfile(1, 8, 16),
        plugin=True,
        precision="fp16",
        build_seconds=12.5,
        model={
            "format": "maskface-onnx/1",
            "config": CONFIG.to_dict(),
            "label_order": "celebamask",
            "precision": "fp16",
            "plugin": True,
            "source_sha256": "e" * 64,
        },
        engines=engines,
        cache_key=cache_key(**KEY_ARGS),
        package_version="0.1.0",
        onnx_source="/runs/demo/onnx-plugin-fp16",
        options={"workspace_mib": None, "optimization_level": 3, "timing_cache": None},
        parity={"results": [{"graph": "generator", "metric": "psnr_db", "value": "inf"}]},
    )
    fields.update(changes)
    return tmp_path / "faces.engine", EngineSidecar(**fields)


def test_sidecar_round_trip(tmp_path):
    engine, sidecar = _sidecar(tmp_path)
    path = write_sidecar(engine, sidecar)
    assert path == tmp_path / "faces.engine.json"
    data = json.loads(path.read_text())
    assert data["format"] == ENGINE_FORMAT
    assert data["device"] == {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    assert data["profile"] == {"min": 1, "opt": 8, "max": 16} and data["plugin"] is True
    assert {"tensorrt_version", "onnx_sha256", "build_seconds", "model", "engines", "cache_key"} <= set(data)
    back = read_sidecar(engine)
    assert back == sidecar
    data.pop("plugin_implementation")  # a sidecar from before it was recorded reads as not recorded
    sidecar_path(engine).write_text(json.dumps(data))
    assert read_sidecar(engine).plugin_implementation == ""
    aot = write_sidecar(engine, _sidecar(tmp_path, plugin_implementation="aot")[1])
    assert json.loads(aot.read_text())["plugin_implementation"] == "aot"
    assert back.config == CONFIG
    assert verify_engine_files(engine, back) == engine_files(engine)
    # the engine file itself stays raw: the sidecar is the only metadata
    assert engine.read_bytes() == b"generator" * 100


def test_sidecar_refusals(tmp_path):
    engine, sidecar = _sidecar(tmp_path)
    with pytest.raises(
        MaskfaceError,
        match=r"has no sidecar faces\.engine\.json: .* 'maskface build EXPORT --out "
        r"ENGINE'",
    ):
        read_sidecar(engine)
    path = sidecar_path(engine)
    path.write_text("{not json")
    with pytest.raises(MaskfaceError, match="unreadable sidecar"):
        read_sidecar(engine)
    path.write_text(json.dumps({**sidecar.to_dict(), "format": "other/1"}))
    with pytest.raises(MaskfaceError, match=r"not a maskface-engine/1 sidecar \(format is 'other/1'\)"):
        read_sidecar(engine)
    incomplete = sidecar.to_dict()
    del incomplete["profile"]
    path.write_text(json.dumps(incomplete))
    with pytest.raises(MaskfaceError, match=r"incomplete or invalid sidecar \(missing profile\)"):
        read_sidecar(engine)
    bad_profile = {**sidecar.to_dict(), "profile": {"min": 4, "opt": 2, "max": 8}}
    path.write_text(json.dumps(bad_profile))
    with pytest.raises(MaskfaceError, match="incomplete or invalid sidecar"):
        read_sidecar(engine)
    no_decoder = sidecar.to_dict()
    del no_decoder["engines"]["style_decoder"]
    path.write_text(json.dumps(no_decoder))
    with pytest.raises(MaskfaceError, match="engines must be .* for each of generator, style_encoder, style_decoder"):
        read_sidecar(engine)


def _engines(edit):
    return lambda d: {**d, "engines": {**d["engines"], "generator": edit(d["engines"]["generator"])}}


#: Sidecar fields of the right name but a type or value no 'maskface build' writes; each reached the runtime (a
#: negative batch profile, a string that bool() takes as true, a path where a file name belongs) before.
BAD_SIDECARS = {
    "profile-negative": lambda d: {**d, "profile": {"min": -5, "opt": -5, "max": -5}},
    "profile-string": lambda d: {**d, "profile": {"min": 1, "opt": "8", "max": 16}},
    "profile-float": lambda d: {**d, "profile": {"min": 1, "opt": 8, "max": 16.0}},
    "profile-huge": lambda d: {**d, "profile": {"min": 1, "opt": 8, "max": 10**9}},
    "plugin-string": lambda d: {**d, "plugin": "false"},
    "plugin-implementation-jit": lambda d: {**d, "plugin_implementation": "jit"},
    "precision-int8": lambda d: {**d, "precision": "int8"},
    "build-seconds-nan": lambda d: {**d, "build_seconds": float("nan")},
    "build-seconds-string": lambda d: {**d, "build_seconds": "12"},
    "runtime-number": lambda d: {**d, "runtime": 11},
    "version-number": lambda d: {**d, "tensorrt_version": 10.9},
    "capability-bad": lambda d: {**d, "compute_capabilities": ["sm_86"]},
    "device-list": lambda d: {**d, "device": ["H100", "9.0"]},
    "device-capability-number": lambda d: {**d, "device": {"name": "H100", "compute_capability": 9.0}},
    "onnx-sha-short": lambda d: {**d, "onnx_sha256": {**d["onnx_sha256"], "generator": "abc"}},
    "engine-file-path": _engines(lambda e: {**e, "file": "../faces.engine"}),
    "engine-bytes-negative": _engines(lambda e: {**e, "bytes": -1}),
    "engine-sha-number": _engines(lambda e: {**e, "sha256": 1}),
    "engines-list": lambda d: {**d, "engines": ["faces.engine"]},
    "cache-key-number": lambda d: {**d, "cache_key": 7},
    "options-list": lambda d: {**d, "options": []},
    "model-no-config": lambda d: {**d, "model": {"label_order": "celebamask"}},
    "model-num-classes-3": lambda d: {
        **d,
        "model": {**d["model"], "config": {**d["model"]["config"], "num_classes": 3}},
    },
    "model-eps-nan": lambda d: {**d, "model": {**d["model"], "config": {**d["model"]["config"], "eps": float("nan")}}},
}


@pytest.mark.parametrize("case", sorted(BAD_SIDECARS))
def test_a_sidecar_field_of_the_wrong_type_or_range_is_refused_by_name(tmp_path, case):
    engine, sidecar = _sidecar(tmp_path)
    data = BAD_SIDECARS[case](sidecar.to_dict())
    sidecar_path(engine).write_text(json.dumps(data))
    with pytest.raises(MaskfaceError, match=r"incomplete or invalid sidecar \(.*must be") as refused:
        read_sidecar(engine)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 400


def test_engine_files_are_checked_against_the_sidecar(tmp_path):
    engine, sidecar = _sidecar(tmp_path)
    (tmp_path / "faces.style_encoder.engine").write_bytes(b"changed")
    with pytest.raises(MaskfaceError, match="sha256 does not match the sidecar"):
        verify_engine_files(engine, sidecar)
    (tmp_path / "faces.style_encoder.engine").unlink()
    with pytest.raises(MaskfaceError, match="missing: the style_encoder engine of faces.engine"):
        verify_engine_files(engine, sidecar)
    renamed = dataclasses.replace(
        sidecar, engines={**sidecar.engines, "style_encoder": {"file": "other.engine", "sha256": "x"}}
    )
    with pytest.raises(MaskfaceError, match="renamed"):
        verify_engine_files(engine, renamed)


def test_compatibility_check(tmp_path):
    engine, sidecar = _sidecar(tmp_path)
    check_compatible(engine, sidecar, "10.9.0.34", H100)
    with pytest.raises(
        MaskfaceError,
        match=r"built with TensorRT 10\.9\.0\.34, this is TensorRT 10\.13\.0\.35: .* "
        r"rebuild it here: maskface build /runs/demo/onnx-plugin-fp16 --out ",
    ):
        check_compatible(engine, sidecar, "10.13.0.35", H100)
    with pytest.raises(
        MaskfaceError,
        match=r"built for NVIDIA H100 80GB HBM3 \(compute capability 9\.0\), this GPU "
        r"is NVIDIA A100-SXM4-80GB \(compute capability 8\.0\)",
    ):
        check_compatible(engine, sidecar, "10.9.0.34", DeviceInfo("NVIDIA A100-SXM4-80GB", "8.0"))
    with pytest.raises(MaskfaceError, match="specific to the GPU model"):  # same capability, other model
        check_compatible(engine, sidecar, "10.9.0.34", DeviceInfo("NVIDIA H100 PCIe", "9.0"))


def _io(**changes):
    tensors = {
        "labels": TensorInfo("labels", True, np.dtype(np.uint8), (-1, 64, 64)),
        "style": TensorInfo("style", True, np.dtype(np.float32), (-1, 32)),
        "image": TensorInfo("image", False, np.dtype(np.uint8), (-1, 64, 64, 3)),
    }
    tensors.update(changes)
    return [t for t in tensors.values() if t is not None]


def test_engine_io_check():
    check_engine_io("generator", _io(), CONFIG, "g.engine")
    with pytest.raises(MaskfaceError, match=r"'labels' is float32, expected uint8"):
        check_engine_io(
            "generator", _io(labels=TensorInfo("labels", True, np.dtype(np.float32), (-1, 64, 64))), CONFIG, "g.engine"
        )
    with pytest.raises(MaskfaceError, match=r"'image' has shape \[-1, 128, 128, 3\], expected \['B', 64, 64, 3\]"):
        check_engine_io(
            "generator",
            _io(image=TensorInfo("image", False, np.dtype(np.uint8), (-1, 128, 128, 3))),
            CONFIG,
            "g.engine",
        )
    with pytest.raises(MaskfaceError, match=r"engine tensors are \['image', 'labels'\], expected"):
        check_engine_io("generator", _io(style=None), CONFIG, "g.engine")
    with pytest.raises(MaskfaceError, match="'style' is an output"):
        check_engine_io(
            "generator", _io(style=TensorInfo("style", False, np.dtype(np.float32), (-1, 32))), CONFIG, "g.engine"
        )
    check_engine_io(
        "style_encoder",
        [
            TensorInfo("latent", True, np.dtype(np.float32), (-1, 16)),
            TensorInfo("style", False, np.dtype(np.float32), (-1, 32)),
        ],
        CONFIG,
        "f.engine",
    )


def test_compatibility_of_tensorrt_rtx_engines(tmp_path):
    engine, sidecar = _sidecar(
        tmp_path, runtime="tensorrt-rtx", tensorrt_version="1.7.1.116", device=None, compute_capabilities=["8.6", "8.9"]
    )
    write_sidecar(engine, sidecar)
    assert read_sidecar(engine) == sidecar  # device None and the targets survive the round trip
    rtx_4090 = DeviceInfo("NVIDIA GeForce RTX 4090", "8.9")
    check_compatible(engine, sidecar, "1.7.1.116", rtx_4090, runtime="tensorrt-rtx")
    with pytest.raises(
        MaskfaceError,
        match=r"was built with tensorrt-rtx, not tensorrt: open it with --backend "
        r"tensorrt-rtx",
    ):
        check_compatible(engine, sidecar, "10.9.0.34", rtx_4090)
    with pytest.raises(
        MaskfaceError,
        match=r"was built for compute capabilities 8\.6, 8\.9, this GPU is NVIDIA H100 "
        r".*--compute-capability 9\.0",
    ):
        check_compatible(engine, sidecar, "1.7.1.116", H100, runtime="tensorrt-rtx")
    assert "for compute capabilities 8.6, 8.9, built without a GPU" in sidecar.built_with
