"""TensorRT backend: the engines of ``maskface build`` (generator, style encoder, style decoder) on one GPU,
with TensorRT or TensorRT for RTX (``runtime``: "tensorrt" or "tensorrt-rtx"; what differs between the two
lives in ``compat``: loading, engine checks, how execution contexts are made, who captures CUDA graphs,
RTX's runtime cache of just-in-time compiled kernels in ENGINE.runtime-cache).

Per engine (``EngineRunner``):

- I/O buffers for the profile's max batch: pinned host + device memory (``maskface_rt.cuda.device``), bound once;
- async copy-in, ``execute_async_v3``, async copy-out on one non-default stream;
- one execution context per batch size in use, all sharing one scratch allocation (they run one after
  another on one stream). A context's input shapes never change, so each can own a CUDA graph: the first
  run of a batch size is a plain enqueue (TensorRT's warm-up) followed by a capture, later runs replay
  it; where capture fails that size runs plain (``CudaGraphPolicy``). With TensorRT-RTX the runtime captures
  and replays instead (its CUDA-graph strategy) and the backend's own capture is off;
- calls above the profile's max batch are split, chunks below its min padded (``plan_batches``).

The sidecar is checked before anything is loaded: an engine without one, or built for another GPU or
TensorRT version, or for the other runtime, is refused with the command that rebuilds it (TensorRT-RTX engines:
the runtime's own validity check). Never imports torch (torch tensors are
used for buffers only when torch is already loaded, see ``maskface_rt.cuda.device``).

The TensorRT and CUDA calls here are written against the documented APIs and were not run on this
project's machines (TensorRT cannot be installed there); the decisions around them are plain code
tested on the CPU.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from maskface_rt.backends.base import GeneratorBackend
from maskface_rt.backends.trt import compat
from maskface_rt.backends.trt.compat import load_engine_runtime, make_logger, runtime_label
from maskface_rt.backends.trt.engine_file import (
    EngineSidecar,
    TensorInfo,
    check_compatible,
    check_engine_io,
    read_sidecar,
    rebuild_hint,
    verify_engine_files,
)
from maskface_rt.backends.trt.handles import Engine, ExecutionContext, Runtime
from maskface_rt.backends.trt.profile import BuildProfile, plan_batches
from maskface_rt.config import ModelConfig
from maskface_rt.cuda import device as cuda_device
from maskface_rt.cuda.device import CudaDevice, open_cuda_device
from maskface_rt.devices import cuda_index
from maskface_rt.errors import MaskfaceError, OptionError
from maskface_rt.graph_contract import GRAPH_IO, TENSOR_DTYPES, graph_feeds, tensor_shape

#: MASKFACE_CUDA_GRAPHS=0 turns CUDA graphs off (plain execute_async_v3 every call).
CUDA_GRAPHS_ENV = "MASKFACE_CUDA_GRAPHS"


def available(runtime: str = "tensorrt") -> tuple[bool, str]:
    """Whether the backend of ``runtime`` ("tensorrt" or "tensorrt-rtx") can run here (the runtime and a way
    to make CUDA buffers), without torch."""
    try:
        trt = load_engine_runtime(runtime)
    except MaskfaceError as e:
        return False, str(e)
    ok, detail = cuda_device.available()
    if not ok:
        return False, f"{runtime_label(runtime, trt)} found, but {detail}"
    return True, f"{runtime_label(runtime, trt)}, {detail}"


def cuda_graphs_default() -> bool:
    return os.environ.get(CUDA_GRAPHS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class GraphStep(enum.Enum):
    PLAIN = "plain"  # execute_async_v3
    WARM_UP_AND_CAPTURE = "warm-up and capture"  # execute_async_v3 (its results are used), then capture
    REPLAY = "replay"  # launch the captured graph


class CudaGraphPolicy:
    """When to capture and replay CUDA graphs, per batch size.

    First run of a size: plain enqueue (the warm-up TensorRT needs before capture; the call uses its
    results) followed by a capture. Later runs: replay. A size whose capture failed runs plain from
    then on, without retrying. Disabled: always plain.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._captured: set[int] = set()
        self._failed: set[int] = set()

    def step(self, batch: int) -> GraphStep:
        if not self.enabled or batch in self._failed:
            return GraphStep.PLAIN
        return GraphStep.REPLAY if batch in self._captured else GraphStep.WARM_UP_AND_CAPTURE

    def record(self, batch: int, captured: bool) -> None:
        """The outcome of the capture that a WARM_UP_AND_CAPTURE step attempted."""
        (self._captured if captured else self._failed).add(batch)

    @property
    def captured(self) -> frozenset[int]:
        return frozenset(self._captured)

    @property
    def failed(self) -> frozenset[int]:
        return frozenset(self._failed)


