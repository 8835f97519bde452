"""Loading TensorRT, and every call that differs between TensorRT 10.9+ and 11.x: the one place for both.

Written against the documented Python API of TensorRT 10.9 to 11.x (not run on this project's
machines, where TensorRT cannot be installed). Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from maskface_rt.engine_format import check_tensorrt_version, parse_version
from maskface_rt.errors import MaskfaceError

INSTALL_HINT = ("pip install 'maskface-rt[tensorrt]' (TensorRT 10.9+ and cuda-python; needs an NVIDIA GPU and "
                "driver; see the README's TensorRT section)")
SEVERITIES = ("internal error", "error", "warning", "info", "verbose")

#: (severity name, message) -> None
LogSink = Callable[[str, str], None]


def load_tensorrt() -> ModuleType:
    """``import tensorrt``, checked for the version maskface needs, or a one-line error saying how to install it."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise MaskfaceError(None, f"TensorRT is not installed here ({e}); {INSTALL_HINT}") from None
    except OSError as e:  # the wheel is there but its shared libraries are not (stub or broken install)
        raise MaskfaceError(None, f"TensorRT is installed but cannot be loaded ({e}); {INSTALL_HINT}") from None
    check_tensorrt_version(trt.__version__)
    return trt


def make_logger(trt: ModuleType, sink: LogSink | None = None, min_severity: str = "warning") -> Any:
    """A TensorRT logger that hands messages to ``sink`` (TensorRT's default logger prints on stdout,
    which ``--json`` keeps for its result) and remembers the errors for one-line messages."""
    limit = SEVERITIES.index(min_severity)

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            level = min(int(severity), len(SEVERITIES) - 1)
            if level <= 1:
                self.errors.append(msg)
            if level <= limit and sink is not None:
                sink(SEVERITIES[level], msg)

    return Logger()


def last_error(logger: Any) -> str:
    """The logger's last error, for a one-line message ('' when none)."""
    errors = getattr(logger, "errors", [])
    return " ".join(errors[-1].split()) if errors else ""


def network_flags(trt: ModuleType, plugin: bool) -> int:
    """Flags of ``Builder.create_network``: strongly typed (10.x needs the flag; 11.x is strongly typed only
    and deprecates it) and, for the plugin graph, the AOT implementation of Python plugins (the kernel's
    PTX is embedded in the engine, so running it needs no Python plugin code)."""
    kinds = trt.NetworkDefinitionCreationFlag
    flags = 0
    if parse_version(trt.__version__)[0] < 11 and hasattr(kinds, "STRONGLY_TYPED"):
        flags |= 1 << int(kinds.STRONGLY_TYPED)
    if plugin:
        flags |= 1 << int(kinds.PREFER_AOT_PYTHON_PLUGINS)
    return flags


def parser_errors(parser: Any) -> list[tuple[int, str, str, str]]:
    """(node index, node name, operator, description) of each ONNX parser error (-1: not about one node)."""
    errors = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        name = error.node_name() if hasattr(error, "node_name") else ""
        operator = error.node_operator() if hasattr(error, "node_operator") else ""
        errors.append((int(error.node()), name or "", operator or "", str(error.desc())))
    return errors


def configure_builder(trt: ModuleType, config: Any, *, workspace_mib: int | None, optimization_level: int) -> None:
    """Workspace limit, optimisation level and detailed profiling verbosity (for the engine inspector)."""
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    config.builder_optimization_level = int(optimization_level)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED


def create_shared_memory_context(trt: ModuleType, engine: Any) -> Any:
    """An execution context whose scratch memory the caller provides (set_device_memory), so that several
    contexts of one engine, used one after another on one stream, share one allocation."""
    return engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)


def device_memory_size(engine: Any) -> int:
    """Scratch bytes an execution context of ``engine`` needs (any profile)."""
    if hasattr(engine, "device_memory_size_v2"):
        return int(engine.device_memory_size_v2)
    return int(engine.device_memory_size)


def set_device_memory(context: Any, pointer: int, size: int) -> None:
    if hasattr(context, "set_device_memory"):
        context.set_device_memory(pointer, size)
    else:
        context.device_memory = pointer


def layer_information_json(trt: ModuleType, engine: Any) -> str:
    """The engine inspector's per-layer JSON (detailed when built with ProfilingVerbosity.DETAILED)."""
    inspector = engine.create_engine_inspector()
    return inspector.get_engine_information(trt.LayerInformationFormat.JSON)


