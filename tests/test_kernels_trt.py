"""The TensorRT plugin maskface::FusedAdaIN (engines need TensorRT and a CUDA GPU; skipped elsewhere)."""

import importlib
import sys

import numpy as np
import pytest
from maskface_rt.kernels.reference import fused_adain_reference


def test_importing_the_plugin_without_tensorrt_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", None)
    monkeypatch.delitem(sys.modules, "maskface_rt.kernels.trt_plugin", raising=False)
    with pytest.raises(ImportError, match=r"TensorRT 10\.9 or newer .*pip install tensorrt"):
        importlib.import_module("maskface_rt.kernels.trt_plugin")


def _tensorrt():
    trt = pytest.importorskip("tensorrt", reason="needs TensorRT (pip install tensorrt)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    import maskface_rt.kernels.trt_plugin  # noqa: F401  (registers the plugin)

    return trt, torch


def _engine(trt, onnx_bytes: bytes, aot: bool, profile: dict | None = None):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = trt.NetworkDefinitionCreationFlag
    bits = 1 << int(flags.PREFER_AOT_PYTHON_PLUGINS if aot else flags.PREFER_JIT_PYTHON_PLUGINS)
    if hasattr(flags, "STRONGLY_TYPED"):  # TensorRT 10; 11 is strongly typed only
        bits |= 1 << int(flags.STRONGLY_TYPED)
    network = builder.create_network(bits)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_bytes), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    if profile:
        shapes = builder.create_optimization_profile()
        for name, (low, opt, high) in profile.items():
            shapes.set_shape(name, low, opt, high)
        config.add_optimization_profile(shapes)
    blob = builder.build_serialized_network(network, config)
    assert blob is not None, "engine build failed"
    return trt.Runtime(logger).deserialize_cuda_engine(blob)


def _run(trt, torch, engine, inputs: dict) -> dict:
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    outputs = {}
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            context.set_input_shape(name, tuple(inputs[name].shape))
            context.set_tensor_address(name, inputs[name].data_ptr())
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            dtype = torch.from_numpy(np.empty(0, trt.nptype(engine.get_tensor_dtype(name)))).dtype
            outputs[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            context.set_tensor_address(name, outputs[name].data_ptr())
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())  # the inputs were copied on torch's stream: wait for them
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    return outputs


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("aot", [True, False], ids=["aot", "jit"])
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
@pytest.mark.parametrize("shape", [(2, 8, 16, 16), (1, 3, 300, 301)])
def test_plugin_engine_matches_the_reference(aot, dtype, shape):
    trt, torch = _tensorrt()
    from maskface_rt.kernels.onnx_op import single_node_model
    from onnx import TensorProto

    elem, np_dtype = {"fp32": (TensorProto.FLOAT, np.float32), "fp16": (TensorProto.FLOAT16, np.float16)}[dtype]
    engine = _engine(trt, single_node_model(elem).SerializeToString(), aot)
    rng = np.random.default_rng(0)
    feeds = {
        "x": (rng.standard_normal(shape) * 2 + 1).astype(np_dtype),
        "gamma": (rng.standard_normal(shape[:2]) * 0.5).astype(np_dtype),
        "beta": (rng.standard_normal(shape[:2]) * 0.5).astype(np_dtype),
    }
    y = _run(trt, torch, engine, {k: torch.from_numpy(v).cuda() for k, v in feeds.items()})["y"].cpu().numpy()
    ref = fused_adain_reference(
        feeds["x"], feeds["gamma"], feeds["beta"], float(np.float32(1e-5)), float(np.float32(0.2)), np.float64
    )
    atol, rtol = {"fp32": (1e-5, 1e-5), "fp16": (1e-3, 2.0**-10)}[dtype]
    assert np.all(np.abs(y.astype(np.float64) - ref) <= atol + rtol * np.abs(ref))


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_plugin_generator_engine_matches_onnxruntime(tiny_model, tiny_export, tmp_path):
    trt, torch = _tensorrt()
    from maskface_rt.export.onnx_export import export_onnx

    from maskface_rt.backends import open_backend

    out = export_onnx(tiny_model, tmp_path / "plugin", plugin=True, max_batch=4).out
    engine = _engine(
        trt,
        (out / "generator.onnx").read_bytes(),
        aot=True,
        profile={"labels": ((1, 64, 64), (2, 64, 64), (4, 64, 64)), "style": ((1, 32), (2, 32), (4, 32))},
    )
    labels = np.random.default_rng(1).integers(0, 19, (2, 64, 64), dtype=np.uint8)
    with open_backend(tiny_export, "onnxruntime") as ort:
        styles = ort.styles_for_seed(0, 2)
        want = ort.generate(labels, styles)
    got = (
        _run(trt, torch, engine, {"labels": torch.from_numpy(labels).cuda(), "style": torch.from_numpy(styles).cuda()})[
            "image"
        ]
        .cpu()
        .numpy()
    )
    assert got.shape == want.shape and np.abs(got.astype(np.int16) - want).max() <= 1
