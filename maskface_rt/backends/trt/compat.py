"""Loading TensorRT or TensorRT-RTX, and every call that differs between them and between TensorRT 10.9+
and 11.x: the one place for both.

``RUNTIMES`` is the one table of what differs between the two runtimes (module, version rule, install
hint, what each can do); the builder and the backends read it instead of testing names. TensorRT-RTX
(``tensorrt_rtx`` 1.7.1) ran here, on the CPU; TensorRT itself cannot be installed on this project's
machines, so its side is written against the documented Python API of TensorRT 10.9 to 11.x. Nothing
here imports torch, nor TensorRT before it is asked for.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from maskface_rt.backends.trt.engine_file import parse_version
from maskface_rt.backends.trt.handles import Engine, ExecutionContext
from maskface_rt.errors import MaskfaceError, OptionError

SEVERITIES = ("internal error", "error", "warning", "info", "verbose")

#: (severity name, message) -> None
LogSink = Callable[[str, str], None]


@dataclass(frozen=True)
class TensorRTRuntime:
    """One TensorRT flavour maskface builds engines with: what it is called, how to get it, what it can do."""

    name: str  # --runtime / --backend
    module: str  # what Python imports
    label: str  # in messages
    min_version: tuple[int, ...]
    install_hint: str
    #: builds ahead of time with no GPU present (its engines still run only on a GPU)
    builds_without_gpu: bool
    #: quickly deployable Python plugins (tensorrt.plugin) and NetworkDefinitionCreationFlag.PREFER_AOT_PYTHON_PLUGINS:
    #: what the FusedAdaIN generator of a plugin export needs
    python_plugins: bool
    #: builder timing cache (TensorRT-RTX 1.2+ made its timing-cache calls no-ops, and without a GPU it cannot
    #: read one back)
    timing_cache: bool
    #: pass NetworkDefinitionCreationFlag.STRONGLY_TYPED below this version (None: always, where the flag exists);
    #: TensorRT 11 is strongly typed only and deprecates the flag
    strongly_typed_flag_below: tuple[int, ...] | None
    #: compute capability ("8.6") -> ComputeCapability member and the GPUs it covers; empty: a build is for
    #: the GPU it runs on
    compute_capabilities: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: what a build targets when none is asked for (the runtime's own default, left unset in the builder config)
    default_compute_capabilities: tuple[str, ...] = ()

    @property
    def installed(self) -> bool:
        """Whether the module's package is there (without importing it); it may still fail to load
        (``import_problem``)."""
        if self.module in sys.modules:
            return sys.modules[self.module] is not None
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def import_problem(self) -> str | None:
        """Why the installed module does not import (None: it does). A TensorRT wheel whose native libraries are
        missing (``ImportError: libnvonnxparser.so.11``: TensorRT's ``-libs`` wheels download them from NVIDIA's
        own index at install time) is installed but broken."""
        try:
            importlib.import_module(self.module)
        except (ImportError, OSError) as e:  # OSError: a stub or half-installed shared library
            return f"{type(e).__name__}: {e}"
        return None

    def check_version(self, version: str) -> None:
        """Refuse a release older than ``min_version``, saying what is needed."""
        if parse_version(version)[: len(self.min_version)] < self.min_version:
            raise MaskfaceError(
                None,
                f"{self.label} {version} is too old; maskface needs {self.label} "
                f"{'.'.join(map(str, self.min_version))} or newer: {self.install_hint}",
            )

    def load(self) -> ModuleType:
        """The runtime's module, checked for the version maskface needs, or a one-line error saying how to install
        it (or that the install is broken, and why)."""
        if not self.installed:
            raise MaskfaceError(
                None, f"{self.label} is not installed here (no module {self.module!r}); {self.install_hint}"
            )
        if problem := self.import_problem():
            raise MaskfaceError(None, self.broken_message(problem))
        trt = importlib.import_module(self.module)
        self.check_version(trt.__version__)
        return trt

    def broken_message(self, problem: str) -> str:
        return (
            f"{self.label} is installed but cannot be loaded ({problem}): its native libraries are missing or "
            f"do not match; reinstall it: {self.install_hint}"
        )

    def network_flags(self, trt: ModuleType, plugin: bool) -> int:
        """Flags of ``Builder.create_network``: strongly typed and, for the plugin graph, the AOT implementation
        of Python plugins (the kernel's PTX is embedded in the engine, so running it needs no Python plugin code)."""
        kinds = trt.NetworkDefinitionCreationFlag
        flags = 0
        below = self.strongly_typed_flag_below
        if hasattr(kinds, "STRONGLY_TYPED") and (below is None or parse_version(trt.__version__) < below):
            flags |= 1 << int(kinds.STRONGLY_TYPED)
        if plugin:
            if not self.python_plugins:
                raise MaskfaceError(None, f"{self.label} has no Python plugin API: {PLUGIN_REFUSAL}")
            flags |= 1 << int(kinds.PREFER_AOT_PYTHON_PLUGINS)
        return flags

    def compute_capability(self, value: str) -> str:
        """'8.6', '86', 'sm86', 'sm_86' or 'SM86' -> '8.6', if this runtime can target it."""
        text = value.strip().lower().removeprefix("sm").lstrip("_")
        if text.isdigit() and len(text) >= 2:
            text = f"{text[:-1]}.{text[-1]}"
        if text in self.compute_capabilities:
            return text
        valid = ", ".join(f"{cc} ({gpus})" for cc, (_, gpus) in self.compute_capabilities.items())
        extra = (
            "; Hopper (H100/H200, sm_90) is not a TensorRT-RTX target: build for it with the tensorrt runtime"
            if text == "9.0"
            else ""
        )
        raise OptionError("compute_capabilities", f"{value} is not a {self.label} target; valid: {valid}{extra}")


PLUGIN_REFUSAL = (
    "the FusedAdaIN plugin generator cannot be built with it; make a portable export "
    "('maskface export MODEL --out DIR [--fp16]') and build that without the plugin"
)

RUNTIMES: dict[str, TensorRTRuntime] = {
    r.name: r
    for r in (
        TensorRTRuntime(
            name="tensorrt",
            module="tensorrt",
            label="TensorRT",
            min_version=(10, 9),
            install_hint="pip install 'maskface-rt[tensorrt]' (TensorRT 10.9+ and cuda-python; needs an NVIDIA GPU "
            "and driver; see docs/export-and-engines.md)",
            builds_without_gpu=False,
            python_plugins=True,
            timing_cache=True,
            strongly_typed_flag_below=(11,),
        ),
        TensorRTRuntime(
            name="tensorrt-rtx",
            module="tensorrt_rtx",
            label="TensorRT-RTX",
            min_version=(1, 7),
            install_hint="pip install 'maskface-rt[tensorrt-rtx]' (TensorRT for RTX 1.7+; builds on any machine, "
            "its engines run on RTX-class GPUs: Turing to Blackwell, not Hopper)",
            builds_without_gpu=True,
            python_plugins=False,
            timing_cache=False,
            strongly_typed_flag_below=None,
            compute_capabilities={
                "7.5": ("SM75", "Turing: RTX 20xx, Quadro RTX, T4"),
                "8.0": ("SM80", "Ampere: A100, A30"),
                "8.6": ("SM86", "Ampere: RTX 30xx, RTX A-series, A10, A40"),
                "8.9": ("SM89", "Ada: RTX 40xx, RTX Ada, L4, L40"),
                "12.0": ("SM120", "Blackwell: RTX 50xx, RTX PRO Blackwell"),
                "12.1": ("SM121", "Blackwell: GB10 / DGX Spark"),
            },
            # TensorRT-RTX's documented default: Ampere and later (8.0, 8.6, 8.9, 12.x); Turing only when asked for.
            default_compute_capabilities=("8.0", "8.6", "8.9", "12.0", "12.1"),
        ),
    )
}


def installed_runtimes() -> list[TensorRTRuntime]:
    """The runtimes that import here, in the table's order (TensorRT first); a broken install is left out."""
    return [r for r in RUNTIMES.values() if r.installed and r.import_problem() is None]


def resolve_runtime(name: str | None) -> TensorRTRuntime:
    """The runtime called ``name`` (an OptionError when no such name), or, for None, the first one that imports here:
    a broken TensorRT install falls back to TensorRT-RTX; a one-line error says why when none imports."""
    if name is not None:
        if name not in RUNTIMES:
            raise OptionError("runtime", f"{name} is unknown; valid: {', '.join(RUNTIMES)}")
        return RUNTIMES[name]
    found = installed_runtimes()
    if found:
        return found[0]
    broken = [r for r in RUNTIMES.values() if r.installed]
    if broken:
        raise MaskfaceError(None, "; ".join(r.broken_message(r.import_problem() or "") for r in broken))
    hints = "; ".join(f"{r.label}: {r.install_hint}" for r in RUNTIMES.values())
    raise MaskfaceError(None, f"neither TensorRT nor TensorRT-RTX is installed here. {hints}")


def load_runtime(name: str | None) -> tuple[TensorRTRuntime, ModuleType]:
    """The runtime (see ``resolve_runtime``) and its loaded module."""
    try:
        runtime = resolve_runtime(name)
    except ValueError as e:
        raise MaskfaceError(None, str(e)) from None
    return runtime, runtime.load()


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """What is printed on stdout meanwhile, by Python or by native code (file descriptor 1), goes to stderr:
    ``import tensorrt.plugin`` logs a warning through TensorRT's default logger, which prints on stdout, and
    stdout carries nothing but a --json result."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        ctypes.CDLL(None).fflush(None)  # C stdio's buffer (C++ streams write through it), before fd 1 is back
        os.dup2(saved, 1)
        os.close(saved)


def import_python_plugins(module: str) -> ModuleType:
    """Import ``module``, which registers Python plugins through ``tensorrt.plugin``, keeping stdout clean."""
    with stdout_to_stderr():
        return importlib.import_module(module)


def make_logger(trt: ModuleType, sink: LogSink | None = None, min_severity: str = "warning") -> Any:
    """A TensorRT logger that hands messages to ``sink`` (TensorRT's default logger prints on stdout,
    which ``--json`` keeps for its result) and remembers the errors for one-line messages."""
    limit = SEVERITIES.index(min_severity)

    class Logger(trt.ILogger):  # type: ignore[name-defined]  # the bindings' base class, known only at run time
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


def logged_error(logger: Any) -> str:
    """The error to report, as one line ('' when none), and the logger's errors forgotten: the FIRST error
    logged since the last call. It is the cause; what follows it is consequence (TensorRT-RTX without a GPU
    adds CUDA runtime errors after a failed engine deserialisation, e.g. 'cudaError 35: CUDA driver version
    is insufficient')."""
    errors = getattr(logger, "errors", [])
    first = " ".join(errors[0].split()) if errors else ""
    more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''} in the log)" if len(errors) > 1 else ""
    errors.clear()
    return first + more


