"""--backend tensorrt-rtx without an RTX GPU: the choice of runtime, the one-line refusal here, the runtime
cache file, RTX's execution contexts, and the TensorRT-RTX API names checked against the real module.

Running an RTX engine needs an RTX-class GPU, which these machines lack. What runs here: the real
``tensorrt_rtx`` module's names and its engine validity check (which needs no GPU), the backend's choice
and refusal through the real CLI, and the plain code around the runtime cache. Where an RTX object cannot
exist without a GPU (an engine, its runtime config and cache), a small stand-in with the same methods
plays it; the code under test is the package's.
"""

import json
import subprocess
import sys

import pytest
from test_engine_format import _sidecar

from maskface_rt.backends import ModelKind, resolve_backend_name
from maskface_rt.backends.trt import compat as tensorrt_compat
from maskface_rt.backends.trt.compat import (
    TENSORRT,
    TENSORRT_RTX,
    ExecutionContexts,
    RuntimeCacheFile,
    runtime_cache_path,
    sidecar_runtime,
)
from maskface_rt.backends.trt.engine_file import sidecar_path, write_sidecar
from maskface_rt.backends.trt.runner import TensorRTBackend
from maskface_rt.benchmarking.runners import BACKEND_NAMES
from maskface_rt.cuda.device import _cuda_python_importable
from maskface_rt.errors import MaskfaceError