class _BatchContext:
    """An execution context whose input shapes are fixed at one batch size, and its CUDA graph."""

    def __init__(self, context: ExecutionContext) -> None:
        self.context = context
        self.graph: Any | None = None


class EngineRunner:
    """One deserialized engine of a graph (generator, style_encoder or style_decoder) on a CudaDevice."""

    def __init__(
        self,
        trt: Any,
        trt_runtime: Runtime,
        engine_bytes: bytes,
        graph: str,
        config: ModelConfig,
        profile: BuildProfile,
        cuda: CudaDevice,
        *,
        cuda_graphs: bool = True,
        where: str | Path = "",
        logger: Any = None,
        runtime_name: str = "tensorrt",
        cache_file: Any = None,
    ) -> None:
        self.trt, self.graph, self.config, self.profile, self.cuda = trt, graph, config, profile, cuda
        self.where, self._logger, self._compat = str(where), logger, compat
        self.inputs, self.output = GRAPH_IO[graph]
        engine = trt_runtime.deserialize_cuda_engine(engine_bytes)
        if engine is None:
            raise MaskfaceError(
                where,
                f"TensorRT could not deserialize the {graph} engine "
                f"({compat.logged_error(logger) or 'see the log above'})",
            )
        self.engine: Engine = engine
        check_engine_io(graph, self._io(), config, where)
        self._check_profile()
        self.contexts = compat.ExecutionContexts(
            trt, runtime_name, self.engine, cuda_graphs=cuda_graphs, cache_file=cache_file
        )
        self.policy = CudaGraphPolicy(self.contexts.own_cuda_graphs)
        self.buffers: dict[str, Any] = {}  # allocated on the first run (inspecting an engine needs none)
        self._scratch_size = 0
        self._scratch = 0
        self._contexts: dict[int, _BatchContext] = {}
        self._first_run: set[int] = set()  # batch sizes whose context has not run yet

    def _io(self) -> list[TensorInfo]:
        engine, trt = self.engine, self.trt
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        return [
            TensorInfo(
                name,
                engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
                tuple(engine.get_tensor_shape(name)),
            )
            for name in names
        ]

    def _check_profile(self) -> None:
        if self.engine.num_optimization_profiles < 1:
            raise MaskfaceError(self.where, f"the {self.graph} engine has no optimization profile")
        low, opt, high = (tuple(s) for s in self.engine.get_tensor_profile_shape(self.inputs[0], 0))
        found = BuildProfile(int(low[0]), int(opt[0]), int(high[0]))
        if found != self.profile:
            raise MaskfaceError(
                self.where,
                f"the {self.graph} engine's profile is {found}, its sidecar says "
                f"{self.profile}: rebuild with 'maskface build'",
            )

    def _allocate(self) -> None:
        """I/O buffers at the profile's max batch and the contexts' shared scratch memory."""
        if self.buffers:
            return
        self.buffers = {
            name: self.cuda.buffer(tensor_shape(name, self.config, self.profile.max), TENSOR_DTYPES[name])
            for name in (*self.inputs, self.output)
        }
        self._scratch_size = self._compat.context_memory_size(self.engine)
        self._scratch = self.cuda.scratch(self._scratch_size)

    def _context(self, batch: int) -> _BatchContext:
        """The context for ``batch`` rows: made once, shapes and addresses set once."""
        found = self._contexts.get(batch)
        if found is not None:
            return found
        context = self.contexts.create()
        if context is None:
            raise MaskfaceError(
                self.where,
                f"TensorRT could not create an execution context for the {self.graph} "
                f"({self._compat.logged_error(self._logger) or 'see the log above'})",
            )
        self._compat.set_device_memory(context, self._scratch, self._scratch_size)
        for name in self.inputs:
            if not context.set_input_shape(name, tensor_shape(name, self.config, batch)):
                raise MaskfaceError(
                    self.where,
                    f"the {self.graph} engine refused input {name!r} at batch {batch} (profile {self.profile})",
                )
        for name, buf in self.buffers.items():
            context.set_tensor_address(name, buf.device_ptr)
        out_shape, want = tuple(context.get_tensor_shape(self.output)), tensor_shape(self.output, self.config, batch)
        if out_shape != want:
            raise MaskfaceError(
                self.where,
                f"the {self.graph} engine's output {self.output!r} is {list(out_shape)} at "
                f"batch {batch}, expected {list(want)}",
            )
        self._contexts[batch] = _BatchContext(context)
        self._first_run.add(batch)
        return self._contexts[batch]

    def _execute(self, batch: int) -> None:
        ctx = self._context(batch)
        step = self.policy.step(batch)
        if step is GraphStep.REPLAY:
            self.cuda.replay(ctx.graph)
            return

        def enqueue() -> bool:
            return bool(ctx.context.execute_async_v3(self.cuda.stream_handle))

        if not enqueue():
            raise MaskfaceError(
                self.where,
                f"TensorRT failed to run the {self.graph} at batch {batch} "
                f"({self._compat.logged_error(self._logger) or 'see the log above'})",
            )
        if step is GraphStep.WARM_UP_AND_CAPTURE:
            self.cuda.synchronize()  # the warm-up has finished (and any error surfaced) before capturing
            ctx.graph = self.cuda.capture(enqueue)
            self.policy.record(batch, ctx.graph is not None)
        if batch in self._first_run:
            self._first_run.discard(batch)
            self.cuda.synchronize()
            self.contexts.after_first_run()

    def _check_feeds(self, feeds: dict[str, np.ndarray]) -> int:
        """The number of rows of ``feeds``, their shapes checked; the buffers allocated."""
        count = len(feeds[self.inputs[0]])
        for name in self.inputs:
            want = tensor_shape(name, self.config, count)
            if tuple(feeds[name].shape) != want:
                raise MaskfaceError(
                    None, f"{self.graph} input {name!r} has shape {list(feeds[name].shape)}, expected {list(want)}"
                )
        self._allocate()
        return count

    def _upload(self, feeds: dict[str, np.ndarray], chunk: Any) -> None:
        for name in self.inputs:
            buf = self.buffers[name]
            buf.host[: chunk.rows] = feeds[name][chunk.start : chunk.stop]
            buf.host[chunk.rows : chunk.run_batch] = 0  # padding rows: valid inputs, results dropped
            buf.upload(chunk.run_batch * buf.host[0].nbytes)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's output for any number of rows (split and padded to the profile)."""
        count = self._check_feeds(feeds)
        result = np.empty(tensor_shape(self.output, self.config, count), TENSOR_DTYPES[self.output])
        out = self.buffers[self.output]
        for chunk in plan_batches(count, self.profile):
            self._upload(feeds, chunk)
            self._execute(chunk.run_batch)
            out.download(chunk.rows * out.host[0].nbytes)
            self.cuda.synchronize()
            result[chunk.start : chunk.stop] = out.host[: chunk.rows]
        return result

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], None]:
        """Put one batch (at most the profile's max rows) on the device once; returns a call that runs the graph
        on it with no host copies, finished on return (what the bench times as device time)."""
        chunks = plan_batches(self._check_feeds(feeds), self.profile)
        if len(chunks) != 1:
            raise MaskfaceError(
                self.where, f"bind takes 1..{self.profile.max} rows (the {self.graph} engine's profile)"
            )
        (chunk,) = chunks
        self._upload(feeds, chunk)
        self.cuda.synchronize()

        def run() -> None:
            self._execute(chunk.run_batch)
            self.cuda.synchronize()

        return run

    def layer_information(self) -> str:
        return self._compat.layer_information_json(self.trt, self.engine)

    def close(self) -> None:
        self._contexts.clear()
        self.contexts.close()
        self.__dict__.pop("engine", None)  # TensorRT objects go before the memory they use; close may run twice


