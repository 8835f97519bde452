"""ONNX Runtime backend: CPU execution provider, or CUDA with IOBinding when onnxruntime-gpu is installed.

Never imports torch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from maskface_rt.backends.export_folder import ExportFolderBackend
from maskface_rt.backends.probes import cpu_threads, has_cuda_provider
from maskface_rt.errors import MaskfaceError
from maskface_rt.graph_contract import GRAPH_IO, GRAPHS, graph_feeds, tensor_shape


def available() -> tuple[bool, str]:
    try:
        import onnxruntime as ort
    except ImportError as e:
        return False, f"onnxruntime is not installed ({e}); pip install onnxruntime"
    return True, f"onnxruntime {ort.__version__}: {', '.join(ort.get_available_providers())}"


class OnnxRuntimeBackend(ExportFolderBackend):
    """The three exported graphs of a ``maskface export`` folder in ONNX Runtime sessions."""

    name = "onnxruntime"

    def __init__(self, folder: str | Path, *, device: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        super().__init__(folder)
        has_cuda = has_cuda_provider()
        if device == "cuda" and not has_cuda:
            raise MaskfaceError(
                None, "onnxruntime has no CUDA execution provider here (pip install onnxruntime-gpu, with a CUDA GPU)"
            )
        self.use_cuda = has_cuda and device != "cpu"
        self.provider = "CUDAExecutionProvider" if self.use_cuda else "CPUExecutionProvider"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        # Idle intra-op threads sleep instead of spinning, leaving the cores to the decode/encode threads.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        providers = [self.provider] if not self.use_cuda else [self.provider, "CPUExecutionProvider"]
        self.sessions = {}
        for graph in GRAPHS:
            path = self.graph_path(graph)
            try:
                self.sessions[graph] = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as e:  # onnxruntime raises its own exception types per failure
                raise MaskfaceError(path, f"onnxruntime cannot load the graph ({str(e).splitlines()[0]})") from None

    @property
    def description(self) -> str:
        return f"onnxruntime {self.provider} {self.manifest.precision}"

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        session, output = self.sessions[graph], GRAPH_IO[graph][1]
        if not self.use_cuda:
            return session.run([output], feeds)[0]
        binding = session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        binding.bind_output(output, "cuda")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def bind_generator(self, labels: np.ndarray, styles: np.ndarray) -> Callable[[], None]:
        """The generator on one batch through an IOBinding bound once: the inputs and the output live where the
        session runs (CUDA OrtValues with the CUDA provider), so a call runs it without host copies; ONNX Runtime
        synchronises the device at the end of each run."""
        import onnxruntime as ort

        session, output = self.sessions["generator"], GRAPH_IO["generator"][1]
        where = "cuda" if self.use_cuda else "cpu"
        values = {
            name: ort.OrtValue.ortvalue_from_numpy(array, where, 0)
            for name, array in graph_feeds("generator", labels, styles).items()
        }
        binding = session.io_binding()
        for name, value in values.items():
            binding.bind_ortvalue_input(name, value)
        shape = list(tensor_shape(output, self.config, len(labels)))
        values[output] = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.uint8, where, 0)
        binding.bind_ortvalue_output(output, values[output])
        return functools.partial(_run_bound, session, binding, values)  # keeps the bound values alive

    def close(self) -> None:
        self.sessions.clear()


def _run_bound(session: Any, binding: Any, values: dict[str, Any]) -> None:
    """One run of a bound generator; ``values`` are the OrtValues bound in ``binding`` (host ones wrap numpy
    arrays that must outlive it)."""
    session.run_with_iobinding(binding)