# ------------------------------------------------------------------ running engines: TensorRT vs TensorRT-RTX
#
# The tensorrt backend runs either runtime, named by a string passed down from the CLI ("tensorrt" or
# "tensorrt-rtx", the backend names). What differs when running an engine:
#
# - the module (``tensorrt`` or ``tensorrt_rtx``);
# - engine checks: TensorRT plans are checked against the sidecar's GPU and TensorRT version; TensorRT-RTX
#   engines are built for compute capabilities, not one GPU, and the runtime says itself whether it can run
#   one (``Runtime.get_engine_validity``, which needs no GPU to find a malformed or foreign engine);
# - execution contexts: TensorRT-RTX makes them from a runtime config (``ICudaEngine.create_runtime_config``)
#   carrying the runtime cache (the kernels it compiles just in time, kept in a file beside the engine so that
#   the compilation is paid once) and the CUDA-graph strategy (RTX captures and replays graphs itself, so the
#   backend's own capture is off).

TENSORRT, TENSORRT_RTX = "tensorrt", "tensorrt-rtx"
RUNTIME_NAMES = (TENSORRT, TENSORRT_RTX)
RTX_INSTALL_HINT = ("pip install tensorrt-rtx cuda-python (runs on NVIDIA RTX-class GPUs: Turing, Ampere, Ada, "
                    "Blackwell; not on Hopper/H100); see the README's TensorRT section")
RUNTIME_CACHE_SUFFIX = ".runtime-cache"

#: Warning sink for problems that do not stop a run (a one-line message).
Warn = Callable[[str], None]


def load_tensorrt_rtx() -> ModuleType:
    """``import tensorrt_rtx`` (NVIDIA TensorRT for RTX), or a one-line error saying how to install it."""
    try:
        import tensorrt_rtx as trt
    except ImportError as e:
        raise MaskfaceError(None, f"TensorRT-RTX is not installed here ({e}); {RTX_INSTALL_HINT}") from None
    except OSError as e:
        raise MaskfaceError(None, f"TensorRT-RTX is installed but cannot be loaded ({e}); "
                                  f"{RTX_INSTALL_HINT}") from None
    return trt


def load_engine_runtime(runtime: str) -> ModuleType:
    """The module that runs engines of ``runtime`` ("tensorrt" or "tensorrt-rtx")."""
    loaders = {TENSORRT: load_tensorrt, TENSORRT_RTX: load_tensorrt_rtx}
    if runtime not in loaders:
        raise MaskfaceError(None, f"unknown TensorRT runtime {runtime!r}; valid: {', '.join(RUNTIME_NAMES)}")
    return loaders[runtime]()


def runtime_label(runtime: str, trt: ModuleType) -> str:
    """'tensorrt 10.13.0.35' / 'tensorrt-rtx 1.7.1.116', for messages and descriptions."""
    return f"{runtime} {trt.__version__}"


def check_engine_validity(trt: ModuleType, runtime: Any, blob: bytes, where: Any, hint: str, warn: Warn) -> None:
    """TensorRT-RTX's own verdict on a serialized engine before it is deserialized: INVALID is refused with the
    runtime's diagnostics, SUBOPTIMAL is a warning. TensorRT has no such call (its plans are checked against the
    sidecar instead)."""
    validity, diagnostics = runtime.get_engine_validity(blob)
    names = [name.lower().replace("_", " ") for name, flag in trt.EngineInvalidityDiagnostics.__members__.items()
             if int(diagnostics) & int(flag)]
    why = ", ".join(names) or "no diagnostics (is there a CUDA GPU and driver?)"
    if validity == trt.EngineValidity.INVALID:
        raise MaskfaceError(where, f"TensorRT-RTX {trt.__version__} cannot run this engine here: {why}; {hint}")
    if validity == trt.EngineValidity.SUBOPTIMAL:
        warn(f"{where}: TensorRT-RTX can run this engine, but not at its best here ({why}); {hint}")


def runtime_cache_path(engine_file: str | Path) -> Path:
    """Where TensorRT-RTX's runtime cache of one engine file lives: beside it, ENGINE.runtime-cache."""
    engine_file = Path(engine_file)
    return engine_file.with_name(engine_file.name + RUNTIME_CACHE_SUFFIX)