class TensorRTBackend(GeneratorBackend):
    """The engine set of ``maskface build`` (ENGINE + its style encoder and decoder engines + sidecar), run by
    ``runtime``: "tensorrt" or "tensorrt-rtx" (what the sidecar says the engines were built for), its ``name``."""

    def __init__(
        self,
        engine: str | Path,
        *,
        runtime: str = "tensorrt",
        device: str = "auto",
        cuda_graphs: bool | None = None,
        cuda_implementation: str | None = None,
    ) -> None:
        engine = Path(engine)
        self.name = runtime
        index = cuda_index(device, runtime)
        self.sidecar: EngineSidecar = read_sidecar(engine)
        super().__init__(self.sidecar.config, str(engine))
        built_for = self.sidecar.runtime
        if built_for != runtime:
            raise OptionError(
                "backend",
                f"{engine} was built for {built_for}, not {runtime}: run it with the {built_for} backend "
                f"(or auto), or {rebuild_hint(engine, self.sidecar)} --runtime {runtime}",
            )
        self.files = verify_engine_files(engine, self.sidecar)
        self.trt = load_engine_runtime(runtime)
        self.cuda = open_cuda_device(index, cuda_implementation)
        self._runners: dict[str, EngineRunner] = {}
        try:
            # TensorRT: the GPU model; TensorRT-RTX: the target compute capabilities (and its runtime's own
            # verdict per engine file, in _runner)
            check_compatible(engine, self.sidecar, self.trt.__version__, self.cuda.info, runtime=runtime)
            self.logger = make_logger(self.trt, _print_to_stderr, "error")
            self.trt_runtime = self.trt.Runtime(self.logger)
            self.cuda_graphs = cuda_graphs_default() if cuda_graphs is None else cuda_graphs
            self.device_name = self.cuda.info.name
            self._runner("generator")  # load the generator now: its problems show at open time
        except BaseException:
            self.close()
            raise

    def _runner(self, graph: str) -> EngineRunner:
        """The engine of ``graph``, loaded on first use (the style decoder only runs for reference photos)."""
        runner = self._runners.get(graph)
        if runner is None:
            path = self.files[graph]
            blob = path.read_bytes()
            if self.name == compat.TENSORRT_RTX:
                compat.check_engine_validity(
                    self.trt, self.trt_runtime, blob, path, rebuild_hint(self.model_path, self.sidecar), _warn
                )
            cache = compat.RuntimeCacheFile(compat.runtime_cache_path(path), _warn)
            runner = EngineRunner(
                self.trt,
                self.trt_runtime,
                blob,
                graph,
                self.config,
                self.sidecar.profile,
                self.cuda,
                cuda_graphs=self.cuda_graphs,
                where=path,
                logger=self.logger,
                runtime_name=self.name,
                cache_file=cache,
            )
            self._runners[graph] = runner
        return runner

    @property
    def description(self) -> str:
        plugin = " +FusedAdaIN" if self.sidecar.plugin else ""
        graphs = " cuda-graphs" if self.cuda_graphs else ""
        return f"{self.name} {self.trt.__version__} {self.device_name} {self.sidecar.precision}{plugin}{graphs}"

    @property
    def max_batch(self) -> int | None:
        return self.sidecar.profile.max

    def generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        return self._runner("generator").run(graph_feeds("generator", labels, styles))

    def bind_generator(self, labels: np.ndarray, styles: np.ndarray) -> Callable[[], None]:
        """The generator on one batch already on the device: a call that runs it without host copies."""
        return self._runner("generator").bind(graph_feeds("generator", labels, styles))

    def map_latent(self, latents: np.ndarray) -> np.ndarray:
        return self._runner("style_encoder").run(graph_feeds("style_encoder", latents))

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        return self._runner("style_decoder").run(graph_feeds("style_decoder", images))

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()
        cuda = self.__dict__.pop("cuda", None)  # close may run twice, or on a backend half opened
        if cuda is not None:
            cuda.close()


def _print_to_stderr(severity: str, message: str) -> None:
    import sys

    sys.stderr.write(f"TensorRT {severity}: {message}\n")


def _warn(message: str) -> None:
    import sys

    sys.stderr.write(f"warning: {message}\n")