def load_timing_cache(config: Any, path: Path) -> Any:
    """The timing cache in ``path`` (an empty one when the file does not exist), or a one-line error naming the
    file when TensorRT cannot read it: TensorRT only logs a warning and hands back an empty cache, so a
    non-empty file whose cache serialises back to an empty cache's bytes was not read."""
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not data:
        return cache
    empty = bytes(config.create_timing_cache(b"").serialize())
    if cache is None or (data != empty and bytes(cache.serialize()) == empty):
        raise MaskfaceError(
            path,
            "is not a timing cache TensorRT can read (corrupt, or written by another TensorRT "
            "version); delete it or give another --timing-cache file (a missing file is "
            "created)",
        )
    return cache


def parser_errors(parser: Any) -> list[tuple[int, str, str, str]]:
    """(node index, node name, operator, description) of each ONNX parser error (-1: not about one node)."""
    errors = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        name = error.node_name() if hasattr(error, "node_name") else ""
        operator = error.node_operator() if hasattr(error, "node_operator") else ""
        errors.append((int(error.node()), name or "", operator or "", str(error.desc())))
    return errors


def configure_builder(
    trt: ModuleType,
    config: Any,
    *,
    workspace_mib: int | None,
    optimization_level: int,
    compute_capabilities: tuple[str, ...] = (),
) -> None:
    """Workspace limit, optimisation level, detailed profiling verbosity (for the engine inspector) and, for
    TensorRT-RTX, the target GPUs (ComputeCapability member names; none: the runtime's default)."""
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    config.builder_optimization_level = int(optimization_level)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if compute_capabilities:
        config.num_compute_capabilities = len(compute_capabilities)
        for i, member in enumerate(compute_capabilities):
            config.set_compute_capability(getattr(trt.ComputeCapability, member), i)


