"""The tensorrt backend without TensorRT: graph policy, device choice, clear errors, and EngineRunner's glue.

TensorRT and a GPU are not available where these run. ``EngineRunner`` (split/pad, buffers, one
context per batch size, CUDA graph capture and replay, fallback) is exercised with TensorRT's engine
and CUDA replaced by an ONNX Runtime executor over host memory (``_HostDevice``, ``_OrtEngine``);
the runner itself is the real code. Tests with a real engine are in test_engine_builder.py (tensorrt).
"""

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from maskface_rt.backends import open_backend
from maskface_rt.backends.trt.profile import BuildProfile
from maskface_rt.backends.trt.runner import CudaGraphPolicy, EngineRunner, GraphStep, TensorRTBackend
from maskface_rt.cuda.device import (
    CUDA_PYTHON,
    TORCH,
    CudaDevice,
    DeviceInfo,
    HostDeviceBuffer,
    cuda_implementation,
    open_cuda_device,
)
from maskface_rt.devices import cuda_index
from maskface_rt.errors import MaskfaceError
from maskface_rt.graph_contract import GRAPH_IO, tensor_shape


def test_graph_policy_warms_up_captures_once_then_replays():
    policy = CudaGraphPolicy(enabled=True)
    assert policy.step(8) is GraphStep.WARM_UP_AND_CAPTURE
    policy.record(8, captured=True)
    assert [policy.step(8) for _ in range(3)] == [GraphStep.REPLAY] * 3
    assert policy.step(3) is GraphStep.WARM_UP_AND_CAPTURE  # one graph per batch size
    policy.record(3, captured=False)
    assert [policy.step(3) for _ in range(3)] == [GraphStep.PLAIN] * 3  # a failed capture is not retried
    assert policy.captured == {8} and policy.failed == {3}
    off = CudaGraphPolicy(enabled=False)
    assert [off.step(8) for _ in range(2)] == [GraphStep.PLAIN] * 2


def test_device_names():
    assert cuda_index("auto") == 0 and cuda_index("cuda") == 0 and cuda_index("cuda:3") == 3
    with pytest.raises(
        MaskfaceError, match="runs on a CUDA GPU; for the CPU use an export folder with --backend onnxruntime"
    ):
        cuda_index("cpu")
    with pytest.raises(MaskfaceError, match="valid: auto, cuda, cuda:N"):
        cuda_index("gpu0")


def test_cuda_implementation_choice():
    assert cuda_implementation(torch_with_cuda=True, cuda_python=True) == TORCH
    assert cuda_implementation(torch_with_cuda=False, cuda_python=True) == CUDA_PYTHON
    assert cuda_implementation(torch_with_cuda=True, cuda_python=False) == TORCH
    assert cuda_implementation(torch_with_cuda=False, cuda_python=False) is None
    with pytest.raises(MaskfaceError, match="unknown CUDA implementation 'opencl'; valid: cuda-python, torch"):
        open_cuda_device(0, "opencl")


def _no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt raises ImportError


def test_open_backend_without_tensorrt_says_how_to_install(tmp_path, monkeypatch):
    _no_tensorrt(monkeypatch)
    engine = tmp_path / "faces.engine"
    engine.write_bytes(b"plan")
    for backend in ("tensorrt", "auto"):
        with pytest.raises(
            MaskfaceError,
            match=r"the tensorrt backend cannot run here: TensorRT is not installed "
            r"here .*pip install 'maskface-rt\[tensorrt\]'",
        ):
            open_backend(engine, backend)


def test_engine_without_sidecar_or_on_the_cpu_is_refused(tmp_path, monkeypatch):
    _no_tensorrt(monkeypatch)
    engine = tmp_path / "faces.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(MaskfaceError, match=r"faces\.engine: has no sidecar faces\.engine\.json"):
        TensorRTBackend(engine)
    with pytest.raises(MaskfaceError, match="runs on a CUDA GPU"):
        TensorRTBackend(engine, device="cpu")


def test_tensorrt_runtime_path_never_imports_torch(tmp_path):
    engine = tmp_path / "faces.engine"
    engine.write_bytes(b"plan")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch fails
        sys.modules["tensorrt"] = None
        from maskface_rt.backends import open_backend
        from maskface_rt.backends.trt import runner as tensorrt_backend
        from maskface_rt.cuda import device as cuda_device
        from maskface_rt.backends.trt import compat as tensorrt_compat
        from maskface_rt.backends.trt import engine_file as engine_format
        from maskface_rt.errors import MaskfaceError
        import maskface_rt.cli.build, maskface_rt.export.engine_builder, maskface_rt.export.fp32_reference
        try:
            open_backend({str(engine)!r}, "tensorrt")
        except MaskfaceError as e:
            print(e)
        print(cuda_device.available()[0] in (True, False))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install 'maskface-rt[tensorrt]'" in done.stdout


