"""Building TensorRT and TensorRT-RTX engines: the builder, its config and optimization profile, the plugin's
needs, and the deserialized engines of a build (run as the backend runs them) for its parity check.

``export/engine_builder.py`` is the export step that calls in here: it checks the options, plans the files,
checks parity and writes the engines and sidecar. Nothing here imports TensorRT before it is handed the module.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskface_rt.backends.trt import compat
from maskface_rt.backends.trt.compat import TensorRTRuntime
from maskface_rt.backends.trt.parse import OnnxParseError, format_parser_error
from maskface_rt.backends.trt.profile import BuildProfile, profile_shapes
from maskface_rt.backends.trt.runner import EngineRunner
from maskface_rt.config import ModelConfig
from maskface_rt.cuda.device import CudaDevice, DeviceInfo, open_cuda_device
from maskface_rt.devices import cuda_index
from maskface_rt.errors import MaskfaceError


@dataclass(frozen=True)
class BuilderSettings:
    """What the builder needs of one build: the runtime, the model, the batch profile and the builder config."""

    runtime: TensorRTRuntime
    config: ModelConfig
    profile: BuildProfile
    targets: tuple[str, ...]  # TensorRT-RTX compute capabilities ("8.6"); empty for TensorRT
    workspace_mib: int | None
    optimization_level: int
    timing_cache: Path | None


def check_plugin_needs() -> None:
    """The AOT plugin compiles the fused AdaIN kernel to PTX at build time: triton, and torch for the GPU's arch."""
    missing = [name for name in ("triton", "torch") if importlib.util.find_spec(name) is None]
    if missing:
        raise MaskfaceError(
            None,
            f"building the FusedAdaIN plugin engine needs {' and '.join(missing)} (the kernel's "
            "PTX is compiled at build time): pip install 'maskface-rt[train,kernels]', or build "
            "a portable export with --no-plugin",
        )
    try:
        compat.import_python_plugins("maskface_rt.kernels.trt_plugin")  # registers maskface::FusedAdaIN before parsing
    except ImportError as e:
        raise MaskfaceError(None, str(e)) from None


def check_plugin_arch(device: DeviceInfo) -> None:
    from maskface_rt.kernels import ptx

    try:
        ptx.arch_for_capability(*device.capability)
    except ValueError as e:
        raise MaskfaceError(None, f"{device.name}: {e}; build a portable export with --no-plugin") from None


@contextmanager
def reported(runtime: TensorRTRuntime, where: str | Path, what: str) -> Iterator[None]:
    """Exceptions raised from inside TensorRT's Python bindings (RuntimeError, TypeError, AttributeError of a
    missing enum member...) as one-line errors naming the file."""
    try:
        yield
    except MaskfaceError:
        raise
    except Exception as e:  # noqa: BLE001  (whatever the bindings raise reaches the user as one line)
        raise MaskfaceError(
            where, f"{runtime.label} failed {what}: {type(e).__name__}: {' '.join(str(e).split())}"
        ) from None


def build_serialized(
    trt: Any,
    logger: Any,
    onnx_file: Path,
    graph: str,
    settings: BuilderSettings,
    plugin_graph: bool,
    timing: dict[str, Any],
    warnings: list[str],
) -> bytes:
    """Builder, strongly typed network, ONNX parser, profile, timing cache, serialized engine."""
    runtime = settings.runtime
    builder = trt.Builder(logger)
    network = builder.create_network(runtime.network_flags(trt, plugin_graph))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        raise OnnxParseError(onnx_file, [format_parser_error(*e) for e in compat.parser_errors(parser)], runtime.label)
    config = builder.create_builder_config()
    explicit = settings.targets != runtime.default_compute_capabilities  # the default is left to the runtime
    compat.configure_builder(
        trt,
        config,
        workspace_mib=settings.workspace_mib,
        optimization_level=settings.optimization_level,
        compute_capabilities=tuple(runtime.compute_capabilities[cc][0] for cc in settings.targets) if explicit else (),
    )
    shapes = builder.create_optimization_profile()
    for name, (low, opt, high) in profile_shapes(graph, settings.config, settings.profile).items():
        shapes.set_shape(name, low, opt, high)
    config.add_optimization_profile(shapes)
    if settings.timing_cache is not None:
        if "cache" not in timing:
            timing["cache"] = compat.load_timing_cache(config, Path(settings.timing_cache))
        if timing["cache"] is not None and not config.set_timing_cache(timing["cache"], False):
            warnings.append(
                f"{settings.timing_cache}: the timing cache does not fit this GPU or TensorRT; "
                "building without it (it is rewritten after the build)"
            )
            timing["cache"] = config.create_timing_cache(b"")
            config.set_timing_cache(timing["cache"], False)
    compat.logged_error(logger)  # what was logged before is not this build's cause
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise MaskfaceError(
            onnx_file,
            f"{runtime.label} could not build the {graph} engine "
            f"({compat.logged_error(logger) or 'see the log above'})",
        )
    return bytes(blob)


def open_gpu(runtime: TensorRTRuntime, device: str) -> tuple[CudaDevice | None, str]:
    """The CUDA device of the build, and why there is none (None, reason) where the runtime builds without one
    and ``device`` is auto; elsewhere no GPU is an error."""
    try:
        return open_cuda_device(cuda_index(device)), ""
    except MaskfaceError as e:
        if runtime.builds_without_gpu and device == "auto":
            return None, e.problem
        raise


def timing_cache_bytes(timing: dict[str, Any]) -> bytes | None:
    """The timing cache the builds of ``timing`` loaded or made, serialized (None: there was none)."""
    cache = timing.get("cache")
    return None if cache is None else bytes(cache.serialize())


def open_runners(
    trt: Any, blobs: dict[str, bytes], settings: BuilderSettings, cuda: CudaDevice, logger: Any, where: dict[str, Path]
) -> dict[str, EngineRunner]:
    """The deserialized engines, run the way the tensorrt backend runs them (CUDA graphs aside)."""
    trt_runtime = trt.Runtime(logger)
    return {
        g: EngineRunner(
            trt,
            trt_runtime,
            blob,
            g,
            settings.config,
            settings.profile,
            cuda,
            cuda_graphs=False,
            where=where[g],
            logger=logger,
        )
        for g, blob in blobs.items()
    }