def create_shared_memory_context(trt: ModuleType, engine: Engine) -> ExecutionContext | None:
    """An execution context whose scratch memory the caller provides (set_device_memory), so that several
    contexts of one engine, used one after another on one stream, share one allocation."""
    return engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)


def context_memory_size(engine: Engine) -> int:
    """Scratch bytes an execution context of ``engine`` needs (any profile): ``device_memory_size_v2``, in every
    supported release (10.9+; TensorRT 11 removed the older ``device_memory_size``)."""
    return int(engine.device_memory_size_v2)


def set_device_memory(context: ExecutionContext, pointer: int, size: int) -> None:
    """Give ``context`` its scratch memory (``set_device_memory`` with a size: 10.1+; the older
    ``device_memory`` attribute is deprecated)."""
    context.set_device_memory(pointer, size)


def layer_information_json(trt: ModuleType, engine: Engine) -> str:
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

TENSORRT, TENSORRT_RTX = "tensorrt", "tensorrt-rtx"  # the names of RUNTIMES, as --runtime and --backend say them
RUNTIME_CACHE_SUFFIX = ".runtime-cache"

#: Warning sink for problems that do not stop a run (a one-line message).
Warn = Callable[[str], None]


def load_engine_runtime(runtime: str) -> ModuleType:
    """The module that runs engines of ``runtime`` (a name of ``RUNTIMES``), checked like a build's."""
    return load_runtime(runtime)[1]


