"""The model under test: a checkpoint, a randomly initialised model of a preset, or an export folder;
the exports and TensorRT engines the runners need (made once, in a scratch folder); the fixed inputs
every runner gets; the torch fp32 reference images accuracy is measured against."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskface_rt.backends import REGISTRY, open_backend
from maskface_rt.config import ModelConfig, preset
from maskface_rt.devices import parse_device
from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import MIN_MAX_BATCH, graph_file, read_manifest
from maskface_rt.model_kind import ModelKind, export_folder_of, model_kind

TORCH_MISSING = "torch is not installed (pip install 'maskface-rt[train]')"


class Unavailable(Exception):
    """A backend, an artefact or a measurement that cannot be had here, with the reason."""


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def random_model(preset_name: str, folder: Path, seed: int = 0) -> Path:
    """A randomly initialised model file of the preset (speed does not depend on training)."""
    import torch

    from maskface_rt.checkpoint import save_model
    from maskface_rt.networks import Nets

    torch.manual_seed(seed)
    path = folder / f"{preset_name}.safetensors"
    save_model(path, Nets(preset(preset_name), with_discriminator=False), weights="random-init")
    return path


@dataclass
class ModelSource:
    """What the runners run: ``checkpoint`` (None for an export folder) and exports/engines made on demand."""

    config: ModelConfig
    checkpoint: Path | None
    scratch: Path
    max_batch: int
    description: str
    exports: dict[tuple[str, bool], Path] = field(default_factory=dict)
    engines: dict[tuple[str, bool], Path] = field(default_factory=dict)  # (runtime, plugin) -> engine

    @classmethod
    def open(cls, model: Path | None, preset_name: str, scratch: Path, max_batch: int, seed: int = 0) -> ModelSource:
        """``model`` (a checkpoint or an export folder) or, when None, a random model of ``preset_name``."""
        if model is None:
            if not torch_installed():
                raise MaskfaceError(
                    None,
                    f"without --model, bench makes a randomly initialised model, which needs "
                    f"torch: {TORCH_MISSING}; or pass --model EXPORT_DIR",
                )
            path = random_model(preset_name, scratch, seed)
            return cls(preset(preset_name), path, scratch, max_batch, f"random init of {preset_name} (seed {seed})")
        kind = model_kind(model)
        if kind is ModelKind.CHECKPOINT:
            if not torch_installed():
                raise MaskfaceError(model, f"a checkpoint needs torch: {TORCH_MISSING}; or pass an export folder")
            from maskface_rt.checkpoint import read_config

            return cls(read_config(model), model, scratch, max_batch, str(model))
        if kind is ModelKind.ONNX_EXPORT:
            folder = export_folder_of(model)
            manifest = read_manifest(folder)
            return cls(
                manifest.config,
                None,
                scratch,
                max_batch,
                str(folder),
                exports={(manifest.precision, manifest.plugin): folder},
            )
        raise MaskfaceError(
            model, "bench takes a .safetensors checkpoint or an export folder (engines are built from the checkpoint)"
        )

    def can_export(self, precision: str, plugin: bool = False) -> tuple[bool, str]:
        folder = self.exports.get((precision, plugin))
        if folder is not None:
            declared = read_manifest(folder, verify=False).max_batch
            if declared < self.max_batch:
                return False, f"{folder} declares max batch {declared}; --batch-sizes go up to {self.max_batch}"
            return True, ""
        if self.checkpoint is None:
            flavour = f"{precision}{' plugin' if plugin else ''}"
            return False, f"needs a {flavour} export, made from a checkpoint; --model is an export of another kind"
        if not torch_installed():
            return False, f"exporting needs {TORCH_MISSING}"
        return True, ""

    def export(self, precision: str, plugin: bool = False) -> Path:
        """The export folder of ``precision`` (made from the checkpoint on first use)."""
        ok, reason = self.can_export(precision, plugin)
        if not ok:
            raise Unavailable(reason)
        key = (precision, plugin)
        if key not in self.exports:
            from maskface_rt.export.onnx_export import export_onnx

            out = self.scratch / f"onnx-{precision}{'-plugin' if plugin else ''}"
            export_onnx(
                self.checkpoint,
                out,
                fp16=precision == "fp16",
                plugin=plugin,
                max_batch=max(self.max_batch, MIN_MAX_BATCH),
            )
            self.exports[key] = out
        return self.exports[key]

    def engine(self, plugin: bool, device: str, runtime: str = "tensorrt") -> Path:
        """TensorRT (or TensorRT-RTX) fp16 engines (``maskface build``) for batch 1..max_batch, optimised for
        max_batch; the generator's path."""
        key = (runtime, plugin)
        if key not in self.engines:
            from maskface_rt.export.engine_builder import BuildOptions, build_engine

            out = self.scratch / f"generator-{runtime}-fp16{'-plugin' if plugin else ''}.engine"
            options = BuildOptions(
                min_batch=1,
                opt_batch=self.max_batch,
                max_batch=self.max_batch,
                plugin=plugin,
                device=device,
                runtime=runtime,
            )
            self.engines[key] = Path(build_engine(self.export("fp16", plugin), out, options).engine)
        return self.engines[key]

    def flops_graph(self) -> Path | None:
        """A generator graph to count FLOPs from: a portable export already made (ONNX shape inference
        cannot see through a plugin graph's FusedAdaIN nodes)."""
        portable = [folder for (_, plugin), folder in self.exports.items() if not plugin]
        return portable[0] / graph_file("generator") if portable else None


def fixed_inputs(source: ModelSource, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` procedural face masks and the styles of indices 0..count-1 for ``seed``, mapped by the
    model's own style encoder (torch fp32, or ONNX Runtime for an export folder)."""
    from maskface_rt.synth import render_pair

    cfg = source.config
    labels = np.stack([render_pair(seed, i, cfg.img_size)[1] for i in range(count)])
    model, backend = (
        (source.checkpoint, "torch")
        if source.checkpoint is not None
        else (next(iter(source.exports.values())), "onnxruntime")
    )
    with open_backend(model, backend, device="cpu") as runtime:
        styles = runtime.styles_for_seed(seed, count)
    return np.ascontiguousarray(labels, dtype=np.uint8), np.ascontiguousarray(styles, dtype=np.float32)


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """True fp32 torch: no TF32 in cuDNN or cuBLAS (restored afterwards)."""
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def reference_images(
    source: ModelSource, labels: np.ndarray, styles: np.ndarray, device: str, batches: Sequence[int]
) -> dict[int, np.ndarray]:
    """For each batch size B of ``batches``: uint8 images of the first B masks and styles, run as one batch of B by
    plain torch fp32 on ``device`` (the torch backend with AdaIN in torch ops, no TF32): what a row of batch B is
    measured against. Per batch size, because torch's own kernels may round differently at another batch size
    (oneDNN on an AVX2 CPU: one level at batch 1 against batch 2), which is not the backend's error."""
    if source.checkpoint is None:
        raise Unavailable("the torch fp32 reference needs a checkpoint; --model is an export folder")
    if not torch_installed():
        raise Unavailable(f"the torch fp32 reference needs torch: {TORCH_MISSING}")
    backend = REGISTRY["torch"].open(
        source.checkpoint, device=device, arguments={"adain": "torch", "generator_only": True}
    )
    with backend, no_tf32():
        out = {batch: backend.generate(labels[:batch], styles[:batch]) for batch in sorted(set(batches))}
    del backend
    if parse_device(device).is_cuda:
        import torch

        torch.cuda.empty_cache()
    return out
