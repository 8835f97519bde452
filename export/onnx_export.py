"""torch -> ONNX: ``maskface export MODEL --out DIR``.

Three graphs with dynamic batch, each moving as few bytes as possible at its edges:

- generator:     labels uint8 [B, H, W], style float32 [B, S] -> image uint8 [B, H, W, 3]
                 (one-hot, tanh and the uint8 conversion happen inside the graph)
- style_encoder: latent float32 [B, Z] -> style float32 [B, S]
- style_decoder: image uint8 [B, H, W, 3] -> style float32 [B, S]

``fp16`` exports fp16 weights and activations; normalisation statistics stay fp32 through explicit
casts in the graph (TensorRT's strongly typed mode takes precision from the graph). ``plugin`` writes
a generator whose every AdaIN + LeakyReLU is one ``maskface.FusedAdaIN`` node (the TensorRT plugin
``maskface::FusedAdaIN``, see kernels/). Every export is checked before it is published: onnx.checker;
uint8 only at the graph's inputs and outputs, each touching one Cast (``check_uint8_io``: TensorRT
refuses uint8 intermediates); TensorRT's own ONNX parser where ``tensorrt`` or ``tensorrt_rtx`` is
importable (``tensorrt_parse``); then torch vs ONNX Runtime at two batch sizes (a plugin generator,
which ONNX Runtime cannot run, is run by onnx.reference with a numpy FusedAdaIN against the portable
generator). A failed check leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from maskface_rt import __version__
from maskface_rt.backends.trt.parse import ParseCheck, check_export
from maskface_rt.checkpoint import load_model
from maskface_rt.config import ModelConfig
from maskface_rt.errors import MaskfaceError, OptionError
from maskface_rt.export_format import (
    CHECK_BATCHES,
    DEFAULT_OPSET,
    EXPORT_PRECISIONS,
    MANIFEST,
    MAX_OPSET,
    MIN_MAX_BATCH,
    MIN_OPSET,
    ExportManifest,
    graph_file,
    sha256_file,
)
from maskface_rt.fileio import publishable_mode, replace_folder, write_json_atomic
from maskface_rt.graph_contract import GRAPH_IO, GRAPHS, IMAGE, LABELS, LATENT, STYLE, check_uint8_io, sample_inputs
from maskface_rt.networks import Nets, adain_as_op, from_uint8_nhwc, to_uint8_nhwc
from maskface_rt.parity import (
    GENERATOR_TOLERANCE,
    STYLE_TOLERANCE,
    ParityCheck,
    max_abs_error,
    max_rel_error,
    max_uint8_diff,
)

#: onnx.reference runs the plugin generator in numpy (seconds per image): batch 2 still mixes styles.
PLUGIN_CHECK_BATCHES = (1, 2)
TORCH_VS_ORT = "torch vs onnxruntime"
PLUGIN_VS_PORTABLE = "onnx.reference with FusedAdaIN vs the portable graph on onnxruntime"


class GeneratorGraph(nn.Module):
    def __init__(self, nets: Nets) -> None:
        super().__init__()
        self.generator = nets.generator
        self.dtype = next(nets.generator.parameters()).dtype

    def forward(self, labels: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return to_uint8_nhwc(self.generator(labels.long(), style.to(self.dtype)))


class StyleEncoderGraph(nn.Module):
    def __init__(self, nets: Nets) -> None:
        super().__init__()
        self.style_encoder = nets.style_encoder
        self.dtype = next(nets.style_encoder.parameters()).dtype

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.style_encoder(latent.to(self.dtype)).float()


class StyleDecoderGraph(nn.Module):
    def __init__(self, nets: Nets) -> None:
        super().__init__()
        self.style_decoder = nets.style_decoder
        self.dtype = next(nets.style_decoder.parameters()).dtype

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.style_decoder(from_uint8_nhwc(image).to(self.dtype)).float()


#: The torch module traced for each graph (its I/O: graph_contract.GRAPH_IO).
MODULES: dict[str, type[nn.Module]] = {
    "generator": GeneratorGraph,
    "style_encoder": StyleEncoderGraph,
    "style_decoder": StyleDecoderGraph,
}


@dataclass
class ExportResult:
    out: Path
    files: dict[str, int]
    parity: list[ParityCheck]
    seconds: float
    manifest: ExportManifest
    tensorrt_parse: ParseCheck = field(default_factory=ParseCheck)
    warnings: list[str] = field(default_factory=list)


def check_export_options(
    *, fp16: bool, opset: int, max_batch: int, out: Path, overwrite: bool, plugin: bool = False
) -> None:
    """Every option checked before any work, with what would be valid."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OptionError(
            "opset",
            f"{opset} is not supported; valid: {MIN_OPSET}..{MAX_OPSET} (torch's exporter needs >= {MIN_OPSET})",
        )
    if max_batch < MIN_MAX_BATCH:
        raise OptionError("max_batch", f"{max_batch} is too small; valid: >= {MIN_MAX_BATCH}")
    if out.exists() and not out.is_dir():
        raise MaskfaceError(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OptionError("out", f"{out} is not empty (overwrite replaces an earlier export)")
    del fp16, plugin  # any value is valid


def _export_graph(graph: str, nets: Nets, path: Path, opset: int, max_batch: int, plugin: bool = False) -> None:
    """torch.onnx.export of one graph; ``plugin``: every AdaINAct becomes one FusedAdaIN node."""
    module = MODULES[graph](nets).eval()
    inputs, output = GRAPH_IO[graph]
    example = {k: torch.from_numpy(v) for k, v in sample_inputs(graph, nets.cfg, 2).items()}
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    dynamic = {name: {0: batch} for name in inputs}
    translations = None
    if plugin:
        from maskface_rt.kernels.onnx_op import translation_table

        translations = translation_table()
    with torch.no_grad(), _quiet(), adain_as_op(module) if plugin else contextlib.nullcontext():
        program = torch.onnx.export(
            module,
            tuple(example[n] for n in inputs),
            dynamo=True,
            input_names=list(inputs),
            output_names=[output],
            dynamic_shapes=dynamic,
            opset_version=opset,
            external_data=False,
            custom_translation_table=translations,
        )
    program.save(str(path))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch's exporter prints progress on stdout (kept for --json) and notes that concern other
    models (torchvision ops, deprecations) on stderr."""
    torch_onnx_log = logging.getLogger("torch.onnx")
    level = torch_onnx_log.level
    torch_onnx_log.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch_onnx_log.setLevel(level)


def _annotate(path: Path, props: dict[str, str], doc: str) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = doc
    model.producer_name = "maskface-rt"
    model.producer_version = __version__
    onnx.save(model, str(path))


def with_pre_quantization_output(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """A copy of the generator graph that also outputs its [-1, 1] image (the Tanh), for parity checks."""
    tanh = [n for n in model.graph.node if n.op_type == "Tanh"]
    if len(tanh) != 1:
        raise MaskfaceError(None, f"expected one Tanh node in the generator graph, found {len(tanh)}")
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    augmented.graph.output.append(onnx.helper.make_empty_tensor_value_info(tanh[0].output[0]))
    return augmented, tanh[0].output[0]


def _ort_session(model: onnx.ModelProto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _run_generator(
    path: Path, batches: tuple[int, ...], cfg: ModelConfig, plugin: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(uint8 image, [-1, 1] image) of a generator graph per batch: ONNX Runtime, or for a plugin
    graph onnx.reference with the numpy FusedAdaIN."""
    model, pre = with_pre_quantization_output(onnx.load(str(path)))
    if plugin:
        from maskface_rt.export.reference_ops import FAST_OPS
        from maskface_rt.kernels.onnx_op import FusedAdaIN
        from onnx.reference import ReferenceEvaluator

        run = ReferenceEvaluator(model, new_ops=[FusedAdaIN, *FAST_OPS]).run
    else:
        run = _ort_session(model).run
    return [tuple(run([IMAGE, pre], sample_inputs("generator", cfg, batch, seed=1))) for batch in batches]


@torch.no_grad()
def check_parity(
    folder: Path,
    reference: Nets,
    precision: str,
    batches: tuple[int, ...] = CHECK_BATCHES,
    portable_generator: Path | None = None,
) -> list[ParityCheck]:
    """torch fp32 (``reference``) vs ONNX Runtime on the exported graphs, at several batch sizes.

    With ``portable_generator`` (a plugin export), ``folder``'s generator is the plugin graph: it is run by
    onnx.reference against ``portable_generator`` on ONNX Runtime, which is checked against torch as
    ``generator_portable``.
    """
    cfg = reference.cfg
    tol = GENERATOR_TOLERANCE[precision]
    err, u8 = 0.0, 0
    portable = portable_generator or folder / graph_file("generator")
    for batch, (got_u8, got) in zip(batches, _run_generator(portable, batches, cfg), strict=True):
        feeds = sample_inputs("generator", cfg, batch, seed=1)
        ref = reference.generator(torch.from_numpy(feeds[LABELS]).long(), torch.from_numpy(feeds[STYLE]))
        err = max(err, max_abs_error(got, ref.numpy()))
        u8 = max(u8, max_uint8_diff(got_u8, to_uint8_nhwc(ref).numpy()))
    results = [
        ParityCheck(
            "generator" if portable_generator is None else "generator_portable",
            "max_abs_error",
            err,
            tol,
            batches,
            TORCH_VS_ORT,
            u8,
        )
    ]
    if portable_generator is not None:
        pairs = list(
            zip(
                _run_generator(folder / graph_file("generator"), PLUGIN_CHECK_BATCHES, cfg, plugin=True),
                _run_generator(portable_generator, PLUGIN_CHECK_BATCHES, cfg),
                strict=True,
            )
        )
        results.insert(
            0,
            ParityCheck(
                "generator",
                "max_abs_error",
                max(max_abs_error(got[1], want[1]) for got, want in pairs),
                tol,
                PLUGIN_CHECK_BATCHES,
                PLUGIN_VS_PORTABLE,
                max(max_uint8_diff(got[0], want[0]) for got, want in pairs),
            ),
        )
    for graph in GRAPHS[1:]:
        session = _ort_session(onnx.load(str(folder / graph_file(graph))))
        err = 0.0
        for batch in batches:
            feeds = sample_inputs(graph, cfg, batch, seed=1)
            t = {k: torch.from_numpy(v) for k, v in feeds.items()}
            ref = (
                reference.style_encoder(t[LATENT])
                if graph == "style_encoder"
                else reference.style_decoder(from_uint8_nhwc(t[IMAGE]))
            )
            (got,) = session.run([STYLE], feeds)
            err = max(err, max_rel_error(ref.numpy(), got))
        results.append(ParityCheck(graph, "max_abs_error", err, STYLE_TOLERANCE[precision], batches, TORCH_VS_ORT))
    return results


def export_onnx(
    model_path: str | Path,
    out: str | Path,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    max_batch: int = 64,
    overwrite: bool = False,
    plugin: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a model file's three graphs to ``out``, check them, then publish the folder atomically.

    ``plugin``: the generator gets FusedAdaIN nodes (TensorRT plugin); its portable twin is exported to a
    scratch folder for the check only.
    """
    t0 = time.perf_counter()
    model_path, out = Path(model_path), Path(out)
    check_export_options(fp16=fp16, opset=opset, max_batch=max_batch, out=out, overwrite=overwrite, plugin=plugin)
    stage = on_stage or (lambda _: None)
    reference = load_model(model_path)
    precision = EXPORT_PRECISIONS[1] if fp16 else EXPORT_PRECISIONS[0]
    manifest = ExportManifest(
        config=reference.cfg,
        precision=precision,
        opset=opset,
        max_batch=max_batch,
        source_sha256=sha256_file(model_path),
        package_version=__version__,
        plugin=plugin,
    )
    nets = copy.deepcopy(reference)  # the graphs are traced from a copy; ``reference`` stays fp32
    if fp16:
        nets = nets.half()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, publishable_mode(is_dir=True))
    try:
        for graph in GRAPHS:
            stage(f"exporting {graph}{' (FusedAdaIN plugin nodes)' if plugin and graph == 'generator' else ''}")
            path = tmp / graph_file(graph)
            _export_graph(graph, nets, path, opset, max_batch, plugin=plugin and graph == "generator")
            _annotate(path, manifest.metadata_props(graph), f"maskface-rt {graph} ({precision}) from {model_path.name}")
            stage(f"checking {graph} (onnx.checker, full; uint8 only at the graph's edges)")
            try:
                onnx.checker.check_model(str(path), full_check=True)
            except onnx.checker.ValidationError as e:
                raise MaskfaceError(path.name, f"onnx.checker rejected the graph: {str(e).splitlines()[0]}") from None
            check_uint8_io(onnx.load(str(path)), path.name)
            inputs, output = GRAPH_IO[graph]
            manifest.graphs[graph] = {
                "file": path.name,
                "sha256": sha256_file(path),
                "bytes": path.stat().st_size,
                "inputs": list(inputs),
                "output": output,
            }
        with tempfile.TemporaryDirectory(prefix="maskface-portable-") as scratch:
            portable = None
            if plugin:
                stage("exporting the portable generator (for the plugin check)")
                portable = Path(scratch) / graph_file("generator")
                _export_graph("generator", nets, portable, opset, max_batch)
                check_uint8_io(onnx.load(str(portable)), "generator.onnx (portable twin)")
            stage("checking the graphs with TensorRT's ONNX parser (where installed)")
            parse = check_export(tmp, GRAPHS, plugin=plugin, portable_generator=portable)
            stage("checking torch vs ONNX Runtime" + (", plugin graph vs portable graph" if plugin else ""))
            parity = check_parity(tmp, reference, precision, portable_generator=portable)
        manifest.parity = {
            p.graph: {
                "max_abs_error": p.value,
                "tolerance": p.bound,
                "batch_sizes": list(p.batch_sizes),
                "max_uint8_diff": p.max_uint8_diff,
                "compared": p.compared,
            }
            for p in parity
        }
        failed = [p for p in parity if not p.passed]
        if failed:
            raise MaskfaceError(model_path, "export failed its parity check: " + "; ".join(p.line() for p in failed))
        write_json_atomic(tmp / MANIFEST, manifest.to_dict())
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    return ExportResult(out, files, parity, time.perf_counter() - t0, manifest, parse)


def _publish(tmp: Path, out: Path) -> None:
    """Move the checked export into place; an earlier export is replaced only as a whole."""
    replace_folder(tmp, out)


def format_bytes(n: int) -> str:
    exp = min(int(math.log(max(n, 1), 1024)), 3)
    return f"{n / 1024**exp:.1f} {('B', 'KiB', 'MiB', 'GiB')[exp]}"