# ----------------------------------------------------------------------------- EngineRunner on a host executor


class _HostBuffer(HostDeviceBuffer):
    def __init__(self, device, shape, dtype):
        self.device = device
        self.host = np.zeros(shape, dtype)
        self.device_ptr = device.alloc(self.host.nbytes)

    def upload(self, nbytes):
        self.device.memory[self.device_ptr][:nbytes] = self.host.reshape(-1).view(np.uint8)[:nbytes]

    def download(self, nbytes):
        self.host.reshape(-1).view(np.uint8)[:nbytes] = self.device.memory[self.device_ptr][:nbytes]


class _HostDevice(CudaDevice):
    """CUDA on the host: pointers index numpy byte arrays, work runs at once, a 'graph' records the enqueues
    made during capture (which, as in CUDA, do not run until replayed)."""

    kind = "host"
    info = DeviceInfo("host", "0.0")
    stream_handle = 7

    def __init__(self, fail_capture=False):
        self.memory, self.fail_capture = {}, fail_capture
        self.recording = None
        self.replays = 0

    def alloc(self, nbytes):
        pointer = 256 * (len(self.memory) + 1)
        self.memory[pointer] = np.zeros(max(1, nbytes), np.uint8)
        return pointer

    def buffer(self, shape, dtype):
        return _HostBuffer(self, shape, dtype)

    def scratch(self, nbytes):
        return self.alloc(nbytes)

    def synchronize(self):
        pass

    def capture(self, enqueue):
        self.recording = []
        try:
            ok = enqueue()
        finally:
            graph, self.recording = self.recording, None
        return None if (not ok or self.fail_capture) else graph

    def replay(self, graph):
        self.replays += 1
        for op in graph:
            op()

    def close(self):
        self.memory.clear()


class _OrtContext:
    def __init__(self, engine):
        self.engine, self.shapes, self.addresses, self.scratch, self.runs = engine, {}, {}, None, 0

    def set_device_memory(self, pointer, size):
        self.scratch = (pointer, size)

    def set_input_shape(self, name, shape):
        low, _, high = self.engine.get_tensor_profile_shape(name, 0)
        if name in self.shapes or not low[0] <= shape[0] <= high[0]:
            return False  # the runner must set each context's shapes once, within the profile
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name, pointer):
        self.addresses[name] = pointer

    def get_tensor_shape(self, name):
        batch = next(iter(self.shapes.values()))[0]
        return tensor_shape(name, self.engine.config, batch)

    def _run(self, shapes, addresses):
        self.runs += 1
        memory = self.engine.device.memory
        feeds = {}
        for name in self.engine.inputs:
            dtype = np.dtype(self.engine.dtypes[name])
            count = int(np.prod(shapes[name])) * dtype.itemsize
            feeds[name] = memory[addresses[name]][:count].view(dtype).reshape(shapes[name])
        (out,) = self.engine.session.run([self.engine.output], feeds)
        memory[addresses[self.engine.output]][: out.nbytes] = out.reshape(-1).view(np.uint8)

    def execute_async_v3(self, stream_handle):
        assert stream_handle == _HostDevice.stream_handle
        # As in CUDA, a captured launch keeps the shapes and buffer addresses it was captured with: a replay
        # reads and writes those buffers, whatever was set on the context afterwards.
        shapes, addresses = dict(self.shapes), dict(self.addresses)
        if self.engine.device.recording is not None:
            self.engine.device.recording.append(lambda: self._run(shapes, addresses))
        else:
            self._run(shapes, addresses)
        return True


class _OrtEngine:
    """A 'deserialized engine' that is the ONNX graph in ONNX Runtime, with TensorRT's query methods."""

    num_optimization_profiles = 1
    device_memory_size_v2 = 4096

    def __init__(self, onnx_bytes, graph, config, profile, device):
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self.inputs, self.output = GRAPH_IO[graph]
        self.names = [*self.inputs, self.output]
        self.dtypes = {
            i.name: {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}[i.type]
            for i in [*self.session.get_inputs(), *self.session.get_outputs()]
        }
        self.config, self.profile, self.device, self.contexts = config, profile, device, []

    num_io_tensors = property(lambda self: len(self.names))

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return "input" if name in self.inputs else "output"

    def get_tensor_dtype(self, name):
        return self.dtypes[name]

    def get_tensor_shape(self, name):
        return (-1, *tensor_shape(name, self.config, 1)[1:])

    def get_tensor_profile_shape(self, name, index):
        return [tensor_shape(name, self.config, b) for b in (self.profile.min, self.profile.opt, self.profile.max)]

    def create_execution_context(self, strategy):
        assert strategy == "user-managed"
        self.contexts.append(_OrtContext(self))
        return self.contexts[-1]


