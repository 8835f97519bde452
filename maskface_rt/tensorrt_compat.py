"""Loading TensorRT, and every call that differs between TensorRT 10.9+ and 11.x: the one place for both.

Written against the documented Python API of TensorRT 10.9 to 11.x (not run on this project's
machines, where TensorRT cannot be installed). Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
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