def _engine(tmp_path, runtime=None):
    """An engine set (arbitrary bytes, valid sidecar) whose sidecar names ``runtime`` (None: no field)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    engine, sidecar = _sidecar(tmp_path)
    write_sidecar(engine, sidecar)
    if runtime is not None:
        path = sidecar_path(engine)
        data = json.loads(path.read_text())
        data["runtime"] = runtime
        path.write_text(json.dumps(data))
    return engine


# ----------------------------------------------------------------------------- choosing the runtime


def test_sidecar_runtime_is_read_defensively(tmp_path):
    assert sidecar_runtime(_engine(tmp_path / "old")) == TENSORRT  # no field: sidecars before TensorRT-RTX
    assert sidecar_runtime(_engine(tmp_path / "rtx", TENSORRT_RTX)) == TENSORRT_RTX
    assert sidecar_runtime(tmp_path / "none.engine") == TENSORRT  # no sidecar: opening it says so
    (tmp_path / "bad.engine.json").write_text("{not json")
    assert sidecar_runtime(tmp_path / "bad.engine") == TENSORRT


def test_auto_takes_the_runtime_the_sidecar_names_and_never_rtx_otherwise(tmp_path):
    rtx, plain = _engine(tmp_path / "rtx", TENSORRT_RTX), _engine(tmp_path / "plain")
    # Neither runtime can run here, so each resolution ends in its availability refusal, which names the choice.
    with pytest.raises(MaskfaceError, match="^the tensorrt-rtx backend cannot run here"):
        resolve_backend_name(ModelKind.ENGINE, "auto", rtx)
    for engine in (plain, None):
        with pytest.raises(MaskfaceError, match="^the tensorrt backend cannot run here"):
            resolve_backend_name(ModelKind.ENGINE, "auto", engine)
    with pytest.raises(
        MaskfaceError,
        match=r"was built for the runtime 'tensorrt-9'; this maskface runs engines "
        r"of tensorrt, tensorrt-rtx",
    ):
        resolve_backend_name(ModelKind.ENGINE, "auto", _engine(tmp_path / "future", "tensorrt-9"))
    with pytest.raises(
        MaskfaceError,
        match="backend tensorrt-rtx cannot run a onnx-export; the tensorrt-rtx backend runs .engine files",
    ):
        resolve_backend_name(ModelKind.ONNX_EXPORT, "tensorrt-rtx")


def test_backend_refuses_an_engine_of_the_other_runtime(tmp_path):
    rtx, plain = _engine(tmp_path / "rtx", TENSORRT_RTX), _engine(tmp_path / "plain")
    with pytest.raises(
        MaskfaceError,
        match=r"^backend: .*faces\.engine was built for tensorrt-rtx, not tensorrt: run it with "
        r"the tensorrt-rtx backend \(or auto\).* --runtime tensorrt$",
    ):
        TensorRTBackend(rtx, runtime=TENSORRT)
    with pytest.raises(MaskfaceError, match="was built for tensorrt, not tensorrt-rtx"):
        TensorRTBackend(plain, runtime=TENSORRT_RTX)


def test_the_rtx_option_reaches_the_backend_and_stops_at_cuda(tmp_path):
    """Past the sidecar checks, the backend loads the real tensorrt_rtx module and stops where this machine
    does: at the CUDA device (no cuda-python, no GPU here)."""
    pytest.importorskip("tensorrt_rtx")
    if _cuda_python_importable():
        pytest.skip("cuda-python is installed: the backend would go on to look for a GPU")
    with pytest.raises(MaskfaceError, match="needs cuda-python for its GPU buffers"):
        TensorRTBackend(_engine(tmp_path, TENSORRT_RTX), runtime=TENSORRT_RTX)


@pytest.mark.parametrize("command", ["generate", "eval"])
def test_cli_refuses_tensorrt_rtx_here_in_one_line(tmp_path, command):
    """No GPU and no cuda-python here: one line saying so, exit 1 (as the tensorrt backend), nothing written."""
    engine, out = _engine(tmp_path, TENSORRT_RTX), tmp_path / "out"
    args = {
        "generate": ["generate", "examples/masks", "--out", str(out), "--model", str(engine)],
        "eval": ["eval", str(engine), "--data", "examples/masks"],
    }[command]
    done = subprocess.run(
        [sys.executable, "-m", "maskface_rt", *args, "--backend", "tensorrt-rtx"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.strip().startswith("error: the tensorrt-rtx backend cannot run here: tensorrt-rtx 1.")
    assert not out.exists() or not any(out.iterdir())


def test_bench_has_a_row_that_builds_and_runs_tensorrt_rtx_engines(tmp_path):
    from maskface_rt.benchmarking.models import ModelSource
    from maskface_rt.benchmarking.runners import RunnerContext, make_runner
    from maskface_rt.config import preset

    assert "tensorrt-rtx-fp16" in BACKEND_NAMES
    source = ModelSource(preset("tiny-64"), None, tmp_path, 2, "tiny")
    runner = make_runner("tensorrt-rtx-fp16", RunnerContext(source, "cpu", "the device asked for is the CPU"))
    assert (runner.runtime, runner.plugin, runner.precision) == ("tensorrt-rtx", False, "fp16")
    assert runner.available() == (False, "needs a CUDA GPU: the device asked for is the CPU")


# ----------------------------------------------------------------------------- the runtime cache file


class _Cache:
    """Stands in for IRuntimeCache (which needs a GPU's engine): deserialize refuses blobs without its header."""

    def __init__(self):
        self.kernels = b""

    def deserialize(self, blob):
        if not bytes(blob).startswith(b"RTXC"):
            return False
        self.kernels = bytes(blob)[4:]
        return True

    def serialize(self):
        return b"RTXC" + self.kernels


def _warnings():
    seen = []
    return seen, seen.append


def test_runtime_cache_lives_beside_each_engine(tmp_path):
    assert runtime_cache_path(tmp_path / "faces.engine") == tmp_path / "faces.engine.runtime-cache"
    assert (
        runtime_cache_path(tmp_path / "faces.style_encoder.engine").name == "faces.style_encoder.engine.runtime-cache"
    )


def test_runtime_cache_first_run_then_reuse(tmp_path):
    seen, warn = _warnings()
    path = runtime_cache_path(tmp_path / "faces.engine")
    cache = _Cache()
    store = RuntimeCacheFile(path, warn)
    assert store.load_into(cache) is False and seen == []  # no file yet: the normal first run, no warning
    cache.kernels = b"compiled"
    assert store.save(cache) is True and path.read_bytes() == b"RTXCcompiled"
    assert store.save(cache) is False  # unchanged: not rewritten
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    again, fresh = RuntimeCacheFile(path, warn), _Cache()
    assert again.load_into(fresh) is True and fresh.kernels == b"compiled"
    assert again.save(fresh) is False  # what was read is not written back
    fresh.kernels += b"+batch8"
    assert again.save(fresh) is True and path.read_bytes() == b"RTXCcompiled+batch8"
    assert seen == []


@pytest.mark.parametrize(
    "content, says", [(b"garbage", "TensorRT-RTX refused the runtime cache"), (b"", "the runtime cache is empty")]
)
def test_a_corrupt_runtime_cache_is_reported_in_one_line_and_replaced(tmp_path, content, says):
    seen, warn = _warnings()
    path = runtime_cache_path(tmp_path / "faces.engine")
    path.write_bytes(content)
    cache = _Cache()
    store = RuntimeCacheFile(path, warn)
    assert store.load_into(cache) is False
    assert len(seen) == 1 and seen[0].startswith(f"{path}: {says}") and seen[0].endswith("it will be replaced")
    assert "\n" not in seen[0]
    cache.kernels = b"new"
    assert store.save(cache) is True and path.read_bytes() == b"RTXCnew"


def test_unreadable_or_unwritable_runtime_cache_warns_and_goes_on(tmp_path):
    seen, warn = _warnings()
    folder = runtime_cache_path(tmp_path / "faces.engine")
    folder.mkdir()  # a folder where the file should be: neither readable nor replaceable as a file
    store = RuntimeCacheFile(folder, warn)
    assert store.load_into(_Cache()) is False
    cache = _Cache()
    cache.kernels = b"x"
    assert store.save(cache) is False
    assert len(seen) == 2 and "cannot read the runtime cache" in seen[0] and "cannot write the runtime cache" in seen[1]
    assert folder.is_dir()


# ----------------------------------------------------------------------------- execution contexts per runtime


class _Config:
    def __init__(self):
        self.strategy, self.cache, self.cuda_graph_strategy = None, None, None
        self.caches_made = 0

    def set_execution_context_allocation_strategy(self, strategy):
        self.strategy = strategy

    def create_runtime_cache(self):
        self.caches_made += 1
        return _Cache()

    def set_runtime_cache(self, cache):
        self.cache = cache
        return True


class _Engine:
    """Stands in for an RTX ICudaEngine: runtime configs and the contexts made from them."""

    def __init__(self):
        self.configs, self.contexts = [], []

    def create_runtime_config(self):
        self.configs.append(_Config())
        return self.configs[-1]

    def create_execution_context(self, config):
        self.contexts.append(("context", config))
        return self.contexts[-1]


def test_rtx_contexts_share_one_cache_and_use_the_runtime_graph_strategy(tmp_path):
    trt = pytest.importorskip("tensorrt_rtx")
    seen, warn = _warnings()
    path = runtime_cache_path(tmp_path / "faces.engine")
    path.write_bytes(b"RTXCfrom-last-time")
    engine = _Engine()
    contexts = ExecutionContexts(trt, TENSORRT_RTX, engine, cuda_graphs=True, cache_file=RuntimeCacheFile(path, warn))
    assert contexts.own_cuda_graphs is False  # RTX captures itself; the backend's capture stays off
    first, second = contexts.create(), contexts.create()
    assert first[1] is engine.configs[0] and second[1] is engine.configs[1]
    for config in engine.configs:
        assert config.strategy == trt.ExecutionContextAllocationStrategy.USER_MANAGED
        assert config.cuda_graph_strategy == trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
    assert engine.configs[0].cache is engine.configs[1].cache  # one cache per engine, loaded once
    assert engine.configs[0].cache.kernels == b"from-last-time"
    assert sum(c.caches_made for c in engine.configs) == 1
    engine.configs[0].cache.kernels += b"+batch4"
    contexts.after_first_run()
    assert path.read_bytes() == b"RTXCfrom-last-time+batch4" and seen == []
    off = ExecutionContexts(trt, TENSORRT_RTX, _Engine(), cuda_graphs=False)
    off.create()
    assert off.engine.configs[0].cuda_graph_strategy == trt.CudaGraphStrategy.DISABLED
    assert off.engine.configs[0].cache is None  # no cache file given: no cache set


def test_tensorrt_contexts_keep_the_backend_capture_and_no_cache(tmp_path):
    made = []

    class Engine:
        def create_execution_context(self, strategy):
            made.append(strategy)
            return "context"

    trt = type("trt", (), {"ExecutionContextAllocationStrategy": type("S", (), {"USER_MANAGED": "user-managed"})})
    store = RuntimeCacheFile(tmp_path / "x.runtime-cache", print)
    contexts = ExecutionContexts(trt, TENSORRT, Engine(), cuda_graphs=True, cache_file=store)
    assert contexts.own_cuda_graphs and contexts.cache_file is None
    assert contexts.create() == "context" and made == ["user-managed"]
    contexts.after_first_run()
    assert not (tmp_path / "x.runtime-cache").exists()
    with pytest.raises(MaskfaceError, match="unknown TensorRT runtime 'onnx'; valid: tensorrt, tensorrt-rtx"):
        ExecutionContexts(trt, "onnx", Engine(), cuda_graphs=True)


# ----------------------------------------------------------------------------- the real tensorrt_rtx module


def test_tensorrt_rtx_api_names_exist_in_the_real_module():
    """Every TensorRT-RTX name the backend uses, on the installed module (these calls cannot run here)."""
    trt = pytest.importorskip("tensorrt_rtx")
    assert trt is tensorrt_compat.load_engine_runtime(TENSORRT_RTX)
    for cls, names in {
        trt.ICudaEngine: [
            "create_runtime_config",
            "create_execution_context",
            "get_tensor_profile_shape",
            "device_memory_size_v2",
            "num_io_tensors",
            "create_engine_inspector",
        ],
        trt.IRuntimeConfig: [
            "create_runtime_cache",
            "set_runtime_cache",
            "cuda_graph_strategy",
            "set_execution_context_allocation_strategy",
        ],
        trt.IRuntimeCache: ["serialize", "deserialize"],
        trt.Runtime: ["get_engine_validity", "deserialize_cuda_engine"],
        trt.IExecutionContext: [
            "set_device_memory",
            "set_input_shape",
            "set_tensor_address",
            "execute_async_v3",
            "get_tensor_shape",
        ],
    }.items():
        missing = [n for n in names if not hasattr(cls, n)]
        assert not missing, f"{cls.__name__} lacks {missing}"
    assert isinstance(trt.IRuntimeConfig.cuda_graph_strategy, property)
    assert trt.IRuntimeConfig.cuda_graph_strategy.fset is not None  # settable
    assert tensorrt_compat.cuda_graph_strategy(trt, True) == trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
    assert tensorrt_compat.cuda_graph_strategy(trt, False) == trt.CudaGraphStrategy.DISABLED
    assert {"VALID", "SUBOPTIMAL", "INVALID"} <= set(trt.EngineValidity.__members__)
    assert "MALFORMED_ENGINE" in trt.EngineInvalidityDiagnostics.__members__
    assert hasattr(trt.ExecutionContextAllocationStrategy, "USER_MANAGED")


def test_rtx_engine_validity_check_runs_without_a_gpu(tmp_path):
    """Runtime.get_engine_validity needs no GPU: a malformed engine is refused in one line naming the cause."""
    trt = pytest.importorskip("tensorrt_rtx")
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    seen, warn = _warnings()
    with pytest.raises(
        MaskfaceError,
        match=r"faces\.engine: TensorRT-RTX 1\.\S+ cannot run this engine here: "
        r"malformed engine; rebuild",
    ):
        tensorrt_compat.check_engine_validity(
            trt,
            runtime,
            b"not an engine" * 64,
            tmp_path / "faces.engine",
            "rebuild it here: maskface build EXPORT --out faces.engine",
            warn,
        )
    assert seen == []
