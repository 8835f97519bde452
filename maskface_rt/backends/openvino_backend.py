"""OpenVINO backend: the exported ONNX graphs compiled by OpenVINO's CPU plugin, in fp32 or bf16.

bf16 is fast only where the CPU has bf16 matrix instructions (AVX512-BF16, AMX-BF16); elsewhere
OpenVINO still accepts the bf16 hint but emulates it, slower than fp32. ``--precision auto`` takes
bf16 exactly where OpenVINO reports the CPU's "BF16" optimisation capability, or where
``$MASKFACE_NATIVE_BF16`` says so (``probes.native_bf16``). Compiled models are
cached by OpenVINO itself (CACHE_DIR). Never imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from maskface_rt.backends.export_folder import ExportFolderBackend
from maskface_rt.backends.probes import (
    NATIVE_BF16_ENV,
    OPENVINO_CAPABILITIES,
    cpu_native_bf16,
    cpu_threads,
    native_bf16,
    native_bf16_override,
)
from maskface_rt.backends.registry import PRECISIONS
from maskface_rt.console import stderr
from maskface_rt.errors import MaskfaceError, OptionError
from maskface_rt.graph_contract import GRAPHS

_HINTS = {"fp32": "f32", "bf16": "bf16"}  # our names -> OpenVINO's INFERENCE_PRECISION_HINT
_EXECUTED = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}  # OpenVINO's element type names -> ours


def available() -> tuple[bool, str]:
    try:
        import openvino as ov
    except ImportError as e:
        return False, f"openvino is not installed ({e}); pip install 'maskface-rt[openvino]'"
    return True, f"openvino {ov.get_version().split('-')[0]}: {cpu_capabilities_line()}"


def cpu_capabilities_line() -> str:
    """The CPU's OpenVINO optimisation capabilities and what --precision auto resolves to."""
    import openvino as ov

    caps = ov.Core().get_property("CPU", OPENVINO_CAPABILITIES)
    auto = resolve_precision("auto")
    why = "native bf16" if auto == "bf16" else "no native bf16 (AVX512-BF16/AMX): bf16 would be emulated, slower"
    if native_bf16_override() is not None:
        why += f", as ${NATIVE_BF16_ENV} says"
    return f"CPU capabilities {', '.join(caps)}; --precision auto -> {auto} ({why})"


def resolve_precision(precision: str) -> str:
    """'auto' -> bf16 where the CPU executes it natively, else fp32; fp32/bf16 stay as asked."""
    if precision not in PRECISIONS:
        raise MaskfaceError(None, f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def cache_dir() -> Path | None:
    """The compiled-model cache ($XDG_CACHE_HOME/maskface/openvino), or None (one warning) if not writable.

    OpenVINO keys its blobs itself: a changed graph file at the same path is recompiled (the blob
    records the model's content), a blob of another OpenVINO version is not loaded, and the precision
    hint is applied when the blob is imported (one blob serves fp32 and bf16)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "maskface" / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        stderr.print(
            f"warning: {folder}: not writable ({e.strerror}); OpenVINO runs without its compiled-model cache",
            markup=False,
            highlight=False,
        )
        return None
    return folder


def compile_config(precision: str, threads: int | None = None) -> dict[str, object]:
    """The CPU plugin's settings, as the onnxruntime backend sets its session: ``threads`` math threads
    (default: the usable cores), one stream, latency first; ``precision`` fp32 or bf16."""
    return {
        "INFERENCE_NUM_THREADS": threads or cpu_threads(),
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": _HINTS[precision],
    }


class OpenVinoBackend(ExportFolderBackend):
    """The three exported graphs of a ``maskface export`` folder compiled for OpenVINO's CPU plugin."""

    name = "openvino"

    def __init__(
        self,
        folder: str | Path,
        *,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        cache: bool = True,
    ) -> None:
        import openvino as ov

        super().__init__(folder)
        self.precision = resolve_precision(precision)
        self.native = cpu_native_bf16()  # the hardware, for the description: the override changes choices only
        config = compile_config(self.precision, threads)
        self.cache = cache_dir() if cache else None
        if self.cache is not None:
            config["CACHE_DIR"] = str(self.cache)
        core = ov.Core()
        self.models, self.requests = {}, {}
        for graph in GRAPHS:
            path = self.graph_path(graph)
            try:
                self.models[graph] = core.compile_model(str(path), "CPU", config)
            except Exception as e:  # OpenVINO raises RuntimeError with multi-line text per failure
                raise MaskfaceError(
                    path, f"openvino cannot compile the graph ({str(e).strip().splitlines()[0]})"
                ) from None
            self.requests[graph] = self.models[graph].create_infer_request()
        executed = self.executed_precision
        if precision == "bf16" and executed != "bf16":  # asked for, not auto's choice
            capabilities = ", ".join(core.get_property("CPU", OPENVINO_CAPABILITIES))
            self.close()
            raise OptionError(
                "precision",
                f"OpenVINO runs no bf16 on this CPU: it compiled {executed} (its capabilities: {capabilities}; "
                "bf16 needs AVX-512); valid here: auto, fp32",
            )

    @property
    def executed_precision(self) -> str:
        """What the compiled generator really runs in (OpenVINO's INFERENCE_PRECISION_HINT after compiling)."""
        hint = self.models["generator"].get_property("INFERENCE_PRECISION_HINT")
        return _EXECUTED.get(hint.get_type_name(), hint.get_type_name())

    @property
    def description(self) -> str:
        executed = self.executed_precision
        note = " (emulated: no AVX512-BF16/AMX)" if executed == "bf16" and not self.native else ""
        return f"openvino CPU {executed}{note}, {self.manifest.precision} export"

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        # The CPU plugin's kernels for a batch of one round differently from those for two or more (up to one
        # uint8 level on most images of the bundled model); run one item as two copies, so that every image
        # gets the bytes it gets in any batch, as with onnxruntime.
        single = len(next(iter(feeds.values()))) == 1
        if single:
            feeds = {name: np.concatenate([array, array]) for name, array in feeds.items()}
        out = self.requests[graph].infer(feeds)[0]  # share_outputs=False: a fresh array per call
        return out[:1] if single else out

    def close(self) -> None:
        self.requests.clear()
        self.models.clear()