def runtime_label(runtime: str, trt: ModuleType) -> str:
    """'tensorrt 10.13.0.35' / 'tensorrt-rtx 1.7.1.116', for messages and descriptions."""
    return f"{runtime} {trt.__version__}"


def check_engine_validity(trt: ModuleType, runtime: Any, blob: bytes, where: Any, hint: str, warn: Warn) -> None:
    """TensorRT-RTX's own verdict on a serialized engine before it is deserialized: INVALID is refused with the
    runtime's diagnostics, SUBOPTIMAL is a warning. TensorRT has no such call (its plans are checked against the
    sidecar instead)."""
    validity, diagnostics = runtime.get_engine_validity(blob)
    names = [
        name.lower().replace("_", " ")
        for name, flag in trt.EngineInvalidityDiagnostics.__members__.items()
        if int(diagnostics) & int(flag)
    ]
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
            self.warn(
                f"{self.path}: TensorRT-RTX refused the runtime cache (corrupt, or made for another GPU, "
                "driver or TensorRT-RTX version); it will be replaced"
            )
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
            self.warn(
                f"{self.path}: cannot write the runtime cache ({getattr(e, 'strerror', None) or e}); "
                "the just-in-time compilation will be paid again next time"
            )
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

    def __init__(
        self,
        trt: ModuleType,
        runtime: str,
        engine: Engine,
        *,
        cuda_graphs: bool,
        cache_file: RuntimeCacheFile | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise MaskfaceError(None, f"unknown TensorRT runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
        self.trt, self.runtime, self.engine, self.cuda_graphs = trt, runtime, engine, cuda_graphs
        self.cache_file = cache_file if runtime == TENSORRT_RTX else None
        self._configs: list[Any] = []
        self._cache: Any = None

    @property
    def own_cuda_graphs(self) -> bool:
        """Whether the backend captures CUDA graphs itself (TensorRT) rather than the runtime (TensorRT-RTX)."""
        return self.cuda_graphs and self.runtime == TENSORRT

    def create(self) -> ExecutionContext | None:
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
    """The runtime an engine set was built for: its sidecar's "runtime" (``read_sidecar`` gives "tensorrt" for
    sidecars from before TensorRT-RTX), "tensorrt" when the sidecar cannot be read (opening the engine says why)."""
    from maskface_rt.backends.trt.engine_file import read_sidecar

    try:
        return read_sidecar(engine).runtime
    except MaskfaceError:
        return TENSORRT