_TRT = SimpleNamespace(
    TensorIOMode=SimpleNamespace(INPUT="input", OUTPUT="output"),
    nptype=lambda dtype: dtype,
    ExecutionContextAllocationStrategy=SimpleNamespace(USER_MANAGED="user-managed"),
)


def _runner(export, graph, profile, device, engine_profile=None, cuda_graphs=True):
    from maskface_rt.export_format import read_manifest

    manifest = read_manifest(export)
    onnx_bytes = (export / f"{graph}.onnx").read_bytes()
    runtime = SimpleNamespace(
        deserialize_cuda_engine=lambda blob: _OrtEngine(blob, graph, manifest.config, engine_profile or profile, device)
    )
    return EngineRunner(
        _TRT,
        runtime,
        onnx_bytes,
        graph,
        manifest.config,
        profile,
        device,
        cuda_graphs=cuda_graphs,
        where=f"{graph}.engine",
    ), manifest.config


def _ort(export, graph, feeds):
    import onnxruntime as ort

    session = ort.InferenceSession(str(export / f"{graph}.onnx"), providers=["CPUExecutionProvider"])
    return session.run([GRAPH_IO[graph][1]], feeds)[0]


@pytest.mark.parametrize("cuda_graphs", [False, True], ids=["plain", "cuda-graphs"])
def test_runner_splits_pads_and_keeps_one_context_per_batch_size(tiny_export, cuda_graphs):
    device = _HostDevice()
    runner, config = _runner(tiny_export, "generator", BuildProfile(2, 3, 3), device, cuda_graphs=cuda_graphs)
    rng = np.random.default_rng(0)
    for count in (5, 1, 3, 7, 5):  # 5 = 3 + 2; 1 -> padded to 2; 7 = 3 + 3 + 1 (padded to 2)
        labels = rng.integers(0, 19, (count, 64, 64), dtype=np.uint8)
        styles = rng.standard_normal((count, config.style_dim)).astype(np.float32)
        got = runner.run({"labels": labels, "style": styles})
        assert got.dtype == np.uint8 and got.shape == (count, 64, 64, 3)
        assert np.array_equal(got, _ort(tiny_export, "generator", {"labels": labels, "style": styles}))
    engine = runner.engine
    assert sorted(next(iter(c.shapes.values()))[0] for c in engine.contexts) == [2, 3]
    assert all(c.scratch == (runner._scratch, 4096) for c in engine.contexts)  # one shared scratch allocation
    runs = sum(c.runs for c in engine.contexts)
    if cuda_graphs:
        # Each size runs plain once (the warm-up), then only through its graph.
        assert runner.policy.captured == {2, 3} and device.replays == runs - 2
    else:
        assert device.replays == 0 and runner.policy.captured == frozenset()


def test_runner_falls_back_to_plain_execution_when_capture_fails(tiny_export):
    device = _HostDevice(fail_capture=True)
    runner, config = _runner(tiny_export, "style_encoder", BuildProfile(1, 4, 4), device)
    latents = np.random.default_rng(1).standard_normal((6, config.latent_dim)).astype(np.float32)
    for _ in range(3):
        got = runner.run({"latent": latents})
        np.testing.assert_array_equal(got, _ort(tiny_export, "style_encoder", {"latent": latents}))
    assert runner.policy.failed == {2, 4} and device.replays == 0


def test_runner_checks_profile_and_input_shapes(tiny_export):
    with pytest.raises(
        MaskfaceError,
        match=r"profile is batch 1\.\.8 \(optimised for 4\), its sidecar says batch "
        r"1\.\.4",
    ):
        _runner(tiny_export, "generator", BuildProfile(1, 4, 4), _HostDevice(), engine_profile=BuildProfile(1, 4, 8))
    runner, _ = _runner(tiny_export, "style_decoder", BuildProfile(1, 2, 4), _HostDevice())
    with pytest.raises(MaskfaceError, match=r"input 'image' has shape \[2, 32, 32, 3\], expected \[2, 64, 64, 3\]"):
        runner.run({"image": np.zeros((2, 32, 32, 3), np.uint8)})
    assert runner.run({"image": np.zeros((0, 64, 64, 3), np.uint8)}).shape == (0, 32)