class RuntimeCacheFile:
    """TensorRT-RTX's runtime cache (``IRuntimeCache``) of one engine, kept in a file beside it.

    ``load_into`` fills a fresh cache from the file; a missing file is the normal first run, an unreadable,
    empty or refused one (corrupt, or made by another GPU, driver or TensorRT-RTX version: the runtime checks)
    is reported in one line and replaced by the next ``save``. ``save`` writes the serialized cache atomically,
    and only when it changed since it was read or last written.
    """

    def __init__(self, path: str | Path, warn: Warn) -> None:
        self.path = Path(path)
        self.warn = warn
        self._written: bytes | None = None

    def read(self) -> bytes | None:
        """The file's bytes; None (with a warning unless it is just missing) when there is nothing usable."""
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            self.warn(f"{self.path}: cannot read the runtime cache ({e.strerror or e}); it will be replaced")
            return None
        if not blob:
            self.warn(f"{self.path}: the runtime cache is empty; it will be replaced")
            return None
        return blob

    def load_into(self, cache: Any) -> bool:
        """Deserialize the file into ``cache``; whether its kernels were taken."""
        blob = self.read()
        if blob is None:
            return False
        if not cache.deserialize(blob):
            self.warn(f"{self.path}: TensorRT-RTX refused the runtime cache (corrupt, or made for another GPU, "
                      "driver or TensorRT-RTX version); it will be replaced")
            return False
        self._written = blob
        return True

    def save(self, cache: Any) -> bool:
        """Write the cache's current contents (atomically) if they changed; whether the file was written."""
        from maskface_rt.fileio import write_bytes_atomic

        blob = bytes(memoryview(cache.serialize()))
        if not blob or blob == self._written:
            return False
        try:
            write_bytes_atomic(self.path, blob, overwrite=True)
        except (OSError, MaskfaceError) as e:
            self.warn(f"{self.path}: cannot write the runtime cache ({getattr(e, 'strerror', None) or e}); "
                      "the just-in-time compilation will be paid again next time")
            return False
        self._written = blob
        return True


def cuda_graph_strategy(trt: ModuleType, enabled: bool) -> Any:
    """TensorRT-RTX's CUDA-graph strategy: capture the whole enqueue and replay it, or none."""
    kinds = trt.CudaGraphStrategy
    return kinds.WHOLE_GRAPH_CAPTURE if enabled else kinds.DISABLED


class ExecutionContexts:
    """Execution contexts of one engine, made the way its runtime wants, all with user-managed scratch memory.

    TensorRT: ``create_execution_context(USER_MANAGED)``; CUDA graphs are the backend's own (``own_cuda_graphs``).
    TensorRT-RTX: each context from a runtime config that carries the engine's runtime cache (one per engine,
    shared by its contexts, loaded from ``cache_file`` and saved after each batch size's first run) and the
    CUDA-graph strategy. The configs and the cache are kept alive as long as the contexts.
    """

    def __init__(self, trt: ModuleType, runtime: str, engine: Any, *, cuda_graphs: bool,
                 cache_file: RuntimeCacheFile | None = None) -> None:
        if runtime not in RUNTIME_NAMES:
            raise MaskfaceError(None, f"unknown TensorRT runtime {runtime!r}; valid: {', '.join(RUNTIME_NAMES)}")
        self.trt, self.runtime, self.engine, self.cuda_graphs = trt, runtime, engine, cuda_graphs
        self.cache_file = cache_file if runtime == TENSORRT_RTX else None
        self._configs: list[Any] = []
        self._cache: Any = None

    @property
    def own_cuda_graphs(self) -> bool:
        """Whether the backend captures CUDA graphs itself (TensorRT) rather than the runtime (TensorRT-RTX)."""
        return self.cuda_graphs and self.runtime == TENSORRT

    def create(self) -> Any:
        """A new execution context (None when the runtime could not make one)."""
        if self.runtime == TENSORRT:
            return create_shared_memory_context(self.trt, self.engine)
        config = self.engine.create_runtime_config()
        config.set_execution_context_allocation_strategy(self.trt.ExecutionContextAllocationStrategy.USER_MANAGED)
        config.cuda_graph_strategy = cuda_graph_strategy(self.trt, self.cuda_graphs)
        if self.cache_file is not None:
            if self._cache is None:
                self._cache = config.create_runtime_cache()
                self.cache_file.load_into(self._cache)
            config.set_runtime_cache(self._cache)
        self._configs.append(config)
        return self.engine.create_execution_context(config)

    def after_first_run(self) -> None:
        """Called after a new context's first run: keep what the runtime compiled for it."""
        if self.cache_file is not None and self._cache is not None:
            self.cache_file.save(self._cache)

    def close(self) -> None:
        self._configs.clear()
        self._cache = None


def sidecar_runtime(engine: str | Path) -> str:
    """The runtime an engine set was built for: its sidecar's "runtime" field, "tensorrt" when absent (sidecars
    from before TensorRT-RTX) or when the sidecar cannot be read (opening the engine reports that)."""
    import json

    from maskface_rt.engine_format import sidecar_path

    try:
        data = json.loads(sidecar_path(engine).read_text())
    except (OSError, ValueError):
        return TENSORRT
    runtime = data.get("runtime") if isinstance(data, dict) else None
    return runtime if isinstance(runtime, str) and runtime else TENSORRT
